"""Training losses over flattened frames: focal loss, (selective) knowledge distillation.

All functions take logits ``[N, C]`` (N = frames of a batch, flattened) and return a scalar
tensor. Targets equal to ``IGNORE_INDEX`` (padding, X frames) do not count in the focal loss.
The KD terms take an optional boolean ``mask [N]`` of real (non-padding) frames; frames outside
the mask contribute nothing and are not counted in the mean. Teacher outputs arrive as stored
probabilities, so ``softmax(log(p) / T)`` recovers the teacher's temperature-``T`` distribution
exactly (``log p`` differs from the teacher logits only by a per-frame constant).

Frames are left out by zero weights in masked sums, never by boolean indexing: indexing by a
mask makes a GPU wait for the host to learn the result's size, on every step.

Class balance (``class_weights``): the focal loss may weight each frame by its target class,
``w_c ~ (n_c / n_max)^-power`` from the training frame counts ``n_c`` (power 0.5: square-root
inverse frequency), so rare chord qualities are not drowned by maj/min/N frames.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from mirkd.vocab import IGNORE_INDEX

PROB_FLOOR = 1e-8
# Largest class weight, relative to the mean weight of a training frame (1): a class seen on a
# handful of frames must not dominate a batch (with power 0.5, weight 10 is reached by a class
# about 100x rarer than the average frame's class would allow at weight 1).
CLASS_WEIGHT_CAP = 10.0


def class_frame_counts(labels: np.ndarray | torch.Tensor, n_classes: int) -> np.ndarray:
    """Frames per class ``[n_classes]`` (int64) of a 1-D array of frame targets; IGNORE_INDEX
    and any value outside ``[0, n_classes)`` are not counted."""
    y = np.asarray(labels).reshape(-1).astype(np.int64, copy=False)
    y = y[(y >= 0) & (y < n_classes)]
    return np.bincount(y, minlength=n_classes).astype(np.int64)


def class_weights(
    counts: np.ndarray | torch.Tensor, power: float, cap: float = CLASS_WEIGHT_CAP
) -> torch.Tensor:
    """Per-class loss weights ``[C]`` (float32) from training frame counts ``[C]``.

    ``w_c = s * (n_c / n_max)^-power``, clipped to ``cap``, with the scale ``s`` chosen so that
    the frame-weighted mean weight over the counted frames is exactly 1 *after* clipping
    (``sum_c n_c w_c = sum_c n_c``), so the loss keeps its scale. A class that was never
    counted gets the weight of the rarest counted class (it is at least as rare); it never
    is a training target, so its weight only matters if the counts miss frames. Power 0 (or no
    counted frame) gives all ones. ``cap`` must be at least 1 (a mean of 1 needs it).
    """
    if power < 0:
        raise ValueError(f"class balance power {power} must be >= 0")
    if cap < 1:
        raise ValueError(f"class weight cap {cap} must be >= 1")
    n = np.asarray(
        counts.detach().cpu().numpy() if isinstance(counts, torch.Tensor) else counts,
        dtype=np.float64,
    ).reshape(-1)
    if (n < 0).any():
        raise ValueError("class counts must be >= 0")
    seen = n > 0
    if power == 0 or not seen.any():
        return torch.ones(len(n), dtype=torch.float32)
    raw = np.ones_like(n)
    raw[seen] = (n[seen] / n[seen].max()) ** -power
    raw[~seen] = raw[seen].max()
    # Water-filling: classes whose scaled weight exceeds the cap sit at the cap, the others
    # share what is left of the total; the clipped set only grows, so this ends in <= C rounds.
    total, clipped = n.sum(), np.zeros_like(seen)
    while True:
        scale = (total - cap * n[clipped].sum()) / (n[~clipped] * raw[~clipped]).sum()
        now = clipped | (scale * raw > cap)
        if (now == clipped).all():
            break
        clipped = now
    return torch.from_numpy(np.minimum(scale * raw, cap)).float()


def focal_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    gamma: float = 2.0,
    weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean over non-ignored frames of ``(1 - p_y)^gamma * -log p_y`` (gamma 0 = cross-entropy).

    With class ``weights [C]`` the mean is weighted by each frame's target class:
    ``sum_i w_{y_i} l_i / sum_i w_{y_i}`` (all ones: the plain mean).
    A batch without any valid target gives a zero loss that still carries a graph.
    """
    keep = targets != IGNORE_INDEX
    safe_targets = torch.where(keep, targets, 0).long()
    log_p = F.log_softmax(logits.float(), dim=-1)
    log_p_y = log_p.gather(1, safe_targets.unsqueeze(1)).squeeze(1)
    p_y = log_p_y.exp()
    loss = (1.0 - p_y).pow(gamma) * -log_p_y
    if weights is None:
        return _masked_mean(loss, keep)
    w_y = torch.where(keep, weights.to(loss.device, loss.dtype)[safe_targets], 0.0)
    return (w_y * loss).sum() / w_y.sum().clamp_min(1e-12)


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
    weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """``alpha * KD + (1 - alpha) * focal``; KD is selective unless ``selective`` is False.

    With ``selective=False`` this is the stage-1 optional KD mix (alpha 0.5, T 3). Class
    ``weights`` weight the focal (ground-truth) term only (`focal_loss`); KD is unweighted.
    """
    if selective:
        kd = selective_kd_loss(student_logits, teacher_probs, temperature, upper, lower, mask)
    else:
        kd = kd_loss(student_logits, teacher_probs, temperature, mask)
    return alpha * kd + (1.0 - alpha) * focal_loss(student_logits, targets, gamma, weights)
