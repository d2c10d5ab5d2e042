"""Files under the results' bucket folders that the current plan no longer names.

Bucket files are Snakemake `update` outputs, kept until replaced, so a bucket that split or
merged, the buckets of removed tracks, and the files of teachers no longer used stay behind in
results/features, results/teacher and results/work. Planning lists them (`stale_results`) and
the `prune` target rule removes them (`remove`): only paths under those three folders, and only
what the plan does not name, so data, models, metrics and the files of the current plan are
never touched. A file the plan no longer names is kept while a bucket it may carry tracks over
to (a split or merged bucket in the same folder, mirkd.buckets.related) is not made yet.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from mirkd.buckets import related
from mirkd.stages import STAGES
from mirkd.store import verified_path

if TYPE_CHECKING:
    from mirkd.workflow_plan import RunPlan

PRUNED = ("features", "teacher", "work")  # the folders of results/ that `prune` cleans
BUCKET_KINDS = ("features", "teacher")  # results/work/<kind>/<group>/<bucket>: bucket jobs
log = logging.getLogger(__name__)


def named_paths(plan: RunPlan) -> set[Path]:
    """Every path under the pruned folders the plan names: each bucket's features file and
    every teacher's (with their verification records), each bucket job's work folder, and the
    base run's training work folders."""
    refs = plan.group_buckets(plan.buckets)
    files = [plan.features_path(r.group, r.name) for r in refs]
    files += [plan.teacher_path(tag, r.group, r.name) for tag in plan.teachers for r in refs]
    named = {Path(p) for f in files for p in (f, verified_path(f))}
    named |= {Path(plan.bucket_work(k, r.group, r.name)) for k in BUCKET_KINDS for r in refs}
    named |= {Path(plan.work_dir("", m)) for m in STAGES}
    return named


def _carries_over(path: Path, named: set[Path]) -> bool:
    """Whether the unnamed bucket file `path` may still give tracks to a named bucket of its
    folder that is not made yet (a split or merge: mirkd.buckets.related)."""
    stem = path.name.split(".", 1)[0]
    return any(
        n.parent == path.parent and n.suffix == ".h5" and related(n.stem, stem) and not n.exists()
        for n in named
    )


def stale_results(plan: RunPlan) -> list[Path]:
    """The files and folders under results/{features,teacher,work} the plan does not name
    (a folder is listed whole when nothing in it is named), sorted."""
    named = named_paths(plan)
    results = Path(plan.results)
    above = {parent for p in named for parent in p.parents}
    stale: list[Path] = []
    todo = [results / folder for folder in PRUNED if (results / folder).is_dir()]
    while todo:
        folder = todo.pop()
        for entry in folder.iterdir():
            if entry in named:
                continue
            if entry in above and entry.is_dir() and not entry.is_symlink():
                todo.append(entry)
            elif not _carries_over(entry, named):
                stale.append(entry)
    return sorted(stale)


def describe(paths: Iterable[Path], limit: int = 10) -> str:
    """The stale paths in a few lines (the first `limit`, then a count)."""
    paths = list(paths)
    lines = [f"  {p}{'/' if p.is_dir() else ''}" for p in paths[:limit]]
    if len(paths) > limit:
        lines.append(f"  ... and {len(paths) - limit} more")
    return "\n".join(lines)


def remove(paths: Iterable[Path | str], results: str | Path) -> list[Path]:
    """Remove `paths` (files, or folders with what they hold; a link, not what it points to),
    each of which must lie under results/{features,teacher,work}; returns what was removed."""
    roots = [(Path(results) / f).resolve() for f in PRUNED]
    removed = []
    for path in map(Path, paths):
        where = path.parent.resolve() / path.name  # a link's own place, not its target's
        if where in roots or not any(where.is_relative_to(root) for root in roots):
            raise ValueError(f"{path}: not under {', '.join(map(str, roots))}; not removed")
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
        else:
            continue
        removed.append(path)
    return removed


def report_stale(plan: RunPlan) -> list[Path]:
    """The stale results (`stale_results`), said in a warning that names the `prune` target."""
    stale = stale_results(plan)
    if stale:
        log.warning(
            "%d path(s) under %s/{%s} are no longer in the plan (a split or merged bucket, "
            "removed tracks, a teacher no longer used); `snakemake --cores 1 prune` (with your "
            "--configfile) removes them:\n%s",
            len(stale),
            plan.results,
            ",".join(PRUNED),
            describe(stale),
        )
    return stale


def prune_logged(paths: Iterable[Path | str], results: str | Path) -> None:
    """`remove`, saying what was removed (the `prune` rule)."""
    removed = remove(paths, results)
    log.info("removed %d stale path(s)%s", len(removed), "".join(f"\n  {p}" for p in removed))
