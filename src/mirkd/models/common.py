"""Helpers shared by the model definitions: config checks and windowed forward passes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


class ChordModel(nn.Module):
    """What every chord model offers besides forward: its config dataclass, the number of
    frames it sees at once (`window`) and its number of output classes."""

    config: Any

    @property
    def window(self) -> int:
        raise NotImplementedError

    @property
    def num_classes(self) -> int:
        raise NotImplementedError


def run_windowed(
    forward_window: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, window: int
) -> torch.Tensor:
    """Apply `forward_window` ([N, window, F] -> [N, window, C]) to x [B, T, F] of any T.

    The time axis is cut into consecutive non-overlapping windows, the last one zero-padded;
    all windows of all items go through the model as one batch, and the output is trimmed
    back to T frames. This is how the reference BTC runs songs longer than one window.
    """
    if x.dim() != 3:
        raise ValueError(f"expected input [batch, time, features], got shape {tuple(x.shape)}")
    batch, n_time, n_feat = x.shape
    n_windows = max(1, -(-n_time // window))
    pad = n_windows * window - n_time
    if pad:
        x = F.pad(x, (0, 0, 0, pad))
    y = forward_window(x.reshape(batch * n_windows, window, n_feat))
    return y.reshape(batch, n_windows * window, y.shape[-1])[:, :n_time]
