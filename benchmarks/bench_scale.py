"""Planning at cluster scale (issue 12): jobs, dry-run time and per-job start cost per corpus size.

Placeholder corpora of 1,000 / 5,000 / 15,000 unlabeled 4-minute tracks (symlinks, 100 per
album folder, each to its own real 4-minute 22.05 kHz mono FLAC of near-silence opening with a
quiet tone of its own pitch, ~20 kB; the 15,000 files take about 7 minutes to write) plus 40
labeled and 20 test songs (synthesized, 10-15 s, with exact .lab files). They are made once under
benchlib.CACHE_ROOT / "scale" ($MIRKD_BENCH_DIR, default <temp dir>/mirkd-bench; outside the
repository) and reused.

For each corpus, the repository's Snakefile (and its src/ on PYTHONPATH: this tree's code, not
whatever the venv's editable install points at) is dry-run in a fresh results directory:

1. planned jobs: the "Job stats" table of `snakemake -n --quiet rules`;
2. dry run cold (empty results/: no fingerprint or other caches) and warm (the same directory
   again), each minus the median `snakemake --version` (Snakemake's own start-up); every time
   in wall and CPU seconds (user + sys, children included: robust to the load of a shared box);
3. per-job overhead: what a SLURM job pays before its step does any work. The SLURM executor
   submits `python -m snakemake --target-jobs <job> --allowed-rules <rule> ... --mode remote
   --executor slurm-jobstep` (snakemake/spawn_jobs.py, snakemake_interface_executor_plugins
   RealExecutor.format_job_exec); inside the allocation the jobstep executor runs the same
   command again under `srun` (local executor), which starts the rule's script in a third
   Python process. We time that remote-mode command for one features job in dry-run form
   (`-n`: parse the Snakefile, plan the run, build the one-job DAG) and a fresh Python importing
   what features.py loads before it reads the track (Snakemake's script preamble, `mirkd.steps`,
   `mirkd.steps.data`, librosa's lazily loaded `cqt`). Per job = 2 x remote-mode command +
   script imports. profiles/slurm can batch features jobs (its optional `groups` /
   `group-components` block: up to k buckets side by side in one SLURM job, started once): the
   remote-mode command of such a batch (k target jobs, k cores) is timed too, and per job in
   a batch = 2 x that / k + script imports (each job still runs its script in its own Python).

    .venv/bin/python benchmarks/bench_scale.py
    MIRKD_BENCH_SCALE_TRACKS=1000 .venv/bin/python benchmarks/bench_scale.py   # ~1 min
    MIRKD_BENCH_SCALE_PROFILE=5000 ...   # also a CPU-time cProfile of a warm dry run at 5000

MIRKD_BENCH_SCALE_RULE names the rule whose first planned job is timed per job (features).

`scontrol` is shadowed by a stub that fails at once (set MIRKD_BENCH_REAL_SCONTROL=1 to keep the
real one): the SLURM executor plugin runs `scontrol show config` when Snakemake starts, and where
SLURM is installed but no controller answers (as on the development VM) that waits 9 s per call.
Exits non-zero, with Snakemake's stderr, if any Snakemake call fails.
"""

from __future__ import annotations

import multiprocessing
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import benchlib  # first: limits threads and silences tqdm before torch loads
import numpy as np
import soundfile as sf
import yaml

sys.path.insert(0, str(benchlib.REPO / "src"))  # this tree's mirkd, like the Snakemake calls
from mirkd.demo import write_demo_corpus  # noqa: E402

SR = 22050
TRACK_SECONDS = 240
PER_FOLDER = 100  # tracks per album folder
ALBUMS_PER_ARTIST = 10
N_LABELED, N_TEST = 40, 20
SIZES = tuple(
    int(n) for n in os.environ.get("MIRKD_BENCH_SCALE_TRACKS", "1000,5000,15000").split(",")
)
ROOT = benchlib.CACHE_ROOT / "scale"
SNAKEMAKE = Path(sys.executable).parent / "snakemake"
FEATURES_RULE = os.environ.get("MIRKD_BENCH_SCALE_RULE", "features")  # the job timed per job
PROFILE_AT = tuple(
    int(n) for n in os.environ.get("MIRKD_BENCH_SCALE_PROFILE", "").split(",") if n.strip()
)
PROFILE_TOP = 20
# features jobs per SLURM job in the batches profiles/slurm offers (its optional groups block)
BATCH = 8
TARGETS = {"tracks": 15000, "jobs": 500, "dry_run_s": 15.0, "per_job_s": 2.0}


class SnakemakeFailed(RuntimeError):
    pass


class Timing(NamedTuple):
    """Wall seconds, and CPU seconds (user + sys of the process and its children)."""

    wall: float
    cpu: float

    def minus(self, other: Timing) -> Timing:
        return Timing(self.wall - other.wall, self.cpu - other.cpu)

    def plus(self, other: Timing) -> Timing:
        return Timing(self.wall + other.wall, self.cpu + other.cpu)

    def times(self, k: float) -> Timing:
        return Timing(k * self.wall, k * self.cpu)

    def __str__(self) -> str:
        return f"{self.wall:.3g} / {self.cpu:.3g}"

    @staticmethod
    def median(timings: list[Timing]) -> Timing:
        return Timing(
            statistics.median(t.wall for t in timings), statistics.median(t.cpu for t in timings)
        )


# ---- the corpora (made once, reused) ----


def write_track(path: Path) -> None:
    """A 4-minute near-silent FLAC opening with a quiet 1-s tone whose pitch comes from the
    number in `path`'s name: every track has its own content (and so its own fingerprint)."""
    k = int(path.stem.split("_")[-1])
    y = np.zeros(TRACK_SECONDS * SR, dtype=np.float32)
    t = np.arange(SR) / SR
    y[:SR] = 1e-3 * np.sin(2 * np.pi * (110.0 + 0.01 * k) * t)
    tmp = path.with_suffix(".tmp.flac")
    sf.write(tmp, y, SR, format="FLAC", subtype="PCM_16")
    tmp.rename(path)


def pool_audio(folder: Path, n: int) -> list[Path]:
    """`n` distinct tracks (`write_track`), written once by two processes and reused. The
    corpora link to them one track per file: planning counts a file reached twice (e.g. two
    symlinks) once, so a corpus of links to a few files would plan only those few."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"track_{k:05d}.flac" for k in range(n)]
    missing = [p for p in paths if not p.exists()]
    if missing:
        with multiprocessing.Pool(2) as pool:
            pool.map(write_track, missing, chunksize=64)
    return paths


def labeled_sets(root: Path) -> Path:
    """root/sets/{labeled,test}: 40 + 20 synthesized 10-15-s songs with .lab files."""
    sets = root / "sets"
    if not sets.exists():
        tmp = root / "sets.tmp"
        write_demo_corpus(tmp, 0, N_LABELED, N_TEST, seed=12, min_seconds=10, max_seconds=15)
        tmp.rename(sets)
    return sets


def unlabeled_corpus(root: Path, n: int, pool: list[Path]) -> Path:
    """root/corpus-<n>/artist_NNN/album_NN/NNN Track NNNNN.flac -> symlinks to the first
    `n` tracks of `pool`, one each."""
    corpus = root / f"corpus-{n}"
    if corpus.exists():
        return corpus
    tmp = root / f"corpus-{n}.tmp"
    for i in range(n):
        album, track = divmod(i, PER_FOLDER)
        artist, album = divmod(album, ALBUMS_PER_ARTIST)
        folder = tmp / f"artist_{artist:03d}" / f"album_{album:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{track + 1:03d} Track {i:05d}.flac").symlink_to(pool[i])
    tmp.rename(corpus)
    return corpus


def write_config(path: Path, unlabeled: Path, sets: Path) -> Path:
    """The repository's config.yaml with the data section pointing at the corpus."""
    config = yaml.safe_load((benchlib.REPO / "config.yaml").read_text())
    config["data"].update(
        demo=None,
        unlabeled=[str(unlabeled)],
        labeled=str(sets / "labeled"),
        test=str(sets / "test"),
    )
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


# ---- running Snakemake ----


def snakemake_env() -> dict[str, str]:
    """This tree's src/ first on PYTHONPATH; `scontrol` stubbed unless told otherwise."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(benchlib.REPO / "src"), os.environ.get("PYTHONPATH")) if p
    )
    if not os.environ.get("MIRKD_BENCH_REAL_SCONTROL"):
        stub = ROOT / "stub-bin"
        stub.mkdir(parents=True, exist_ok=True)
        scontrol = stub / "scontrol"
        if not scontrol.exists():
            scontrol.write_text(
                "#!/bin/sh\necho 'scontrol stubbed by bench_scale.py' >&2\nexit 1\n"
            )
            scontrol.chmod(0o755)
        env["PATH"] = f"{stub}{os.pathsep}{env.get('PATH', '')}"
    return env


ENV = snakemake_env()


def run(cmd: list[str]) -> tuple[Timing, str]:
    """Wall and CPU seconds, and stdout + stderr, of `cmd`; SnakemakeFailed if it fails."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run(cmd, capture_output=True, text=True, env=ENV)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    seconds = Timing(wall, cpu)
    if result.returncode != 0:
        raise SnakemakeFailed(
            f"exit {result.returncode}: {' '.join(cmd)}\n--- stderr (end) ---\n"
            f"{result.stderr[-4000:]}\n--- stdout (end) ---\n{result.stdout[-2000:]}"
        )
    return seconds, result.stdout + result.stderr


def workflow_args(workdir: Path, config: Path) -> list[str]:
    snakefile = benchlib.REPO / "Snakefile"
    return ["-s", str(snakefile), "--directory", str(workdir), "--configfile", str(config)]


def job_stats(output: str) -> dict[str, int]:
    """rule -> jobs from the first "Job stats:" table (empty when nothing is to be done)."""
    if "Job stats:" not in output:
        if "Nothing to be done" in output:
            return {}
        raise SnakemakeFailed(f"no 'Job stats:' table in Snakemake's output:\n{output[-3000:]}")
    table = output.split("Job stats:", 1)[1]
    counts = {}
    for rule, n in re.findall(r"^(\w+)\s+(\d+)\s*$", table, flags=re.M):
        if rule == "total":
            break
        counts[rule] = int(n)
    total = re.search(r"^total\s+(\d+)\s*$", table, flags=re.M)
    if total is None or int(total.group(1)) != sum(counts.values()):
        raise SnakemakeFailed(f"cannot read the 'Job stats:' table:\n{table[:3000]}")
    return counts


def median_run(cmd: list[str], warmup: int = 0) -> Timing:
    """Median wall and CPU seconds of `cmd` over benchlib.REPEATS calls after `warmup`."""
    for _ in range(warmup):
        run(cmd)
    return Timing.median([run(cmd)[0] for _ in range(benchlib.REPEATS)])


def dry_run(workdir: Path, config: Path) -> tuple[Timing, dict[str, int]]:
    """Wall seconds and planned jobs per rule of `snakemake -n --quiet rules`."""
    cmd = [str(SNAKEMAKE), *workflow_args(workdir, config), "--cores", "2", "-n"]
    seconds, output = run([*cmd, "--quiet", "rules"])
    return seconds, job_stats(output)


@dataclass(frozen=True)
class PlannedJob:
    """One job of a dry run as the SLURM executor names it: its wildcards (`k=v,k=v`) and
    the first input it waits for (empty if none)."""

    wildcards: str
    first_input: str


def planned_jobs_of(workdir: Path, config: Path, rule: str) -> tuple[Timing, list[PlannedJob]]:
    """A plain `snakemake -n` (every job printed): its seconds and every job of `rule`."""
    cmd = [str(SNAKEMAKE), *workflow_args(workdir, config), "--cores", "2", "-n"]
    seconds, output = run(cmd)
    jobs = []
    # a job's block: its "rule" line and the indented lines under it
    for block in re.finditer(rf"^(?:local)?rule {rule}:((?:\n[ \t].*)*)", output, flags=re.M):
        wildcards = re.search(r"^\s+wildcards: (.*)$", block.group(1), flags=re.M)
        inputs = re.search(r"^\s+input: (.*)$", block.group(1), flags=re.M)
        jobs.append(
            PlannedJob(
                wildcards.group(1).replace(", ", ",") if wildcards else "",
                inputs.group(1).split(", ")[0] if inputs else "",
            )
        )
    if not jobs:
        raise SnakemakeFailed(f"the dry run plans no '{rule}' job:\n{output[-3000:]}")
    return seconds, jobs


def remote_job_command(workdir: Path, config: Path, rule: str, jobs: list[PlannedJob]):
    """The command a SLURM job runs for `jobs` of `rule` (one job, or a batch of the profile's
    group run side by side on one core each; snakemake/spawn_jobs.py general_args and
    RealExecutor/RemoteExecutor.get_job_args with the plugin's defaults), in dry-run form:
    `-n` instead of `--executor slurm-jobstep --jobs 1` (outer) / the local executor (inner)."""
    waits = [job.first_input for job in jobs if job.first_input]
    return [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(benchlib.REPO / "Snakefile"),
        "--target-jobs",
        *(f"{rule}:{job.wildcards}" for job in jobs),
        "--allowed-rules",
        rule,
        "--cores",
        str(len(jobs)),
        "--attempt",
        "1",
        "--force-use-threads",
        *(["--wait-for-files", *waits] if waits else []),
        "--force",
        "--target-files-omit-workdir-adjustment",
        "--max-inventory-time",
        "0",
        "--nocolor",
        "--no-hooks",
        "--nolock",
        "--ignore-incomplete",
        "--latency-wait",
        "30",
        "--directory",
        str(workdir),
        "--configfiles",
        str(config),
        "--mode",
        "remote",
        "-n",
    ]


PROFILE_CODE = """
import cProfile, io, pstats, runpy, sys, time
out, sys.argv = sys.argv[1], ["snakemake", *sys.argv[2:]]
profiler = cProfile.Profile(time.process_time)
code = 0
profiler.enable()
try:
    runpy.run_module("snakemake", run_name="__main__")
except SystemExit as exc:
    code = exc.code
profiler.disable()
sections = []
for key, *restrictions in (("cumulative",), ("cumulative", "mirkd|Snakefile|smk"), ("tottime",)):
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats(key).print_stats(*restrictions, PROFILE_TOP)
    sections.append(text.getvalue())
open(out, "w").write("\\n=====\\n".join(sections))
sys.exit(code)
"""
PROFILE_TITLES = (
    "by cumulative time",
    "this project's code (mirkd, Snakefile, rules) by cumulative time",
    "by own time (tottime)",
)


def profile_dry_run(workdir: Path, config: Path) -> str:
    """Top entries of a CPU-time cProfile of one warm `-n --quiet rules`."""
    out = workdir / "profile.txt"
    code = PROFILE_CODE.replace("PROFILE_TOP", str(PROFILE_TOP))
    args = [*workflow_args(workdir, config), "--cores", "2", "-n", "--quiet", "rules"]
    run([sys.executable, "-c", code, str(out), *args])
    parts = []
    for title, section in zip(PROFILE_TITLES, out.read_text().split("\n=====\n"), strict=True):
        table = section[section.index("   ncalls") :] if "   ncalls" in section else "(none)"
        rows = [line for line in table.splitlines() if line.strip()][: PROFILE_TOP + 1]
        parts.append(f"-- {title}\n" + "\n".join(rows))
    return "\n\n".join(parts)


# What workflow_scripts/features.py loads before its track: Snakemake's script preamble (to
# unpickle the `snakemake` object), the step module, and librosa's lazily loaded CQT.
SCRIPT_IMPORTS = (
    "from snakemake.logging import logger; from snakemake.iocontainers import Snakemake; "
    "from mirkd.steps import start_job; from mirkd.steps.data import extract_bucket_features; "
    "import librosa; librosa.cqt"
)


def python_import_seconds(code: str) -> Timing:
    """Median wall and CPU seconds of a fresh `python -c code` (interpreter start included)."""
    return median_run([sys.executable, "-c", code], warmup=1)


def measure(n: int, root: Path, pool: list[Path], sets: Path, version_s: Timing) -> dict:
    corpus = unlabeled_corpus(root, n, pool)
    config = write_config(root / f"config-{n}.yaml", corpus, sets)
    with tempfile.TemporaryDirectory(prefix=f"run-{n}-", dir=root) as tmp:
        workdir = Path(tmp)
        cold_s, jobs = dry_run(workdir, config)
        warm_s, warm_jobs = dry_run(workdir, config)
        if warm_jobs != jobs:
            raise SnakemakeFailed(f"cold and warm dry runs plan different jobs: {jobs} {warm_jobs}")
        printed_s, planned = planned_jobs_of(workdir, config, FEATURES_RULE)
        command = remote_job_command(workdir, config, FEATURES_RULE, planned[:1])
        remote_s = median_run(command)
        batch = planned[:BATCH]
        batch_s = median_run(remote_job_command(workdir, config, FEATURES_RULE, batch))
        profile = profile_dry_run(workdir, config) if n in PROFILE_AT else ""
    return {
        "tracks": n,
        "hours": n * TRACK_SECONDS / 3600,
        "jobs": jobs,
        "cold": cold_s.minus(version_s),
        "warm": warm_s.minus(version_s),
        "printed": printed_s.minus(version_s),
        "remote": remote_s,
        "batch": len(batch),
        "batch_remote": batch_s,
        "command": command,
        "profile": profile,
    }


def verdict(r: dict, script_s: Timing) -> str:
    """How the figures at the target size compare with the issue's targets (CPU seconds:
    what an idle machine would show as wall time; the wall times here depend on the load)."""
    jobs = sum(r["jobs"].values())
    dry = max(r["cold"].cpu, r["warm"].cpu)
    per_job = per_job_overhead(r["remote"], 1, script_s).cpu
    batched = per_job_overhead(r["batch_remote"], r["batch"], script_s).cpu

    def ok(value: float, target: float) -> str:
        return "meets" if value <= target else "misses"

    return (
        f"At {r['tracks']} tracks: {jobs} jobs ({ok(jobs, TARGETS['jobs'])} the target), dry "
        f"run {dry:.1f} CPU s beyond start-up ({ok(dry, TARGETS['dry_run_s'])}), per-job "
        f"overhead {per_job:.1f} CPU s ({ok(per_job, TARGETS['per_job_s'])}; in batches of "
        f"{r['batch']} {batched:.1f} CPU s, {ok(batched, TARGETS['per_job_s'])})."
    )


def per_job_overhead(start: Timing, jobs: int, script_s: Timing) -> Timing:
    """Per-job overhead of a SLURM job running `jobs` jobs whose remote-mode start is `start`:
    its two Snakemake starts shared by its jobs, plus each job's own script imports."""
    return start.times(2 / jobs).plus(script_s)


def main() -> str:
    machine = benchlib.machine_line()
    ROOT.mkdir(parents=True, exist_ok=True)
    pool = pool_audio(ROOT / "tracks", max(SIZES))
    sets = labeled_sets(ROOT)
    version_s = median_run([str(SNAKEMAKE), "--version"], warmup=1)
    script_s = python_import_seconds(SCRIPT_IMPORTS)
    data_s = python_import_seconds("import mirkd.steps.data")
    plan_s = python_import_seconds("import mirkd.workflow_plan")
    results = [measure(n, ROOT, pool, sets, version_s) for n in SIZES]
    rows = [
        (
            r["tracks"],
            f"{r['hours']:.0f}",
            sum(r["jobs"].values()),
            r["jobs"].get(FEATURES_RULE, 0),
            r["cold"],
            r["warm"],
            r["printed"],
            version_s,
            r["remote"],
            per_job_overhead(r["remote"], 1, script_s),
            f"{r['batch']}: {r['batch_remote']}",
            per_job_overhead(r["batch_remote"], r["batch"], script_s),
        )
        for r in results
    ]
    table = benchlib.table(
        (
            "tracks",
            "hours",
            "planned jobs",
            f"{FEATURES_RULE} jobs",
            "dry run cold s",
            "dry run warm s",
            "`-n` printing jobs s",
            "snakemake --version s",
            "remote-mode job start s",
            "per-job overhead s",
            "batch of k features jobs: remote-mode start s",
            "per-job overhead in the batch s",
        ),
        rows,
    )
    per_rule = "\n".join(
        f"- {r['tracks']} tracks: " + ", ".join(f"{k} {v}" for k, v in r["jobs"].items())
        for r in results
    )
    last = results[-1]
    shown = " ".join(a if " " not in a else repr(a) for a in last["command"])
    at_target = [r for r in results if r["tracks"] == TARGETS["tracks"]]
    if at_target:
        outcome = verdict(at_target[0], script_s)
    else:
        outcome = f"({TARGETS['tracks']} tracks not measured: see MIRKD_BENCH_SCALE_TRACKS.)"
    body = (
        f"{table}\n\n"
        f"Targets (issue 12), at {TARGETS['tracks']} tracks (1,000 h): ≤ {TARGETS['jobs']} jobs "
        f"in all, ≤ {TARGETS['dry_run_s']:.0f} s per dry run beyond Snakemake's own start-up, "
        f"per-job parse + import overhead ≤ {TARGETS['per_job_s']:.0f} s. {outcome}\n\n"
        "Every time is **wall / CPU** seconds (CPU = user + sys of the process and its "
        "children: on a busy machine the wall time grows, the CPU time is what an idle one "
        "would show as wall time). Dry runs: `snakemake -s <repo>/Snakefile --directory <fresh "
        "dir> --configfile <corpus config> --cores 2 -n --quiet rules`, first call (cold: "
        "empty results/) and second (warm), then a plain `-n` that prints every job; each "
        f"minus the median `snakemake --version` ({version_s}). Remote-mode job start: the "
        "command a SLURM job runs for one features job (below), in dry-run form, Snakemake "
        "start-up included. Script imports: a fresh Python running "
        f"`{SCRIPT_IMPORTS}` takes {script_s} (`import mirkd.steps.data` alone {data_s}; "
        f"`import mirkd.workflow_plan`, which every Snakemake call pays when it reads the "
        f"Snakefile, {plan_s}). "
        "Per-job overhead = 2 x remote-mode job start (the sbatch-level Snakemake with "
        "`--executor slurm-jobstep`, then the same command under `srun`) + script imports. "
        f"profiles/slurm can run features jobs in batches of up to {BATCH} buckets per SLURM "
        "job (its optional `groups` and `group-components` block): the batch's remote-mode "
        "start (k target jobs, k cores; k is the features jobs planned, at most the batch "
        "size) is paid once for k jobs, so per job in a batch = 2 x batch start / k + script "
        "imports.\n\n"
        f"Planned jobs per rule:\n\n{per_rule}\n\n"
        f"The remote-mode command at {last['tracks']} tracks:\n\n```\n{shown}\n```\n"
    )
    for r in results:
        if r["profile"]:
            body += (
                f"\nWhere a warm dry run at {r['tracks']} tracks spends its time (`cProfile` "
                "with a CPU-time clock, which slows the run several-fold; "
                "MIRKD_BENCH_SCALE_PROFILE lists the sizes profiled):\n\n"
                f"```\n{r['profile']}\n```\n"
            )
    intro = (
        f"Placeholder corpora of {', '.join(str(n) for n in SIZES)} unlabeled 4-minute tracks "
        f"(symlinks, {PER_FOLDER} per album folder, each to its own near-silent 22.05 kHz FLAC "
        f"of ~{pool[0].stat().st_size / 1e3:.0f} kB) plus {N_LABELED} labeled and {N_TEST} test "
        f"songs of 10-15 s, cached under {ROOT}; this tree's Snakefile and src/. One call per "
        f"dry-run figure; median of {benchlib.REPEATS} for `--version`, the remote-mode job "
        "start and the imports. Fingerprinting reads every file: real 4-minute files (~4-40 MB) "
        "make the cold dry run slower than these ~20-kB ones."
    )
    return benchlib.section("Planning at cluster scale (issue 12)", machine, intro, body)


if __name__ == "__main__":
    try:
        print(main())
    except SnakemakeFailed as exc:
        print(f"bench_scale: Snakemake failed: {exc}", file=sys.stderr)
        sys.exit(1)
