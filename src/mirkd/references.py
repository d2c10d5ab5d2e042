"""Labeled songs read for scoring, and the scores of predicted frames against them.

The evaluation step scores test songs and tunes the Viterbi prior on the validation songs with
these; stage 2 and the baseline select checkpoints with them (`training.validation`). Each song
is read once: its features (a view of its mapped bucket), its frame grid and its annotation;
predictions are placed on that grid before mir_eval scores them (`evaluation`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from mirkd.evaluation import mean7, song_scores, weighted_mean_scores
from mirkd.labels import ChordSegment, frames_to_segments, read_annotation
from mirkd.manifest import TrackFiles
from mirkd.store import BucketFile, FrameGrid, feature_grid, open_buckets
from mirkd.vocab import LARGE, Vocabulary


@dataclass(frozen=True)
class ReferenceTrack:
    """A validation song: its name, features [T, n_bins], frame grid and ground truth."""

    name: str
    features: np.ndarray
    grid: FrameGrid
    reference: Sequence[ChordSegment]


def reference_track(
    track: TrackFiles, features: BucketFile, vocab: Vocabulary | None = LARGE
) -> ReferenceTrack:
    """A labeled song read once from its open `features` bucket: its features (a view of the
    mapped bucket), its frame grid and its annotation, checked against `vocab` (None: labels
    as written) and trimmed to the audio."""
    grid = feature_grid(features, track.track_id)
    reference = read_annotation(track.annotation, vocab, duration=grid.duration)
    return ReferenceTrack(track.track_id, features.frames("cqt", track.track_id), grid, reference)


def reference_tracks(
    tracks: Sequence[TrackFiles], vocab: Vocabulary | None = LARGE
) -> list[ReferenceTrack]:
    """Labeled songs read once each, every features bucket opened once."""
    buckets = open_buckets(t.features for t in tracks)
    return [reference_track(t, buckets[t.features], vocab) for t in tracks]


def song_pairs(
    tracks: Sequence[ReferenceTrack], frames: Mapping[str, np.ndarray], vocab: Vocabulary = LARGE
) -> dict[str, tuple[Sequence[ChordSegment], list[ChordSegment]]]:
    """{song: (reference segments, segments of its predicted frame classes)}, each placed on
    the song's own frame grid: what mir_eval scores."""
    return {
        t.name: (
            t.reference,
            frames_to_segments(
                frames[t.name], t.grid.frame_period, vocab, duration=t.grid.duration
            ),
        )
        for t in tracks
    }


def wcsr(
    tracks: Sequence[ReferenceTrack],
    frames: Mapping[str, np.ndarray],
    metric: str,
    vocab: Vocabulary = LARGE,
) -> float:
    """Song-duration-weighted mir_eval `metric` of predicted frame classes; 0.0 if no song
    has comparable reference time. `metric` "mean7" is the mean of the seven metrics of the
    same scoring (0.0 if any of them has no comparable time)."""
    means = weighted_mean_scores(song_scores(song_pairs(tracks, frames, vocab)))
    score = mean7(means) if metric == "mean7" else means[metric]
    return 0.0 if score is None else float(score)
