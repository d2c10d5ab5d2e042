"""Training losses over flattened frames: focal loss, (selective) knowledge distillation.

All functions take logits ``[N, C]`` (N = frames of a batch, flattened) and return a scalar
tensor. Targets equal to ``IGNORE_INDEX`` (padding, X frames) do not count in the focal loss.
The KD terms take an optional boolean ``mask [N]`` of real (non-padding) frames; frames outside
the mask contribute nothing and are not counted in the mean. Teacher outputs arrive as stored
probabilities, so ``softmax(log(p) / T)`` recovers the teacher's temperature-``T`` distribution
exactly (``log p`` differs from the teacher logits only by a per-frame constant).

Frames are left out by zero weights in masked sums, never by boolean indexing: indexing by a
mask makes a GPU wait for the host to learn the result's size, on every step.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mirkd.vocab import IGNORE_INDEX

PROB_FLOOR = 1e-8


def focal_loss(logits: torch.Tensor, targets: torch.Tensor, gamma: float = 2.0) -> torch.Tensor:
    """Mean over non-ignored frames of ``(1 - p_y)^gamma * -log p_y`` (gamma 0 = cross-entropy).

    A batch without any valid target gives a zero loss that still carries a graph.
    """
    keep = targets != IGNORE_INDEX
    safe_targets = torch.where(keep, targets, 0).long()
    log_p = F.log_softmax(logits.float(), dim=-1)
    log_p_y = log_p.gather(1, safe_targets.unsqueeze(1)).squeeze(1)
    p_y = log_p_y.exp()
    return _masked_mean((1.0 - p_y).pow(gamma) * -log_p_y, keep)


def teacher_distribution(teacher_probs: torch.Tensor, temperature: float) -> torch.Tensor:
    """Log of the temperature-softened teacher distribution ``softmax(log(p) / T)``."""
    log_p = teacher_probs.float().clamp_min(PROB_FLOOR).log()
    return F.log_softmax(log_p / temperature, dim=-1)


def _frame_kl(
    student_logits: torch.Tensor, teacher_probs: torch.Tensor, temperature: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-frame ``KL(q_T || s_T)`` and the per-frame teacher confidence ``max_k q_T``."""
    log_q = teacher_distribution(teacher_probs, temperature)
    log_s = F.log_softmax(student_logits.float() / temperature, dim=-1)
    q = log_q.exp()
    kl = (q * (log_q - log_s)).sum(dim=-1)
    return kl, q.max(dim=-1).values


def _masked_mean(values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean of `values` over the frames in `mask` (all if None); 0 with a graph if none."""
    if mask is None:
        return values.mean() if values.numel() else values.sum() * 0.0
    weights = mask.to(values.dtype)
    return torch.where(mask, values, 0.0).sum() / weights.sum().clamp_min(1.0)


def kd_loss(
    student_logits: torch.Tensor,
    teacher_probs: torch.Tensor,
    temperature: float = 3.0,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """``T^2 * mean_frames KL(q_T || s_T)`` over the frames in ``mask`` (all if None)."""
    kl, _ = _frame_kl(student_logits, teacher_probs, temperature)
    return temperature**2 * _masked_mean(kl, mask)


def selective_kd_weights(
    confidence: torch.Tensor, upper: float = 0.9, lower: float = 0.1
) -> torch.Tensor:
    """Per-frame KD weight from teacher confidence (reference stage 2).

    0 below ``lower``; linear from 1 at ``upper`` down to 0.2 at confidence 1; 1 in between.
    """
    damped = 1.0 - 0.8 * (confidence - upper) / (1.0 - upper + 1e-8)
    weights = torch.where(confidence > upper, damped, torch.ones_like(confidence))
    weights = torch.where(confidence < lower, torch.zeros_like(confidence), weights)
    return weights.clamp(0.0, 1.0)


def selective_kd_loss(
    student_logits: torch.Tensor,
    teacher_probs: torch.Tensor,
    temperature: float = 3.0,
    upper: float = 0.9,
    lower: float = 0.1,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """``T^2 * (1/N) * sum_i w_i KL_i`` with N = all frames in ``mask`` (not the sum of weights).

    The confidence deciding ``w_i`` is the maximum of the *temperature-softened* teacher
    distribution, as in the reference code: with 170 classes and T = 3 the lower threshold
    is the one that acts.
    """
    kl, confidence = _frame_kl(student_logits, teacher_probs, temperature)
    weights = selective_kd_weights(confidence, upper, lower)
    return temperature**2 * _masked_mean(weights * kl, mask)


def stage2_loss(
    student_logits: torch.Tensor,
    targets: torch.Tensor,
    teacher_probs: torch.Tensor,
    alpha: float = 0.3,
    temperature: float = 3.0,
    gamma: float = 2.0,
    selective: bool = True,
    upper: float = 0.9,
    lower: float = 0.1,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """``alpha * KD + (1 - alpha) * focal``; KD is selective unless ``selective`` is False.

    With ``selective=False`` this is the stage-1 optional KD mix (alpha 0.5, T 3).
    """
    if selective:
        kd = selective_kd_loss(student_logits, teacher_probs, temperature, upper, lower, mask)
    else:
        kd = kd_loss(student_logits, teacher_probs, temperature, mask)
    return alpha * kd + (1.0 - alpha) * focal_loss(student_logits, targets, gamma)
