"""`mirkd transcribe` and `mirkd info`, through main() and once through the installed script."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import jams
import numpy as np
import pytest
import soundfile as sf

from mirkd import __version__
from mirkd.atomic import atomic_path
from mirkd.checkpoints import save_checkpoint
from mirkd.cli import main
from mirkd.labels import read_annotation

from model_helpers import tiny_bundle

SR = 22050


@pytest.fixture()
def inputs(tmp_path: Path) -> dict[str, Path]:
    """A tiny BTC checkpoint, two good wavs (one in a subfolder) and a corrupt wav."""
    ckpt = tmp_path / "tiny.pt"
    save_checkpoint(ckpt, tiny_bundle(data_fingerprint="fp"))
    t = np.arange(int(2.5 * SR)) / SR
    chord = sum(np.sin(2 * np.pi * f * t) for f in (261.63, 329.63, 392.0)) / 3
    good = tmp_path / "song.wav"
    sf.write(good, chord.astype(np.float32), SR)
    (tmp_path / "more").mkdir()
    other = tmp_path / "more" / "other.flac"
    sf.write(other, (0.5 * chord).astype(np.float32), SR)
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really audio")
    return {"ckpt": ckpt, "good": good, "other": other, "bad": bad, "out": tmp_path / "labs"}


def _transcribe(
    *audio: Path, checkpoint: Path, out: Path, options: Sequence[str] = ()
) -> list[str]:
    """The arguments of `mirkd transcribe` for `audio` with a checkpoint and an output folder."""
    files = [str(a) for a in audio]
    return ["transcribe", *files, "--checkpoint", str(checkpoint), "--out", str(out), *options]


def _check_lab(path: Path) -> None:
    segments = read_annotation(path)
    assert segments and segments[0].start == 0.0
    assert segments[-1].end == pytest.approx(2.5, abs=1e-6)


def test_transcribe_writes_one_lab_per_file(inputs):
    code = main(
        _transcribe(
            inputs["good"],
            inputs["other"],
            checkpoint=inputs["ckpt"],
            out=inputs["out"],
            options=("--device", "cpu"),
        )
    )
    assert code == 0
    assert sorted(p.name for p in inputs["out"].iterdir()) == ["other.lab", "song.lab"]
    for lab in inputs["out"].iterdir():
        _check_lab(lab)


def test_transcribe_jams_names_the_model_and_matches_lab(inputs):
    good, ckpt, out = inputs["good"], inputs["ckpt"], inputs["out"]
    jams_options = ("--device", "cpu", "--format", "jams", "--viterbi", "0.9")
    assert main(_transcribe(good, checkpoint=ckpt, out=out, options=jams_options)) == 0
    lab_options = ("--device", "cpu", "--viterbi", "0.9")
    assert main(_transcribe(good, checkpoint=ckpt, out=out, options=lab_options)) == 0
    assert sorted(p.name for p in inputs["out"].iterdir()) == ["song.jams", "song.lab"]
    jam = jams.load(str(inputs["out"] / "song.jams"), validate=True, strict=True)
    assert jam.file_metadata.duration == pytest.approx(2.5, abs=1e-6)
    (annotation,) = jam.annotations
    assert annotation.namespace == "chord"
    meta = annotation.annotation_metadata
    assert meta.annotation_tools == f"mirkd {__version__}"
    digest = hashlib.sha256(inputs["ckpt"].read_bytes()).hexdigest()
    assert dict(meta.annotator) == {
        "name": "tiny",
        "checkpoint": "tiny.pt",
        "checkpoint_sha256": digest,
        "arch": "btc",
        "vocab": "large170",
        "mirkd_version": __version__,
        "decoding": "viterbi",
        "stay": 0.9,
        **{k: meta.annotator[k] for k in ("git_commit", "created") if k in meta.annotator},
    }
    assert read_annotation(inputs["out"] / "song.jams") == read_annotation(
        inputs["out"] / "song.lab"
    )


def test_bad_file_is_reported_and_skipped(inputs, capsys):
    code = main(
        _transcribe(inputs["bad"], inputs["good"], checkpoint=inputs["ckpt"], out=inputs["out"])
    )
    assert code == 1
    assert [p.name for p in inputs["out"].iterdir()] == ["song.lab"]
    err = capsys.readouterr().err
    assert str(inputs["bad"]) in err and "cannot decode audio" in err
    assert "1 of 2 file(s) failed" in err


def test_duplicate_output_names_are_not_overwritten(inputs, capsys, tmp_path):
    twin = tmp_path / "more" / "song.flac"
    twin.write_bytes(inputs["other"].read_bytes())
    code = main(_transcribe(inputs["good"], twin, checkpoint=inputs["ckpt"], out=inputs["out"]))
    assert code == 1
    assert "already written for" in capsys.readouterr().err
    assert [p.name for p in inputs["out"].iterdir()] == ["song.lab"]


def test_unusable_checkpoint_or_device_fails_cleanly(inputs, capsys):
    code = main(_transcribe(inputs["good"], checkpoint=inputs["bad"], out=inputs["out"]))
    assert code == 1
    assert str(inputs["bad"]) in capsys.readouterr().err
    code = main(
        _transcribe(
            inputs["good"],
            checkpoint=inputs["ckpt"],
            out=inputs["out"],
            options=("--device", "tpu"),
        )
    )
    assert code == 1
    assert "unknown device 'tpu'" in capsys.readouterr().err
    assert not inputs["out"].exists()


def test_info_prints_metadata_json(inputs, capsys):
    assert main(["info", str(inputs["ckpt"])]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["arch"] == "btc" and info["vocab"] == "large170"
    assert info["hparams"]["num_layers"] == 1 and info["hparams"]["num_chords"] == 170
    assert info["provenance"]["data_fingerprint"] == "fp"
    assert info["mean"] == -3.5 and info["feature_params"]["hop_length"] == 2048
    assert main(["info", str(inputs["bad"])]) == 1


def test_installed_script(inputs):
    script = Path(sys.executable).parent / "mirkd"
    result = subprocess.run(
        [
            str(script),
            *_transcribe(
                inputs["good"], inputs["bad"], checkpoint=inputs["ckpt"], out=inputs["out"]
            ),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1, result.stderr
    assert [p.name for p in inputs["out"].iterdir()] == ["song.lab"]
    _check_lab(inputs["out"] / "song.lab")
    assert "broken.wav" in result.stderr


def test_viterbi_decoding_gives_fewer_or_equal_segments(inputs, capsys):
    argmax_out, viterbi_out = inputs["out"] / "argmax", inputs["out"] / "viterbi"
    good, ckpt, cpu = inputs["good"], inputs["ckpt"], ("--device", "cpu")
    assert main(_transcribe(good, checkpoint=ckpt, out=argmax_out, options=cpu)) == 0
    smooth = (*cpu, "--viterbi", "0.999")
    assert main(_transcribe(good, checkpoint=ckpt, out=viterbi_out, options=smooth)) == 0
    argmax = read_annotation(argmax_out / "song.lab")
    smoothed = read_annotation(viterbi_out / "song.lab")
    _check_lab(viterbi_out / "song.lab")
    assert len(smoothed) <= len(argmax)
    with pytest.raises(SystemExit):
        main(
            _transcribe(good, checkpoint=ckpt, out=viterbi_out, options=(*cpu, "--viterbi", "1.5"))
        )
    assert "not a probability" in capsys.readouterr().err


def test_an_output_path_that_is_a_file_fails_before_any_work(inputs, capsys, tmp_path):
    taken = tmp_path / "taken.txt"
    taken.write_text("not a folder")
    code = main(_transcribe(inputs["good"], checkpoint=inputs["bad"], out=taken))
    assert code == 1
    err = capsys.readouterr().err
    assert f"--out {taken}: is a file" in err
    assert str(inputs["bad"]) not in err  # refused before the checkpoint was even read
    assert taken.read_text() == "not a folder"


def test_an_output_folder_that_cannot_be_made_fails_before_any_song(inputs, capsys, tmp_path):
    taken = tmp_path / "taken.txt"
    taken.write_text("not a folder")
    code = main(_transcribe(inputs["good"], checkpoint=inputs["ckpt"], out=taken / "labs"))
    assert code == 1
    err = capsys.readouterr().err
    assert f"--out {taken / 'labs'}: cannot write into this folder: Not a directory" in err
    assert "nothing was transcribed" in err and str(inputs["good"]) not in err


def test_an_output_that_cannot_be_written_is_named_with_the_cause(inputs, capsys, monkeypatch):
    def full_disk(out_dir, audio, *args):
        with atomic_path(Path(out_dir) / f"{Path(audio).stem}.lab") as tmp:
            tmp.write_text("0 1 C")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # as a failed write says

    monkeypatch.setattr("mirkd.cli.write_outputs", full_disk)
    code = main(_transcribe(inputs["good"], checkpoint=inputs["ckpt"], out=inputs["out"]))
    assert code == 1
    lab = inputs["out"] / "song.lab"
    err = capsys.readouterr().err
    assert f"skipped {inputs['good']}: cannot write {lab}: No space left on device" in err
    assert list(inputs["out"].iterdir()) == []  # no partial output, no temp file


@pytest.mark.parametrize(
    ("option", "value", "cause"),
    [
        ("--viterbi", "abc", "'abc' is not a number"),
        ("--viterbi", "nan", "nan is not a probability in (0, 1)"),
        ("--beat-stay", "x", "'x' is not a number"),
    ],
)
def test_a_bad_probability_names_its_option_and_the_cause(capsys, option, value, cause):
    with pytest.raises(SystemExit):
        main(["transcribe", "song.wav", "--checkpoint", "c.pt", "--out", "o", option, value])
    err = capsys.readouterr().err
    assert f"argument {option}: {cause}" in err
    assert "_probability" not in err
