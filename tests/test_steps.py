"""What every pipeline step sets up: the rule's log, with the cause of a failure."""

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
        [sys.executable, "-c", code, *args], env=env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )


@pytest.mark.parametrize(
    "raise_line, expected, traceback",
    [
        ("raise AudioError('/data/bad.mp3', 'cannot decode audio: lost sync')",
         "ERROR /data/bad.mp3: cannot decode audio: lost sync", False),
        ("{}['missing']", "ERROR KeyError: 'missing'", True),
    ],
)
def test_a_failing_step_leaves_its_cause_in_the_log(
    tmp_path, raise_line, expected, traceback
):
    log = tmp_path / "logs" / "features" / "x.log"
    code = (
        "from mirkd.errors import AudioError\n"
        "from mirkd.steps import start_job\n"
        f"start_job({str(log)!r})\n"
        f"{raise_line}\n"
    )
    job = _python(code, tmp_path / "numba")
    assert job.wait() == 1
    text = log.read_text()
    assert expected in text
    assert ("Traceback (most recent call last)" in text) == traceback
    assert expected in job.stderr.read()  # and on stderr, as before
