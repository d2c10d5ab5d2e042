"""Files under results/{features,teacher,work} that the plan no longer names are listed at
planning and removed by the `prune` target, on a real finished tiny run."""

from __future__ import annotations

from pathlib import Path

import pytest

from mirkd.stale import remove, stale_results

from conftest import copy_of_run
from workflow_helpers import planned_jobs, run_plan, snakemake


def _plant_stale(run: Path) -> list[Path]:
    """Files a plan leaves behind: a bucket that split since (a child of a bucket of the plan
    now), a group of tracks removed, a teacher no longer used, a bucket job's work folder."""
    results = run / "results"
    features = sorted((results / "features/unlabeled-train").glob("b*.h5"))[0]
    split = features.with_name(f"{features.stem}01.h5")
    teacher = results / "teacher/btc-0123abcd/unlabeled-train/b0.h5"
    group = results / "features/test-val/b.h5"
    work = results / "work/features/unlabeled-train/b0110111/somekey/track.npz"
    for path in (split, teacher, group, work):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"stale")
    return [split, teacher.parents[1], group.parent, work.parents[1]]


@pytest.mark.slow
def test_prune_removes_only_what_the_plan_no_longer_names(finished_tiny_run, tmp_path, monkeypatch):
    run = copy_of_run(finished_tiny_run, tmp_path)
    results = run / "results"
    kept = sorted(p for p in results.rglob("*") if p.is_file())
    data = sorted(p for p in (run / "data").rglob("*") if p.is_file())
    stale = sorted(_plant_stale(run))

    dry = snakemake(run, "-n", timeout=300)
    assert dry.returncode == 0, dry.stderr
    said = dry.stdout + dry.stderr
    assert f"{len(stale)} path(s) under results/{{features,teacher,work}} are no longer" in said
    assert all(str(p.relative_to(run)) in said for p in stale)
    assert "Nothing to be done" in said  # stale files trigger no job

    pruned = snakemake(run, "--cores", "1", "prune", timeout=300)
    assert pruned.returncode == 0, pruned.stderr
    assert not any(p.exists() for p in stale)
    assert all(p.exists() for p in kept) and all(p.exists() for p in data)
    assert planned_jobs(run) == {}  # nothing to redo: only unnamed files went

    # A bucket file the plan no longer names is kept while a bucket it may give its tracks to
    # (here: its split child) is not made yet.
    plan = run_plan(run, monkeypatch)
    child = Path(plan.features_path("unlabeled-train", sorted(plan.buckets["unlabeled-train"])[0]))
    parent = child.with_name(f"{child.stem[:-1]}.h5") if len(child.stem) > 1 else None
    if parent is not None and not parent.exists():
        child.rename(parent)  # the file of the bucket before it split
        assert parent.resolve() not in {p.resolve() for p in stale_results(plan)}
        parent.rename(child)

    with pytest.raises(ValueError, match="not under"):
        remove([run / "data"], results)


def test_remove_takes_a_link_not_its_target_and_nothing_outside_the_bucket_folders(tmp_path):
    results, data = tmp_path / "results", tmp_path / "data"
    (results / "features/g").mkdir(parents=True)
    data.mkdir()
    (data / "song.flac").write_bytes(b"audio")
    link = results / "features/g/linked"
    link.symlink_to(data)
    assert remove([link, results / "features/g/missing.h5"], results) == [link]
    assert (data / "song.flac").exists()
    for outside in (data, results / "models", results / "features", results / "work"):
        with pytest.raises(ValueError, match="not under"):
            remove([outside], results)
