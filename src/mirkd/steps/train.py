"""Training steps: stage 1 on pseudo-labels, stage 2 / baseline on ground truth.

Resumable state lives in a work folder keyed by a fingerprint of the run's provenance
(config and training tracks): a killed job resumes, a changed one starts afresh.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mirkd.atomic import atomic_path, atomic_write_json
from mirkd.checkpoints import ModelBundle, load_checkpoint
from mirkd.devices import select_device
from mirkd.errors import MirkdError
from mirkd.labels import read_annotation, segments_to_frames
from mirkd.manifest import BucketFiles, TrackFiles
from mirkd.model_configs import check_init_is_student
from mirkd.models.common import ChordModel
from mirkd.models.registry import build_model
from mirkd.references import reference_tracks
from mirkd.steps import log
from mirkd.steps.buckets import keyed_work_dir, settings_key
from mirkd.store import (
    BucketFile,
    check_teacher_compatible,
    feature_grid,
    open_buckets,
    read_teacher_output,
)
from mirkd.training.datasets import (
    LabeledDataset,
    LabeledTrack,
    PseudoLabelDataset,
    RehearsalDataset,
    WindowDataset,
    compute_mean_std,
)
from mirkd.training.losses import class_frame_counts
from mirkd.training.pseudo_labels import (
    PseudoLabelPolicy,
    alignment_factors,
    probability_mass,
    segment_seconds,
)
from mirkd.training.trainer import TrainConfig, train
from mirkd.training.validation import agreement_tracks, frame_agreement, validation_wcsr
from mirkd.vocab import LARGE


def _work_paths(work: str | Path, provenance: Any) -> tuple[Path, Path]:
    """best/last checkpoints of this exact run; state of any other run in `work` is removed."""
    work_dir = keyed_work_dir(work, settings_key(provenance))
    return work_dir / "best.pt", work_dir / "last.pt"


def _train_and_publish(
    bundle: ModelBundle,
    data: WindowDataset,
    score: Callable[[ModelBundle, torch.device], float],
    config: TrainConfig,
    work: str,
    out_checkpoint: str,
    out_history: str,
    pseudo_labels: dict[str, dict[str, float]] | None = None,
) -> None:
    """The end of every training step: train `bundle` on `data` (validation `score` of the
    bundle on the configured device; resumable state in `work`, keyed by the bundle's
    provenance), then publish the best checkpoint and the history (+ the pseudo-label tally,
    if any)."""
    device = select_device(config.device)
    best, last = _work_paths(work, bundle.provenance)
    history = train(
        bundle,
        data,
        lambda b: score(b, device),
        config,
        best,
        last,
        device=device,
        log=log.info,
    )
    with atomic_path(out_checkpoint) as tmp:
        shutil.copyfile(best, tmp)
    record: dict[str, Any] = {
        "history": [epoch.to_dict() for epoch in history],
        "checkpoint": str(out_checkpoint),
    }
    if pseudo_labels is not None:
        record["pseudo_labels"] = pseudo_labels
    atomic_write_json(out_history, record)


def pseudo_label_policy(
    config: TrainConfig, buckets: Sequence[BucketFiles], labeled_mass: np.ndarray | None
) -> PseudoLabelPolicy:
    """The stage's policy for teacher targets; distribution matching aligns the teacher's
    quality shares over `buckets` with `labeled_mass` [C] (the labeled songs' time per class)."""
    factors = None
    if config.distribution_match > 0:
        if labeled_mass is None or not np.any(labeled_mass):
            raise MirkdError(
                f"distribution_match {config.distribution_match} needs labeled training songs "
                "(their chord-quality shares are what the pseudo-labels are aligned with)"
            )
        teacher_mass = probability_mass([BucketFile(b.teacher).memmap("probs") for b in buckets])
        factors = alignment_factors(teacher_mass, labeled_mass, config.distribution_match, LARGE)
    return PseudoLabelPolicy(config.pseudo_threshold, factors)


def _report_policy(stage: str, data: PseudoLabelDataset) -> dict[str, dict[str, float]] | None:
    """Log and return the per-quality tally of the targets when the policy changes them."""
    policy = data.policy
    if not (policy.reads_probs or policy.reads_confidence):
        return None
    tally = {name: t.to_dict() for name, t in data.tally(LARGE).items()}
    log.info(
        "%s: pseudo-labels (threshold %.2f, distribution matching %s); per group: teacher "
        "frames -> targets -> kept share",
        stage,
        policy.threshold,
        "on" if policy.reads_probs else "off",
    )
    for name, row in tally.items():
        log.info(
            "  %-8s %9d -> %9d  %5.1f %%",
            name,
            row["teacher"],
            row["target"],
            100 * row["kept_share"],
        )
    return tally


def _labeled_tracks(tracks: Sequence[TrackFiles], distil: bool) -> list[LabeledTrack]:
    """Training songs: features (views of their mapped buckets), frame labels on the features'
    grid and, when the stage distils, the teacher's probabilities [T, C]; each bucket file is
    opened once."""
    features = open_buckets(t.features for t in tracks)
    teachers = open_buckets(t.teacher for t in tracks) if distil else {}
    rows = []
    for track in tracks:
        bucket = features[track.features]
        grid = feature_grid(bucket, track.track_id)
        segments = read_annotation(track.annotation, LARGE, duration=grid.duration)
        labels = segments_to_frames(segments, grid.n_frames, grid.frame_period, LARGE)
        probs = None
        if distil:
            output = read_teacher_output(teachers[track.teacher], track.track_id)
            probs = output.probs.astype(np.float32)
        rows.append(
            LabeledTrack(track.track_id, bucket.frames("cqt", track.track_id), labels, probs)
        )
    return rows


def _by_bucket(tracks: Sequence[TrackFiles]) -> dict[str, list[str]]:
    """Features bucket path -> the ids of `tracks` it holds."""
    found: dict[str, list[str]] = defaultdict(list)
    for t in tracks:
        found[t.features].append(t.track_id)
    return dict(found)


def _new_student(student: dict[str, Any], seed: int) -> tuple[ChordModel, str, dict[str, Any]]:
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


def _usable_fingerprints(teachers: Sequence[BucketFile]) -> dict[str, str]:
    """Track id -> content fingerprint of the usable tracks of teacher buckets."""
    return {t: b.column("fingerprint", t) for b in teachers for t in b.usable()}


def train_stage1(
    common: dict[str, Any],
    train_cfg: dict[str, Any],
    train_buckets: Sequence[BucketFiles],
    val_buckets: Sequence[BucketFiles],
    work: str,
    out_checkpoint: str,
    out_history: str,
    prior_annotations: Sequence[str] = (),
) -> None:
    """Student on teacher pseudo-labels only; early stopping on agreement with the teacher.

    Reads the unlabeled train and validation buckets (features + teacher files); tracks a
    bucket job skipped (undecodable audio) are left out. `prior_annotations` (the labeled
    training songs' annotations) give the class prior of distribution matching.
    """
    train_teachers = [BucketFile(b.teacher) for b in train_buckets]
    val_teachers = [BucketFile(b.teacher) for b in val_buckets]
    identity = check_teacher_compatible([*train_teachers, *val_teachers])
    train_data = _usable_fingerprints(train_teachers)
    val_data = _usable_fingerprints(val_teachers)
    skipped = sum(len(b.skipped()) for b in [*train_teachers, *val_teachers])
    for split, found in (("train", train_data), ("val", val_data)):
        if not found:
            raise MirkdError(
                f"stage 1: no usable unlabeled '{split}' track left ({skipped} skipped, see "
                "results/skipped.tsv): add unlabeled audio or fix the skipped files"
            )
    usable = {b.features: t.usable() for b, t in zip(train_buckets, train_teachers, strict=True)}
    mean, std = compute_mean_std(usable)
    config = TrainConfig.from_settings(train_cfg, common["device"])
    model, arch, hparams = _new_student(common["student"], config.seed)
    config.check_window(model.window, "stage1")
    provenance = {
        "stage": "stage1",
        "teacher": identity,
        "train_data": train_data,
        "val_data": val_data,
        "config": {"student": common["student"], "train": train_cfg},
    }
    labeled_mass = None
    if prior_annotations:
        labeled_mass = np.sum(
            [segment_seconds(read_annotation(a, LARGE), LARGE) for a in prior_annotations], axis=0
        )
        provenance["prior_annotations"] = sorted(prior_annotations)
    bundle = ModelBundle.student(model, arch, hparams, mean, std, provenance)
    data = PseudoLabelDataset(
        train_buckets,
        seq_len=model.window,
        stride=config.stride,
        with_probs=config.use_kd,
        policy=pseudo_label_policy(config, train_buckets, labeled_mass),
    )
    tally = _report_policy("stage 1", data)
    val_rows = agreement_tracks(val_buckets)
    log.info(
        "stage 1: %d windows from %d tracks in %d buckets (%d skipped), mean %.3f std %.3f",
        len(data),
        len(train_data),
        len(train_buckets),
        skipped,
        mean,
        std,
    )
    _train_and_publish(
        bundle,
        data,
        lambda b, device: frame_agreement(b, val_rows, device),
        config,
        work,
        out_checkpoint,
        out_history,
        tally,
    )


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
    distil: bool = False,
    rehearsal_buckets: Sequence[BucketFiles] = (),
) -> None:
    """Stage 2 (from the stage-1 student, with selective KD) or the from-scratch baseline.

    `train_cfg` is the stage's settings as its job's params (`TrainConfig.from_settings`);
    `common` holds the student and the run's device. With `distil`, the teacher's outputs of
    the train tracks (their teacher buckets) are read for KD. With `rehearsal` in the settings,
    each batch is topped up with pseudo-labeled windows of `rehearsal_buckets` (unlabeled
    features + teacher files, as stage 1 reads them).
    """
    rows = _labeled_tracks(train_tracks, distil)
    val_rows = reference_tracks(val_tracks)
    provenance = {
        "stage": stage,
        "init": init_checkpoint,
        "train_data": _data_identity(train_tracks),
        "val_data": _data_identity(val_tracks),
        "config": {"train": train_cfg, "student": common["student"]},
    }
    config = TrainConfig.from_settings(train_cfg, common["device"])
    if config.rehearsal:
        provenance["rehearsal_data"] = _usable_fingerprints(
            [BucketFile(b.teacher) for b in rehearsal_buckets]
        )
    if init_checkpoint:
        init = load_checkpoint(init_checkpoint)
        # planning checked the paths that existed then; this is the one made since
        check_init_is_student(
            "stage 2's init", init_checkpoint, common["student"], init.arch, init.hparams
        )
        model, arch, hparams = init.model, init.arch, init.hparams
        mean, std = init.mean, init.std
        provenance["init_provenance"] = init.provenance
    else:
        model, arch, hparams = _new_student(common["student"], config.seed)
        mean, std = compute_mean_std(_by_bucket(train_tracks))
    config.check_window(model.window, stage)
    bundle = ModelBundle.student(model, arch, hparams, mean, std, provenance)
    labeled = LabeledDataset(
        rows, seq_len=model.window, stride=config.stride, pitch_shift=config.shifts
    )
    data: WindowDataset = labeled
    tally = None
    if config.rehearsal:
        if not rehearsal_buckets:
            raise MirkdError(f"{stage}: rehearsal {config.rehearsal} needs unlabeled buckets")
        labeled_mass = np.sum([class_frame_counts(r.labels, LARGE.size) for r in rows], axis=0)
        pseudo = PseudoLabelDataset(
            rehearsal_buckets,
            model.window,
            config.stride,
            with_probs=labeled.with_probs,
            policy=pseudo_label_policy(config, rehearsal_buckets, labeled_mass),
        )
        tally = _report_policy(stage, pseudo)
        data = RehearsalDataset(labeled, pseudo, config.rehearsal, config.seed)
        log.info(
            "%s: rehearsal: %.0f %% of each batch from %d pseudo-labeled windows",
            stage,
            100 * config.rehearsal,
            len(pseudo),
        )
    metric = config.val_metric
    log.info(
        "%s: %d windows from %d songs (KD %s)",
        stage,
        len(data),
        len(rows),
        "on" if labeled.with_probs and config.use_kd else "off",
    )
    _train_and_publish(
        bundle,
        data,
        lambda b, device: validation_wcsr(b, val_rows, device, metric=metric),
        config,
        work,
        out_checkpoint,
        out_history,
        tally,
    )
