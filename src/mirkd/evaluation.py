"""Chord evaluation under the standard mir_eval protocol, plus per-quality analysis.

Protocol (as the original BTC evaluation): reference
``.lab`` segments are used raw (inversions and extensions kept, ``X`` excluded by mir_eval);
the estimate is adjusted to the reference span (padded with ``N``), both are merged onto
common intervals and each mir_eval comparison is turned into a duration-weighted chord
symbol recall (WCSR). Songs are averaged weighted by their reference span in seconds.

Per-quality analysis maps reference and estimated labels through the 170-class LARGE
vocabulary. ``recall`` requires the same root *and* quality (a C:min answer for an A:min
reference is wrong); ``quality_recall`` ignores the root (the ChordMini convention).
``precision`` is recall's counterpart over the estimate's time, so calling a rare quality
everywhere does not look like a gain.
Everything returned is plain Python (floats, lists, dicts), ready for JSON.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import mir_eval
import numpy as np

from mirkd.errors import ChordLabelError
from mirkd.labels import ChordSegment
from mirkd.vocab import LARGE

METRICS = ("root", "thirds", "triads", "sevenths", "tetrads", "majmin", "mirex")
QUALITY_GROUPS = (
    "maj",
    "min",
    "7",
    "maj7",
    "min7",
    "dim",
    "aug",
    "sus2",
    "sus4",
    "hdim7",
    "dim7",
    "maj6",
    "min6",
    "minmaj7",
    "N",
)
CONFUSION_LABELS = (*QUALITY_GROUPS, "X")
NO_CHORD = mir_eval.chord.NO_CHORD


def _as_arrays(segments: Sequence[ChordSegment]) -> tuple[np.ndarray, list[str]]:
    intervals = np.array([[s.start, s.end] for s in segments], dtype=float).reshape(-1, 2)
    return intervals, [s.label for s in segments]


def align(
    reference: Sequence[ChordSegment], estimate: Sequence[ChordSegment]
) -> tuple[np.ndarray, list[str], list[str]]:
    """Common intervals of reference and estimate: ``(durations, ref_labels, est_labels)``.

    The estimate is clipped/padded with ``N`` to the reference span first.
    """
    if not reference:
        raise ValueError("the reference has no segments")
    ref_intervals, ref_labels = _as_arrays(reference)
    est_intervals, est_labels = _as_arrays(estimate)
    if not est_labels:
        est_intervals = np.array([[ref_intervals.min(), ref_intervals.max()]])
        est_labels = [NO_CHORD]
    est_intervals, est_labels = mir_eval.util.adjust_intervals(
        est_intervals, est_labels, ref_intervals.min(), ref_intervals.max(), NO_CHORD, NO_CHORD
    )
    intervals, ref_merged, est_merged = mir_eval.util.merge_labeled_intervals(
        ref_intervals, ref_labels, est_intervals, est_labels
    )
    return mir_eval.util.intervals_to_durations(intervals), ref_merged, est_merged


def _wcsr(comparisons: np.ndarray, durations: np.ndarray) -> float | None:
    """Duration-weighted recall over comparable intervals; None if nothing is comparable."""
    valid = comparisons >= 0
    total = float(durations[valid].sum())
    if total <= 0:
        return None
    return float((comparisons[valid] * durations[valid]).sum() / total)


def score_song(
    reference: Sequence[ChordSegment], estimate: Sequence[ChordSegment]
) -> dict[str, float | None]:
    """The seven mir_eval WCSR scores of one song (None where no reference time is comparable)."""
    durations, ref_labels, est_labels = align(reference, estimate)
    scores: dict[str, float | None] = {}
    for metric in METRICS:
        try:
            comparisons = np.asarray(getattr(mir_eval.chord, metric)(ref_labels, est_labels))
        except mir_eval.chord.InvalidChordException as exc:
            bad = next(lab for lab in ref_labels + est_labels if not _valid_label(lab))
            raise ChordLabelError(bad, f"rejected by mir_eval: {exc}") from exc
        scores[metric] = _wcsr(comparisons, durations)
    return scores


def _valid_label(label: str) -> bool:
    try:
        mir_eval.chord.validate([label], [label])
    except mir_eval.chord.InvalidChordException:
        return False
    return True


def _song_span(reference: Sequence[ChordSegment]) -> float:
    return max(s.end for s in reference) - min(s.start for s in reference)


def _quality_and_root(label: str) -> tuple[str, int]:
    index = LARGE.to_index(label)
    return LARGE.quality(index), LARGE.root(index)


def quality_table(
    pairs: Sequence[tuple[Sequence[ChordSegment], Sequence[ChordSegment]]],
) -> dict[str, Any]:
    """Per-quality recall and precision, share of reference time and quality confusion.

    ``pairs`` = (reference, estimate) per song. Reference time labelled X (or outside the
    vocabulary, which LARGE maps to X) is excluded from the groups and reported as
    ``excluded_seconds``; it still appears as the X row of the confusion matrix.
    Recall of q = share of the reference time of q whose estimate has the same root and
    quality; precision of q = share of the estimate time of q (on those same non-X reference
    frames) whose reference has the same root and quality, so over-calling a quality is
    visible rather than rewarded. Returns ``{"groups": {q: {seconds, share, recall,
    quality_recall, est_seconds, precision}}, "excluded_seconds", "mean_recall",
    "mean_quality_recall", "mean_precision", "confusion": {"labels", "seconds"}}``.
    ``precision`` is None when the estimate never uses q, ``recall`` when the reference never
    does. Recall means are unweighted over groups present in the reference, ``mean_precision``
    over groups the estimate uses; confusion rows are reference qualities, columns estimated
    qualities, entries seconds.
    """
    position = {q: i for i, q in enumerate(CONFUSION_LABELS)}
    confusion = np.zeros((len(CONFUSION_LABELS), len(CONFUSION_LABELS)))
    seconds = dict.fromkeys(QUALITY_GROUPS, 0.0)
    est_seconds = dict.fromkeys(QUALITY_GROUPS, 0.0)
    exact = dict.fromkeys(QUALITY_GROUPS, 0.0)
    same_quality = dict.fromkeys(QUALITY_GROUPS, 0.0)
    for reference, estimate in pairs:
        durations, ref_labels, est_labels = align(reference, estimate)
        for duration, ref_label, est_label in zip(durations, ref_labels, est_labels, strict=True):
            ref_q, ref_root = _quality_and_root(ref_label)
            est_q, est_root = _quality_and_root(est_label)
            confusion[position[ref_q], position[est_q]] += duration
            if ref_q == "X":
                continue
            seconds[ref_q] += duration
            if est_q in est_seconds:  # an out-of-vocabulary estimate (X) has no group
                est_seconds[est_q] += duration
            if est_q == ref_q:
                same_quality[ref_q] += duration
                if est_root == ref_root:
                    exact[ref_q] += duration
    scored = sum(seconds.values())
    groups: dict[str, dict[str, float | None]] = {}
    for q in QUALITY_GROUPS:
        present = seconds[q] > 0
        groups[q] = {
            "seconds": seconds[q],
            "share": seconds[q] / scored if scored > 0 else 0.0,
            "recall": exact[q] / seconds[q] if present else None,
            "quality_recall": same_quality[q] / seconds[q] if present else None,
            "est_seconds": est_seconds[q],
            "precision": exact[q] / est_seconds[q] if est_seconds[q] > 0 else None,
        }
    present_groups = [g for g in groups.values() if g["recall"] is not None]
    return {
        "groups": groups,
        "excluded_seconds": float(confusion[position["X"]].sum()),
        "mean_recall": _mean([g["recall"] for g in present_groups]),
        "mean_quality_recall": _mean([g["quality_recall"] for g in present_groups]),
        "mean_precision": _mean([g["precision"] for g in groups.values()]),
        "confusion": {"labels": list(CONFUSION_LABELS), "seconds": confusion.tolist()},
    }


def _mean(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return float(np.mean(present)) if present else None


def weighted_mean_scores(per_song: Mapping[str, Mapping]) -> dict[str, float | None]:
    """Mean of each metric over songs weighted by song duration (songs with None skipped)."""
    means: dict[str, float | None] = {}
    for metric in METRICS:
        pairs = [
            (song["scores"][metric], song["duration"])
            for song in per_song.values()
            if song["scores"][metric] is not None
        ]
        total = sum(d for _, d in pairs)
        means[metric] = sum(s * d for s, d in pairs) / total if total > 0 else None
    return means


def song_scores(
    songs: Mapping[str, tuple[Sequence[ChordSegment], Sequence[ChordSegment]]],
) -> dict[str, dict]:
    """``{song_id: {"duration", "scores"}}``; a song's duration is its reference span (s)."""
    per_song = {}
    for song_id, (reference, estimate) in songs.items():
        try:
            scores = score_song(reference, estimate)
        except ChordLabelError as exc:
            raise ChordLabelError(exc.label, f"song {song_id}: {exc.cause}") from exc
        per_song[song_id] = {"duration": _song_span(reference), "scores": scores}
    return per_song


def mean7(means: Mapping[str, float | None]) -> float | None:
    """The 7-metric mean: the average of the seven WCSR scores (None if any is missing)."""
    values = [v for m in METRICS if (v := means.get(m)) is not None]
    return float(np.mean(values)) if len(values) == len(METRICS) else None


def _score_matrix(per_song: Mapping[str, Mapping], songs: Sequence[str]) -> np.ndarray:
    """[songs, metrics] scores with NaN where a song has no comparable time for a metric."""
    return np.array(
        [
            [
                np.nan if per_song[s]["scores"][m] is None else per_song[s]["scores"][m]
                for m in METRICS
            ]
            for s in songs
        ],
        dtype=np.float64,
    ).reshape(len(songs), len(METRICS))


def _resampled_means(scores: np.ndarray, weights: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """[resamples, metrics + 1] duration-weighted means (and their 7-metric mean) of resamples.

    `idx` is [resamples, songs] of song indices; NaN scores are left out of a metric's mean.
    """
    picked = scores[idx]  # [R, S, M]
    w = np.where(np.isnan(picked), 0.0, weights[idx][..., None])
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.nansum(picked * w, axis=1) / w.sum(axis=1)
    return np.concatenate([means, means.mean(axis=1, keepdims=True)], axis=1)


def _bootstrap_indices(n_songs: int, n_resamples: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n_songs, size=(n_resamples, n_songs))


def _interval(samples: np.ndarray, level: float) -> list[list[float] | None]:
    tail = (1.0 - level) / 2.0
    out: list[list[float] | None] = []
    for column in samples.T:
        column = column[np.isfinite(column)]
        out.append(
            [float(np.quantile(column, tail)), float(np.quantile(column, 1 - tail))]
            if len(column)
            else None
        )
    return out


def bootstrap_ci(
    per_song: Mapping[str, Mapping], n_resamples: int = 2000, seed: int = 0, level: float = 0.95
) -> dict[str, list[float] | None]:
    """Song-level percentile bootstrap interval of each weighted mean and of the 7-metric mean.

    Songs are resampled with replacement (the unit a test set is drawn in); each resample's
    means are duration-weighted exactly as `weighted_mean_scores`. Keys: METRICS + "mean7".
    """
    songs = sorted(per_song)
    if not songs:
        return {m: None for m in (*METRICS, "mean7")}
    scores = _score_matrix(per_song, songs)
    weights = np.array([per_song[s]["duration"] for s in songs], dtype=np.float64)
    samples = _resampled_means(scores, weights, _bootstrap_indices(len(songs), n_resamples, seed))
    return dict(zip((*METRICS, "mean7"), _interval(samples, level), strict=True))


def paired_difference(
    per_song_a: Mapping[str, Mapping],
    per_song_b: Mapping[str, Mapping],
    n_resamples: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, float | list[float] | None]:
    """7-metric mean of A minus B on the same songs, with a paired song-level bootstrap interval.

    Both models are scored on the same resampled songs, so song difficulty cancels out; the
    interval excludes 0 when the difference is unlikely to be test-set noise.
    """
    songs = sorted(per_song_a)
    if sorted(per_song_b) != songs:
        raise ValueError("paired_difference needs the same songs for both models")
    weights = np.array([per_song_a[s]["duration"] for s in songs], dtype=np.float64)
    all_idx = np.arange(len(songs))[None, :]
    idx = _bootstrap_indices(len(songs), n_resamples, seed)
    a, b = _score_matrix(per_song_a, songs), _score_matrix(per_song_b, songs)
    point = (_resampled_means(a, weights, all_idx) - _resampled_means(b, weights, all_idx))[0, -1]
    diffs = _resampled_means(a, weights, idx)[:, -1:] - _resampled_means(b, weights, idx)[:, -1:]
    return {"mean7": float(point), "ci95": _interval(diffs, level)[0]}


def evaluate_songs(
    songs: Mapping[str, tuple[Sequence[ChordSegment], Sequence[ChordSegment]]],
) -> dict:
    """Full evaluation of ``{song_id: (reference, estimate)}``.

    Returns ``{"per_song": song_scores(...), "mean": {metric: WCSR}, "mean7", "ci95":
    bootstrap_ci(...), "total_duration", "n_songs", "quality": quality_table(...)}``.
    """
    per_song = song_scores(songs)
    means = weighted_mean_scores(per_song)
    return {
        "per_song": per_song,
        "mean": means,
        "mean7": mean7(means),
        "ci95": bootstrap_ci(per_song),
        "total_duration": sum(s["duration"] for s in per_song.values()),
        "n_songs": len(per_song),
        "quality": quality_table(list(songs.values())),
    }
