"""Tests of the embedded synthetic demo corpus (mirkd.demo)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import librosa
import numpy as np
import pytest
import soundfile as sf

from mirkd import demo
from mirkd.errors import ChordLabelError, ConfigError
from mirkd.labels import read_annotation
from mirkd.vocab import LARGE, QUALITIES

SR = 22050


def _assert_tiles(segments, duration: float) -> None:
    assert segments[0].start == 0.0
    assert segments[-1].end == pytest.approx(duration, abs=1e-6)
    for prev, nxt in zip(segments[:-1], segments[1:], strict=True):
        assert nxt.start == pytest.approx(prev.end, abs=1e-6)
        assert nxt.end > nxt.start
        assert nxt.label != prev.label
    for seg in segments:
        LARGE.to_index(seg.label)


def test_synthesize_song_is_deterministic_and_exact() -> None:
    y1, segs1 = demo.synthesize_song(7, 20.0)
    y2, segs2 = demo.synthesize_song(np.random.default_rng(7), 20.0)
    y3, _ = demo.synthesize_song(8, 20.0)
    assert y1.dtype == np.float32 and y1.shape == (20 * SR,)
    assert np.array_equal(y1, y2) and segs1 == segs2
    assert not np.array_equal(y1, y3)
    assert np.abs(y1).max() <= 1.0
    _assert_tiles(segs1, len(y1) / SR)
    assert segs1[0].label == "N" and segs1[-1].label == "N"
    # the lead-in is silence or faint noise only; the music is far louder
    lead = y1[: int(segs1[0].end * SR)]
    body = y1[int(segs1[1].start * SR) : int(segs1[-1].start * SR)]
    assert np.sqrt(np.mean(lead**2)) < 0.05 * np.sqrt(np.mean(body**2))


def test_chord_pitch_classes_follow_harte() -> None:
    assert demo.chord_pitch_classes("G:7/b7") == ((7, 11, 2, 5), 5)
    assert demo.chord_pitch_classes("C/3") == ((0, 4, 7), 4)
    assert demo.chord_pitch_classes("A:hdim7") == ((9, 0, 3, 7), 9)
    with pytest.raises(ChordLabelError):
        demo.chord_pitch_classes("N")


@pytest.mark.filterwarnings("ignore:n_fft=.*is too large:UserWarning")
def test_chroma_matches_labelled_chord_tones() -> None:
    hits, total = 0, 0
    for seed in range(3):
        plan = demo.plan_song(seed, 20.0)
        y = demo.render_song(plan)
        for ev in plan.events:
            if ev.label == "N" or ev.end - ev.start < SR:
                continue
            chroma = librosa.feature.chroma_cqt(
                y=y[ev.start : ev.end], sr=SR, hop_length=512, tuning=0.0
            ).mean(axis=1)
            pcs, _ = demo.chord_pitch_classes(ev.label)
            mask = np.zeros(12, dtype=bool)
            mask[list(pcs)] = True
            assert chroma[mask].mean() > 2.0 * chroma[~mask].mean(), ev.label
            hits += set(np.argsort(chroma)[::-1][: len(pcs)]) == set(pcs)
            total += 1
    assert total >= 10
    assert hits >= 0.9 * total


def test_quality_histogram_has_rare_qualities() -> None:
    counts: Counter[str] = Counter()
    inversions = 0
    for i in range(30):
        plan = demo.plan_song(demo.song_seed(0, "unlabeled", i), 60.0)
        for ev in plan.events:
            if ev.label != "N":
                counts[LARGE.quality(LARGE.to_index(ev.label))] += 1
                inversions += "/" in ev.label
    total = sum(counts.values())
    assert set(counts) == set(QUALITIES)
    assert (counts["maj"] + counts["min"]) / total > 0.55
    for quality in ("dim", "dim7", "hdim7", "aug", "sus2", "sus4", "maj6", "min6", "minmaj7"):
        assert counts[quality] / total < 0.06, quality
    assert 0.03 < inversions / total < 0.25


def test_a_long_song_is_synthesized_whole_and_bounded() -> None:
    """A minute of audio (its speed is a benchmark's matter, not a unit test's: a timed
    assertion failed under load)."""
    y, _ = demo.synthesize_song(1, 60.0)
    assert len(y) == 60 * SR and np.isfinite(y).all() and np.abs(y).max() <= 1.0


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_write_demo_corpus_layout_and_determinism(tmp_path: Path) -> None:
    kwargs = dict(seed=3, min_seconds=5.0, max_seconds=8.0)
    corpus = demo.write_demo_corpus(tmp_path / "a", 2, 2, 1, **kwargs)
    demo.write_demo_corpus(tmp_path / "b", 2, 2, 1, **kwargs)
    demo.write_demo_corpus(tmp_path / "c", 1, 3, 0, **kwargs)
    a, b, c = (_files(tmp_path / d) for d in "abc")

    assert a == b
    assert sorted(a) == [
        "corpus.json",
        "labeled/labeled_0000.flac",
        "labeled/labeled_0000.lab",
        "labeled/labeled_0001.flac",
        "labeled/labeled_0001.lab",
        "test/test_0000.flac",
        "test/test_0000.lab",
        "unlabeled/unlabeled_0000.flac",
        "unlabeled/unlabeled_0001.flac",
        "unlabeled_truth/unlabeled_0000.lab",
        "unlabeled_truth/unlabeled_0001.lab",
    ]
    # song i of a part does not depend on how many songs were requested
    for name in (
        "unlabeled/unlabeled_0000.flac",
        "labeled/labeled_0001.flac",
        "labeled/labeled_0001.lab",
    ):
        assert c[name] == a[name]

    on_disk = json.loads((tmp_path / "a" / "corpus.json").read_text())
    assert on_disk == json.loads(json.dumps(corpus))
    assert on_disk["seed"] == 3 and on_disk["parameters"]["n_labeled"] == 2
    assert len(on_disk["songs"]) == 5
    for song in on_disk["songs"]:
        info = sf.info(str(tmp_path / "a" / song["audio"]))
        assert info.format == "FLAC" and info.subtype == "PCM_16" and info.samplerate == SR
        assert 5.0 <= info.duration <= 8.0
        assert info.frames == round(song["duration"] * SR)
        segments = read_annotation(tmp_path / "a" / song["lab"])
        _assert_tiles(segments, info.frames / SR)
        assert song["n_chords"] == sum(s.label != "N" for s in segments)
        assert 70.0 <= song["tempo"] <= 160.0
        assert song["timbre"] in demo.CHORD_TIMBRES
        LARGE.to_index(song["key"])


def test_invalid_parameters_raise() -> None:
    with pytest.raises(ConfigError):
        demo.plan_song(0, 1.0)
    with pytest.raises(ConfigError):
        demo.write_demo_corpus(
            "/nonexistent-never-written", 1, 1, 1, seed=0, min_seconds=9, max_seconds=8
        )
