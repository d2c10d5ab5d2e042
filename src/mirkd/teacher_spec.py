"""Which teacher a run (or a variant) uses, and the tag its outputs are filed under.

A teacher is named by its config: a kind ("lvchordia", "btc", "mirkd") with its checkpoint and
precision (kind "mirkd" without a checkpoint: the model released with mirkd, mirkd.released,
whose sha256 is part of the tag, so a new release is a new teacher), or an "ensemble" of such
teachers whose frame probabilities are averaged (optionally weighted) on the shared frame grid.
Each teacher's bucket files live under `results/teacher/<tag>/`, the tag being the kind and a
hash of the settings, so a run can hold the outputs of several teachers at once: variants that
use different teachers share the features, an ensemble reuses its members' buckets, and
switching back to a teacher reruns nothing. Planning imports this module: it must stay free
of torch, numpy and h5py.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mirkd import released
from mirkd.errors import ConfigError

SINGLE_KINDS = ("lvchordia", "btc", "mirkd")
ENSEMBLE = "ensemble"
TAG_HASH_CHARS = 10


@dataclass(frozen=True)
class TeacherSpec:
    """A teacher as configured: a single model, or an ensemble of single models."""

    kind: str
    checkpoint: str | None = None
    precision: str = "fp32"
    members: tuple[TeacherSpec, ...] = ()
    weights: tuple[float, ...] = ()
    released: str | None = None  # sha256 of the released model (kind mirkd, no checkpoint)

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], where: str = "teacher") -> TeacherSpec:
        """The spec of a validated `teacher:` mapping (schema defaults filled in)."""
        kind = cfg.get("kind")
        if kind == ENSEMBLE:
            members_cfg = cfg.get("members") or []
            if len(members_cfg) < 2:
                raise ConfigError(f"{where}: an ensemble needs at least two members")
            members = []
            for i, member in enumerate(members_cfg):
                if member.get("kind") == ENSEMBLE:
                    raise ConfigError(f"{where}.members[{i}]: an ensemble cannot be a member")
                members.append(cls.from_config(member, f"{where}.members[{i}]"))
            weights = tuple(float(m.get("weight", 1.0)) for m in members_cfg)
            if any(w <= 0 for w in weights):
                raise ConfigError(f"{where}: member weights must be positive")
            if len({m.tag for m in members}) != len(members):
                raise ConfigError(f"{where}: the same teacher is listed twice")
            return cls(ENSEMBLE, members=tuple(members), weights=weights)
        if kind not in SINGLE_KINDS:
            raise ConfigError(f"{where}.kind: {kind!r} is not one of {(*SINGLE_KINDS, ENSEMBLE)}")
        if cfg.get("members"):
            raise ConfigError(f"{where}: members are for kind {ENSEMBLE} only")
        checkpoint = cfg.get("checkpoint")
        precision = cfg.get("precision", "fp32")
        if kind == "lvchordia" and checkpoint:
            raise ConfigError(f"{where}: teacher kind lvchordia takes no checkpoint ({checkpoint})")
        if kind == "btc" and not checkpoint:
            raise ConfigError(f"{where}: teacher kind {kind} needs a checkpoint path")
        if kind != "lvchordia" and precision != "fp32":
            raise ConfigError(f"{where}: precision {precision} is supported for lvchordia only")
        if kind == "mirkd" and not checkpoint:
            path = released.require(
                released.MODEL,
                f"{where}: teacher kind mirkd without a checkpoint means the released model; "
                f"give {where}.checkpoint",
            )
            return cls(kind, None, precision, released=released.file_sha256(path))
        return cls(kind, checkpoint, precision)

    @property
    def is_ensemble(self) -> bool:
        return self.kind == ENSEMBLE

    def with_student(self, checkpoint: str, alone: bool) -> TeacherSpec:
        """The teacher of a self-training round: the student `checkpoint` (a mirkd model) alone,
        or averaged with this teacher (an ensemble gains the student as one more member)."""
        student = TeacherSpec("mirkd", checkpoint)
        if alone:
            return student
        members = self.members if self.is_ensemble else (self,)
        weights = self.weights if self.is_ensemble else (1.0,)
        return TeacherSpec(ENSEMBLE, members=(*members, student), weights=(*weights, 1.0))

    def to_dict(self) -> dict[str, Any]:
        """Plain settings (JSON): what the tag hashes and what rule params carry."""
        if self.is_ensemble:
            return {
                "kind": self.kind,
                "members": [m.to_dict() for m in self.members],
                "weights": list(self.weights),
            }
        settings = {"kind": self.kind, "checkpoint": self.checkpoint, "precision": self.precision}
        if self.released:  # only then: the tags of every other teacher stay as they were
            settings["released"] = self.released
        return settings

    @property
    def checkpoint_file(self) -> str | None:
        """The file a single teacher loads: its checkpoint, the released model, or none."""
        if self.released:
            return str(released.model_path())
        return self.checkpoint

    @property
    def tag(self) -> str:
        """Folder name of this teacher's outputs: kind + a hash of its settings."""
        text = json.dumps(self.to_dict(), sort_keys=True)
        return f"{self.kind}-{hashlib.sha1(text.encode()).hexdigest()[:TAG_HASH_CHARS]}"

    def checkpoints(self) -> list[str]:
        """Checkpoint files this teacher reads (its own, or its members'), for rule inputs."""
        if self.is_ensemble:
            return [c for m in self.members for c in m.checkpoints()]
        return [self.checkpoint_file] if self.checkpoint_file else []
