"""What verifying bucket files costs stage 1, against an epoch's window loading.

Issue 19's figure: integrity checks (each array's CRC-32 against the one recorded at pack time;
values only when it does not match) must cost under 5 % of a stage-1 epoch's loading time.
Each array is verified once per file version: packing verifies what it wrote and records it
beside the file (`<file>.verified`), and a process finding the version it opened recorded skips
the checksum. Cases alternate within each repeat (median of the repeats), all from the page
cache: the first epoch of a new process (`PseudoLabelDataset.batch` in the trainer's order,
config.yaml's shuffle block; no bucket mapped yet) with the arrays already verified in the
process (without verification), verified and recorded by an earlier process (recorded: every
stage-1 run after packing), or not recorded (the record deleted: each array checksummed, the
cost before records); and `verify` alone, recorded or not (the files opened untimed).
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

import benchlib  # first: limits threads and silences tqdm before torch loads
from bench_loading import read_through

from mirkd import store
from mirkd.manifest import BucketFiles
from mirkd.models.registry import build_model
from mirkd.store import BucketFile, verified_path
from mirkd.training.datasets import PseudoLabelDataset
from mirkd.training.sampling import block_shuffled

N_TRACKS = int(os.environ.get("MIRKD_BENCH_INTEGRITY_TRACKS", "15000"))
SECONDS = 20.0  # per track, as bench_loading
TRACKS_PER_BUCKET = 500
CACHE = benchlib.CACHE_ROOT / "integrity"
BATCH = 64
LIMIT = 0.05  # of an epoch's loading time


BUCKETS: list[BucketFiles] = []  # the benchmark's bucket files (their records: `forget`)


def forget_records() -> None:
    """Delete the verification records beside the bucket files."""
    for files in BUCKETS:
        for path in (files.features, files.teacher):
            Path(verified_path(path)).unlink(missing_ok=True)


def fresh_process(verified: bool, recorded: bool = True) -> None:
    """The state of a new stage-1 process: no bucket mapped yet, its arrays verified in this
    process (to time loading without verification) or not; if not, recorded beside the files by
    an earlier process or not."""
    store._MAPS.clear()
    if not verified:
        store._VERIFIED.clear()
        if not recorded:
            forget_records()


def epoch(dataset: PseudoLabelDataset, block: int, verified: bool, recorded: bool = True) -> float:
    """Seconds of one epoch of `dataset.batch` as a new process runs its first one: mapping
    (and, unless `verified`, verifying: reading records, or checksumming what is not recorded)
    each bucket on first use."""
    fresh_process(verified, recorded)
    dataset._pid = -1  # the dataset maps its buckets again, as in a new process
    order = block_shuffled(len(dataset), block, 0).numpy()

    def run() -> None:
        for start in range(0, len(order), BATCH):
            dataset.batch(order[start : start + BATCH])

    return benchlib.timed(run)


def verification(buckets: list[BucketFiles], names: tuple[str, ...], recorded: bool) -> float:
    """Seconds of `verify` alone, in a new process, for the arrays stage 1 reads (`cqt`, and
    `names` of each teacher file), the files already opened (untimed): reading the records, or
    (not `recorded`) the checksums, which includes mapping their pages, as a first epoch does."""
    fresh_process(verified=False, recorded=recorded)
    files = [(BucketFile(b.features), BucketFile(b.teacher)) for b in buckets]

    def run() -> None:
        for features, teacher in files:
            features.verify("cqt")
            teacher.verify(*names)

    return benchlib.timed(run)


def rows(
    buckets: list[BucketFiles], plain: PseudoLabelDataset, kd: PseudoLabelDataset, block: int
) -> list[tuple[object, ...]]:
    """Per dataset, medians: s of a first epoch without verification, with recorded
    verifications, with none recorded, of the checksums alone, and the added cost (with -
    without, per repeat) as a ratio to an epoch, recorded and not recorded."""
    cases = {"labels": (plain, ("labels",)), "labels + probs (KD)": (kd, ("labels", "probs"))}
    times: dict[str, list[list[float]]] = {k: [[], [], [], [], []] for k in cases}
    for dataset, _ in cases.values():
        epoch(dataset, block, verified=False, recorded=False)  # untimed warm-up; records made
    for _ in range(benchlib.REPEATS):
        for name, (dataset, arrays) in cases.items():
            times[name][0].append(epoch(dataset, block, verified=True))
            times[name][1].append(epoch(dataset, block, verified=False, recorded=True))
            times[name][2].append(epoch(dataset, block, verified=False, recorded=False))
            times[name][3].append(verification(buckets, arrays, recorded=False))
            times[name][4].append(verification(buckets, arrays, recorded=True))
    out = []
    for name, (without, recorded, unrecorded, alone, reading) in times.items():
        base = statistics.median(without)

        def added(with_: list[float], base_runs: list[float] = without) -> float:
            return statistics.median(w - b for w, b in zip(with_, base_runs, strict=True))

        out.append(
            (
                name,
                base,
                statistics.median(recorded),
                statistics.median(unrecorded),
                statistics.median(alone),
                statistics.median(reading),
                statistics.median(reading) / base,
                added(recorded) / base,
                added(unrecorded) / base,
            )
        )
    return out


def main() -> str:
    machine = benchlib.machine_line()
    arch, hparams = benchlib.default_student()
    model = build_model(arch, hparams)
    config = benchlib.stage_config("stage1")
    folder = CACHE / f"{N_TRACKS}x{SECONDS:g}s-{TRACKS_PER_BUCKET}-per-bucket"
    started = time.perf_counter()
    buckets = benchlib.write_training_buckets(folder, N_TRACKS, SECONDS, TRACKS_PER_BUCKET)
    BUCKETS[:] = buckets
    t_write = time.perf_counter() - started
    read_through(buckets)
    plain = PseudoLabelDataset(buckets, model.window, config.stride)
    kd = PseudoLabelDataset(buckets, model.window, config.stride, with_probs=True)
    gb = sum(os.path.getsize(p) for b in buckets for p in (b.features, b.teacher)) / 1e9
    table = rows(buckets, plain, kd, config.shuffle_block)
    worst = max(r[6] for r in table)
    worst_added = max(r[7] for r in table)
    body = (
        f"Median of {benchlib.REPEATS} interleaved repeats; load after these runs "
        f"{benchlib.load()}:\n\n"
        + benchlib.table(
            (
                "teacher arrays read",
                "s first epoch, without verification",
                "s first epoch, verified (recorded)",
                "s first epoch, verified (not recorded)",
                "s verify alone, not recorded (checksums)",
                "s verify alone, recorded",
                "verify alone, recorded / epoch",
                "added / epoch, recorded",
                "added / epoch, not recorded",
            ),
            table,
        )
        + f"\n\nVerifying recorded files (every stage-1 process after packing) costs at most "
        f"{worst:.2%} of one epoch's loading when timed alone "
        f"({'under' if worst < LIMIT else 'over'} the {LIMIT:.0%} limit; the median difference "
        f"of whole first epochs, with the load's noise, is {worst_added:.1%}); checksumming files "
        f"not recorded (the cost before records, now paid once per file version) adds at most "
        f"{max(r[8] for r in table):.1%} to the epoch."
    )
    intro = (
        f"{N_TRACKS:,} tracks of {SECONDS:.0f} s in {len(buckets)} buckets of "
        f"{TRACKS_PER_BUCKET} (`benchlib.write_training_buckets`), {len(plain):,} windows of "
        f"{model.window} frames at stride {config.stride}, {gb:.2f} GB of features + teacher "
        f"files (written in {t_write:.0f} s, or reused from {folder}), read once before timing "
        f"so they sit in the page cache. Epoch: `PseudoLabelDataset.batch` over batches of "
        f"{BATCH} in the order of shuffle block {config.shuffle_block}, in one process."
    )
    return benchlib.section("Bucket integrity checks vs stage-1 loading", machine, intro, body)


if __name__ == "__main__":
    print(main())
