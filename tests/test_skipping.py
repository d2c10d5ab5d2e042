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
from mirkd.manifest import TrackFiles, scan_audio
from mirkd.steps.data import extract_features
from mirkd.steps.teacher import run_teacher, write_skipped_report
from mirkd.steps.train import train_stage1
from mirkd.store import read_features, shard_skipped, shard_track_ids, skipped_cause
from mirkd.summary import skipped_note
from mirkd.vocab import LARGE

from model_helpers import TINY_BTC, stage_settings

STUB = {"kind": "stub", "checkpoint": None, "device": "cpu", "precision": "fp32"}


class StubTeacher:
    """Uniform-ish probabilities; refuses audio whose name contains 'undecodable'."""

    kind, name, fingerprint = "stub", "stub", "0" * 64

    def frame_probs(self, audio_path: Path, features: np.ndarray) -> np.ndarray:
        if "undecodable" in audio_path.name:
            raise AudioError(audio_path, "cannot decode audio: teacher's decoder lost sync")
        rng = np.random.default_rng(len(features))
        probs = rng.random((len(features), LARGE.size)).astype(np.float32)
        return probs / probs.sum(axis=1, keepdims=True)


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


def _rows(tmp_path: Path, names: list[str]) -> list[TrackFiles]:
    """Feature rows of unlabeled tracks `names` (broken ones by name), features extracted."""
    rows = []
    for name in names:
        audio = tmp_path / f"{name}.wav"
        (_broken if name.startswith("broken") else _song)(audio)
        features = tmp_path / "features" / f"{name}.h5"
        extract_features(str(audio), str(features), name, f"fp-{name}", skip_undecodable=True)
        rows.append(TrackFiles(name, str(audio), str(features), None, f"fp-{name}"))
    return rows


def test_undecodable_unlabeled_track_gets_a_skipped_marker(tmp_path):
    audio = _broken(tmp_path / "broken.wav")
    out = tmp_path / "features" / "broken.h5"
    extract_features(str(audio), str(out), "broken", "fp", skip_undecodable=True)
    assert skipped_cause(out).startswith("cannot decode audio")
    assert read_features(out).shape == (0, 144)
    assert [p.name for p in out.parent.iterdir()] == ["broken.h5"]  # written atomically


def test_labeled_tracks_stay_strict(tmp_path):
    audio = _broken(tmp_path / "broken.wav")
    with pytest.raises(AudioError, match="broken.wav: cannot decode audio"):
        extract_features(str(audio), str(tmp_path / "f.h5"), "broken", "fp")
    assert not (tmp_path / "f.h5").exists()


def test_teacher_shard_leaves_bad_tracks_out_and_records_them(tmp_path, stub_teacher):
    rows = _rows(tmp_path, ["good", "broken", "undecodable"])
    shard = tmp_path / "shard_000.h5"
    run_teacher(str(shard), STUB, rows, skip_undecodable=True)
    assert shard_track_ids(shard) == ["good"]
    skipped = shard_skipped(shard)
    assert sorted(skipped) == ["broken", "undecodable"]
    assert skipped["broken"]["audio"] == rows[1].audio
    assert skipped["broken"]["cause"].startswith("cannot decode audio")
    assert "lost sync" in skipped["undecodable"]["cause"]
    with pytest.raises(AudioError, match="undecodable.wav"):  # labeled/test: strict
        run_teacher(str(tmp_path / "strict.h5"), STUB, rows[2:])


def test_skipped_report_lists_tracks_and_enforces_the_fraction(tmp_path, stub_teacher):
    rows = _rows(tmp_path, ["good", "broken"])
    shard = tmp_path / "shard_000.h5"
    run_teacher(str(shard), STUB, rows, skip_undecodable=True)
    out = tmp_path / "skipped.tsv"
    write_skipped_report(str(out), [str(shard)], n_unlabeled=100, max_fraction=0.01)
    lines = out.read_text().splitlines()
    assert lines[0] == "set\ttrack_id\taudio\tcause"
    assert lines[1].startswith(f"unlabeled\tbroken\t{rows[1].audio}\tcannot decode audio")
    assert "Skipped unlabeled tracks (cannot be decoded): 1" in skipped_note(out)
    with pytest.raises(MirkdError, match=r"1 of 50 unlabeled tracks.*max_skipped_fraction"):
        write_skipped_report(str(tmp_path / "x.tsv"), [str(shard)], 50, 0.01)
    assert not (tmp_path / "x.tsv").exists()


def test_stage1_trains_without_the_skipped_tracks(tmp_path, stub_teacher):
    rows = _rows(tmp_path, ["good1", "good2", "broken1", "good3", "broken2"])
    shard = tmp_path / "shard_000.h5"
    run_teacher(str(shard), STUB, rows, skip_undecodable=True)
    common = {"student": {"arch": "btc", "hparams": TINY_BTC}, "device": "cpu"}
    train_cfg = stage_settings("stage1", epochs=1, batch_size=4, warmup_epochs=0)
    out = tmp_path / "stage1.pt"
    train_stage1(
        common,
        train_cfg,
        {r.track_id: str(shard) for r in rows},
        rows[:3],
        rows[3:],
        str(tmp_path / "work"),
        str(out),
        str(tmp_path / "history.json"),
    )
    provenance = load_checkpoint(out).provenance
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
    rows = _rows(tmp_path, ["good1", "broken1"])
    shard = tmp_path / "shard_000.h5"
    run_teacher(str(shard), STUB, rows, skip_undecodable=True)
    common = {"student": {"arch": "btc", "hparams": TINY_BTC}, "device": "cpu"}
    with pytest.raises(MirkdError, match=r"no usable unlabeled 'val' track left \(1 skipped"):
        train_stage1(
            common,
            stage_settings("stage1", epochs=1, batch_size=4),
            {r.track_id: str(shard) for r in rows},
            rows[:1],
            rows[1:],
            str(tmp_path / "work"),
            str(tmp_path / "s1.pt"),
            str(tmp_path / "h.json"),
        )
