"""One function per pipeline step: files in, files out, called by the workflow scripts.

Each step sets up its log file and thread count, then calls the library. Rows describing
tracks are (track id, audio path, features path, .lab path or None), as the rules pass them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from mirkd import __version__
from mirkd.atomic import atomic_path, atomic_write_json, atomic_write_text
from mirkd.audio import load_audio
from mirkd.checkpoints import load_checkpoint
from mirkd.demo import write_demo_corpus
from mirkd.evaluation import evaluate_songs
from mirkd.features import CQTParams, log_cqt
from mirkd.inference import predict_logits, select_device
from mirkd.labels import frames_to_segments, read_lab, segments_to_frames, write_lab
from mirkd.manifest import shard_of
from mirkd.models.registry import build_model
from mirkd.store import (
    check_shards_compatible,
    read_feature_attrs,
    read_features,
    read_shard_track,
    write_features,
    write_shard,
)
from mirkd.summary import write_summary
from mirkd.teachers import build_teacher, teacher_output
from mirkd.training.datasets import LabeledDataset, PseudoLabelDataset, compute_mean_std
from mirkd.training.trainer import TrainConfig, train
from mirkd.training.validation import frame_agreement, validation_wcsr
from mirkd.vocab import LARGE

Row = Sequence[Any]
log = logging.getLogger("mirkd")


def start_job(log_path: str | Path, threads: int = 1) -> None:
    """Log to the rule's log file and stderr; limit torch to the job's threads."""
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        handlers=[logging.FileHandler(log_path, mode="w"), logging.StreamHandler(sys.stderr)],
        force=True,
    )
    torch.set_num_threads(max(1, int(threads)))


def make_demo(out_dir: str | Path, demo: dict[str, Any]) -> None:
    corpus = write_demo_corpus(out_dir, **demo)
    log.info("demo corpus: %d songs under %s", len(corpus["songs"]), out_dir)


def extract_features(
    audio: str, out: str, track_id: str, fingerprint: str, params: CQTParams = CQTParams()
) -> None:
    """Decode, log-CQT and store one track."""
    y = load_audio(audio, sr=params.sr)
    cqt = log_cqt(y, params)
    meta = {
        "track_id": track_id,
        "source": str(audio),
        "fingerprint": fingerprint,
        "duration": len(y) / params.sr,
    }
    write_features(out, cqt, params, meta)
    log.info("%s: %d frames from %s", track_id, len(cqt), audio)


def run_teacher(
    out: str, teacher_cfg: dict[str, Any], tracks: Sequence[Row], fingerprints: Sequence[str]
) -> None:
    """Teacher probabilities for each track, stored as one pseudo-label shard."""
    teacher = build_teacher(
        teacher_cfg["kind"], teacher_cfg.get("checkpoint"), teacher_cfg.get("device", "auto")
    )
    outputs, attrs = {}, {}
    for (tid, audio, features_path, _), fp in zip(
        tqdm(tracks, desc=f"teacher {Path(out).name}"), fingerprints, strict=True
    ):
        probs = teacher.frame_probs(Path(audio), read_features(features_path))
        outputs[tid] = teacher_output(probs)
        attrs[tid] = {"audio_fingerprint": fp, "source": str(audio)}
    identity = {"kind": teacher.kind, "name": teacher.name, "fingerprint": teacher.fingerprint}
    write_shard(out, outputs, identity, LARGE.name, CQTParams(), attrs)
    log.info("%s: %d tracks by %s", out, len(outputs), teacher.name)


def write_splits(out: str, rows: Sequence[Row]) -> None:
    lines = ["set\ttrack_id\tsplit\taudio"] + ["\t".join(map(str, r)) for r in rows]
    atomic_write_text(out, "\n".join(lines) + "\n")


def _train_config(train_cfg: dict[str, Any], device: str) -> TrainConfig:
    known = {f.name for f in fields(TrainConfig)}
    return TrainConfig(**{k: v for k, v in train_cfg.items() if k in known}, device=device)


def _fingerprint(obj: Any) -> str:
    return hashlib.sha1(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
            cwd=Path(__file__).parent,
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip()


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


def _frame_labels(features_path: str, lab: str) -> tuple[np.ndarray, list]:
    attrs = read_feature_attrs(features_path)
    period = CQTParams.from_dict(attrs["feature_params"]).frame_period
    segments = read_lab(lab, LARGE)
    return segments_to_frames(segments, int(attrs["n_frames"]), period, LARGE), segments


def train_stage1(
    common: dict[str, Any],
    train_cfg: dict[str, Any],
    shards: dict[int, str],
    train_tracks: Sequence[Row],
    val_tracks: Sequence[Row],
    work: str,
    out_checkpoint: str,
    out_history: str,
) -> None:
    """Student on teacher pseudo-labels only; early stopping on agreement with the teacher."""
    n_shards = max(shards) + 1 if shards else 0
    identity = check_shards_compatible(list(shards.values()))

    def with_shard(rows: Sequence[Row]) -> list[tuple[str, str, str]]:
        return [(r[2], shards[shard_of(r[0], n_shards)], r[0]) for r in rows]

    train_rows, val_rows = with_shard(train_tracks), with_shard(val_tracks)
    mean, std = compute_mean_std([r[0] for r in train_rows])
    arch, hparams = common["student"]["arch"], dict(common["student"].get("hparams") or {})
    provenance = {
        "stage": "stage1",
        "teacher": identity,
        "train_tracks": [r[0] for r in train_tracks],
        "config": {"student": common["student"], "train": train_cfg},
    }
    meta = _bundle_meta(arch, hparams, mean, std, provenance)
    model = build_model(arch, {**hparams, "num_chords": LARGE.size} if arch == "btc" else
                        {**hparams, "n_classes": LARGE.size})
    config = _train_config(train_cfg, common.get("device", "auto"))
    data = PseudoLabelDataset(
        train_rows, stride=train_cfg.get("stride", 108), with_probs=config.use_kd
    )
    device = select_device(config.device)
    best, last = _work_paths(work, _fingerprint(provenance))
    log.info("stage 1: %d windows from %d tracks, mean %.3f std %.3f",
             len(data), len(train_rows), mean, std)
    history = train(
        model, meta, data, lambda m: frame_agreement(m, mean, std, val_rows, device),
        config, best, last, log=log.info,
    )
    _finish(best, out_checkpoint, out_history, history)


def _bundle_meta(arch: str, hparams: dict, mean: float, std: float, provenance: dict) -> dict:
    provenance = {**provenance, "mirkd_version": __version__, "git_commit": _git_commit()}
    return {
        "arch": arch, "hparams": hparams, "vocab": LARGE, "feature_params": CQTParams(),
        "mean": float(mean), "std": float(std), "provenance": provenance,
    }


def train_supervised(
    stage: str,
    common: dict[str, Any],
    train_cfg: dict[str, Any],
    train_tracks: Sequence[Row],
    val_tracks: Sequence[Row],
    work: str,
    out_checkpoint: str,
    out_history: str,
    init_checkpoint: str | None = None,
    teacher_outputs: dict[str, str] | None = None,
) -> None:
    """Stage 2 (from the stage-1 student, with selective KD) or the from-scratch baseline."""
    teacher_outputs = teacher_outputs or {}
    rows = []
    for tid, _, features_path, lab in train_tracks:
        labels, _ = _frame_labels(features_path, lab)
        probs = None
        if tid in teacher_outputs:
            probs = read_shard_track(teacher_outputs[tid], tid).probs.astype(np.float32)
        rows.append((features_path, labels, probs))
    val_rows = [(r[2], read_lab(r[3], LARGE)) for r in val_tracks]
    provenance = {
        "stage": stage,
        "init": init_checkpoint,
        "train_tracks": [r[0] for r in train_tracks],
        "config": {"train": train_cfg, "student": common["student"]},
    }
    if init_checkpoint:
        bundle = load_checkpoint(init_checkpoint)
        model, arch, hparams = bundle.model, bundle.arch, bundle.hparams
        mean, std = bundle.mean, bundle.std
        provenance["init_provenance"] = bundle.provenance
    else:
        arch, hparams = common["student"]["arch"], dict(common["student"].get("hparams") or {})
        hparams = {**hparams, "num_chords" if arch == "btc" else "n_classes": LARGE.size}
        model = build_model(arch, hparams)
        mean, std = compute_mean_std([r[0] for r in rows])
    meta = _bundle_meta(arch, hparams, mean, std, provenance)
    config = _train_config(train_cfg, common.get("device", "auto"))
    data = LabeledDataset(
        rows, stride=train_cfg.get("stride", 54), pitch_shift=_shifts(train_cfg)
    )
    device = select_device(config.device)
    metric = train_cfg.get("val_metric", "majmin")
    best, last = _work_paths(work, _fingerprint(provenance))
    log.info("%s: %d windows from %d songs (KD %s)", stage, len(data), len(rows),
             "on" if data.with_probs and config.use_kd else "off")
    history = train(
        model, meta, data,
        lambda m: validation_wcsr(m, mean, std, val_rows, device, metric=metric),
        config, best, last, log=log.info,
    )
    _finish(best, out_checkpoint, out_history, history)


def _shifts(train_cfg: dict[str, Any]) -> tuple[int, ...]:
    """Pitch shifts to enumerate: the unshifted copy plus the configured ones."""
    shifts = [int(s) for s in train_cfg.get("pitch_shift", []) if int(s) != 0]
    return (0, *shifts) if shifts else ()


def _score_tracks(
    tracks: Sequence[Row], predictions_dir: str, frame_indices: dict[str, np.ndarray]
) -> dict[str, Any]:
    songs = {}
    for tid, _, features_path, lab in tracks:
        attrs = read_feature_attrs(features_path)
        period = CQTParams.from_dict(attrs["feature_params"]).frame_period
        estimate = frames_to_segments(frame_indices[tid], period, LARGE, duration=attrs["duration"])
        write_lab(Path(predictions_dir) / f"{tid}.lab", estimate)
        songs[tid] = (read_lab(lab), estimate)
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


def summarize(metrics: dict[str, str], splits: str, out: str) -> None:
    write_summary(metrics, splits, out)

