"""Two-view consistency: a transposed, noisy second view of each window must be predicted
like the first (semi-supervised consistency regularisation, as in FixMatch / OF-SS4).

Chords make pitch shift an exact equivariance: transposing the audio by ``k`` semitones moves
every rooted class by ``k`` (``Vocabulary.transpose``) and leaves N and X alone. The second
view of a window is its raw log-CQT rolled by ``k`` semitones (``k`` drawn per window from
``SHIFTS``; bins rolled in from outside are silence), with a random gain (an offset of the
log magnitude), a random spectral tilt (a linear EQ across the bins) and Gaussian noise after
normalisation. Its targets are the first view's rotated by ``k``; the consistency term is
``KL(p1 || p2_back)`` per real frame, where ``p2_back`` is the second view's prediction rotated
back by ``-k`` and ``p1`` the first view's, held fixed (no gradient).

Draws come from torch's global RNG on the batch's device, which the trainer saves and restores,
so a resumed run draws the same views.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from mirkd.training.datasets import BINS_PER_SEMITONE, LOG_FLOOR
from mirkd.vocab import IGNORE_INDEX, Vocabulary

SHIFTS = tuple(k for k in range(-5, 7) if k != 0)  # every other key, never the same one
GAIN = 0.7  # +-0.7 in log magnitude: about +-6 dB
TILT = 0.5  # +-0.5 in log magnitude between the lowest and highest bin
NOISE = 0.1  # std of Gaussian noise on the normalised features


@dataclass(frozen=True)
class Rotations:
    """Class index tables for each shift in ``SHIFTS`` ([K, C] long): ``forward[i, c]`` is class
    ``c`` transposed by ``SHIFTS[i]``, ``backward`` by ``-SHIFTS[i]``."""

    forward: torch.Tensor
    backward: torch.Tensor

    @classmethod
    def of(cls, vocab: Vocabulary, device: torch.device) -> Rotations:
        classes = np.arange(vocab.size)
        table = [vocab.transpose(classes, k) for k in SHIFTS]
        back = [vocab.transpose(classes, -k) for k in SHIFTS]
        return cls(
            torch.as_tensor(np.stack(table), dtype=torch.long, device=device),
            torch.as_tensor(np.stack(back), dtype=torch.long, device=device),
        )


@dataclass(frozen=True)
class SecondView:
    """A batch's second view: raw features [B, L, F], the shift index per window [B] (into
    ``SHIFTS``), targets [B, L] and, when the batch has them, teacher probabilities [B, L, C]
    rotated to the view's key."""

    x: torch.Tensor
    shift: torch.Tensor
    y: torch.Tensor
    probs: torch.Tensor | None


def shift_bins(x: torch.Tensor, bins: torch.Tensor) -> torch.Tensor:
    """Raw log-CQT [B, L, F] moved up by ``bins[b]`` bins per window (down if negative); bins
    rolled in from outside the range are the log floor (silence)."""
    n_bins = x.shape[-1]
    source = torch.arange(n_bins, device=x.device)[None, :] - bins[:, None]  # [B, F]
    inside = (source >= 0) & (source < n_bins)
    index = source.clamp(0, n_bins - 1)[:, None, :].expand(-1, x.shape[1], -1)
    return torch.where(inside[:, None, :], torch.gather(x, 2, index), LOG_FLOOR)


def second_view(
    x: torch.Tensor, y: torch.Tensor, probs: torch.Tensor | None, rotations: Rotations
) -> SecondView:
    """Draw each window's shift, gain and tilt; transpose the features, targets and probs."""
    batch, _, n_bins = x.shape
    shift = torch.randint(len(SHIFTS), (batch,), device=x.device)
    semitones = torch.as_tensor(SHIFTS, device=x.device)[shift]
    gain = (torch.rand(batch, 1, 1, device=x.device) * 2 - 1) * GAIN
    slope = (torch.rand(batch, 1, 1, device=x.device) * 2 - 1) * TILT
    ramp = torch.linspace(-0.5, 0.5, n_bins, device=x.device)[None, None, :]
    x2 = shift_bins(x.float(), semitones * BINS_PER_SEMITONE) + gain + slope * ramp
    forward = rotations.forward[shift]  # [B, C]
    valid = y != IGNORE_INDEX
    y2 = torch.where(valid, torch.gather(forward, 1, y.clamp_min(0)), y)
    probs2 = None
    if probs is not None:
        backward = rotations.backward[shift][:, None, :].expand(-1, probs.shape[1], -1)
        probs2 = torch.gather(probs, 2, backward)
    return SecondView(x2, shift, y2, probs2)


def consistency_loss(
    logits1: torch.Tensor,
    logits2: torch.Tensor,
    shift: torch.Tensor,
    mask: torch.Tensor,
    rotations: Rotations,
) -> torch.Tensor:
    """Mean over real frames (``mask`` [B, L]) of ``KL(p1 || p2 rotated back)``; ``p1`` (from
    ``logits1`` [B, L, C]) carries no gradient."""
    forward = rotations.forward[shift][:, None, :].expand(-1, logits2.shape[1], -1)
    log_p2_back = torch.gather(F.log_softmax(logits2.float(), dim=-1), 2, forward)
    log_p1 = F.log_softmax(logits1.detach().float(), dim=-1)
    kl = (log_p1.exp() * (log_p1 - log_p2_back)).sum(dim=-1)
    weights = mask.to(kl.dtype)
    return (kl * weights).sum() / weights.sum().clamp_min(1.0)
