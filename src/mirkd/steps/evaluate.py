"""Evaluation steps: mir_eval scores of each model (and the teacher) on the test split."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from mirkd.atomic import atomic_write_json
from mirkd.checkpoints import ModelBundle, load_checkpoint, model_identity
from mirkd.decoding import decoding_identity, log_softmax, tune_stay, viterbi
from mirkd.evaluation import evaluate_songs, song_scores, weighted_mean_scores
from mirkd.inference import bundle_logits, select_device
from mirkd.labels import frames_to_segments, read_annotation, write_annotation
from mirkd.manifest import TrackFiles
from mirkd.steps import log
from mirkd.store import feature_grid, read_teacher_output, read_track_features
from mirkd.vocab import LARGE


def _song_pairs(
    tracks: Sequence[TrackFiles], frame_indices: Mapping[str, np.ndarray]
) -> dict[str, tuple[list, list]]:
    """{track id: (reference segments, estimated segments)} on each feature file's grid."""
    songs = {}
    for track in tracks:
        grid = feature_grid(track.features, track.track_id)
        estimate = frames_to_segments(
            frame_indices[track.track_id], grid.frame_period, LARGE, duration=grid.duration
        )
        songs[track.track_id] = (
            read_annotation(track.annotation, duration=grid.duration),
            estimate,
        )
    return songs


def _score_tracks(
    tracks: Sequence[TrackFiles],
    predictions_dir: str | Path,
    frame_indices: dict[str, np.ndarray],
    prediction_format: str,
    annotator: dict[str, Any],
) -> dict[str, Any]:
    """Scores of the decoded frames; writes <track id>.<prediction_format> per track."""
    songs = _song_pairs(tracks, frame_indices)
    for track in tracks:
        path = Path(predictions_dir) / f"{track.track_id}.{prediction_format}"
        duration = feature_grid(track.features, track.track_id).duration
        write_annotation(path, songs[track.track_id][1], duration, annotator)
    return evaluate_songs(songs)


def _log_posteriors(
    bundle: ModelBundle, tracks: Sequence[TrackFiles], device: Any, desc: str
) -> dict[str, np.ndarray]:
    return {
        t.track_id: log_softmax(
            bundle_logits(bundle, read_track_features(t.features, t.track_id), device)
        ).astype(np.float32)
        for t in tqdm(tracks, desc=desc)
    }


def evaluate_checkpoint(
    checkpoint: str,
    tracks: Sequence[TrackFiles],
    device: str,
    out_metrics: str,
    predictions_dir: str,
    val_tracks: Sequence[TrackFiles] = (),
    val_metric: str = "majmin",
    prediction_format: str = "lab",
) -> None:
    """Predict every test track with a checkpoint and score it with mir_eval, twice:
    per-frame argmax (the top level of the metrics) and Viterbi decoding (key "viterbi",
    predictions in `predictions_dir`/viterbi), whose self-transition prior is chosen on the
    labeled validation songs `val_tracks` by `val_metric`, never on the test songs.
    Predictions are written as .lab or .jams (`prediction_format`; JAMS name the model)."""
    bundle = load_checkpoint(checkpoint)
    dev = select_device(device)
    name = Path(checkpoint).stem
    identity = model_identity(bundle, checkpoint)
    test = _log_posteriors(bundle, tracks, dev, f"predict {name}")
    frames = {tid: lp.argmax(axis=1) for tid, lp in test.items()}
    argmax = _score_tracks(
        tracks, predictions_dir, frames, prediction_format, {**identity, **decoding_identity(None)}
    )
    source = {"checkpoint": checkpoint, "provenance": bundle.provenance}
    if val_tracks:
        val = _log_posteriors(bundle, val_tracks, dev, f"validation {name}")
        stay, val_scores = tune_stay(val, lambda frames: _val_score(val_tracks, frames, val_metric))
        log.info(
            "viterbi: self-transition %.3f chosen on %d validation songs (%s %s)",
            stay,
            len(val_tracks),
            val_metric,
            val_scores,
        )
        vit_dir = Path(predictions_dir) / "viterbi"
        vit_dir.mkdir(parents=True, exist_ok=True)
        decoded = _score_tracks(
            tracks,
            vit_dir,
            {t: viterbi(lp, stay) for t, lp in test.items()},
            prediction_format,
            {**identity, **decoding_identity(stay)},
        )
        argmax["viterbi"] = {
            **decoded,
            "stay": stay,
            "val_metric": val_metric,
            "val_scores": {str(k): v for k, v in val_scores.items()},
        }
    _write_metrics(out_metrics, argmax, source)


def _val_score(
    tracks: Sequence[TrackFiles], frames: Mapping[str, np.ndarray], metric: str
) -> float:
    score = weighted_mean_scores(song_scores(_song_pairs(tracks, frames)))[metric]
    return 0.0 if score is None else score


def evaluate_teacher(
    tracks: Sequence[TrackFiles],
    out_metrics: str,
    predictions_dir: str,
    prediction_format: str = "lab",
) -> None:
    """Score the teacher's stored argmax on the test tracks."""
    frames = {t.track_id: read_teacher_output(t.teacher, t.track_id).labels for t in tracks}
    teacher_outputs = sorted({t.teacher for t in tracks})
    annotator = {"name": "teacher", "teacher_outputs": teacher_outputs, **decoding_identity(None)}
    scores = _score_tracks(tracks, predictions_dir, frames, prediction_format, annotator)
    _write_metrics(out_metrics, scores, {"teacher_outputs": teacher_outputs})


def _write_metrics(out: str, scores: dict[str, Any], source: dict[str, Any]) -> None:
    atomic_write_json(out, {**scores, "source": source})
    log.info("%s: %s", out, json.dumps(scores.get("mean", {})))
