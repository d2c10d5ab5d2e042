"""Teacher step: pseudo-label shards (and per-track teacher outputs) in HDF5."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from mirkd.features import CQTParams
from mirkd.steps import Row, log
from mirkd.store import read_features, write_shard
from mirkd.teachers import build_teacher, teacher_output
from mirkd.vocab import LARGE


def run_teacher(out: str, teacher_cfg: dict[str, Any], tracks: Sequence[Row]) -> None:
    """Teacher probabilities for each track, stored as one pseudo-label shard."""
    teacher = build_teacher(
        teacher_cfg["kind"],
        teacher_cfg.get("checkpoint"),
        teacher_cfg.get("device", "auto"),
        teacher_cfg.get("precision", "fp32"),
    )
    outputs, attrs = {}, {}
    for tid, audio, features_path, _, fingerprint in tqdm(tracks, desc=f"teacher {Path(out).name}"):
        probs = teacher.frame_probs(Path(audio), read_features(features_path))
        outputs[tid] = teacher_output(probs)
        attrs[tid] = {"audio_fingerprint": fingerprint, "source": str(audio)}
    identity = {"kind": teacher.kind, "name": teacher.name, "fingerprint": teacher.fingerprint}
    write_shard(out, outputs, identity, LARGE.name, CQTParams(), attrs)
    log.info("%s: %d tracks by %s", out, len(outputs), teacher.name)
