"""Validation scores used for model selection and early stopping (higher is better).

Both predict every held-out track exactly as evaluation does (`inference.predict_logits`:
consecutive model windows, the last one zero-padded, padding never scored), so a validation
score and a test score measure the same thing.
    frame_agreement  stage 1: fraction of frames where the student's argmax equals the teacher's.
    validation_wcsr  stage 2 / baseline: duration-weighted mir_eval score against reference .lab
                     (one of `evaluation.METRICS`, or "mean7": the mean of the seven).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from mirkd.checkpoints import ModelBundle
from mirkd.inference import predict_logits, predict_logits_many
from mirkd.manifest import BucketFiles
from mirkd.references import ReferenceTrack, wcsr
from mirkd.store import BucketFile
from mirkd.vocab import LARGE, Vocabulary

AGREEMENT_TRACKS = 64  # validation tracks predicted together (bounds the memory of one pass)
AGREEMENT_WINDOWS = 64  # windows per forward pass in stage-1 validation


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


def predict_track(bundle: ModelBundle, features: np.ndarray, device: torch.device) -> np.ndarray:
    """Frame argmax [T] of a whole track's raw [T, bins] log-CQT (model in eval mode)."""
    return predict_logits(bundle, features, device).argmax(axis=1)


def frame_agreement(
    bundle: ModelBundle, tracks: Sequence[AgreementTrack], device: torch.device
) -> float:
    """Pooled fraction of frames (all frames of all tracks) where student and teacher agree.

    Tracks go through the model AGREEMENT_TRACKS at a time, their windows sharing batches
    (`inference.predict_logits_many`), so thousands of short validation tracks fill batches.
    """
    agree, total = 0, 0
    for first in range(0, len(tracks), AGREEMENT_TRACKS):
        chunk = tracks[first : first + AGREEMENT_TRACKS]
        features = [np.asarray(t.features, dtype=np.float32) for t in chunk]
        logits = predict_logits_many(bundle, features, device, AGREEMENT_WINDOWS)
        for track, track_logits in zip(chunk, logits, strict=True):
            agree += int((track_logits.argmax(axis=1) == track.teacher_labels).sum())
            total += len(track.teacher_labels)
    return agree / total if total else 0.0


def validation_wcsr(
    bundle: ModelBundle,
    tracks: Sequence[ReferenceTrack],
    device: torch.device,
    metric: str = "majmin",
    vocab: Vocabulary = LARGE,
) -> float:
    """Song-duration-weighted mir_eval ``metric`` of the bundle's model on the validation songs.

    Predictions are placed on each song's frame grid (`references.wcsr`).
    """
    frames = {
        t.name: predict_track(bundle, np.asarray(t.features, dtype=np.float32), device)
        for t in tracks
    }
    return wcsr(tracks, frames, metric, vocab)
