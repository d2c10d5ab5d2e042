"""Losses against hand-computed values on tiny inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mirkd.training.losses import (
    CLASS_WEIGHT_CAP,
    class_frame_counts,
    class_weights,
    focal_loss,
    kd_loss,
    selective_kd_loss,
    selective_kd_weights,
    stage2_loss,
)
from mirkd.vocab import IGNORE_INDEX


def test_focal_gamma_zero_is_cross_entropy_and_ignores_frames():
    logits = torch.tensor([[0.0, 0.0], [math.log(3.0), 0.0], [5.0, -5.0]])
    targets = torch.tensor([0, 0, IGNORE_INDEX])
    # p_y = 0.5 and 0.75; ignored third frame does not count
    expected = (-math.log(0.5) - math.log(0.75)) / 2
    assert focal_loss(logits, targets, gamma=0.0).item() == pytest.approx(expected, rel=1e-6)


def test_focal_gamma_two_by_hand():
    logits = torch.tensor([[math.log(3.0), 0.0], [0.0, math.log(3.0)]])
    targets = torch.tensor([0, 0])  # p_y = 0.75, then 0.25
    expected = (0.25**2 * -math.log(0.75) + 0.75**2 * -math.log(0.25)) / 2
    assert focal_loss(logits, targets, gamma=2.0).item() == pytest.approx(expected, rel=1e-6)


def test_focal_all_ignored_is_zero_with_graph():
    logits = torch.randn(3, 4, requires_grad=True)
    loss = focal_loss(logits, torch.full((3,), IGNORE_INDEX))
    loss.backward()
    assert loss.item() == 0.0 and logits.grad is not None


def test_kd_loss_by_hand_and_zero_when_equal():
    teacher = torch.tensor([[0.5, 0.5], [0.8, 0.2]])
    student = torch.tensor([[0.0, 0.0], [0.0, 0.0]])
    # T = 1: KL(q || uniform) = sum q log(2q); frame 0 -> 0
    kl1 = 0.8 * math.log(1.6) + 0.2 * math.log(0.4)
    assert kd_loss(student, teacher, temperature=1.0).item() == pytest.approx(kl1 / 2, rel=1e-5)
    # student logits = log teacher probs -> same distribution at every temperature
    assert kd_loss(teacher.log(), teacher, temperature=3.0).item() == pytest.approx(0, abs=1e-6)


def test_kd_loss_temperature_scaling_and_mask():
    teacher = torch.tensor([[0.8, 0.2], [0.1, 0.9]])
    student = torch.zeros(2, 2)
    t = 2.0
    q = torch.softmax(teacher.log()[0] / t, dim=0)  # frame 0 only (mask)
    expected = t**2 * float((q * (q.log() - math.log(0.5))).sum())
    mask = torch.tensor([True, False])
    assert kd_loss(student, teacher, t, mask=mask).item() == pytest.approx(expected, rel=1e-5)


def test_selective_weights_thresholds():
    c = torch.tensor([0.05, 0.1, 0.5, 0.9, 0.95, 1.0])
    w = selective_kd_weights(c, upper=0.9, lower=0.1)
    assert w.tolist() == pytest.approx([0.0, 1.0, 1.0, 1.0, 0.6, 0.2], abs=1e-5)


def test_selective_kd_divides_by_all_frames():
    # frame 0: near-uniform teacher over 20 classes -> confidence < 0.1 -> weight 0
    # frame 1: moderate teacher -> weight 1
    n_classes = 20
    uniform = torch.full((n_classes,), 1.0 / n_classes)
    peaked = torch.full((n_classes,), 0.5 / (n_classes - 1))
    peaked[3] = 0.5
    teacher = torch.stack([uniform, peaked])
    student = torch.randn(2, n_classes)
    t = 1.0
    full = kd_loss(student[1:], teacher[1:], t)
    selective = selective_kd_loss(student, teacher, t, upper=0.9, lower=0.1)
    assert selective.item() == pytest.approx(full.item() / 2, rel=1e-5)


def test_selective_confidence_uses_softened_teacher():
    # T=1 confidence 0.95 (> upper) but after T=3 softening it is below 0.9 -> weight 1
    teacher = torch.tensor([[0.95, 0.05]])
    student = torch.zeros(1, 2)
    t = 3.0
    assert selective_kd_loss(student, teacher, t).item() == pytest.approx(
        kd_loss(student, teacher, t).item(), rel=1e-6
    )


def test_stage2_loss_mixes_terms():
    teacher = torch.tensor([[0.7, 0.2, 0.1], [0.2, 0.5, 0.3]])
    student = torch.tensor([[1.0, 0.0, -1.0], [0.0, 2.0, 0.0]])
    targets = torch.tensor([0, IGNORE_INDEX])
    expected = 0.3 * selective_kd_loss(student, teacher, 3.0) + 0.7 * focal_loss(
        student, targets, 2.0
    )
    got = stage2_loss(student, targets, teacher, alpha=0.3, temperature=3.0, gamma=2.0)
    assert got.item() == pytest.approx(expected.item(), rel=1e-6)
    plain = stage2_loss(student, targets, teacher, alpha=0.5, selective=False)
    assert plain.item() == pytest.approx(
        (0.5 * kd_loss(student, teacher, 3.0) + 0.5 * focal_loss(student, targets)).item(),
        rel=1e-6,
    )


def test_class_frame_counts_skip_ignored_and_out_of_range():
    labels = np.array([0, 2, 2, IGNORE_INDEX, 5, -3, 2, 0])
    assert class_frame_counts(labels, 4).tolist() == [2, 0, 3, 0]
    assert class_frame_counts(torch.tensor(labels), 4).dtype == np.int64


def test_class_weights_by_hand_normalised_and_unseen_as_rarest():
    # power 0.5: raw (100/100)^-0.5 = 1, (25/100)^-0.5 = 2; mean over frames 150/125 = 1.2
    w = class_weights(np.array([100, 25, 0]), power=0.5)
    assert w.dtype == torch.float32
    assert w.tolist() == pytest.approx([1 / 1.2, 2 / 1.2, 2 / 1.2], rel=1e-6)
    counts = np.array([100.0, 25.0])
    assert float((counts * w[:2].numpy()).sum() / counts.sum()) == pytest.approx(1.0)


def test_class_weights_cap_keeps_the_frame_mean_at_one():
    # uncapped 0.833 / 1.667; cap 1.5 on class 1 -> class 0 takes (125 - 1.5 * 25) / 100
    w = class_weights(torch.tensor([100, 25, 0]), power=0.5, cap=1.5)
    assert w.tolist() == pytest.approx([0.875, 1.5, 1.5], rel=1e-6)
    counts = np.array([5000, 3000, 100, 10, 1, 0, 0])
    w = class_weights(counts, power=1.0).numpy()
    assert w.max() == pytest.approx(CLASS_WEIGHT_CAP)
    assert float((counts * w).sum() / counts.sum()) == pytest.approx(1.0, rel=1e-6)
    assert np.all(np.diff(w[:5]) >= 0)  # rarer classes never weigh less


def test_class_weights_off_and_invalid():
    assert class_weights(np.array([9, 1, 0]), power=0.0).tolist() == [1.0, 1.0, 1.0]
    assert class_weights(np.zeros(3), power=0.5).tolist() == [1.0, 1.0, 1.0]
    with pytest.raises(ValueError):
        class_weights(np.array([1, 2]), power=-0.5)
    with pytest.raises(ValueError):
        class_weights(np.array([1, 2]), power=0.5, cap=0.5)


def test_weighted_focal_equals_unweighted_with_unit_weights():
    torch.manual_seed(0)
    logits = torch.randn(6, 4)
    targets = torch.tensor([0, 1, IGNORE_INDEX, 3, 3, 2])
    plain = focal_loss(logits, targets, 2.0)
    assert focal_loss(logits, targets, 2.0, torch.ones(4)).item() == pytest.approx(
        plain.item(), rel=1e-6
    )
    assert focal_loss(logits, targets, 2.0, torch.full((4,), 3.0)).item() == pytest.approx(
        plain.item(), rel=1e-6
    )  # only relative weights matter


def test_weighted_focal_leans_towards_the_heavier_class_by_hand():
    logits = torch.tensor([[math.log(3.0), 0.0], [0.0, math.log(3.0)], [9.0, 0.0]])
    targets = torch.tensor([0, 0, IGNORE_INDEX])  # p_y = 0.75 (easy), then 0.25 (hard)
    easy, hard = -math.log(0.75), -math.log(0.25)
    # gamma 0, weights by class: both frames are class 0 -> plain mean
    w = torch.tensor([2.0, 5.0])
    assert focal_loss(logits, targets, 0.0, w).item() == pytest.approx((easy + hard) / 2)
    # a hard frame of a rare (heavy) class raises the loss over the plain mean
    targets = torch.tensor([0, 1, IGNORE_INDEX])  # p_y = 0.75 (class 0), 0.25 (class 1)
    logits = torch.tensor([[math.log(3.0), 0.0], [math.log(3.0), 0.0], [0.0, 0.0]])
    per_frame = torch.tensor([-math.log(0.75), -math.log(0.25)])
    plain = focal_loss(logits, targets, 0.0)
    weighted = focal_loss(logits, targets, 0.0, torch.tensor([1.0, 3.0]))
    assert plain.item() == pytest.approx(float(per_frame.mean()), rel=1e-6)
    assert weighted.item() == pytest.approx(float((per_frame * torch.tensor([1, 3])).sum() / 4))
    assert weighted.item() > plain.item()


def test_weighted_focal_all_ignored_is_zero_with_graph():
    logits = torch.randn(3, 4, requires_grad=True)
    loss = focal_loss(logits, torch.full((3,), IGNORE_INDEX), 2.0, torch.ones(4))
    loss.backward()
    assert loss.item() == 0.0 and logits.grad is not None


def test_stage2_weights_only_the_focal_term():
    teacher = torch.tensor([[0.7, 0.2, 0.1], [0.2, 0.5, 0.3]])
    student = torch.tensor([[1.0, 0.0, -1.0], [0.0, 2.0, 0.0]])
    targets = torch.tensor([0, 2])
    w = torch.tensor([1.0, 1.0, 4.0])
    got = stage2_loss(student, targets, teacher, alpha=0.3, weights=w)
    expected = 0.3 * selective_kd_loss(student, teacher, 3.0) + 0.7 * focal_loss(
        student, targets, 2.0, w
    )
    assert got.item() == pytest.approx(expected.item(), rel=1e-6)
    assert got.item() != pytest.approx(stage2_loss(student, targets, teacher, alpha=0.3).item())
