"""The ways of installing mirkd agree: the conda environment pins the Makefile's torch."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_conda_environment_pins_the_makefiles_torch() -> None:
    makefile = (ROOT / "Makefile").read_text()
    (spec,) = re.findall(r"^TORCH_SPEC \?= (\S+)$", makefile, flags=re.M)
    env = yaml.safe_load((ROOT / "envs/mirkd.yaml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    assert [p for p in pip if p.startswith("torch")] == [spec]
