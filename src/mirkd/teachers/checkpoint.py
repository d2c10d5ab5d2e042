"""Teachers from a chord model checkpoint: the public BTC file ("btc") or one of ours ("mirkd").

Both load through `mirkd.checkpoints.load_checkpoint` (which reads either format) and predict
with `mirkd.inference.predict_logits_many` on the pipeline's raw log-CQT; probabilities are the
softmax of the logits at temperature 1. The front end only checks the features (no audio is
decoded); `infer` runs the windows of several tracks in shared batches.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mirkd.checkpoints import load_checkpoint
from mirkd.errors import CheckpointError, ConfigError, MirkdError
from mirkd.inference import predict_logits_many
from mirkd.vocab import LARGE

CHECKPOINT_KINDS = ("btc", "mirkd")


def file_sha256(path: Path) -> str:
    """sha256 hex digest of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class CheckpointInput:
    """One track ready for the model: its [T, n_bins] log-CQT."""

    features: np.ndarray


@dataclass(frozen=True)
class CheckpointFrontEnd:
    """The CPU part of a checkpoint teacher: check that the features fit the model."""

    n_bins: int

    def __call__(self, audio_path: Path, features: np.ndarray) -> CheckpointInput:
        """`features` as they are; MirkdError naming `audio_path` if their bins do not fit."""
        if features.ndim != 2 or features.shape[1] != self.n_bins:
            raise MirkdError(
                f"{audio_path}: features of shape {features.shape} do not match the "
                f"teacher's {self.n_bins} CQT bins"
            )
        return CheckpointInput(features)


class CheckpointTeacher:
    """A BTC/ChordNet checkpoint predicting the 170-class LARGE vocabulary."""

    def __init__(
        self,
        kind: str,
        checkpoint: str | Path,
        device: torch.device,
        tracks_per_pass: int = 8,
        batch_windows: int = 64,
    ) -> None:
        if kind not in CHECKPOINT_KINDS:
            raise ConfigError(f"checkpoint teacher kind {kind!r} is not one of {CHECKPOINT_KINDS}")
        path = Path(checkpoint)
        if not path.is_file():
            raise CheckpointError(path, "teacher checkpoint not found")
        self.kind = kind
        self.device = device
        self.bundle = load_checkpoint(path, map_location=str(device))
        if self.bundle.vocab.name != LARGE.name:
            raise CheckpointError(
                path, f"teacher vocabulary is {self.bundle.vocab.name}, {LARGE.name} is needed"
            )
        self.front_end = CheckpointFrontEnd(self.bundle.feature_params.n_bins)
        self.tracks_per_pass = tracks_per_pass
        self.batch_windows = batch_windows
        self.name = f"{kind}:{self.bundle.arch}:{path.name}"
        self.fingerprint = file_sha256(path)

    def infer(self, inputs: Sequence[CheckpointInput]) -> list[np.ndarray]:
        """[T, 170] float32 softmax of the model's logits for each prepared track; the windows
        of all `inputs` share batches of `batch_windows`."""
        logits = predict_logits_many(
            self.bundle, [x.features for x in inputs], self.device, self.batch_windows
        )
        return [torch.softmax(torch.from_numpy(x).double(), dim=-1).float().numpy() for x in logits]

    def frame_probs(self, audio_path: Path, features: np.ndarray) -> np.ndarray:
        """[T, 170] float32 softmax of the model's logits; `audio_path` only names errors."""
        return self.infer([self.front_end(audio_path, features)])[0]
