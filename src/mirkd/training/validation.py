"""Validation scores used for model selection and early stopping (higher is better).

Both run every held-out track whole through the model (the models accept any length), so no
frame is double-counted by overlapping windows and no padding is scored.
    frame_agreement  stage 1: fraction of frames where the student's argmax equals the teacher's.
    validation_wcsr  stage 2 / baseline: duration-weighted mir_eval score against reference .lab.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from mirkd.evaluation import song_scores, weighted_mean_scores
from mirkd.features import CQTParams
from mirkd.labels import ChordSegment, frames_to_segments
from mirkd.store import read_feature_attrs, read_features, read_shard_track
from mirkd.training.datasets import ShardTrack
from mirkd.vocab import LARGE, Vocabulary


@dataclass(frozen=True)
class ReferenceTrack:
    """A validation song's features and its ground-truth segments."""

    features: str
    reference: Sequence[ChordSegment]


def predict_track(
    model: nn.Module, mean: float, std: float, features: np.ndarray, device: torch.device
) -> np.ndarray:
    """Frame argmax [T] of a whole track's raw [T, bins] log-CQT (model in eval mode)."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            x = torch.from_numpy((features - mean) / std).float().unsqueeze(0).to(device)
            return model(x)[0].argmax(dim=-1).cpu().numpy()
    finally:
        model.train(was_training)


def frame_agreement(
    model: nn.Module,
    mean: float,
    std: float,
    tracks: Sequence[ShardTrack],
    device: torch.device,
) -> float:
    """Pooled fraction of frames (all frames of all tracks) where student and teacher agree."""
    agree, total = 0, 0
    for track in tracks:
        predicted = predict_track(model, mean, std, read_features(track.features), device)
        teacher = read_shard_track(track.shard, track.track_id).labels
        agree += int((predicted == teacher).sum())
        total += len(teacher)
    return agree / total if total else 0.0


def validation_wcsr(
    model: nn.Module,
    mean: float,
    std: float,
    tracks: Sequence[ReferenceTrack],
    device: torch.device,
    metric: str = "majmin",
    vocab: Vocabulary = LARGE,
) -> float:
    """Song-duration-weighted mir_eval ``metric`` of the model on the validation songs.

    The frame period and duration come from each feature file's attributes; 0.0 if no song
    has comparable reference time.
    """
    songs = {}
    for track in tracks:
        attrs = read_feature_attrs(track.features)
        frame_period = CQTParams.from_dict(attrs["feature_params"]).frame_period
        predicted = predict_track(model, mean, std, read_features(track.features), device)
        estimate = frames_to_segments(predicted, frame_period, vocab,
                                      duration=attrs.get("duration"))
        songs[track.features] = (track.reference, estimate)
    score = weighted_mean_scores(song_scores(songs))[metric]
    return 0.0 if score is None else float(score)
