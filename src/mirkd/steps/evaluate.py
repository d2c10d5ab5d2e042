"""Evaluation steps: mir_eval scores of each model (and the teacher) on the test split."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from mirkd.atomic import atomic_write_json
from mirkd.checkpoints import ModelBundle, load_checkpoint, model_identity
from mirkd.decoding import decoding_identity, log_softmax, tune_stay, viterbi
from mirkd.devices import select_device
from mirkd.evaluation import evaluate_songs
from mirkd.inference import bundle_logits
from mirkd.labels import write_annotation
from mirkd.manifest import TrackFiles
from mirkd.references import ReferenceTrack, reference_track, song_pairs, wcsr
from mirkd.scores import ModelScores, ViterbiScores
from mirkd.steps import log
from mirkd.store import read_teacher_output


def _score_tracks(
    songs: Sequence[ReferenceTrack],
    predictions_dir: str | Path,
    frame_indices: dict[str, np.ndarray],
    prediction_format: str,
    annotator: dict[str, Any],
) -> dict[str, Any]:
    """Scores of the decoded frames; writes <track id>.<prediction_format> per song."""
    pairs = song_pairs(songs, frame_indices)
    for song in songs:
        path = Path(predictions_dir) / f"{song.name}.{prediction_format}"
        write_annotation(path, pairs[song.name][1], song.grid.duration, annotator)
    return evaluate_songs(pairs)


def _log_posteriors(
    bundle: ModelBundle, songs: Sequence[ReferenceTrack], device: Any, desc: str
) -> dict[str, np.ndarray]:
    return {
        s.name: log_softmax(
            bundle_logits(bundle, np.asarray(s.features, dtype=np.float32), device)
        ).astype(np.float32)
        for s in tqdm(songs, desc=desc)
    }


def _songs(tracks: Sequence[TrackFiles]) -> list[ReferenceTrack]:
    """Test or validation songs, each read once (annotation labels as written)."""
    return [reference_track(t, vocab=None) for t in tracks]


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
    songs = _songs(tracks)
    test = _log_posteriors(bundle, songs, dev, f"predict {name}")
    frames = {tid: lp.argmax(axis=1) for tid, lp in test.items()}
    argmax = _score_tracks(
        songs, predictions_dir, frames, prediction_format, {**identity, **decoding_identity(None)}
    )
    source = {"checkpoint": checkpoint, "provenance": bundle.provenance}
    decoded = None
    if val_tracks:
        val_songs = _songs(val_tracks)
        val = _log_posteriors(bundle, val_songs, dev, f"validation {name}")
        stay, val_scores = tune_stay(val, lambda frames: wcsr(val_songs, frames, val_metric))
        log.info(
            "viterbi: self-transition %.3f chosen on %d validation songs (%s %s)",
            stay,
            len(val_tracks),
            val_metric,
            val_scores,
        )
        vit_dir = Path(predictions_dir) / "viterbi"
        vit_dir.mkdir(parents=True, exist_ok=True)
        decoded = ViterbiScores(
            **_score_tracks(
                songs,
                vit_dir,
                {t: viterbi(lp, stay) for t, lp in test.items()},
                prediction_format,
                {**identity, **decoding_identity(stay)},
            ),
            stay=stay,
            val_metric=val_metric,
            val_scores={str(k): v for k, v in val_scores.items()},
        )
    _write_metrics(out_metrics, ModelScores(**argmax, viterbi=decoded, source=source))


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
    scores = _score_tracks(_songs(tracks), predictions_dir, frames, prediction_format, annotator)
    record = ModelScores(**scores, source={"teacher_outputs": teacher_outputs})
    _write_metrics(out_metrics, record)


def _write_metrics(out: str, scores: ModelScores) -> None:
    """The metrics file (the one writer of `scores.ModelScores`)."""
    atomic_write_json(out, scores.to_json())
    log.info("%s: %s", out, json.dumps(scores.mean))
