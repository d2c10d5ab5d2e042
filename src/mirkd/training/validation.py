"""Validation scores used for model selection and early stopping (higher is better).

Both predict every held-out track exactly as evaluation does (`inference.predict_logits`:
consecutive model windows, the last one zero-padded, padding never scored), so a validation
score and a test score measure the same thing.
    frame_agreement  stage 1: fraction of frames where the student's argmax equals the teacher's.
    validation_wcsr  stage 2 / baseline: duration-weighted mir_eval score against reference .lab
                     (one of `evaluation.METRICS`, or "mean7": the mean of the seven).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from mirkd.evaluation import mean7, song_scores, weighted_mean_scores
from mirkd.inference import predict_logits, predict_logits_many
from mirkd.labels import ChordSegment, frames_to_segments, read_annotation
from mirkd.manifest import BucketFiles, TrackFiles
from mirkd.models.common import ChordModel
from mirkd.store import BucketFile, FrameGrid, feature_grid
from mirkd.vocab import LARGE, Vocabulary

AGREEMENT_TRACKS = 64  # validation tracks predicted together (bounds the memory of one pass)
AGREEMENT_WINDOWS = 64  # windows per forward pass in stage-1 validation


@dataclass(frozen=True)
class ReferenceTrack:
    """A validation song: its name, features [T, n_bins], frame grid and ground truth."""

    name: str
    features: np.ndarray
    grid: FrameGrid
    reference: Sequence[ChordSegment]


def reference_track(track: TrackFiles, vocab: Vocabulary | None = LARGE) -> ReferenceTrack:
    """A labeled song read once: its features (a view of its mapped bucket), its frame grid and
    its annotation, checked against `vocab` (None: labels as written) and trimmed to the audio."""
    grid = feature_grid(track.features, track.track_id)
    reference = read_annotation(track.annotation, vocab, duration=grid.duration)
    features = BucketFile(track.features).frames("cqt", track.track_id)
    return ReferenceTrack(track.track_id, features, grid, reference)


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


@dataclass(frozen=True)
class AgreementTrack:
    """A stage-1 validation track: its features [T, n_bins] and the teacher's labels [T]."""

    features: np.ndarray
    teacher_labels: np.ndarray


def agreement_tracks(buckets: Sequence[BucketFiles]) -> list[AgreementTrack]:
    """The usable tracks of the buckets, as views of the mapped files (labels only: the
    teacher's probabilities are never read for validation)."""
    tracks = []
    for files in buckets:
        features, teacher = BucketFile(files.features), BucketFile(files.teacher)
        cqt, labels = features.memmap("cqt"), teacher.memmap("labels")
        for tid in teacher.usable():
            tracks.append(AgreementTrack(cqt[features.span(tid)], labels[teacher.span(tid)]))
    return tracks


def predict_track(
    model: ChordModel, mean: float, std: float, features: np.ndarray, device: torch.device
) -> np.ndarray:
    """Frame argmax [T] of a whole track's raw [T, bins] log-CQT (model in eval mode)."""
    return predict_logits(model, mean, std, features, device).argmax(axis=1)


def frame_agreement(
    model: ChordModel,
    mean: float,
    std: float,
    tracks: Sequence[AgreementTrack],
    device: torch.device,
) -> float:
    """Pooled fraction of frames (all frames of all tracks) where student and teacher agree.

    Tracks go through the model AGREEMENT_TRACKS at a time, their windows sharing batches
    (`inference.predict_logits_many`), so thousands of short validation tracks fill batches.
    """
    agree, total = 0, 0
    for first in range(0, len(tracks), AGREEMENT_TRACKS):
        chunk = tracks[first : first + AGREEMENT_TRACKS]
        features = [np.asarray(t.features, dtype=np.float32) for t in chunk]
        logits = predict_logits_many(model, mean, std, features, device, AGREEMENT_WINDOWS)
        for track, track_logits in zip(chunk, logits, strict=True):
            agree += int((track_logits.argmax(axis=1) == track.teacher_labels).sum())
            total += len(track.teacher_labels)
    return agree / total if total else 0.0


def validation_wcsr(
    model: ChordModel,
    mean: float,
    std: float,
    tracks: Sequence[ReferenceTrack],
    device: torch.device,
    metric: str = "majmin",
    vocab: Vocabulary = LARGE,
) -> float:
    """Song-duration-weighted mir_eval ``metric`` of the model on the validation songs.

    Predictions are placed on each song's frame grid (`wcsr`).
    """
    frames = {
        t.name: predict_track(model, mean, std, np.asarray(t.features, dtype=np.float32), device)
        for t in tracks
    }
    return wcsr(tracks, frames, metric, vocab)
