"""Helpers shared by the model definitions: windowed forward passes, dropout with a cheap mask
on the CPU, masked attention."""

from __future__ import annotations

import math
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


KEEP_LEVELS = 1 << 8  # a CPU dropout mask element is 8 random bits: keep rates are k / 256


def cpu_keep_mask(shape: torch.Size, keep: int) -> torch.Tensor:
    """A bool mask of `shape`, each element True with probability keep / 256 (keep in
    1..255), drawn from torch's CPU generator 8 bits at a time (eight per 64-bit draw, so
    `torch.manual_seed` and the saved generator state reproduce it)."""
    if not 0 < keep < KEEP_LEVELS:  # int8 compares would wrap to an all-False mask
        raise ValueError(f"keep must be in 1..{KEEP_LEVELS - 1}, got {keep}")
    n = math.prod(shape)
    words = torch.empty(-(-n // 8), dtype=torch.int64).random_(-(1 << 63), None)
    bits = words.view(torch.int8)[:n].view(shape)
    return bits < keep - KEEP_LEVELS // 2


def dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Inverted dropout, F.dropout's function: each element kept with probability 1 - p and
    scaled by its inverse. On the CPU the mask comes from `cpu_keep_mask` (the keep
    probability rounded to a multiple of 1/256, e.g. p = 0.2 drops 51/256 = 0.199, and the
    scale the inverse of that rounded rate, so E[y] = x up to float rounding): far cheaper
    forward and backward than F.dropout's `bernoulli_`, which was a third of a BTC training
    step (RESULTS.md). Elsewhere (CUDA's fused kernel), and where the rounded rate is 0 or 1
    (p within 2^-9 of 1 or 0): F.dropout."""
    if not training or p == 0.0:
        return x
    keep = round((1.0 - p) * KEEP_LEVELS)
    if x.device.type != "cpu" or not 0 < keep < KEEP_LEVELS:
        return F.dropout(x, p, True)
    scale = torch.tensor(KEEP_LEVELS / keep, dtype=x.dtype)  # the mask made in x's type
    return x * torch.where(cpu_keep_mask(x.shape, keep), scale, 0.0)


class Dropout(nn.Module):
    """`nn.Dropout` through `dropout` (no parameters, so state dicts are unchanged)."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


def attention_bias(visible: torch.Tensor) -> torch.Tensor:
    """The additive float mask of a bool `visible` [T, T]: 0 where visible, -inf elsewhere
    (SDPA checks a bool mask for all-masked rows at every call; a float one it just adds)."""
    return torch.zeros(visible.shape, device=visible.device).masked_fill(~visible, -math.inf)


def masked_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor, dropout_p: float
) -> torch.Tensor:
    """softmax(q k^T / sqrt(d) + bias) v with dropout on the attention weights, q/k/v
    [B, H, T, d], bias [T, T]. SDPA except when training with dropout on the CPU, where SDPA
    would draw its [B, H, T, T] mask with `bernoulli_`: there the same function is computed
    with `dropout`."""
    bias = bias.to(q.dtype)  # -inf and 0 in any float type; SDPA wants the query's type
    if dropout_p == 0.0 or q.device.type != "cpu":
        return F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=dropout_p)
    batch, heads, time, depth = q.shape
    scores = torch.baddbmm(
        bias.expand(batch * heads, time, time),
        q.reshape(batch * heads, time, depth),
        k.reshape(batch * heads, time, depth).transpose(1, 2),
        alpha=1.0 / math.sqrt(depth),
    )
    # softmax in float32 (CPU autocast would keep bfloat16 scores in bfloat16), as SDPA does
    weights = torch.softmax(scores, dim=-1, dtype=torch.float32)
    weights = dropout(weights, dropout_p, True).to(v.dtype)
    return torch.bmm(weights, v.reshape(batch * heads, time, v.shape[-1])).view(
        batch, heads, time, v.shape[-1]
    )
