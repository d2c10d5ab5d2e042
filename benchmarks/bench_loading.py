"""Stage-1 windows per second at 15,000 tracks, against a target and the student's step.

Issue 12's figure: stage-1 training windows per second from memory-mapped bucket files at
15,000 tracks, target >= 20,000 windows/s on one core. One process, 1 torch thread; the cases
alternate within each repeat (median of the repeats), so machine load hits them alike:
`PseudoLabelDataset.batch` over an epoch (plain and block shuffle); the trainer's own loader
(`trainer._loader`, as training builds it) with 0 and 2 workers, the persistent workers' first
and second pass apart; with teacher probabilities (KD); and the old per-window path (a plain
DataLoader collating `__getitem__` windows). Then forward + backward + AdamW steps of the
default student on random batches, to compare with what the model consumes.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Iterable

import benchlib  # first: limits threads and silences tqdm before torch loads
import torch
from torch import nn
from torch.utils.data import DataLoader

from mirkd.manifest import BucketFiles
from mirkd.models.registry import build_model
from mirkd.store import BucketFile
from mirkd.training.datasets import PseudoLabelDataset
from mirkd.training.sampling import BlockShuffleSampler, block_shuffled
from mirkd.training.trainer import _loader, loss_for_batch

N_TRACKS = int(os.environ.get("MIRKD_BENCH_LOADING_TRACKS", "15000"))
SECONDS = 20.0  # per track: keeps 15,000 tracks at ~2 GB of files
TRACKS_PER_BUCKET = 500
CACHE = benchlib.CACHE_ROOT / "loading"
BATCH = 64
TARGET = 20_000  # windows/s on one core
SEED = 0
STEPS = 10
WARMUP_STEPS = 3
BATCH_SIZES = (16, 32)


def drain(batches: Iterable[object]) -> None:
    for _ in batches:
        pass


def batch_epoch(dataset: PseudoLabelDataset, block: int) -> list[float]:
    """Seconds of one epoch of `dataset.batch` calls in a `block_shuffled` order."""

    def epoch() -> None:
        order = block_shuffled(len(dataset), block, SEED).numpy()
        for start in range(0, len(order), BATCH):
            dataset.batch(order[start : start + BATCH])

    return [benchlib.timed(epoch)]


def loader_passes(
    dataset: PseudoLabelDataset, block: int, workers: int, passes: int = 1
) -> list[float]:
    """Seconds of each of `passes` full passes of a new trainer loader (so the first pass of
    persistent workers includes their start-up, and later passes show it does not recur)."""
    config = benchlib.stage_config(
        "stage1", batch_size=BATCH, num_workers=workers, shuffle_block=block
    )
    sampler = BlockShuffleSampler(len(dataset), block, config.seed)
    loader = _loader(dataset, sampler, config, torch.device("cpu"))
    times = []
    for epoch in range(passes):
        sampler.set_epoch(epoch)
        times.append(benchlib.timed(lambda: drain(loader)))
    return times


def per_window_epoch(dataset: PseudoLabelDataset, block: int) -> list[float]:
    """Seconds of one epoch through a plain DataLoader: one `__getitem__` per window, then
    default collation (the path before `WindowDataset.batch`)."""
    sampler = BlockShuffleSampler(len(dataset), block, SEED)
    loader = DataLoader(dataset, batch_size=BATCH, sampler=sampler, num_workers=0)
    return [benchlib.timed(lambda: drain(loader))]


def read_through(buckets: Iterable[BucketFiles]) -> None:
    """Read every bucket file once, so every case starts from the page cache."""
    for path in {p for b in buckets for p in (b.features, b.teacher)}:
        with open(path, "rb") as f:
            while f.read(1 << 24):
                pass


def loading_rows(plain: PseudoLabelDataset, kd: PseudoLabelDataset) -> list[tuple[object, ...]]:
    """One row per case and pass: median seconds per epoch, windows/s, ratio to TARGET.

    `PseudoLabelDataset.__getitem__` is `batch([item])`, so the per-window row measures the
    per-window overhead (one gather and one collation per window), not the old slicing code.
    """
    cases: list[tuple[str, int, str, str, Callable[[], list[float]]]] = [
        ("`dataset.batch`", 1, "-", "no", lambda: batch_epoch(plain, 1)),
        ("`dataset.batch`", 64, "-", "no", lambda: batch_epoch(plain, 64)),
        ("trainer loader", 1, "0", "no", lambda: loader_passes(plain, 1, 0)),
        ("trainer loader", 64, "0", "no", lambda: loader_passes(plain, 64, 0)),
        ("trainer loader", 1, "2", "no", lambda: loader_passes(plain, 1, 2, passes=2)),
        ("trainer loader", 64, "2", "no", lambda: loader_passes(plain, 64, 2, passes=2)),
        ("trainer loader", 64, "0", "yes", lambda: loader_passes(kd, 64, 0)),
        ("per-window DataLoader", 1, "0", "no", lambda: per_window_epoch(plain, 1)),
    ]
    batch_epoch(plain, 1)  # untimed: maps every bucket in this process, for all cases alike
    batch_epoch(kd, 1)
    times: list[list[list[float]]] = [[] for _ in cases]
    for _ in range(benchlib.REPEATS):
        for i, case in enumerate(cases):
            times[i].append(case[-1]())
    rows = []
    for (path, block, workers, probs, _), runs in zip(cases, times, strict=True):
        for p, seconds in enumerate(zip(*runs, strict=True)):
            pass_name = "-" if len(runs[0]) == 1 else ("1st (start-up)", "2nd")[p]
            t = statistics.median(seconds)
            windows = len(kd if probs == "yes" else plain)
            rows.append(
                (path, block, workers, probs, pass_name, t, windows / t, windows / t / TARGET)
            )
    return rows


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


def step_rows(model: nn.Module) -> list[tuple[object, ...]]:
    rows = []
    for batch_size in BATCH_SIZES:
        for use_kd in (False, True):
            seconds = training_steps(model, batch_size, use_kd)
            loss = "focal + KD" if use_kd else "focal"
            rows.append((batch_size, loss, seconds * 1e3, batch_size / seconds))
    return rows


def main() -> str:
    machine = benchlib.machine_line()
    arch, hparams = benchlib.default_student()
    torch.manual_seed(0)
    model = build_model(arch, hparams)
    stride = benchlib.stage_config("stage1").stride
    folder = CACHE / f"{N_TRACKS}x{SECONDS:g}s-{TRACKS_PER_BUCKET}-per-bucket"
    kept = len(list(folder.glob("*.h5"))) if folder.is_dir() else 0
    started = time.perf_counter()
    buckets = benchlib.write_training_buckets(folder, N_TRACKS, SECONDS, TRACKS_PER_BUCKET)
    t_write = time.perf_counter() - started
    read_through(buckets)
    started = time.perf_counter()
    plain = PseudoLabelDataset(buckets, model.window, stride)
    t_index = time.perf_counter() - started
    kd = PseudoLabelDataset(buckets, model.window, stride, with_probs=True)
    frames = sum(int(BucketFile(b.features).offsets[-1]) for b in buckets)
    gb = sum(os.path.getsize(p) for b in buckets for p in (b.features, b.teacher)) / 1e9
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9
    loading = loading_rows(plain, kd)
    load_after = benchlib.load()
    steps = step_rows(model)
    n_params = sum(p.numel() for p in model.parameters())
    rate = {row[:5]: row[6] for row in loading}  # (path, block, workers, probs, pass) -> w/s
    loader_0, loader_64 = (rate[("trainer loader", b, "0", "no", "-")] for b in (1, 64))
    workers_2 = rate[("trainer loader", 64, "2", "no", "2nd")]
    kd_rate = rate[("trainer loader", 64, "0", "yes", "-")]
    per_window = rate[("per-window DataLoader", 1, "0", "no", "-")]
    model_best = max(r[3] for r in steps)
    body = (
        f"Windows per second over one epoch of {len(plain):,} windows (batches of {BATCH}; "
        f"median of {benchlib.REPEATS} interleaved repeats; ratio = windows/s / {TARGET:,}, "
        f"the target on one core); load after these runs {load_after}:\n\n"
        + benchlib.table(
            (
                "path",
                "shuffle block",
                "workers",
                "teacher probs",
                "pass",
                "s per epoch",
                "windows/s",
                "ratio to target",
            ),
            loading,
        )
        + f"\n\nTraining step of the default student ({arch}, {n_params:,} parameters, "
        f"hparams {hparams}; 1 thread, median of {benchlib.REPEATS} x {STEPS} steps):\n\n"
        + benchlib.table(("batch", "loss", "ms per step", "windows/s"), steps)
        + f"\n\nThe trainer's loader in the training process (0 workers, config.yaml's block "
        f"1) delivers {loader_0:,.0f} windows/s, {loader_0 / TARGET:.2f}x the target and "
        f"{loader_0 / model_best:.0f}x what the default student's step consumes on this CPU "
        f"({model_best:.0f} windows/s); {loader_0 / per_window:.1f}x the per-window path "
        f"({per_window:,.0f} windows/s). Block 64: {loader_64:,.0f} windows/s "
        f"({loader_64 / loader_0:.2f}x block 1). 2 workers at block 64, second pass: "
        f"{workers_2:,.0f} windows/s ({workers_2 / loader_64:.2f}x 0 workers). With teacher "
        f"probabilities (KD) at block 64: {kd_rate:,.0f} windows/s ({kd_rate / TARGET:.2f}x "
        "the target)."
    )
    intro = (
        f"{N_TRACKS:,} tracks of {SECONDS:.0f} s in {len(buckets)} buckets of "
        f"{TRACKS_PER_BUCKET} (`benchlib.write_training_buckets`: real log-CQTs of 8 "
        "synthesized songs reused cyclically, synthetic peaked teacher probabilities): "
        f"{frames:,} frames, {gb:.2f} GB of features + teacher files, "
        + (
            f"reused from {folder}"
            if kept == 2 * len(buckets)
            else f"written to {folder} in {t_write:.0f} s"
        )
        + f" and read once before timing, so they sit in the page cache ({ram:.0f} GB RAM). "
        "Short tracks keep the files small; the per-window cost of a memory-mapped gather "
        "does not depend on track length (4-minute tracks have more windows per track, not "
        f"dearer ones). Window {model.window} frames, config.yaml's stage-1 stride {stride}; "
        f"the window index ({len(plain):,} windows, "
        f"{plain.index.nbytes / 1e6:.1f} MB) builds in {t_index:.2f} s. One process, 1 torch "
        "thread; workers (when 2) are forked processes on the same 2 cores."
    )
    return benchlib.section(
        f"Stage-1 window loading at {N_TRACKS:,} tracks vs training step", machine, intro, body
    )


if __name__ == "__main__":
    print(main())
