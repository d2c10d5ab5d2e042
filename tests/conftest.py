"""Fixtures shared by test files: one finished run of the tiny workflow per test session."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mirkd.demo import write_demo_corpus

from workflow_helpers import snakemake, tiny_config, write_config


@pytest.fixture(autouse=True)
def auto_precision_is_float32(monkeypatch) -> None:
    """In-process training at `precision: auto` computes in float32 on any test machine
    (auto would be bfloat16 on a CPU with bf16 instructions), so a test's numbers do not
    depend on the CPU; tests of the bf16 path ask for it or patch `cpu_computes_bf16` back.
    Snakemake jobs (subprocesses) keep the machine's own choice: the pipeline as users run it."""
    import mirkd.training.trainer as trainer

    monkeypatch.setattr(trainer, "cpu_computes_bf16", lambda: False)


@pytest.fixture(scope="session")
def finished_tiny_run(tmp_path_factory) -> Path:
    """A workdir in which the whole tiny DAG ran to the end (shared by the slow tests).

    Tests that change data or config work on a copy (`copy_of_run`), never on this one.
    """
    workdir = tmp_path_factory.mktemp("tiny_run")
    write_demo_corpus(workdir / "data", 4, 5, 2, seed=3, min_seconds=12, max_seconds=16)
    plant_unlabeled_label_traps(workdir / "data" / "unlabeled")
    write_config(workdir, tiny_config(Path("data")))  # relative: the run can be copied
    result = snakemake(workdir)
    assert result.returncode == 0, result.stderr[-4000:]
    return workdir


LABEL_TRAP = "this is not a chord label: any rule that reads it as a .lab fails\n"


def plant_unlabeled_label_traps(folder: Path) -> list[Path]:
    """A .lab beside every unlabeled audio file, whose content no label reader accepts.

    Unlabeled renders of labeled corpora come with labels on disk; the pipeline must never
    read them. A run over these folders fails if any rule parses one of the traps.
    """
    traps = []
    for audio in sorted(folder.rglob("*.flac")):
        trap = audio.with_suffix(".lab")
        trap.write_text(LABEL_TRAP)
        traps.append(trap)
    return traps


def copy_of_run(run: Path, destination: Path) -> Path:
    """A copy of a finished run (data, results, Snakemake metadata, times kept)."""
    return Path(shutil.copytree(run, destination / "run", symlinks=True))
