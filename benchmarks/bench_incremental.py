"""Incremental rerun after adding one labeled song, as a fraction of a full run.

The tests' tiny configuration (tests/workflow_helpers.tiny_config: 4 unlabeled, 5 labeled and
2 test songs of 12-16 s, a 1-layer BTC of width 16, two epochs, buckets of ~29 s of audio) runs
end to end in a temp dir; then one labeled song is added and the same command is timed again:
only the bucket it hashes into (split in two if it outgrows the size) has its features and
teacher jobs redone. Per-rule job times come from the rules' own Snakemake benchmark files.
Runs once (it takes minutes).
"""

from __future__ import annotations

import csv
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import benchlib  # first: limits threads and silences tqdm before torch loads

from mirkd.demo import write_demo_corpus

sys.path.insert(0, str(benchlib.REPO / "tests"))
from workflow_helpers import planned_jobs, snakemake, tiny_config, write_config  # noqa: E402


def rule_of(benchmark: Path, root: Path) -> str:
    """The rule that wrote a results/benchmarks file, from its place in the tree."""
    parts = benchmark.relative_to(root).with_suffix("").parts
    if parts[0] in ("features", "teacher"):
        return parts[0]  # one job per bucket: <rule>/<group>/<bucket>.tsv
    if parts[0] == "evaluate":
        return "evaluate_teacher" if parts[1] == "teacher" else "evaluate_model"
    return parts[0]


def job_times(workdir: Path, since: float = 0.0) -> dict[str, tuple[int, float, float]]:
    """rule -> (jobs, summed wall s, summed CPU s) of benchmark files written after `since`."""
    root = workdir / "results" / "benchmarks"
    totals: dict[str, list[float]] = defaultdict(lambda: [0, 0.0, 0.0])
    for path in sorted(root.rglob("*.tsv")):
        if path.stat().st_mtime < since:
            continue
        with path.open() as f:
            row = next(csv.DictReader(f, delimiter="\t"))
        entry = totals[rule_of(path, root)]
        entry[0] += 1
        entry[1] += float(row["s"])
        entry[2] += float(row["cpu_time"])
    return {rule: (int(n), s, cpu) for rule, (n, s, cpu) in sorted(totals.items())}


def run(workdir: Path) -> float:
    started = time.perf_counter()
    result = snakemake(workdir)
    if result.returncode != 0:
        raise RuntimeError(f"snakemake failed in {workdir}:\n{result.stderr[-3000:]}")
    return time.perf_counter() - started


def add_labeled_song(workdir: Path) -> None:
    """One more labeled song (audio + .lab) in the labeled folder, as the workflow test does."""
    extra = workdir / "extra"
    write_demo_corpus(extra, 0, 1, 0, seed=11, min_seconds=12, max_seconds=14)
    for suffix in (".flac", ".lab"):
        shutil.copy(
            extra / "labeled" / f"labeled_0000{suffix}",
            workdir / "data" / "labeled" / f"new_labeled_11{suffix}",
        )


def main() -> str:
    machine = benchlib.machine_line()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        write_demo_corpus(workdir / "data", 4, 5, 2, seed=3, min_seconds=12, max_seconds=16)
        write_config(workdir, tiny_config(Path("data")))
        full = run(workdir)
        full_jobs = job_times(workdir)
        load_between = benchlib.load()
        started = time.perf_counter()
        planned_jobs(workdir)
        noop = time.perf_counter() - started
        add_labeled_song(workdir)
        planned = planned_jobs(workdir)
        since = time.time()
        rerun = run(workdir)
        rerun_jobs = job_times(workdir, since)
    rules = sorted(set(full_jobs) | set(rerun_jobs))
    rows = [
        (rule, *full_jobs.get(rule, (0, 0.0, 0.0)), *rerun_jobs.get(rule, (0, 0.0, 0.0)))
        for rule in rules
    ]
    summary = benchlib.table(
        ("run", "wall s", "fraction of full"),
        [
            ("full run (empty results/)", full, 1.0),
            ("rerun after adding 1 labeled song", rerun, rerun / full),
            ("dry run with nothing to do (`snakemake -n`)", noop, noop / full),
        ],
    )
    per_rule = benchlib.table(
        (
            "rule",
            "full: jobs",
            "full: job s",
            "full: CPU s",
            "rerun: jobs",
            "rerun: job s",
            "rerun: CPU s",
        ),
        rows,
    )
    planned_text = ", ".join(f"{rule} {n}" for rule, n in sorted(planned.items()))
    body = (
        f"{summary}\n\nJobs the rerun planned: {planned_text}. Load before the rerun: "
        f"{load_between}.\n\nPer rule, from `results/benchmarks/*.tsv` (job wall and CPU "
        "seconds summed over the rule's jobs; rules without a benchmark file — splits, "
        "summary, plots — and Snakemake's own scheduling are only in the wall times above):\n\n"
        f"{per_rule}"
    )
    intro = (
        "The whole DAG on `tests/workflow_helpers.tiny_config` in a temp dir with "
        "`snakemake --cores 2` (one run each: it takes minutes), then one labeled 12-14-s "
        "song added and the same command rerun. `data.bucket_hours` 0.008 (~29 s of audio per "
        "bucket), so each group spans several `features` and `teacher` jobs, one per bucket. "
        "Jobs use 1 thread each (config `resources`)."
    )
    return benchlib.section("Incremental rerun after adding one labeled song", machine, intro, body)


if __name__ == "__main__":
    print(main())
