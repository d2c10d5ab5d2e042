"""Teacher step: pseudo-label shards (and per-track teacher outputs) in HDF5."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from mirkd.atomic import atomic_write_text
from mirkd.errors import AudioError, MirkdError
from mirkd.features import CQTParams
from mirkd.manifest import TrackFiles
from mirkd.steps import log
from mirkd.store import read_features, shard_skipped, skipped_cause, write_shard
from mirkd.teachers import build_teacher, teacher_output
from mirkd.vocab import LARGE


def run_teacher(
    out: str,
    teacher_cfg: dict[str, Any],
    tracks: Sequence[TrackFiles],
    skip_undecodable: bool = False,
) -> None:
    """Teacher probabilities for each track, stored as one pseudo-label shard.

    With `skip_undecodable` (unlabeled shards) tracks whose features are a skipped marker or
    whose audio the teacher cannot decode are left out and recorded in the shard's attributes.
    """
    teacher = build_teacher(
        teacher_cfg["kind"],
        teacher_cfg["checkpoint"],
        teacher_cfg["device"],
        teacher_cfg["precision"],
    )
    outputs, attrs, skipped = {}, {}, {}
    for track in tqdm(tracks, desc=f"teacher {Path(out).name}"):
        tid, audio = track.track_id, track.audio
        cause = skipped_cause(track.features) if skip_undecodable else None
        if cause is None:
            try:
                probs = teacher.frame_probs(Path(audio), read_features(track.features))
            except AudioError as exc:
                if not skip_undecodable:
                    raise
                cause = exc.cause
        if cause is not None:
            skipped[tid] = {"audio": str(audio), "cause": cause}
            log.warning("%s: skipped (%s): %s", tid, audio, cause)
            continue
        outputs[tid] = teacher_output(probs)
        attrs[tid] = {"audio_fingerprint": track.fingerprint, "source": str(audio)}
    identity = {"kind": teacher.kind, "name": teacher.name, "fingerprint": teacher.fingerprint}
    write_shard(out, outputs, identity, LARGE.name, CQTParams(), attrs, skipped)
    log.info("%s: %d tracks by %s, %d skipped", out, len(outputs), teacher.name, len(skipped))


def write_skipped_report(
    out: str, shards: Sequence[str], n_unlabeled: int, max_fraction: float
) -> None:
    """results/skipped.tsv (set, track id, audio, cause) of the unlabeled tracks left out.

    Raises MirkdError when more than `max_fraction` of the `n_unlabeled` tracks were left out:
    then something is wrong with the data (a bad copy, a codec), not with a few files.
    """
    skipped = {tid: info for shard in shards for tid, info in shard_skipped(shard).items()}
    rows = [("unlabeled", tid, i["audio"], i["cause"]) for tid, i in sorted(skipped.items())]
    for row in rows:
        log.warning("skipped %s (%s): %s", *row[1:])
    if len(skipped) > max_fraction * n_unlabeled:
        examples = "; ".join(f"{audio}: {cause}" for _, _, audio, cause in rows[:3])
        raise MirkdError(
            f"{len(skipped)} of {n_unlabeled} unlabeled tracks cannot be used, more than "
            f"data.max_skipped_fraction = {max_fraction:g} allows (e.g. {examples}); fix or "
            "remove those files, or raise data.max_skipped_fraction"
        )
    lines = ["set\ttrack_id\taudio\tcause"] + ["\t".join(r) for r in rows]
    atomic_write_text(out, "\n".join(lines) + "\n")
    log.info("%s: %d of %d unlabeled tracks skipped", out, len(skipped), n_unlabeled)
