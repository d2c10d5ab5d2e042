"""Hard kills (SIGKILL of Snakemake and its jobs): training resumes, outputs are never partial.

A job is frozen at a chosen point by a `sitecustomize` hook put on the job's PYTHONPATH (a
dataset item in training, the first HDF5 dataset of a temp file in a writer); once the frozen
job has announced itself the whole process group is killed, so neither Snakemake nor the job
can clean up. The kill point is decided by program state, not by timing.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import textwrap
import time
from pathlib import Path

import h5py
import pytest
import torch

from mirkd.checkpoints import load_checkpoint, read_checkpoint_state
from mirkd.demo import write_demo_corpus
from mirkd.workflow_plan import RunPlan, plan_run

from model_helpers import resolved_config
from workflow_helpers import (
    snakemake,
    snakemake_command,
    snakemake_env,
    tiny_config,
    write_config,
)

pytestmark = pytest.mark.slow
EPOCHS = 6

HOOK = '''
"""Test hook of tests/test_crash_safety.py: freeze this process at MIRKD_CRASH_POINT."""
import importlib.abc
import importlib.util
import os
import sys
import time
from pathlib import Path

POINT = os.environ.get("MIRKD_CRASH_POINT", "")


def freeze():
    """Announce the pid in the marker file, then wait to be killed."""
    Path(os.environ["MIRKD_CRASH_MARKER"]).write_text(str(os.getpid()))
    while True:
        time.sleep(60)


def patch_h5py(module):
    """Freeze after the first dataset written into a temp file (name starting with '.')."""
    original = module.Group.create_dataset

    def create_dataset(self, name, *args, **kwargs):
        dataset = original(self, name, *args, **kwargs)
        if Path(self.file.filename).name.startswith("."):
            self.file.flush()
            freeze()
        return dataset

    module.Group.create_dataset = create_dataset


def patch_datasets(module):
    """Freeze when the n-th training window is fetched."""
    stop = int(POINT.split(":")[1])
    original = module.LabeledDataset.__getitem__
    calls = [0]

    def getitem(self, item):
        calls[0] += 1
        if calls[0] == stop:
            freeze()
        return original(self, item)

    module.LabeledDataset.__getitem__ = getitem


def patch_store(module):
    """Freeze when a bucket job is about to save its n-th finished track."""
    stop = int(POINT.split(":")[1])
    original = module.write_part
    calls = [0]

    def write_part(path, part):
        calls[0] += 1
        if calls[0] == stop:
            freeze()
        return original(path, part)

    module.write_part = write_part


class AfterImport(importlib.abc.MetaPathFinder):
    """Run `patch(module)` right after `name` is imported."""

    def __init__(self, name, patch):
        self.name, self.patch = name, patch

    def find_spec(self, fullname, path, target=None):
        if fullname != self.name:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        load = spec.loader.exec_module

        def exec_module(module):
            load(module)
            self.patch(module)

        spec.loader.exec_module = exec_module
        return spec


if POINT == "hdf5-write":
    sys.meta_path.insert(0, AfterImport("h5py", patch_h5py))
elif POINT.startswith("train-item:"):
    sys.meta_path.insert(0, AfterImport("mirkd.training.datasets", patch_datasets))
elif POINT.startswith("bucket-part:"):
    sys.meta_path.insert(0, AfterImport("mirkd.store", patch_store))
'''


def _corpus(workdir: Path, bucket_hours: float | None = None, **stage_overrides) -> dict:
    write_demo_corpus(workdir / "data", 4, 5, 1, seed=3, min_seconds=12, max_seconds=16)
    config = tiny_config(workdir / "data")
    if bucket_hours is not None:
        config["data"]["bucket_hours"] = bucket_hours
    for stage, values in stage_overrides.items():
        config[stage].update(values)
    write_config(workdir, config)
    return config


def _hook_env(workdir: Path, point: str) -> dict[str, str]:
    hook_dir = workdir / "crash_hook"
    hook_dir.mkdir(exist_ok=True)
    (hook_dir / "sitecustomize.py").write_text(textwrap.dedent(HOOK))
    marker = workdir / "frozen.pid"
    marker.unlink(missing_ok=True)
    path = os.pathsep.join(p for p in (str(hook_dir), os.environ.get("PYTHONPATH")) if p)
    return {"PYTHONPATH": path, "MIRKD_CRASH_POINT": point, "MIRKD_CRASH_MARKER": str(marker)}


def _run_until_frozen_then_kill(workdir: Path, target: str, point: str) -> None:
    """Start Snakemake on `target` in its own process group; SIGKILL the group once frozen."""
    env = {**snakemake_env(), **_hook_env(workdir, point)}
    cmd = snakemake_command(workdir, target)
    out = workdir / "killed_run.out"
    marker = Path(env["MIRKD_CRASH_MARKER"])
    with out.open("w") as sink:
        proc = subprocess.Popen(
            cmd, stdout=sink, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    try:
        deadline = time.monotonic() + 600
        while not marker.exists() or not marker.read_text():
            assert proc.poll() is None, f"ended before the kill point:\n{out.read_text()[-3000:]}"
            assert time.monotonic() < deadline, "the job never reached the kill point"
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    frozen = int(marker.read_text())
    deadline = time.monotonic() + 30
    while _alive(frozen):
        if time.monotonic() > deadline:
            os.kill(frozen, signal.SIGKILL)
            pytest.fail(f"job {frozen} was not in Snakemake's process group")
        time.sleep(0.1)


def _alive(pid: int) -> bool:
    """True while `pid` runs (a zombie waiting to be reaped counts as dead)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


def _rerun(workdir: Path, target: str) -> None:
    """What a user does after a crash: drop Snakemake's stale lock, run the same command."""
    unlock = snakemake(workdir, "--unlock")
    assert unlock.returncode == 0, unlock.stderr[-3000:]
    result = snakemake(workdir, target)
    assert result.returncode == 0, result.stderr[-3000:]


def _last_state(workdir: Path, model: str) -> dict:
    (last,) = (workdir / f"results/work/{model}").glob("*/last.pt")
    return read_checkpoint_state(last)["training_state"]


def test_killed_training_resumes_to_the_weights_of_an_uninterrupted_run(tmp_path: Path) -> None:
    target = "results/models/baseline.pt"
    straight = tmp_path / "straight"
    _corpus(straight, baseline={"epochs": EPOCHS, "batch_size": 2})
    result = snakemake(straight, target)
    assert result.returncode == 0, result.stderr[-3000:]
    log = (straight / "results/logs/baseline.log").read_text()
    n_windows = int(re.search(r"baseline: (\d+) windows", log).group(1))
    assert n_windows > 2 * 2, "need several batches per epoch to stop in the middle of one"

    # Same data and features (copied with their mtimes and Snakemake metadata), no model yet.
    killed = tmp_path / "killed"
    shutil.copytree(
        straight,
        killed,
        symlinks=True,
        ignore=shutil.ignore_patterns("models", "work", "baseline.log"),
    )
    stop = n_windows + n_windows // 2 + 1  # a window of the second epoch's second half
    _run_until_frozen_then_kill(killed, target, f"train-item:{stop}")
    assert _last_state(killed, "baseline")["epoch"] == 1
    assert not (killed / target).exists()

    _rerun(killed, target)
    log = (killed / "results/logs/baseline.log").read_text()
    assert re.search(r"resumed from \S+last\.pt after epoch 1\b", log), log

    # The last epoch's weights (the final checkpoint is the best epoch, maybe before the kill).
    states = [_last_state(w, "baseline") for w in (straight, killed)]
    assert states[0]["epoch"] == states[1]["epoch"] == EPOCHS
    _assert_same_weights(states[0]["model"], states[1]["model"])
    curves = [[(h["train_loss"], h["val_score"], h["lr"]) for h in s["history"]] for s in states]
    assert curves[0] == curves[1]
    _assert_same_weights(
        *(load_checkpoint(w / target).model.state_dict() for w in (straight, killed))
    )


def _assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), f"{key} differs"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, RunPlan]:
    """A workdir with data and config (nothing run yet) and its run plan."""
    workdir = tmp_path_factory.mktemp("atomic")
    config = _corpus(workdir, bucket_hours=1.0)  # one bucket per group: several tracks each
    return workdir, plan_run(resolved_config(config), results=str(workdir / "results"))


def _relative(workdir: Path, path: str) -> str:
    return str(Path(path).relative_to(workdir))


def _temp_files(final: Path) -> list[Path]:
    return list(final.parent.glob(f".{final.name}.*"))


def _bucket(plan: RunPlan, group: str) -> tuple[str, list]:
    """The first bucket of `group`: its name and tracks."""
    name = next(iter(plan.buckets[group]))
    return name, plan.bucket_tracks(group, name)


def test_killed_feature_job_leaves_no_partial_file(corpus) -> None:
    workdir, plan = corpus
    bucket, tracks = _bucket(plan, "labeled-train")
    final = Path(plan.features_path("labeled-train", bucket))
    target = _relative(workdir, str(final))

    _run_until_frozen_then_kill(workdir, target, "hdf5-write")
    assert not final.exists()
    assert _temp_files(final), "the kill did not land inside the write"

    _rerun(workdir, target)
    with h5py.File(final) as f:
        assert f["cqt"].shape[1] == 144 and f["cqt"].shape[0] > 0
        assert list(f["tracks/track_id"].asstr()) == [t.track_id for t in tracks]
        assert f["offsets"][-1] == f["cqt"].shape[0]


def test_killed_bucket_job_resumes_after_its_finished_tracks(corpus) -> None:
    workdir, plan = corpus
    bucket, tracks = _bucket(plan, "unlabeled-train")
    assert len(tracks) >= 3, "need a bucket of several tracks"
    final = Path(plan.features_path("unlabeled-train", bucket))
    target = _relative(workdir, str(final))

    _run_until_frozen_then_kill(workdir, target, "bucket-part:3")  # while saving the third
    assert not final.exists()
    _rerun(workdir, target)
    log = (workdir / f"results/logs/features/unlabeled-train/{bucket}.log").read_text()
    assert f"resuming: 2 of {len(tracks)} tracks already done" in log
    with h5py.File(final) as f:
        assert list(f["tracks/track_id"].asstr()) == [t.track_id for t in tracks]
    assert not Path(plan.bucket_work("features", "unlabeled-train", bucket)).exists()


def test_killed_teacher_job_leaves_no_partial_file(corpus) -> None:
    workdir, plan = corpus
    bucket, tracks = _bucket(plan, "unlabeled-train")
    features = _relative(workdir, plan.features_path("unlabeled-train", bucket))
    result = snakemake(workdir, features)
    assert result.returncode == 0, result.stderr[-3000:]
    final = Path(plan.teacher_path(plan.base.teacher.tag, "unlabeled-train", bucket))
    target = _relative(workdir, str(final))

    _run_until_frozen_then_kill(workdir, target, "hdf5-write")
    assert not final.exists()
    assert _temp_files(final), "the kill did not land inside the write"

    _rerun(workdir, target)
    with h5py.File(final) as f:
        assert f.attrs["teacher_kind"] == "lvchordia"
        assert int(f.attrs["n_tracks"]) == len(tracks)
        assert list(f["tracks/track_id"].asstr()) == [t.track_id for t in tracks]
        n_frames = f["offsets"][-1]
        assert f["probs"].shape == (n_frames, 170)
        assert f["labels"].shape == f["confidence"].shape == (n_frames,)
