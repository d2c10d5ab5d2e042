"""Data steps: features of a bucket of tracks, the split table."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from tqdm import tqdm

from mirkd.atomic import atomic_write_text
from mirkd.audio import load_audio
from mirkd.errors import AudioError
from mirkd.features import CQTParams, log_cqt
from mirkd.manifest import TrackFiles
from mirkd.steps import log
from mirkd.steps.buckets import BucketWork
from mirkd.store import TrackPart, cqt_part, feature_attrs


def feature_part(
    track: TrackFiles, params: CQTParams = CQTParams(), skip_undecodable: bool = False
) -> TrackPart:
    """Decode and log-CQT one track into its bucket part (float16, as stored).

    With `skip_undecodable` (unlabeled tracks) a file that cannot be decoded becomes a part with
    no frames and the cause, instead of failing the job.
    """
    try:
        y = load_audio(track.audio, sr=params.sr)
    except AudioError as exc:
        if not skip_undecodable:
            raise
        log.warning("%s: skipped, %s", track.track_id, exc)
        empty = np.zeros((0, params.n_bins), dtype=np.float16)
        return cqt_part(track.track_id, track.fingerprint, track.audio, empty, 0.0, exc.cause)
    cqt = log_cqt(y, params)
    return cqt_part(track.track_id, track.fingerprint, track.audio, cqt, len(y) / params.sr)


def extract_bucket_features(
    out: str,
    work: str,
    tracks: Sequence[TrackFiles],
    skip_undecodable: bool = False,
    params: CQTParams = CQTParams(),
) -> None:
    """Features of every track of a bucket, one resumable part per track, packed into `out`."""
    attrs = feature_attrs(params)
    job = BucketWork.open(work, {"features": params.to_dict()})
    job.reuse(out, tracks, attrs)
    for track in tqdm(job.todo(tracks), desc=f"features {out}"):
        job.save(feature_part(track, params, skip_undecodable))
    job.finish(out, tracks, attrs)
    log.info("%s: %d tracks", out, len(tracks))


def write_splits(out: str, rows: Sequence[Sequence[str]]) -> None:
    """results/splits.tsv: (set, track id, split, audio) rows."""
    lines = ["set\ttrack_id\tsplit\taudio"] + ["\t".join(map(str, r)) for r in rows]
    atomic_write_text(out, "\n".join(lines) + "\n")
