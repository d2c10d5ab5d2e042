"""Options for the stage-1 step on the CPU, interleaved in one process: mirkd's step as it
is (eager fp32), under bf16 autocast, and through `torch.compile` (inductor; its compile time
is reported apart). Not in `make bench`: compiling takes minutes on two cores.

Work: one optimiser step of BTC 8x128 (the paper's student; `--arch chordnet`: 2E1D at its
defaults), batch 16 x 108 frames, random features and labels (a step's cost does not depend
on their values), cross entropy, AdamW (fused), grad clip; `--profile` adds the top operators
of the first option's step.

    OMP_NUM_THREADS=2 python benchmarks/bench_step_options.py [--steps 5] [--rounds 3] \
        [--options eager,bf16,compile] [--arch btc] [--profile]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import benchlib  # first: limits threads and silences tqdm before torch loads
import torch
import torch.nn.functional as F

from mirkd.models.registry import build_model

BATCH, WINDOW, BINS, CLASSES = 16, 108, 144, 170


def make_step(option: str, arch: str) -> Callable[[torch.Tensor, torch.Tensor], None]:
    """One training step of a fresh `arch` model (BTC 8x128 or 2E1D at their defaults) under
    `option` (eager, bf16, compile)."""
    torch.manual_seed(0)
    model = build_model(arch, {}, n_classes=CLASSES).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    forward = torch.compile(model) if option == "compile" else model

    def step(x: torch.Tensor, y: torch.Tensor) -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=option == "bf16"):
            logits = forward(x)
        loss = F.cross_entropy(logits.float().reshape(-1, CLASSES), y.reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()

    return step


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--options", default="eager,bf16,compile")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--arch", default="btc", choices=["btc", "chordnet"])
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args(argv)
    x, y = torch.randn(BATCH, WINDOW, BINS), torch.randint(0, CLASSES, (BATCH, WINDOW))
    steps, first = {}, {}
    for option in args.options.split(","):
        steps[option] = make_step(option, args.arch)
        first[option] = benchlib.timed(lambda s=steps[option]: (s(x, y), s(x, y)))
    times: dict[str, list[float]] = {option: [] for option in steps}
    for _ in range(args.rounds):  # interleaved
        for option, step in steps.items():
            started = time.perf_counter()
            for _ in range(args.steps):
                step(x, y)
            times[option].append((time.perf_counter() - started) / args.steps)
    eager = statistics.median(times[next(iter(times))])
    lines = [
        f"{benchlib.machine_line()}; model {args.arch} at its defaults",
        "",
        "| option | ms / step (median) | rounds | first two steps s | ratio to the first |",
        "|---|---|---|---|---|",
    ]
    for option, values in times.items():
        median = statistics.median(values)
        rounds = " / ".join(f"{1000 * v:.0f}" for v in values)
        lines.append(
            f"| {option} | {1000 * median:.0f} | {rounds} | {first[option]:.1f} | "
            f"{eager / median:.2f}x |"
        )
    if args.profile:
        from torch.profiler import profile

        step = steps[next(iter(steps))]
        with profile() as prof:
            for _ in range(args.steps):
                step(x, y)
        lines += ["", "```", prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12)]
        lines.append("```")
    text = "\n".join(lines)
    print(text)
    return text


if __name__ == "__main__":
    main()
