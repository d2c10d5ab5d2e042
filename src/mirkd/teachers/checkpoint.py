"""Teachers from a chord model checkpoint: the public BTC file ("btc") or one of ours ("mirkd").

Both load through `mirkd.checkpoints.load_checkpoint` (which reads either format) and predict
with `mirkd.inference.bundle_logits` on the pipeline's raw log-CQT; probabilities are the
softmax of the logits at temperature 1.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch

from mirkd.checkpoints import load_checkpoint
from mirkd.errors import CheckpointError, ConfigError, MirkdError
from mirkd.inference import bundle_logits
from mirkd.vocab import LARGE

CHECKPOINT_KINDS = ("btc", "mirkd")


def file_sha256(path: Path) -> str:
    """sha256 hex digest of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class CheckpointTeacher:
    """A BTC/ChordNet checkpoint predicting the 170-class LARGE vocabulary."""

    def __init__(self, kind: str, checkpoint: str | Path, device: torch.device) -> None:
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
        self.name = f"{kind}:{self.bundle.arch}:{path.name}"
        self.fingerprint = file_sha256(path)

    def frame_probs(self, audio_path: Path, features: np.ndarray) -> np.ndarray:
        """[T, 170] float32 softmax of the model's logits; `audio_path` is not needed."""
        n_bins = self.bundle.feature_params.n_bins
        if features.ndim != 2 or features.shape[1] != n_bins:
            raise MirkdError(
                f"{audio_path}: features of shape {features.shape} do not match the "
                f"teacher's {n_bins} CQT bins"
            )
        logits = bundle_logits(self.bundle, features, self.device)
        return torch.softmax(torch.from_numpy(logits).double(), dim=-1).float().numpy()
