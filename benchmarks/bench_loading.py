"""Stage-1 window loading vs the student's training step, in windows per second.

The loader must keep up with the model: a full shuffled pass of a PseudoLabelDataset through a
DataLoader (as the trainer builds one per epoch, worker start-up included) is compared with
forward + backward + AdamW steps of the default-config student on random batches.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import benchlib  # first: limits threads and silences tqdm before torch loads
import torch
from torch import nn
from torch.utils.data import DataLoader

from mirkd.models.registry import build_model
from mirkd.training.datasets import PseudoLabelDataset
from mirkd.training.trainer import loss_for_batch

N_TRACKS, SECONDS, COPIES = 8, 120.0, 6  # 8 songs x 12 windows, each listed 6 times: 576 windows
STEPS = 10
WARMUP_STEPS = 3
BATCH_SIZES = (16, 32)
LOADER_BATCH = 16


def loader_pass(dataset: PseudoLabelDataset, workers: int) -> None:
    """One shuffled epoch of batches, as the trainer iterates it."""
    generator = torch.Generator().manual_seed(0)
    loader = DataLoader(
        dataset, batch_size=LOADER_BATCH, shuffle=True, generator=generator, num_workers=workers
    )
    for _ in loader:
        pass


def training_steps(model: nn.Module, batch_size: int, use_kd: bool) -> float:
    """Median seconds of one training step (normalise, forward, loss, backward, clip, AdamW)."""
    config = benchlib.stage_config("stage1", use_kd=use_kd)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    batch = {
        "x": torch.randn(batch_size, 108, 144),
        "y": torch.randint(0, 170, (batch_size, 108)),
        "mask": torch.ones(batch_size, 108, dtype=torch.bool),
        "probs": torch.softmax(torch.randn(batch_size, 108, 170), dim=-1),
    }
    model.train()

    def step() -> None:
        x = batch["x"] * batch["mask"].unsqueeze(-1)
        loss = loss_for_batch(model(x), batch, config)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()

    def steps() -> None:
        for _ in range(STEPS):
            step()

    for _ in range(WARMUP_STEPS):
        step()
    return benchlib.median_time(steps) / STEPS


def main() -> str:
    machine = benchlib.machine_line()
    loader_rows = []
    with tempfile.TemporaryDirectory() as tmp:
        rows = benchlib.write_training_cache(Path(tmp), N_TRACKS, SECONDS) * COPIES
        for with_probs in (False, True):
            dataset = PseudoLabelDataset(rows, 108, 108, with_probs=with_probs)
            for workers in (0, 2):
                seconds = benchlib.median_time(lambda d=dataset, w=workers: loader_pass(d, w))
                loader_rows.append(
                    (
                        "yes" if with_probs else "no",
                        workers,
                        len(dataset),
                        seconds,
                        len(dataset) / seconds,
                    )
                )
    arch, hparams = benchlib.default_student()
    torch.manual_seed(0)
    model = build_model(arch, hparams)
    n_params = sum(p.numel() for p in model.parameters())
    step_rows = []
    for batch_size in BATCH_SIZES:
        for use_kd in (False, True):
            seconds = training_steps(model, batch_size, use_kd)
            step_rows.append(
                (
                    batch_size,
                    "focal + KD" if use_kd else "focal",
                    seconds * 1e3,
                    batch_size / seconds,
                )
            )
    slowest_model = min(r[3] for r in step_rows)
    loader_0 = min(r[4] for r in loader_rows if r[1] == 0)
    verdict = (
        f"Slowest loader with 0 workers: {loader_0:.0f} windows/s; fastest model step: "
        f"{max(r[3] for r in step_rows):.0f} windows/s (slowest {slowest_model:.0f}). "
        + (
            "The loader is not the bottleneck: even in the training process itself (0 workers) "
            "it feeds windows faster than the model consumes them."
            if loader_0 > max(r[3] for r in step_rows)
            else "The loader in the training process can fall behind the model; use workers."
        )
    )
    body = (
        "Loader (full shuffled epoch incl. DataLoader/worker start-up, batch "
        f"{LOADER_BATCH}):\n\n"
        + benchlib.table(
            ("teacher probs", "workers", "windows", "epoch s", "windows/s"), loader_rows
        )
        + f"\n\nTraining step of the default student ({arch}, {n_params:,} parameters, "
        f"hparams {hparams}; 1 thread, median of {benchlib.REPEATS} x {STEPS} steps):\n\n"
        + benchlib.table(("batch", "loss", "ms per step", "windows/s"), step_rows)
        + f"\n\n{verdict}"
    )
    intro = (
        f"{N_TRACKS} synthesized {SECONDS:.0f}-s songs (real log-CQT, float16 gzip HDF5; "
        f"synthetic teacher probabilities), each listed {COPIES} times, stride 108, "
        "files in the page cache. 1 torch thread in the main process."
    )
    return benchlib.section("Window loading vs training step", machine, intro, body)


if __name__ == "__main__":
    print(main())
