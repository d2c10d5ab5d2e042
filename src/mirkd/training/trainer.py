"""One training loop for stage 1, stage 2 and the supervised baseline.

The loop saves a ``last`` checkpoint after every epoch with everything needed to continue
(model, optimiser, epoch, best score, early-stopping counter, LR, history, RNG states) and a
``best`` checkpoint on every strict improvement of the validation score. A run that was killed
restarts from ``last`` and, on CPU with a fixed seed, ends with exactly the weights of an
uninterrupted run: one loader serves every epoch, its sampler's order depends only on
``seed + epoch``, and the global RNG states (dropout) are restored. A ``last`` of a run that
finished (every epoch, or early-stopped) is not resumed: a forced rerun trains afresh.

The loop reads nothing back from the device per step (the losses' boolean masks still do): a
step whose loss or gradients are not finite is skipped by a flag on the device (fused AdamW),
and the loss sum and skip count are read only for the progress bar and at the end of an epoch.

Loss selection (``loss_for_batch``): focal loss alone (baseline, stage 1 default); with
``use_kd`` and teacher probabilities in the batch, ``alpha * KD + (1 - alpha) * focal`` where KD
is selective (stage 2) or plain (stage-1 option). With ``class_balance`` > 0 the focal term is
weighted per target class (``losses.class_weights`` of the training set's ``class_counts()``,
computed once per run and kept on the device).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import BatchSampler, DataLoader, Dataset
from tqdm import tqdm

from mirkd.checkpoints import ModelBundle, read_checkpoint_state, save_checkpoint
from mirkd.devices import cpu_computes_bf16
from mirkd.errors import CheckpointError, ConfigError
from mirkd.history import EpochRecord
from mirkd.model_configs import arch_config
from mirkd.models.common import ChordModel
from mirkd.stages import UNSTATED_SETTINGS
from mirkd.training.consistency import (
    NOISE,
    Rotations,
    SecondView,
    consistency_loss,
    second_view,
)
from mirkd.training.datasets import WindowDataset
from mirkd.training.losses import class_weights, focal_loss, stage2_loss
from mirkd.training.sampling import BlockShuffleSampler

SCHEDULES = ("warmup_cosine", "plateau")
PRECISIONS = ("auto", "bf16", "fp32")
PREFETCH_BATCHES = 4  # batches each loader worker prepares ahead
PROGRESS_EVERY = 50  # steps between host reads of the running loss (the progress bar)


@dataclass(frozen=True)
class TrainConfig:
    """Everything one stage's training is run with: the stage's settings from the validated
    config (defaults filled from config.schema.yaml, the one place they live) plus the run's
    device. Saved in every checkpoint's provenance as ``train_config``.

    ``lr`` is the peak LR of ``warmup_cosine`` and the starting LR of ``plateau``; ``min_lr``
    is the end of the cosine and the floor of the plateau rule. ``stride`` is the step between
    training windows (at most the model's window); ``pitch_shift`` the semitone shifts
    enumerated besides the unshifted copy; ``val_metric`` the mir_eval metric (or ``mean7``, the
    mean of the seven) that selects supervised models (stage 1 is selected by agreement with
    the teacher); ``shuffle_block`` the number of consecutive dataset items shuffled as one
    block (1: a plain shuffle);
    ``rehearsal`` the share of each stage-2 batch that is pseudo-labeled unlabeled windows
    (``training.datasets.RehearsalDataset``; the step that builds the dataset reads it);
    ``class_balance`` the power of the inverse-frequency class weights of the focal term
    (0: unweighted; 0.5: square-root inverse frequency; ``losses.class_weights``);
    ``pseudo_threshold`` and ``distribution_match`` how teacher outputs become the targets of
    pseudo-labeled windows (``training.pseudo_labels``; the step that builds the dataset reads
    them); ``consistency`` the weight of the two-view agreement loss
    (``training.consistency``; 0: one view); ``precision`` the step's autocast (`amp_dtype`).
    """

    epochs: int
    batch_size: int
    lr: float
    schedule: str
    warmup_epochs: int
    warmup_start_lr: float
    min_lr: float
    weight_decay: float
    grad_clip: float
    patience: int
    seed: int
    num_workers: int
    shuffle_block: int
    device: str
    focal_gamma: float
    kd_alpha: float
    kd_temperature: float
    selective_kd: bool
    kd_upper: float
    kd_lower: float
    use_kd: bool
    plateau_factor: float
    stride: int
    pitch_shift: tuple[int, ...]
    val_metric: str
    rehearsal: float
    class_balance: float
    pseudo_threshold: float
    distribution_match: float
    consistency: float
    precision: str

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"schedule {self.schedule!r} unknown; use one of {SCHEDULES}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision {self.precision!r} unknown; use one of {PRECISIONS}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ConfigError("epochs and batch_size must be at least 1")
        if self.class_balance < 0:
            raise ConfigError(f"class_balance {self.class_balance} must be >= 0")

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any], device: str) -> TrainConfig:
        """A stage's validated settings (every field present, or left out of a job's params as
        `stages.UNSTATED_SETTINGS`) and the run's device.

        `init` (stage 2's starting checkpoint) is planning's business, the job's init input:
        it is not a training setting and is left out here; unstated settings are filled in."""
        settings = {**UNSTATED_SETTINGS, **{k: v for k, v in settings.items() if k != "init"}}
        names = {f.name for f in fields(cls)} - {"device"}
        missing, unknown = sorted(names - set(settings)), sorted(set(settings) - names)
        if missing or unknown:
            raise ConfigError(
                f"training settings: missing {missing}, unknown {unknown} (settings are "
                "validated against config.schema.yaml, which fills in every default)"
            )
        shifts = tuple(int(s) for s in settings["pitch_shift"])
        return cls(**{**settings, "pitch_shift": shifts, "device": device})

    def to_dict(self) -> dict[str, Any]:
        """Plain values (lists, not tuples) for provenance."""
        return {**asdict(self), "pitch_shift": list(self.pitch_shift)}

    @property
    def shifts(self) -> tuple[int, ...]:
        """Pitch shifts a labeled dataset enumerates: () without augmentation, else the
        unshifted copy plus the configured non-zero shifts."""
        nonzero = tuple(s for s in self.pitch_shift if s != 0)
        return (0, *nonzero) if nonzero else ()

    def check_window(self, window: int, stage: str) -> None:
        """ConfigError unless ``stride`` <= the model's ``window`` (no frame left unseen)."""
        if self.stride > window:
            raise ConfigError(
                f"{stage}.stride {self.stride} exceeds the model's window of {window} frames"
            )


def scheduled_lr(step: int, steps_per_epoch: int, config: TrainConfig) -> float:
    """LR of the warm-up + cosine schedule at global batch ``step`` (1-based, per batch).

    Linear ``warmup_start_lr -> lr`` over ``warmup_epochs`` epochs, then cosine down to
    ``min_lr`` at the end of ``epochs`` epochs, as the reference training recipe.
    """
    warmup = config.warmup_epochs * steps_per_epoch
    total = config.epochs * steps_per_epoch
    if step <= warmup:
        return config.warmup_start_lr + (step / warmup) * (config.lr - config.warmup_start_lr)
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return config.min_lr + (config.lr - config.min_lr) * (1 + math.cos(math.pi * progress)) / 2


def loss_for_batch(
    logits: torch.Tensor,
    batch: Mapping[str, torch.Tensor],
    config: TrainConfig,
    weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """The configured loss of one batch (logits ``[B, L, C]``); class ``weights [C]`` (on the
    logits' device) weight the focal term (`run_class_weights`)."""
    flat = logits.reshape(-1, logits.shape[-1])
    targets = batch["y"].reshape(-1)
    if config.use_kd and "probs" in batch:
        return stage2_loss(
            flat,
            targets,
            batch["probs"].reshape(-1, flat.shape[-1]),
            alpha=config.kd_alpha,
            temperature=config.kd_temperature,
            gamma=config.focal_gamma,
            selective=config.selective_kd,
            upper=config.kd_upper,
            lower=config.kd_lower,
            mask=batch["mask"].reshape(-1),
            weights=weights,
        )
    return focal_loss(flat, targets, config.focal_gamma, weights)


def run_class_weights(
    train_ds: Any, config: TrainConfig, n_classes: int, device: torch.device
) -> torch.Tensor | None:
    """The focal loss's class weights ``[n_classes]`` on ``device``, None when
    ``class_balance`` is 0. They come from the dataset's ``class_counts() -> [n_classes]``
    frame counts of its training targets; a dataset without that method is a ConfigError."""
    if config.class_balance <= 0:
        return None
    counts_of = getattr(train_ds, "class_counts", None)
    if counts_of is None:
        raise ConfigError(
            f"class_balance {config.class_balance} needs the class frame counts of the "
            f"training data, which {type(train_ds).__name__} does not give (no class_counts())"
        )
    counts = np.asarray(counts_of())
    if counts.shape != (n_classes,):
        raise ConfigError(
            f"class_counts() gave shape {counts.shape}; the model has {n_classes} classes"
        )
    return class_weights(counts, config.class_balance).to(device)


def _rng_state() -> dict[str, Any]:
    """Global RNG states in a weights_only-loadable form (tensors, lists, ints)."""
    np_state: Any = np.random.get_state()  # the legacy tuple (name, keys, pos, gauss...)
    version, internal, gauss = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": [
            np_state[0],
            torch.from_numpy(np_state[1].astype(np.int64)),
            int(np_state[2]),
            int(np_state[3]),
            float(np_state[4]),
        ],
        "python": [version, list(internal), gauss],
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


def amp_dtype(device: torch.device, precision: str, arch: str) -> torch.dtype | None:
    """The training step's autocast dtype for an `arch` model, None for full float32
    (``training.precision``): on CUDA bfloat16 (float16 where the GPU has none) unless
    ``fp32``; on the CPU bfloat16 for ``bf16``, and for ``auto`` where the CPU computes
    bfloat16 natively (`cpu_computes_bf16`: elsewhere it is slower than float32) and the
    architecture trains faster in it there (`ArchConfig.cpu_bf16_faster`)."""
    if precision == "fp32":
        return None
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if precision == "bf16":
        return torch.bfloat16
    fast = cpu_computes_bf16() and arch_config(arch).cpu_bf16_faster
    return torch.bfloat16 if fast else None


def _autocast(device: torch.device, dtype: torch.dtype | None) -> AbstractContextManager:
    return nullcontext() if dtype is None else torch.autocast(device.type, dtype=dtype)


def _save(path: str | Path, run: _Run, extra_state: dict[str, Any]) -> None:
    """The run's bundle (its model as trained so far) with the training config and the step's
    arithmetic in its provenance (`precision: auto` depends on the machine)."""
    provenance = {
        **run.bundle.provenance,
        "train_config": run.config.to_dict(),
        "step_dtype": run.step_dtype,
    }
    save_checkpoint(path, replace(run.bundle, provenance=provenance), extra_state=extra_state)


@dataclass
class TrainState:
    """Where a run stands after its last finished epoch: what ``last`` resumes from.

    On disk it is part of the plain ``training_state`` dict (``to_checkpoint``), so a
    checkpoint stays loadable with ``weights_only=True``.
    """

    lr: float
    epoch: int = 0
    best: float = -math.inf
    bad_epochs: int = 0
    stopped: bool = False
    history: list[EpochRecord] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """The entries a ``best`` checkpoint carries."""
        return {"history": self.history_rows(), "epoch": self.epoch, "best": self.best}

    def history_rows(self) -> list[dict[str, float]]:
        """The history as plain dicts (checkpoints load with ``weights_only=True``)."""
        return [record.to_dict() for record in self.history]

    def to_checkpoint(self, run: _Run) -> dict[str, Any]:
        """The ``training_state`` entry: this state plus model, optimiser, scaler and RNG."""
        return {
            "model": run.model.state_dict(),
            "optimizer": run.optimizer.state_dict(),
            "scaler": run.scaler.state_dict(),
            "epoch": self.epoch,
            "best": self.best,
            "bad_epochs": self.bad_epochs,
            "lr": self.lr,
            "stopped": self.stopped,
            "history": self.history_rows(),
            "rng": _rng_state(),
        }

    @classmethod
    def resume(cls, raw: Mapping[str, Any], run: _Run) -> TrainState:
        """Restore model, optimiser, scaler and RNG from a ``last`` checkpoint's
        ``training_state`` (`_saved_training_state`); its state."""
        run.model.load_state_dict(raw["model"])
        _load_optimizer(run.optimizer, raw["optimizer"])
        run.scaler.load_state_dict(raw["scaler"])
        _set_rng_state(raw["rng"])
        return cls(
            lr=raw["lr"],
            epoch=raw["epoch"],
            best=raw["best"],
            bad_epochs=raw["bad_epochs"],
            stopped=raw["stopped"],
            history=[EpochRecord.from_dict(row) for row in raw["history"]],
        )

    def end_epoch(
        self, score: float, train_loss: float, seconds: float, config: TrainConfig
    ) -> bool:
        """Count a finished epoch with its validation score; True if the score improved.

        Early stopping after ``patience`` epochs without improvement; the plateau schedule
        decays the LR on each of them (down to ``min_lr``).
        """
        self.epoch += 1
        improved = math.isfinite(score) and score > self.best
        if improved:
            self.best, self.bad_epochs = score, 0
        else:
            self.bad_epochs += 1
            if config.schedule == "plateau":
                self.lr = max(self.lr * config.plateau_factor, config.min_lr)
        self.stopped = self.bad_epochs >= config.patience
        self.history.append(EpochRecord(self.epoch, train_loss, score, self.lr, seconds))
        return improved


def _saved_training_state(path: Path) -> dict[str, Any]:
    """The ``training_state`` of a ``last`` checkpoint; CheckpointError if it has none."""
    raw = read_checkpoint_state(path).get("training_state")
    if raw is None:
        raise CheckpointError(path, "no training_state to resume from (not a `last` checkpoint)")
    return raw


def _unfinished_state(
    out_best: Path, out_last: Path, config: TrainConfig, log: Callable[[str], None]
) -> dict[str, Any] | None:
    """The state of ``out_last`` to resume from, if it exists and its run did not finish.

    A finished run (all epochs, or early-stopped) is not resumed: its job runs again because it
    was forced or its inputs changed, so it starts afresh, and its ``best`` and ``last`` go.
    """
    if not out_last.exists():
        return None
    raw = _saved_training_state(out_last)
    if raw["epoch"] < config.epochs and not raw["stopped"]:
        return raw
    how = "early-stopped" if raw["stopped"] else "finished"
    log(f"{out_last}: that run {how} after epoch {raw['epoch']}; starting afresh")
    out_best.unlink(missing_ok=True)  # first: a stale best must not outlive its `last`
    out_last.unlink()
    return None


class _Batches(Dataset):
    """A window dataset indexed by lists of windows: each loader fetch is one whole batch
    (``WindowDataset.batch``), so per-window Python overhead and collation disappear."""

    def __init__(self, windows: WindowDataset) -> None:
        self.windows = windows

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, items: list[int]) -> dict[str, torch.Tensor]:
        return self.windows.batch(items)


def _loader(
    train_ds: WindowDataset,
    sampler: BlockShuffleSampler,
    config: TrainConfig,
    device: torch.device,
) -> DataLoader:
    """The one loader of a run: workers (if any) live across epochs and prefetch; pinned
    batches on CUDA. The order is ``sampler``'s, cut into batches; the loader's own generator
    only draws the workers' base seed, so iterating never consumes the global RNG (dropout)."""
    workers = config.num_workers
    return DataLoader(
        _Batches(train_ds),
        batch_size=None,
        sampler=BatchSampler(sampler, config.batch_size, drop_last=False),
        num_workers=workers,
        persistent_workers=workers > 0,
        prefetch_factor=PREFETCH_BATCHES if workers > 0 else None,
        pin_memory=device.type == "cuda",
        generator=torch.Generator().manual_seed(config.seed),
    )


@dataclass
class _Run:
    """The objects one training run works with: the bundle (its model on the run's device, its
    normalisation), a fused AdamW (it can skip a step on a device-side flag), scaler, and the
    loader whose sampler is told each epoch."""

    bundle: ModelBundle
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    device: torch.device
    amp_dtype: torch.dtype | None
    config: TrainConfig
    sampler: BlockShuffleSampler
    loader: DataLoader
    class_weights: torch.Tensor | None = None  # of the focal loss, on `device`
    rotations: Rotations | None = None  # class tables of the consistency term, on `device`

    @classmethod
    def start(
        cls, bundle: ModelBundle, config: TrainConfig, device: torch.device, train_ds: WindowDataset
    ) -> _Run:
        model, vocab = bundle.model, bundle.vocab
        if config.consistency > 0 and model.num_classes != vocab.size:
            raise ConfigError(
                f"consistency needs the model's {model.num_classes} classes to be those of "
                f"vocabulary {vocab.name} ({vocab.size})"
            )
        model.to(device)
        optimizer = torch.optim.AdamW(
            model.parameters(), lr=config.lr, weight_decay=config.weight_decay, fused=True
        )
        dtype = amp_dtype(device, config.precision, bundle.arch)
        scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)
        n_items = len(train_ds)
        sampler = BlockShuffleSampler(n_items, config.shuffle_block, config.seed)
        loader = _loader(train_ds, sampler, config, device)
        return cls(
            bundle=bundle,
            optimizer=optimizer,
            scaler=scaler,
            device=device,
            amp_dtype=dtype,
            config=config,
            sampler=sampler,
            loader=loader,
            class_weights=run_class_weights(train_ds, config, model.num_classes, device),
            rotations=Rotations.of(vocab, device) if config.consistency > 0 else None,
        )

    @property
    def model(self) -> ChordModel:
        return self.bundle.model

    @property
    def step_dtype(self) -> str:
        """What the step computes in: "bfloat16" / "float16" (autocast) or "float32"."""
        return str(self.amp_dtype or torch.float32).removeprefix("torch.")

    def normalise(self, raw: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Raw log-CQT [B, L, F] as the model takes it: in float32, standardised by the bundle
        (`ModelBundle.normalise`), padding frames 0."""
        return self.bundle.normalise(raw.float()) * mask.unsqueeze(-1)


def _load_optimizer(optimizer: torch.optim.Optimizer, saved: Mapping[str, Any]) -> None:
    """Restore ``saved`` optimiser state but keep this optimiser's implementation (``fused``,
    ``foreach``): a ``last`` checkpoint saved by an unfused AdamW resumes with the fused one,
    its step counts moved to the parameters' device as the fused kernel wants."""
    implementation = [{k: g[k] for k in ("fused", "foreach")} for g in optimizer.param_groups]
    groups = [{**g, **kept} for g, kept in zip(saved["param_groups"], implementation, strict=True)]
    optimizer.load_state_dict({**saved, "param_groups": groups})


@dataclass
class _EpochTotals:
    """Sums of one epoch kept on the device, so counting a step needs no host sync; reading
    them (a sync) is for the progress bar and the end of the epoch."""

    loss: torch.Tensor  # float64: the sum of the losses of the steps taken
    skipped: torch.Tensor  # int64: steps skipped for a non-finite loss or gradient
    steps: int = 0

    @classmethod
    def zeros(cls, device: torch.device) -> _EpochTotals:
        return cls(
            torch.zeros((), dtype=torch.float64, device=device),
            torch.zeros((), dtype=torch.int64, device=device),
        )

    def add(self, loss: torch.Tensor, skipped: torch.Tensor) -> None:
        """Count one step: its loss unless ``skipped`` (a device bool) is set."""
        self.loss += torch.where(skipped, 0.0, loss.detach().double())
        self.skipped += skipped
        self.steps += 1

    def n_skipped(self) -> int:
        return int(self.skipped)

    def mean_loss(self) -> float:
        """The mean loss of the steps taken (0.0 if none was)."""
        return float(self.loss) / max(1, self.steps - self.n_skipped())


def _poisoned(loss: torch.Tensor) -> torch.Tensor:
    """``loss`` to backpropagate: the same value and bit-identical gradients when finite;
    when not, every gradient is NaN, so the gradient norm (and the fp16 GradScaler's own
    check) flags the step without the host reading the loss."""
    return loss * torch.where(torch.isfinite(loss), 1.0, math.nan)


def _step_unless(optimizer: torch.optim.Optimizer, skip: torch.Tensor) -> None:
    """``optimizer.step()``, a no-op (params, moments and step count untouched) where the
    device bool ``skip`` is set: fused Adam/AdamW read it as ``found_inf``, the attribute
    GradScaler sets for them (an unfused optimiser refuses the attribute)."""
    optimizer.found_inf = skip.float()  # type: ignore[attr-defined]
    try:
        optimizer.step()
    finally:
        del optimizer.found_inf  # type: ignore[attr-defined]


def _train_step(run: _Run, batch: Mapping[str, torch.Tensor], totals: _EpochTotals) -> None:
    """One optimiser step on ``batch`` (on the device) at the param groups' LR.

    With the consistency term the second view rides in the same forward pass as the first
    (the batch doubled: the models have no batch statistics, so each window's logits are those
    of a pass of its own, and one pass of 2B windows is cheaper than two of B).
    A step whose loss or gradient norm is not finite changes neither the weights nor the
    optimiser state; the test stays on the device (no host sync per step).
    """
    x = run.normalise(batch["x"], batch["mask"])
    view = None
    if run.rotations is not None:
        view = second_view(batch["x"], batch["y"], batch.get("probs"), run.rotations)
        x2 = run.normalise(view.x, batch["mask"])
        x = torch.cat([x, (x2 + NOISE * torch.randn_like(x2)) * batch["mask"].unsqueeze(-1)])
    with _autocast(run.device, run.amp_dtype):
        logits = run.model(x)
    first = logits[: len(batch["x"])]
    loss = loss_for_batch(first.float(), batch, run.config, run.class_weights)
    if view is not None:
        loss = _with_consistency(run, batch, view, first, logits[len(first) :], loss)
    run.optimizer.zero_grad(set_to_none=True)
    run.scaler.scale(_poisoned(loss)).backward()
    run.scaler.unscale_(run.optimizer)
    norm = nn.utils.clip_grad_norm_(run.model.parameters(), run.config.grad_clip)
    skipped = ~torch.isfinite(norm)
    if run.scaler.is_enabled():
        run.scaler.step(run.optimizer)  # passes its own found_inf: the same non-finite grads
        run.scaler.update()
    else:
        _step_unless(run.optimizer, skipped)
    totals.add(loss, skipped)


def _with_consistency(
    run: _Run,
    batch: Mapping[str, torch.Tensor],
    view: SecondView,
    logits: torch.Tensor,
    logits2: torch.Tensor,
    loss: torch.Tensor,
) -> torch.Tensor:
    """The two-view loss: the mean of both views' losses (the second on its rotated targets)
    plus ``consistency`` times their agreement (``training.consistency``)."""
    assert run.rotations is not None
    batch2 = {"y": view.y, "mask": batch["mask"]}
    if view.probs is not None:
        batch2["probs"] = view.probs
    loss2 = loss_for_batch(logits2.float(), batch2, run.config, run.class_weights)
    agreement = consistency_loss(logits, logits2, view.shift, batch["mask"], run.rotations)
    return 0.5 * (loss + loss2) + run.config.consistency * agreement


def _train_epoch(run: _Run, state: TrainState, log: Callable[[str], None]) -> float:
    """One pass over the training set in the sampler's order for this epoch; the mean loss
    of the steps taken. Logs how many steps were skipped for non-finite values.

    ``state.lr`` follows the warm-up + cosine schedule per batch when that is configured.
    """
    config = run.config
    steps_per_epoch = len(run.loader)
    run.sampler.set_epoch(state.epoch)
    run.model.train()
    totals = _EpochTotals.zeros(run.device)
    progress = tqdm(run.loader, desc=f"epoch {state.epoch + 1}/{config.epochs}", leave=False)
    for b, batch in enumerate(progress):
        if config.schedule == "warmup_cosine":
            state.lr = scheduled_lr(state.epoch * steps_per_epoch + b + 1, steps_per_epoch, config)
        for group in run.optimizer.param_groups:
            group["lr"] = state.lr
        _train_step(run, {k: v.to(run.device, non_blocking=True) for k, v in batch.items()}, totals)
        if (b + 1) % PROGRESS_EVERY == 0:
            progress.set_postfix(loss=f"{totals.mean_loss():.4f}", lr=f"{state.lr:.2e}")
    if skipped := totals.n_skipped():
        log(
            f"epoch {state.epoch + 1}: {skipped} of {totals.steps} steps skipped "
            "(non-finite loss or gradients)"
        )
    return totals.mean_loss()


def train(
    bundle: ModelBundle,
    train_ds: WindowDataset,
    validate: Callable[[ModelBundle], float],
    config: TrainConfig,
    out_best: str | Path,
    out_last: str | Path,
    device: torch.device,
    log: Callable[[str], None] = print,
) -> list[EpochRecord]:
    """Train ``bundle.model`` in place; resume from ``out_last`` if it holds a run that did not
    finish (a finished one starts afresh: a forced rerun trains again). Returns the history.

    The bundle normalises the raw features of each batch (`ModelBundle.normalise`); padding
    frames (``mask`` False) are then set to 0 like the models' own window padding. Checkpoints
    are the bundle with ``train_config`` and ``step_dtype`` added to its provenance.
    ``validate(bundle)`` returns a score where higher is better (the model is in eval mode and
    on ``device``, the one the step selected from ``config.device``, when it is called).
    """
    out_best, out_last = Path(out_best), Path(out_last)
    model = bundle.model
    run = _Run.start(bundle, config, device, train_ds)
    log(f"training on {device} in {run.step_dtype} (precision {config.precision})")
    saved = _unfinished_state(out_best, out_last, config, log)
    if saved is not None:
        state = TrainState.resume(saved, run)
        log(f"resumed from {out_last} after epoch {state.epoch} (best {state.best:.4f})")
    else:
        _seed_everything(config.seed)
        state = TrainState(lr=config.lr)
    if run.class_weights is not None:
        w = run.class_weights
        log(
            f"class balance {config.class_balance}: focal weights {float(w.min()):.2f} to "
            f"{float(w.max()):.2f}"
        )

    while state.epoch < config.epochs and not state.stopped:
        started = time.perf_counter()
        train_loss = _train_epoch(run, state, log)
        model.eval()
        with torch.no_grad():
            score = float(validate(bundle))
        improved = state.end_epoch(score, train_loss, time.perf_counter() - started, config)
        log(
            f"epoch {state.epoch}: loss {train_loss:.4f} val {score:.4f} lr {state.lr:.2e}"
            f"{' *' if improved else ''}{' (early stop)' if state.stopped else ''}"
        )
        if improved:
            _save(out_best, run, state.summary())
        _save(out_last, run, {"training_state": state.to_checkpoint(run)})
    if not out_best.exists():
        _save(out_best, run, state.summary())
    return state.history
