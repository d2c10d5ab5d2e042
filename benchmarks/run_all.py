"""Run every benchmark (each in its own process) and write benchmarks/RESULTS.md.

    .venv/bin/python benchmarks/run_all.py            # all, as `make bench` does
    .venv/bin/python benchmarks/run_all.py teacher    # some, printed only (RESULTS.md untouched)

RESULTS.md = the generated figures, then everything below NOTES_MARKER in the existing file
(the hand-written analysis), which is kept across reruns.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import benchlib  # noqa: E402

from mirkd.atomic import atomic_write_text  # noqa: E402

BENCHMARKS = (
    "features",
    "teacher",
    "loading",
    "integrity",
    "stage1",
    "incremental",
    "scale",
    "planning_io",
)
RESULTS = HERE / "RESULTS.md"
NOTES_MARKER = "<!-- notes: everything below is hand-written and kept by run_all.py -->"
COMMAND = "make bench  # = .venv/bin/python benchmarks/run_all.py"


def run(name: str) -> tuple[str, float, bool]:
    """Markdown section printed by benchmarks/bench_<name>.py, its wall time, success."""
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "TQDM_DISABLE": "1",
        "PYTHONWARNINGS": "ignore",
    }
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, str(HERE / f"bench_{name}.py")], capture_output=True, text=True, env=env
    )
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        return f"## {name}\n\nFAILED:\n\n```\n{result.stderr[-3000:]}\n```\n", seconds, False
    return result.stdout.strip() + "\n", seconds, True


def kept_notes() -> str:
    if not RESULTS.exists():
        return ""
    text = RESULTS.read_text()
    return text.split(NOTES_MARKER, 1)[1] if NOTES_MARKER in text else ""


def main(argv: list[str]) -> int:
    names = argv or list(BENCHMARKS)
    unknown = sorted(set(names) - set(BENCHMARKS))
    if unknown:
        print(f"unknown benchmark(s) {unknown}; choose from {BENCHMARKS}", file=sys.stderr)
        return 2
    started = datetime.now(UTC)
    machine = benchlib.machine_line()
    sections, ok = [], True
    for name in names:
        text, seconds, success = run(name)
        ok &= success
        print(text, f"({name}: {seconds:.0f} s)\n", sep="\n", flush=True)
        sections.append(f"{text}\n_Benchmark wall time: {seconds:.0f} s._\n")
    total = (datetime.now(UTC) - started).total_seconds()
    if names != list(BENCHMARKS):
        return 0 if ok else 1
    header = (
        "# mirkd benchmarks\n\n"
        f"Generated {started:%Y-%m-%d %H:%M} UTC by `{COMMAND}` in {total / 60:.1f} min.\n\n"
        f"Machine at start: {machine}\n\n"
        "Every figure is the median of the runs stated with it (3 by default; set "
        "MIRKD_BENCH_REPEATS to change), single-threaded unless a table says otherwise "
        "(`torch.set_num_threads(1)`, OMP/MKL/OpenBLAS 1 thread): on this 2-core machine two "
        "threads are often slower. Each benchmark states the load average at its start; "
        "figures taken under load are pessimistic.\n"
    )
    notes = kept_notes() or "\n\n## Notes\n\n(none yet)\n"
    atomic_write_text(RESULTS, "\n".join([header, *sections, NOTES_MARKER]) + notes)
    print(f"wrote {RESULTS}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
