"""What every pipeline step sets up: the rule's log (with the cause of a failure), and a numba
cache that parallel jobs can share."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"


def _python(code: str, cache: Path, *args: str) -> subprocess.Popen:
    """A fresh interpreter running `code` with this worktree's mirkd and `cache` for numba."""
    env = {**os.environ, "PYTHONPATH": str(SRC), "NUMBA_CACHE_DIR": str(cache)}
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture(scope="module")
def warm_cache(tmp_path_factory) -> Path:
    """A numba cache warmed once, so the log tests do not compile librosa again."""
    cache = tmp_path_factory.mktemp("numba")
    job = _python("from mirkd.jit_cache import warm_numba_cache; warm_numba_cache()", cache)
    assert job.wait() == 0, job.stderr.read()
    return cache


@pytest.mark.parametrize(
    "raise_line, expected, traceback",
    [
        (
            "raise AudioError('/data/bad.mp3', 'cannot decode audio: lost sync')",
            "ERROR /data/bad.mp3: cannot decode audio: lost sync",
            False,
        ),
        ("{}['missing']", "ERROR KeyError: 'missing'", True),
        (  # a full disk or a file size limit while a part is written
            "raise OSError(27, 'File too large', 'results/work/features/b/x.npz')",
            "ERROR results/work/features/b/x.npz: cannot write or read: File too large",
            False,
        ),
    ],
)
def test_a_failing_step_leaves_its_cause_in_the_log(
    tmp_path, warm_cache, raise_line, expected, traceback
):
    log = tmp_path / "logs" / "features" / "x.log"
    code = (
        "from mirkd.errors import AudioError\n"
        "from mirkd.steps import start_job\n"
        f"start_job({str(log)!r})\n"
        f"{raise_line}\n"
    )
    job = _python(code, warm_cache)
    assert job.wait() == 1
    text = log.read_text()
    assert expected in text
    assert ("Traceback (most recent call last)" in text) == traceback
    assert expected in job.stderr.read()  # and on stderr, as before


def test_parallel_first_use_of_librosa_on_an_empty_numba_cache(tmp_path):
    """Several fresh jobs at once on a cold cache: all succeed and only one compiles."""
    cache = tmp_path / "numba"
    code = (
        "import sys\n"
        "from mirkd.steps import start_job\n"
        "start_job(sys.argv[1])\n"
        "import numpy as np, librosa\n"
        "y = np.random.default_rng(0).standard_normal(22050).astype(np.float32)\n"
        "librosa.util.localmax(y)\n"
        "librosa.estimate_tuning(y=y, sr=22050)\n"
    )
    logs = [tmp_path / f"job{i}.log" for i in range(4)]
    jobs = [_python(code, cache, str(log)) for log in logs]
    codes = [job.wait() for job in jobs]
    assert codes == [0, 0, 0, 0], [job.stderr.read()[-2000:] for job in jobs]
    compiled = [log for log in logs if "numba cache: compiling" in log.read_text()]
    assert len(compiled) == 1
    assert any(cache.rglob("*.nbi")) and any(cache.rglob("*.nbc"))


def test_planning_and_feature_jobs_import_no_heavy_modules():
    """A features job and every Snakemake parse (each cluster job re-reads the workflow) must
    not pay for the demo generator, mir_eval or torch."""
    code = (
        "import sys, mirkd.workflow_plan, mirkd.steps.data; "
        "print(sorted(m for m in ('mirkd.demo', 'mir_eval', 'torch') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
