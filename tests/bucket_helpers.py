"""Bucket files (features, teacher outputs) written from arrays, for unit tests."""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np

from mirkd.features import CQTParams
from mirkd.store import (
    TeacherOutput,
    cqt_part,
    feature_attrs,
    pack_bucket,
    teacher_attrs,
    teacher_part,
)
from mirkd.vocab import LARGE

TEACHER = {"kind": "test", "name": "test-teacher", "fingerprint": "t0"}


def feature_bucket(path: Path, tracks: dict[str, np.ndarray], duration: float | None = None) -> str:
    """A features bucket holding each [T, 144] array (stored as float16) under its id; the
    duration defaults to T frames of the default grid."""
    params = CQTParams()
    parts = [
        cqt_part(
            tid,
            f"fp-{tid}",
            f"{tid}.wav",
            cqt,
            duration if duration is not None else len(cqt) * params.frame_period,
        )
        for tid, cqt in tracks.items()
    ]
    pack_bucket(path, parts, feature_attrs(params))
    return str(path)


def teacher_bucket(
    path: Path, outputs: dict[str, TeacherOutput | None], teacher: dict | None = None
) -> str:
    """A teacher bucket holding each track's outputs (None: skipped, cause "bad audio")."""
    parts = [
        teacher_part(tid, f"fp-{tid}", f"{tid}.wav", out, "" if out else "bad audio", LARGE.size)
        for tid, out in outputs.items()
    ]
    pack_bucket(path, parts, teacher_attrs(teacher or TEACHER, LARGE.name, CQTParams()))
    return str(path)


def damage(path: str | Path, array: str, data: bytes | None = None, at: int = 0) -> None:
    """Overwrite bytes of `array`'s region in a bucket file in place (random bytes, 256 by
    default, from byte `at` of the array), keeping the file's size and mtime."""
    with h5py.File(path, "r") as f:
        offset = f[array].id.get_offset()
    data = data if data is not None else np.random.default_rng(7).bytes(256)
    before = os.stat(path)
    with open(path, "r+b") as f:
        f.seek(offset + at)
        f.write(data)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
