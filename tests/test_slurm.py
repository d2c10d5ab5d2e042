"""The tiny DAG through profiles/slurm on a real one-node SLURM cluster.

The cluster comes from the shared `slurm-up.sh` (Debian's slurmctld/slurmd, installed with
apt-get when missing) with one fake GPU, so `--gpus=1` requests are scheduled without a GPU.
SLURM 22.05 refuses to start with a GPU TRES unless slurmdbd runs, hence WITH_DBD=1.
Proof that the jobs ran in SLURM comes from the controller itself (`scontrol show job`: state,
exit code, allocated TRES, comment naming the rule) and from the per-job logs SLURM wrote
under the run's `.snakemake/slurm_logs/<rule>/.../<jobid>.log`; a local run makes neither.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from mirkd.demo import write_demo_corpus

from workflow_helpers import (
    CORES,
    REPO,
    SHARED,
    planned_jobs,
    snakemake,
    tiny_config,
    write_config,
)

pytestmark = pytest.mark.slow

SHARED_TOOLS = SHARED / "tools"
CLUSTER_ENV = {"FAKE_GPUS": "1", "WITH_DBD": "1"}
GPU_RULES = {"teacher", "stage1", "stage2", "baseline"}
LOCAL_RULES = {"splits", "skipped", "summary", "plots", "all"}  # run on the head node
OPTIONAL_BLOCKS = ("# set-resources:", "# groups:", "# group-components:")  # switched on
RESOURCES = {
    "gpu": 1,
    "train_mem_mb": 1500,
    "train_runtime": 20,
    "teacher_mem_mb": 1200,
    "teacher_runtime": 15,
    "threads": 2,
}


def _skip_reason() -> str | None:
    if not SHARED_TOOLS.parent.is_dir():
        return f"shared directory {SHARED_TOOLS.parent} absent"
    if not (SHARED_TOOLS / "slurm-up.sh").is_file():
        return f"{SHARED_TOOLS / 'slurm-up.sh'} absent"
    if os.geteuid() != 0:
        return "slurm-up.sh must run as root to install and start SLURM"
    if shutil.which("apt-get") is None:
        return "no apt-get: slurm-up.sh cannot install SLURM"
    return None


def _tool(name: str, timeout: int) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(SHARED_TOOLS / name)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **CLUSTER_ENV},
    )


@pytest.fixture(scope="module")
def slurm_cluster():
    """A running one-node cluster (first start installs packages), stopped afterwards."""
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    try:
        up = _tool("slurm-up.sh", timeout=900)
        assert up.returncode == 0, f"slurm-up.sh failed:\n{up.stderr[-4000:]}"
        yield
    finally:
        _tool("slurm-down.sh", timeout=120)


def _slurm_jobs() -> list[dict[str, str]]:
    """Every job the controller still knows (finished ones stay MinJobAge=600 s), as dicts."""
    out = subprocess.run(
        ["scontrol", "show", "job", "--oneliner"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    return [
        dict(field.split("=", 1) for field in line.split() if "=" in field)
        for line in out.splitlines()
        if line.startswith("JobId=")
    ]


def _profile_as_configured(workdir: Path) -> Path:
    """profiles/slurm with its optional blocks switched on, as a user does: partitions per
    rule (every one named after this cluster's only one, "debug") and batches of features
    jobs."""
    profile = workdir / "profile"
    profile.mkdir()
    lines = []
    for line in (REPO / "profiles/slurm/config.yaml").read_text().splitlines():
        if line.startswith(OPTIONAL_BLOCKS) or line.startswith("#   "):
            line = line[2:].replace("slurm_partition: cpu", "slurm_partition: debug")
            line = line.replace("slurm_partition: gpu", "slurm_partition: debug")
        lines.append(line)
    text = "\n".join(lines) + "\n"
    assert "\nset-resources:\n  features: {slurm_partition: debug}" in text
    assert "\ngroups:\n  - features=" in text and "\ngroup-components:\n  - " in text
    (profile / "config.yaml").write_text(text)
    return profile


@dataclass(frozen=True)
class SlurmRun:
    """The whole tiny DAG run through the configured profile: planned jobs per rule, the SLURM
    job records of the run, and the profile's features batches (group name, buckets per job)."""

    workdir: Path
    planned: Counter
    jobs: list[dict[str, str]]
    features_group: str
    batch: int

    def rule_of(self, job: dict[str, str]) -> str:
        """The plugin's --comment is rule_<name> or rule_<name>_wildcards_<values>; a batch of
        features jobs is named after its group (rule_<group>_<its rules>)."""
        name = job["Comment"].removeprefix("rule_").split("_wildcards_", 1)[0]
        return self.features_group if name.startswith(f"{self.features_group}_") else name


@pytest.fixture(scope="module")
def slurm_run(slurm_cluster, tmp_path_factory) -> SlurmRun:
    workdir = tmp_path_factory.mktemp("slurm_run")
    write_demo_corpus(workdir / "data", 3, 3, 2, seed=3, min_seconds=8, max_seconds=10)
    config = tiny_config(workdir / "data")
    for stage in ("stage1", "stage2", "baseline"):
        config[stage]["epochs"] = 1
    config["resources"].update(RESOURCES)
    write_config(workdir, config)
    planned = planned_jobs(workdir)
    profile = _profile_as_configured(workdir)
    result = snakemake(
        workdir,
        "--profile",
        str(profile),
        "--slurm-init-seconds-before-status-checks",
        "2",
        "--slurm-keep-successful-logs",
        timeout=900,
        real_slurm=True,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    logs = workdir / ".snakemake/slurm_logs"
    jobs = [job for job in _slurm_jobs() if job.get("StdOut", "").startswith(f"{logs}/")]
    settings = yaml.safe_load((profile / "config.yaml").read_text())
    group = dict(g.split("=") for g in settings["groups"])["features"]
    batch = int(dict(g.split("=") for g in settings["group-components"])[group])
    return SlurmRun(workdir, planned, jobs, group, batch)


def test_every_planned_job_ran_as_a_completed_slurm_job(slurm_run) -> None:
    """One SLURM job per remote job, except features: up to `batch` buckets per SLURM job
    (the profile's group), each bucket's job in that SLURM job's log."""
    run = slurm_run
    assert (run.workdir / "results/summary.md").is_file()
    assert run.planned["stage2"] == 1 and run.planned["features"] >= 4  # buckets of 4+ groups
    remote = Counter({rule: n for rule, n in run.planned.items() if rule not in LOCAL_RULES})
    features = remote.pop("features")
    remote[run.features_group] = math.ceil(features / run.batch)
    assert Counter(run.rule_of(job) for job in run.jobs) == remote
    features_run = 0
    for job in run.jobs:
        assert (job["JobState"], job["ExitCode"]) == ("COMPLETED", "0:0"), job
        log = Path(job["StdOut"])
        assert log.name == f"{job['JobId']}.log"
        text = log.read_text()
        assert "--executor slurm-jobstep" in text
        if run.rule_of(job) == run.features_group:  # its jobs' outputs, each named twice
            features_run += len(set(re.findall(r"output: (results/features/\S+\.h5)", text)))
        else:
            assert f"rule {run.rule_of(job)}:" in text
    assert features_run == features


def test_teacher_and_training_jobs_requested_and_got_a_gpu(slurm_run) -> None:
    for job in slurm_run.jobs:
        if slurm_run.rule_of(job) in GPU_RULES:
            assert job.get("TresPerJob") == "gres:gpu:1", job
            assert "gres/gpu=1" in job["TRES"].split(","), job
        else:
            assert "gres/gpu" not in job["TRES"], job


def test_rule_resources_reach_slurm(slurm_run) -> None:
    run = slurm_run
    by_rule = {run.rule_of(job): job for job in run.jobs}
    assert by_rule["stage1"]["MinMemoryNode"] == f"{RESOURCES['train_mem_mb']}M"
    assert by_rule["stage1"]["TimeLimit"] == f"00:{RESOURCES['train_runtime']}:00"
    assert by_rule["teacher"]["MinMemoryNode"] == f"{RESOURCES['teacher_mem_mb']}M"
    assert by_rule["teacher"]["TimeLimit"] == f"00:{RESOURCES['teacher_runtime']}:00"
    # the one batch of features jobs: as many side by side as the harness's --cores allows
    assert math.ceil(run.planned["features"] / run.batch) == 1
    parallel = min(run.planned["features"], run.batch, CORES)
    assert by_rule[run.features_group]["NumCPUs"] == str(parallel)
    assert by_rule["stage1"]["NumCPUs"] == str(RESOURCES["threads"])  # --cpus-per-gpu
    assert {job["Partition"] for job in run.jobs} == {"debug"}
