"""Evaluation steps: mir_eval scores of each model (and the teacher) on the test split."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from mirkd.atomic import atomic_write_json
from mirkd.checkpoints import load_checkpoint
from mirkd.evaluation import evaluate_songs
from mirkd.features import CQTParams
from mirkd.inference import predict_logits, select_device
from mirkd.labels import frames_to_segments, read_lab, write_lab
from mirkd.steps import Row, log
from mirkd.store import read_feature_attrs, read_features, read_shard_track
from mirkd.vocab import LARGE


def _score_tracks(
    tracks: Sequence[Row], predictions_dir: str, frame_indices: dict[str, np.ndarray]
) -> dict[str, Any]:
    songs = {}
    for tid, _, features_path, lab, _ in tracks:
        attrs = read_feature_attrs(features_path)
        period = CQTParams.from_dict(attrs["feature_params"]).frame_period
        estimate = frames_to_segments(frame_indices[tid], period, LARGE, duration=attrs["duration"])
        write_lab(Path(predictions_dir) / f"{tid}.lab", estimate)
        songs[tid] = (read_lab(lab, duration=attrs["duration"]), estimate)
    return evaluate_songs(songs)


def evaluate_checkpoint(
    checkpoint: str, tracks: Sequence[Row], device: str, out_metrics: str, predictions_dir: str
) -> None:
    """Predict every test track with a checkpoint and score it with mir_eval."""
    bundle = load_checkpoint(checkpoint)
    dev = select_device(device)
    frames = {
        r[0]: predict_logits(bundle, read_features(r[2]), dev).argmax(axis=1)
        for r in tqdm(tracks, desc=f"predict {Path(checkpoint).stem}")
    }
    _write_metrics(out_metrics, _score_tracks(tracks, predictions_dir, frames),
                   {"checkpoint": checkpoint, "provenance": bundle.provenance})


def evaluate_teacher(
    teacher_outputs: Sequence[str], tracks: Sequence[Row], out_metrics: str, predictions_dir: str
) -> None:
    """Score the teacher's stored argmax on the test tracks."""
    frames = {r[0]: read_shard_track(p, r[0]).labels for p, r in zip(teacher_outputs, tracks,
                                                                     strict=True)}
    _write_metrics(out_metrics, _score_tracks(tracks, predictions_dir, frames),
                   {"teacher_outputs": list(teacher_outputs)})


def _write_metrics(out: str, scores: dict[str, Any], source: dict[str, Any]) -> None:
    atomic_write_json(out, {**scores, "source": source})
    log.info("%s: %s", out, json.dumps(scores.get("mean", {})))
