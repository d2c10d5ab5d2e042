"""Log-CQT features on the reference BTC grid (hop 2048 at 22050 Hz).

One ``librosa.cqt`` pass over the whole signal (no 10-s chunking, no per-window excerpts), so
frame k is centred at ``k * hop_length / sr`` seconds for training and inference alike.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import librosa
import numpy as np

from mirkd.errors import ConfigError


@dataclass(frozen=True)
class CQTParams:
    """Everything that defines a feature file's content; stored with each feature file."""

    sr: int = 22050
    hop_length: int = 2048
    n_bins: int = 144
    bins_per_octave: int = 24
    fmin: float = 32.70319566257483  # C1
    log_eps: float = 1e-6

    @property
    def frame_period(self) -> float:
        """Seconds between frames (hop_length / sr)."""
        return self.hop_length / self.sr

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CQTParams:
        """Inverse of to_dict; every field must be present and no other key (ConfigError)."""
        names = {f.name for f in fields(cls)}
        if set(d) != names:
            raise ConfigError(
                f"feature parameters {dict(d)!r}: missing {sorted(names - set(d))}, "
                f"unknown {sorted(set(d) - names)}"
            )
        return cls(**d)


def n_frames(n_samples: int, params: CQTParams = CQTParams()) -> int:
    """Number of frames log_cqt returns for a signal of `n_samples` samples."""
    return 1 + n_samples // params.hop_length


def log_cqt(y: np.ndarray, params: CQTParams = CQTParams()) -> np.ndarray:
    """log(|CQT| + eps) of a mono signal at params.sr, time-major float32 [T, n_bins].

    T = n_frames(len(y)): librosa's early downsampling can add one frame centred past the end
    of the signal (lengths just below a multiple of the hop); it is cut so the grid is exact.
    """
    if y.ndim != 1:
        raise ValueError(f"log_cqt expects a mono 1-D signal, got shape {y.shape}")
    c = librosa.cqt(
        np.asarray(y, dtype=np.float32),
        sr=params.sr,
        hop_length=params.hop_length,
        fmin=params.fmin,
        n_bins=params.n_bins,
        bins_per_octave=params.bins_per_octave,
    )
    c = c[:, : n_frames(len(y), params)]
    return np.log(np.abs(c) + params.log_eps).T.astype(np.float32)
