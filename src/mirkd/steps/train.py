"""Training steps: stage 1 on pseudo-labels, stage 2 / baseline on ground truth.

Resumable state lives in a work folder keyed by a fingerprint of the run's provenance
(config and training tracks): a killed job resumes, a changed one starts afresh.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mirkd.atomic import atomic_path, atomic_write_json
from mirkd.checkpoints import load_checkpoint
from mirkd.errors import MirkdError
from mirkd.features import CQTParams
from mirkd.inference import select_device
from mirkd.labels import ChordSegment, read_annotation, segments_to_frames
from mirkd.manifest import TrackFiles
from mirkd.models.registry import build_model
from mirkd.steps import log
from mirkd.store import check_shards_compatible, feature_grid, read_shard_track, shard_skipped
from mirkd.training.datasets import (
    LabeledDataset,
    LabeledTrack,
    PseudoLabelDataset,
    ShardTrack,
    compute_mean_std,
)
from mirkd.training.trainer import TrainConfig, train
from mirkd.training.validation import ReferenceTrack, frame_agreement, validation_wcsr
from mirkd.vocab import LARGE


def _fingerprint(obj: Any) -> str:
    return hashlib.sha1(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def _work_paths(work: str | Path, run_key: str) -> tuple[Path, Path]:
    """best/last checkpoints of this exact run; state of any other run in `work` is removed."""
    work_dir = Path(work) / run_key[:16]
    if Path(work).is_dir():
        for other in Path(work).iterdir():
            if other != work_dir:
                shutil.rmtree(other, ignore_errors=True)
    work_dir.mkdir(parents=True, exist_ok=True)
    return work_dir / "best.pt", work_dir / "last.pt"


def _finish(best: Path, out_checkpoint: str, out_history: str, history: list[dict]) -> None:
    with atomic_path(out_checkpoint) as tmp:
        shutil.copyfile(best, tmp)
    atomic_write_json(out_history, {"history": history, "checkpoint": str(out_checkpoint)})


def _frame_labels(track: TrackFiles) -> np.ndarray:
    """Ground-truth class per frame of a track, on its feature file's grid."""
    grid = feature_grid(track.features)
    segments = read_annotation(track.annotation, LARGE, duration=grid.duration)
    return segments_to_frames(segments, grid.n_frames, grid.frame_period, LARGE)


def _reference(track: TrackFiles) -> list[ChordSegment]:
    """A track's ground truth, checked against and trimmed to its audio's duration."""
    return read_annotation(track.annotation, LARGE, duration=feature_grid(track.features).duration)


def _teacher_probs(teacher_outputs: dict[str, str], track_id: str) -> np.ndarray | None:
    """The teacher's probabilities [T, C] of a track, if the stage distils from them."""
    if track_id not in teacher_outputs:
        return None
    return read_shard_track(teacher_outputs[track_id], track_id).probs.astype(np.float32)


def _bundle_meta(arch: str, hparams: dict, mean: float, std: float, provenance: dict) -> dict:
    return {
        "arch": arch,
        "hparams": hparams,
        "vocab": LARGE,
        "feature_params": CQTParams(),
        "mean": float(mean),
        "std": float(std),
        "provenance": provenance,
    }


def _new_student(student: dict[str, Any], seed: int) -> tuple[Any, str, dict[str, Any]]:
    """A freshly initialised student over the LARGE vocabulary, with its full hparams.

    Initialised from `seed`: the trainer seeds only what happens after the model exists, and
    torch's default seed differs per process, so an unseeded rerun would start elsewhere.
    """
    torch.manual_seed(seed)
    arch = student["arch"]
    model = build_model(arch, student.get("hparams") or {}, n_classes=LARGE.size)
    return model, arch, dataclasses.asdict(model.config)


def _data_identity(tracks: Sequence[TrackFiles]) -> dict[str, str]:
    """Track id -> content fingerprint: what the training data was, for provenance."""
    return {t.track_id: t.fingerprint for t in tracks}


def train_stage1(
    common: dict[str, Any],
    train_cfg: dict[str, Any],
    shards: dict[str, str],
    train_tracks: Sequence[TrackFiles],
    val_tracks: Sequence[TrackFiles],
    work: str,
    out_checkpoint: str,
    out_history: str,
) -> None:
    """Student on teacher pseudo-labels only; early stopping on agreement with the teacher.

    `shards` maps each unlabeled track id to the shard holding its teacher outputs. Tracks a
    shard left out (undecodable audio) are ignored.
    """
    identity = check_shards_compatible(sorted(set(shards.values())))
    skipped = {tid for shard in set(shards.values()) for tid in shard_skipped(shard)}
    train_tracks = [t for t in train_tracks if t.track_id not in skipped]
    val_tracks = [t for t in val_tracks if t.track_id not in skipped]
    for split, rows in (("train", train_tracks), ("val", val_tracks)):
        if not rows:
            raise MirkdError(
                f"stage 1: no usable unlabeled '{split}' track left ({len(skipped)} skipped, see "
                "results/skipped.tsv): add unlabeled audio or fix the skipped files"
            )
    train_rows = [ShardTrack(t.track_id, t.features, shards[t.track_id]) for t in train_tracks]
    val_rows = [ShardTrack(t.track_id, t.features, shards[t.track_id]) for t in val_tracks]
    mean, std = compute_mean_std([t.features for t in train_tracks])
    config = TrainConfig.from_settings(train_cfg, common["device"])
    model, arch, hparams = _new_student(common["student"], config.seed)
    config.check_window(model.window, "stage1")
    provenance = {
        "stage": "stage1",
        "teacher": identity,
        "train_data": _data_identity(train_tracks),
        "val_data": _data_identity(val_tracks),
        "config": {"student": common["student"], "train": train_cfg},
    }
    meta = _bundle_meta(arch, hparams, mean, std, provenance)
    data = PseudoLabelDataset(
        train_rows, seq_len=model.window, stride=config.stride, with_probs=config.use_kd
    )
    device = select_device(config.device)
    best, last = _work_paths(work, _fingerprint(provenance))
    log.info(
        "stage 1: %d windows from %d tracks (%d skipped), mean %.3f std %.3f",
        len(data),
        len(train_rows),
        len(skipped),
        mean,
        std,
    )
    history = train(
        model,
        meta,
        data,
        lambda m: frame_agreement(m, mean, std, val_rows, device),
        config,
        best,
        last,
        device=device,
        log=log.info,
    )
    _finish(best, out_checkpoint, out_history, history)


def train_supervised(
    stage: str,
    common: dict[str, Any],
    train_cfg: dict[str, Any],
    train_tracks: Sequence[TrackFiles],
    val_tracks: Sequence[TrackFiles],
    work: str,
    out_checkpoint: str,
    out_history: str,
    init_checkpoint: str | None = None,
    teacher_outputs: dict[str, str] | None = None,
) -> None:
    """Stage 2 (from the stage-1 student, with selective KD) or the from-scratch baseline.

    `train_cfg` is the stage's validated settings (every default filled in); `common` holds
    the student and the run's device. `teacher_outputs` maps a train track id to its teacher
    output file when the stage distils.
    """
    teacher_outputs = teacher_outputs or {}
    rows = [
        LabeledTrack(t.features, _frame_labels(t), _teacher_probs(teacher_outputs, t.track_id))
        for t in train_tracks
    ]
    val_rows = [ReferenceTrack(t.features, _reference(t)) for t in val_tracks]
    provenance = {
        "stage": stage,
        "init": init_checkpoint,
        "train_data": _data_identity(train_tracks),
        "val_data": _data_identity(val_tracks),
        "config": {"train": train_cfg, "student": common["student"]},
    }
    config = TrainConfig.from_settings(train_cfg, common["device"])
    if init_checkpoint:
        bundle = load_checkpoint(init_checkpoint)
        model, arch, hparams = bundle.model, bundle.arch, bundle.hparams
        mean, std = bundle.mean, bundle.std
        provenance["init_provenance"] = bundle.provenance
    else:
        model, arch, hparams = _new_student(common["student"], config.seed)
        mean, std = compute_mean_std([t.features for t in train_tracks])
    config.check_window(model.window, stage)
    meta = _bundle_meta(arch, hparams, mean, std, provenance)
    data = LabeledDataset(
        rows, seq_len=model.window, stride=config.stride, pitch_shift=config.shifts
    )
    device = select_device(config.device)
    metric = config.val_metric
    best, last = _work_paths(work, _fingerprint(provenance))
    log.info(
        "%s: %d windows from %d songs (KD %s)",
        stage,
        len(data),
        len(rows),
        "on" if data.with_probs and config.use_kd else "off",
    )
    history = train(
        model,
        meta,
        data,
        lambda m: validation_wcsr(m, mean, std, val_rows, device, metric=metric),
        config,
        best,
        last,
        device=device,
        log=log.info,
    )
    _finish(best, out_checkpoint, out_history, history)
