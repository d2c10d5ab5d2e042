"""Running the real Snakemake workflow in a temp dir, for the integration tests."""

from __future__ import annotations

import functools
import os
import re
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import yaml

from mirkd.workflow_plan import RunPlan, plan_run

from model_helpers import TINY_BTC, resolved_config

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"  # the team's shared data and tools, beside the repository
POP909_SONGS = SHARED / "data" / "pop909" / "songs"
SNAKEMAKE = Path(sys.executable).parent / "snakemake"
CORES = 2  # every test run's --cores (a batch of grouped jobs runs this many side by side)


def tiny_config(data: Path, **overrides) -> dict:
    """The default config shrunk to seconds: tiny BTC, two epochs, folders under `data`."""
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["data"] = {
        "demo": None,
        "unlabeled": [str(data / "unlabeled")],
        "labeled": str(data / "labeled"),
        "test": str(data / "test"),
        "bucket_hours": 0.008,  # ~29 s: the tiny corpus's groups split into several buckets
    }
    config["split"] = {"labeled_val_fraction": 0.25, "unlabeled_val_fraction": 0.25}
    config["student"]["hparams"] = dict(TINY_BTC)
    for stage in ("stage1", "stage2", "baseline"):
        config[stage].update(epochs=2, batch_size=8)
    config["stage2"]["pitch_shift"] = [-1, 2]
    config["baseline"]["pitch_shift"] = []
    for key, value in overrides.items():
        config[key] = value
    return config


def run_plan(workdir: Path, monkeypatch) -> RunPlan:
    """The run plan of `workdir` as the Snakefile makes it (relative data paths resolve
    from the workdir, as in a run)."""
    config = resolved_config(yaml.safe_load((workdir / "config.yaml").read_text()))
    monkeypatch.chdir(workdir)
    return plan_run(config)


def write_config(workdir: Path, config: dict) -> Path:
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def snakemake_command(workdir: Path, *args: str) -> list[str]:
    """The command that runs the repository's Snakefile in `workdir` on its config.yaml."""
    return [
        str(SNAKEMAKE),
        "-s",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(workdir / "config.yaml"),
        "--cores",
        str(CORES),
        *args,
    ]


@functools.cache
def _failing_scontrol_dir() -> Path:
    """A folder holding an `scontrol` that fails at once.

    Snakemake imports the installed SLURM executor plugin at every start, and the plugin runs
    `scontrol show config`; on a machine with slurm-client but no running controller (here,
    after the SLURM test stopped its cluster) that call waits for a 10-s timeout. Local runs
    in the tests put this stub first on PATH; the SLURM test uses the real one.
    """
    folder = Path(tempfile.mkdtemp(prefix="mirkd-no-slurm-"))
    stub = folder / "scontrol"
    stub.write_text("#!/bin/sh\nexit 1\n")
    stub.chmod(0o755)
    return folder


def snakemake_env(real_slurm: bool = False) -> dict[str, str]:
    """The environment the tests run Snakemake in (see _failing_scontrol_dir)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if not real_slurm:
        env["PATH"] = f"{_failing_scontrol_dir()}{os.pathsep}{env.get('PATH', '')}"
    return env


def snakemake(
    workdir: Path, *args: str, timeout: int = 900, real_slurm: bool = False
) -> subprocess.CompletedProcess:
    """Run the repository's Snakefile with `workdir` as working directory."""
    cmd = snakemake_command(workdir, *args)
    env = snakemake_env(real_slurm)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)


def planned_jobs(workdir: Path) -> Counter:
    """Jobs (rule -> count) a dry run would execute now."""
    result = snakemake(workdir, "-n")
    assert result.returncode == 0, result.stderr + result.stdout
    out = result.stdout + result.stderr
    if "Nothing to be done" in out:
        return Counter()
    table = out.split("Job stats:", 1)[1]
    rows = re.findall(r"^(\w+)\s+(\d+)$", table, flags=re.M)
    return Counter({rule: int(n) for rule, n in rows if rule not in ("total", "all")})
