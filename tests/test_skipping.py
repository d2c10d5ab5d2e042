"""Unlabeled files that cannot be decoded are skipped, recorded and reported; stage 1 goes on
without them; labeled files stay strict; unsupported files in data folders are reported."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from mirkd.checkpoints import load_checkpoint
from mirkd.errors import AudioError, MirkdError
from mirkd.manifest import BucketFiles, TrackFiles, scan_audio
from mirkd.steps.data import extract_bucket_features
from mirkd.steps.teacher import run_teacher_bucket, write_skipped_report
from mirkd.steps.train import train_stage1
from mirkd.store import BucketFile
from mirkd.summary import skipped_note
from mirkd.vocab import LARGE

from model_helpers import TINY_BTC, stage_settings

STUB = {"kind": "stub", "checkpoint": None, "device": "cpu", "precision": "fp32"}


def _stub_front_end(audio_path: Path, features: np.ndarray) -> int:
    """Refuses audio whose name contains 'undecodable'; hands the frame count on."""
    if "undecodable" in Path(audio_path).name:
        raise AudioError(audio_path, "cannot decode audio: teacher's decoder lost sync")
    return len(features)


class StubTeacher:
    """Uniform-ish probabilities; its front end refuses audio named 'undecodable'."""

    kind, name, fingerprint = "stub", "stub", "0" * 64
    tracks_per_pass = 1
    front_end = staticmethod(_stub_front_end)

    def infer(self, inputs: list[int]) -> list[np.ndarray]:
        probs = [np.random.default_rng(n).random((n, LARGE.size)) for n in inputs]
        return [(p / p.sum(axis=1, keepdims=True)).astype(np.float32) for p in probs]


@pytest.fixture
def stub_teacher(monkeypatch):
    monkeypatch.setattr("mirkd.steps.teacher.build_teacher", lambda *args: StubTeacher())


def _song(path: Path, seconds: float = 4.0) -> Path:
    t = np.arange(int(seconds * 22050)) / 22050
    sf.write(path, 0.3 * np.sin(2 * np.pi * 220 * t), 22050)
    return path


def _broken(path: Path) -> Path:
    path.write_bytes(b"RIFF\x00\x00garbage" * 100)
    return path


def _bucket(tmp_path: Path, bucket: str, names: list[str]) -> list[TrackFiles]:
    """Unlabeled tracks `names` (broken ones by name) in one bucket, features extracted."""
    rows = []
    for name in names:
        audio = tmp_path / f"{name}.wav"
        (_broken if name.startswith("broken") else _song)(audio)
        features = str(tmp_path / "features" / f"{bucket}.h5")
        teacher = str(tmp_path / "teacher" / f"{bucket}.h5")
        rows.append(TrackFiles(name, str(audio), features, teacher, None, f"fp-{name}"))
    work = str(tmp_path / "work" / "features" / bucket)
    extract_bucket_features(rows[0].features, work, rows, skip_undecodable=True)
    return rows


def _teacher(tmp_path: Path, rows: list[TrackFiles], skip: bool = True) -> str:
    work = str(tmp_path / "work" / "teacher" / Path(rows[0].teacher).stem)
    run_teacher_bucket(rows[0].teacher, work, STUB, rows, skip_undecodable=skip)
    return rows[0].teacher


def test_undecodable_unlabeled_track_is_recorded_as_skipped(tmp_path):
    rows = _bucket(tmp_path, "b", ["good", "broken"])
    bucket = BucketFile(rows[0].features)
    assert bucket.track_ids == ["good", "broken"] and bucket.usable() == ["good"]
    assert bucket.skipped()["broken"].startswith("cannot decode audio")
    assert bucket.frames("cqt", "broken").shape == (0, 144)
    assert bucket.column("source", "broken") == rows[1].audio
    written = sorted(p.name for p in (tmp_path / "features").iterdir())
    assert written == ["b.h5", "b.h5.verified"]  # atomic: no temp file; the packer's record
    assert not (tmp_path / "work" / "features" / "b").exists()  # parts removed once packed


def test_labeled_tracks_stay_strict(tmp_path):
    audio = _broken(tmp_path / "broken.wav")
    row = TrackFiles("broken", str(audio), str(tmp_path / "f.h5"), "", None, "fp")
    with pytest.raises(AudioError, match="broken.wav: cannot decode audio"):
        extract_bucket_features(row.features, str(tmp_path / "work"), [row])
    assert not (tmp_path / "f.h5").exists()


def test_teacher_bucket_records_bad_tracks(tmp_path, stub_teacher):
    rows = _bucket(tmp_path, "b", ["good", "broken", "undecodable"])
    teacher = BucketFile(_teacher(tmp_path, rows))
    assert teacher.usable() == ["good"]
    skipped = teacher.skipped()
    assert sorted(skipped) == ["broken", "undecodable"]
    assert skipped["broken"].startswith("cannot decode audio")
    assert "lost sync" in skipped["undecodable"]
    with pytest.raises(AudioError, match="undecodable.wav"):  # labeled/test: strict
        _teacher(tmp_path, rows[2:], skip=False)


def test_skipped_report_lists_tracks_and_enforces_the_fraction(tmp_path, stub_teacher):
    rows = _bucket(tmp_path, "b", ["good", "broken"])
    teacher = _teacher(tmp_path, rows)
    out = tmp_path / "skipped.tsv"
    write_skipped_report(str(out), [teacher], n_unlabeled=100, max_fraction=0.01)
    lines = out.read_text().splitlines()
    assert lines[0] == "set\ttrack_id\taudio\tcause"
    assert lines[1].startswith(f"unlabeled\tbroken\t{rows[1].audio}\tcannot decode audio")
    assert "Skipped unlabeled tracks (cannot be decoded): 1" in skipped_note(out)
    with pytest.raises(MirkdError, match=r"1 of 50 unlabeled tracks.*max_skipped_fraction"):
        write_skipped_report(str(tmp_path / "x.tsv"), [teacher], 50, 0.01)
    assert not (tmp_path / "x.tsv").exists()


def _stage1(tmp_path: Path, train: list[TrackFiles], val: list[TrackFiles], **settings) -> Path:
    buckets = [BucketFiles(rows[0].features, _teacher(tmp_path, rows)) for rows in (train, val)]
    common = {"student": {"arch": "btc", "hparams": TINY_BTC}, "device": "cpu"}
    out = tmp_path / "stage1.pt"
    train_stage1(
        common,
        stage_settings("stage1", epochs=1, batch_size=4, **settings),
        buckets[:1],
        buckets[1:],
        str(tmp_path / "work" / "stage1"),
        str(out),
        str(tmp_path / "history.json"),
    )
    return out


def test_stage1_trains_without_the_skipped_tracks(tmp_path, stub_teacher):
    train = _bucket(tmp_path, "train", ["good1", "good2", "broken1"])
    val = _bucket(tmp_path, "val", ["good3", "broken2"])
    provenance = load_checkpoint(_stage1(tmp_path, train, val, warmup_epochs=0)).provenance
    assert sorted(provenance["train_data"]) == ["good1", "good2"]
    assert sorted(provenance["val_data"]) == ["good3"]


def test_unsupported_files_in_a_data_folder_are_reported(tmp_path, caplog):
    folder = tmp_path / "music"
    folder.mkdir()
    _song(folder / "a.wav")
    for name in ("b.m4a", "c.m4a", "sub/d.aac", "a.lab"):
        (folder / name).parent.mkdir(exist_ok=True)
        (folder / name).write_bytes(b"x")
    with caplog.at_level(logging.WARNING, logger="mirkd"):
        tracks = scan_audio(folder, "unlabeled", need_labels=False)
    assert [Path(t.audio).name for t in tracks] == ["a.wav"]
    assert "3 file(s) ignored" in caplog.text and ".m4a: 2, .aac: 1" in caplog.text
    assert "b.m4a" in caplog.text and "a.lab" not in caplog.text


def test_stage1_names_a_split_left_without_usable_tracks(tmp_path, stub_teacher):
    train = _bucket(tmp_path, "train", ["good1"])
    val = _bucket(tmp_path, "val", ["broken1"])
    with pytest.raises(MirkdError, match=r"no usable unlabeled 'val' track left \(1 skipped"):
        _stage1(tmp_path, train, val)
