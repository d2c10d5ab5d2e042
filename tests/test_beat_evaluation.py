"""Scoring chords decided per beat in the pipeline (issue 18, `evaluation.beats`): the beats
bucket files and the per-beat scores of the evaluation step."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from mirkd.beats import BeatGrid, TrackedBeats, beats_attrs, beats_part, read_track_beats
from mirkd.evaluation import METRICS
from mirkd.labels import ChordSegment
from mirkd.manifest import TrackFiles
from mirkd.steps import beats as beats_step
from mirkd.steps.evaluate import BeatDecoding, beat_song_segments, score_beats
from mirkd.store import BucketFile, FrameGrid, pack_bucket
from mirkd.training.validation import ReferenceTrack
from mirkd.vocab import LARGE

PERIOD = 0.1  # s per frame
CHORDS = ["C", "C", "G", "G", "A:min", "A:min", "F", "F"]  # one per beat of 0.5 s


def _grid(n: int = 8) -> BeatGrid:
    return BeatGrid(times=np.arange(n) * 0.5, positions=np.arange(n) % 4 + 1, meter=4)


def _song(name: str) -> ReferenceTrack:
    reference = [ChordSegment(i * 0.5, (i + 1) * 0.5, label) for i, label in enumerate(CHORDS)]
    return ReferenceTrack(name, np.zeros((40, 1)), FrameGrid(PERIOD, 40, 4.0), reference)


def _log_posteriors() -> np.ndarray:
    """Five frames a beat: the first frame of each beat says E:min, the other four the beat's
    chord (90 % sure)."""
    frames = [label for chord in CHORDS for label in ["E:min"] + [chord] * 4]
    probs = np.full((len(frames), LARGE.size), 0.1 / (LARGE.size - 1))
    for t, label in enumerate(frames):
        probs[t, LARGE.to_index(label)] = 0.9
    return np.log(probs)


def test_per_beat_scores_beat_the_frames_and_no_beat_songs_fall_back():
    songs = [_song("with_beats"), _song("no_beats")]
    log_probs = {s.name: _log_posteriors() for s in songs}
    argmax = {name: lp.argmax(axis=1) for name, lp in log_probs.items()}
    beats = {"with_beats": TrackedBeats(_grid()), "no_beats": TrackedBeats(None)}
    scores = score_beats(songs, log_probs, beats, BeatDecoding(0.8, "argmax", argmax))
    assert scores.per_song["with_beats"]["scores"]["majmin"] == pytest.approx(1.0)
    # the fallback is the argmax frames: the wrong first frame of each beat (1 in 5) stays
    assert scores.per_song["no_beats"]["scores"]["majmin"] == pytest.approx(0.8)
    assert scores.no_beats == ["no_beats"] and scores.skipped == {}
    assert scores.n_songs == 2 and scores.fallback == "argmax" and scores.stay == 0.8
    assert set(scores.mean) == set(METRICS) and scores.mean["majmin"] == pytest.approx(0.9)
    assert set(scores.ci95) == {*METRICS, "mean7"} and scores.mean7 is not None
    assert scores.groups


def test_beat_segments_of_a_song_merge_its_beats():
    song = _song("s")
    decoding = BeatDecoding(0.8, "viterbi", {})
    segments = beat_song_segments(song, _log_posteriors(), TrackedBeats(_grid()), decoding)
    assert [(s.start, s.end, s.label) for s in segments] == [
        (0.0, 1.0, "C"),
        (1.0, 2.0, "G"),
        (2.0, 3.0, "A:min"),
        (3.0, 4.0, "F"),
    ]


def test_score_beats_writes_the_per_beat_predictions(tmp_path):
    songs = [_song("s")]
    log_probs = {"s": _log_posteriors()}
    decoding = BeatDecoding(0.8, "viterbi", {})
    score_beats(songs, log_probs, {"s": TrackedBeats(_grid())}, decoding, tmp_path / "beats")
    lines = (tmp_path / "beats" / "s.lab").read_text().splitlines()
    assert [line.split()[2] for line in lines] == ["C", "G", "A:min", "F"]


def test_beats_file_keeps_beats_no_beat_and_skipped_songs(tmp_path):
    path = tmp_path / "b.h5"
    parts = [
        beats_part("a", "fa", "a.flac", _grid(), 4.0),
        beats_part("quiet", "fq", "quiet.flac", None, 3.0),
        beats_part("bad", "fb", "bad.flac", None, 0.0, "cannot decode"),
    ]
    pack_bucket(path, parts, beats_attrs())
    a = read_track_beats(str(path), "a")
    assert a.grid is not None and a.grid.meter == 4 and a.skipped == ""
    assert a.grid.times.tolist() == _grid().times.tolist()
    assert a.grid.positions.tolist() == _grid().positions.tolist()
    assert read_track_beats(str(path), "quiet") == TrackedBeats(None, "")
    assert read_track_beats(str(path), "bad") == TrackedBeats(None, "cannot decode")
    attrs = BucketFile(path).attrs
    assert attrs["kind"] == "beats" and "madmom" in attrs["tracker_version"]


def _track(tmp_path, name: str, audio: bool = True) -> TrackFiles:
    path = tmp_path / f"{name}.wav"
    if audio:
        sf.write(path, np.zeros(22050, dtype=np.float32), 22050)
    else:
        path.write_bytes(b"not audio")
    return TrackFiles(name, str(path), "", "", None, f"sha-{name}")


def test_beats_step_tracks_each_song_once_and_skips_undecodable_audio(tmp_path, monkeypatch):
    calls = []

    def fake_tracker(y, sr):
        calls.append(len(y) / sr)
        return _grid(4) if len(calls) == 1 else None

    monkeypatch.setattr(beats_step, "track_beats", fake_tracker)
    tracks = [_track(tmp_path, "one"), _track(tmp_path, "silent"), _track(tmp_path, "bad", False)]
    out = str(tmp_path / "beats" / "b.h5")
    beats_step.track_bucket_beats(out, str(tmp_path / "work"), tracks)
    assert calls == [1.0, 1.0]  # the undecodable file never reaches the tracker
    assert read_track_beats(out, "one").grid is not None
    assert read_track_beats(out, "silent") == TrackedBeats(None, "")
    assert read_track_beats(out, "bad").grid is None and read_track_beats(out, "bad").skipped
    # a rerun of the bucket (say a song was added) carries the tracked songs over
    beats_step.track_bucket_beats(out, str(tmp_path / "work"), tracks)
    assert calls == [1.0, 1.0]


def test_the_pipeline_default_beat_stay_is_the_cli_default():
    from pathlib import Path

    import yaml

    from mirkd.beats import BEAT_STAY

    schema = yaml.safe_load((Path(__file__).parents[1] / "config.schema.yaml").read_text())
    evaluation = schema["properties"]["evaluation"]["properties"]
    assert evaluation["beat_stay"]["default"] == BEAT_STAY
    assert evaluation["beats"]["default"] is False
