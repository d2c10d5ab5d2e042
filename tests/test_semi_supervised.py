"""Semi-supervised options on pseudo-labels: confidence thresholds, distribution matching and
two-view consistency (training.pseudo_labels, training.consistency)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from bucket_helpers import feature_bucket, teacher_bucket

from mirkd.labels import ChordSegment
from mirkd.manifest import BucketFiles
from mirkd.store import TeacherOutput
from mirkd.training.consistency import (
    SHIFTS,
    Rotations,
    consistency_loss,
    second_view,
    shift_bins,
)
from mirkd.training.datasets import PseudoLabelDataset, shift_cqt, shift_probs
from mirkd.training.pseudo_labels import (
    PseudoLabelPolicy,
    alignment_factors,
    class_groups,
    group_names,
    group_shares,
    probability_mass,
    segment_seconds,
)
from mirkd.vocab import IGNORE_INDEX, LARGE

C, G, MAJ7 = LARGE.to_index("C"), LARGE.to_index("G"), LARGE.to_index("C:maj7")
CPU = torch.device("cpu")


def _two_way(first: int, second: int, p_first: float, n: int) -> np.ndarray:
    """[n, C] probabilities split between two classes (the rest share 1 %)."""
    probs = np.full((n, LARGE.size), 0.01 / (LARGE.size - 2), dtype=np.float32)
    probs[:, first], probs[:, second] = p_first, 0.99 - p_first
    return probs


def test_threshold_leaves_unconfident_frames_out():
    labels = np.array([C, G, C])
    confidence = np.array([0.9, 0.4, 0.5], dtype=np.float16)
    y = PseudoLabelPolicy(threshold=0.5).targets(labels, None, confidence)
    assert y.tolist() == [C, IGNORE_INDEX, C]
    assert PseudoLabelPolicy().targets(labels, None, None).tolist() == [C, G, C]
    with pytest.raises(ValueError, match="confidence"):
        PseudoLabelPolicy(threshold=0.5).targets(labels, None, None)


def test_groups_are_qualities_then_n_and_x():
    groups = class_groups(LARGE)
    names = group_names(LARGE)
    assert names[groups[MAJ7]] == "maj7" and names[groups[LARGE.to_index("D:maj7")]] == "maj7"
    assert names[groups[LARGE.n_index]] == "N" and names[groups[LARGE.x_index]] == "X"
    mass = np.zeros(LARGE.size)
    mass[C], mass[MAJ7], mass[LARGE.x_index] = 3.0, 1.0, 10.0
    shares = group_shares(mass, LARGE)
    assert shares[names.index("maj")] == pytest.approx(0.75)  # X left out
    assert shares[names.index("X")] == 0


def test_alignment_boosts_what_the_teacher_under_predicts():
    """Labeled songs hold more maj7 than the teacher predicts: maj7 wins its close calls."""
    teacher = np.zeros(LARGE.size)
    teacher[C], teacher[MAJ7] = 0.95, 0.05
    labeled = segment_seconds(
        [ChordSegment(0, 6, "C"), ChordSegment(6, 10, "C:maj7"), ChordSegment(10, 12, "X")],
        LARGE,
    )
    factors = alignment_factors(teacher, labeled, 1.0, LARGE)
    assert factors[MAJ7] > 1 > factors[C]
    assert factors[LARGE.to_index("F#:maj7")] == factors[MAJ7]  # every root alike
    assert factors[LARGE.x_index] == 1
    np.testing.assert_allclose(alignment_factors(teacher, labeled, 0.0, LARGE), 1.0)
    close = _two_way(C, MAJ7, 0.55, 2)
    policy = PseudoLabelPolicy(class_factors=factors)
    assert policy.targets(close.argmax(1), close, None).tolist() == [MAJ7, MAJ7]
    with pytest.raises(ValueError, match="strength"):
        alignment_factors(teacher, labeled, 1.5, LARGE)


def test_probability_mass_sums_in_chunks(monkeypatch):
    import mirkd.training.pseudo_labels as pl

    monkeypatch.setattr(pl, "CHUNK_ROWS", 3)
    a, b = _two_way(C, G, 0.7, 7), _two_way(G, C, 0.6, 2)
    np.testing.assert_allclose(probability_mass([a, b]), a.sum(0) + b.sum(0), rtol=1e-6)


def _bucket(tmp_path, probs):
    cqt = np.random.default_rng(0).normal(-5, 2, (len(probs), 144)).astype(np.float16)
    return BucketFiles(
        feature_bucket(tmp_path / "f.h5", {"a": cqt}),
        teacher_bucket(tmp_path / "t.h5", {"a": TeacherOutput.from_probs(probs)}),
    )


def test_dataset_applies_the_policy_and_tallies_it(tmp_path):
    probs = np.concatenate([_two_way(C, MAJ7, 0.9, 30), _two_way(C, MAJ7, 0.55, 20)])
    files = _bucket(tmp_path, probs)
    factors = np.ones(LARGE.size, np.float32)
    factors[MAJ7] = 2.0
    policy = PseudoLabelPolicy(threshold=0.6, class_factors=factors)
    ds = PseudoLabelDataset([files], seq_len=64, stride=64, policy=policy)
    y = ds[0]["y"].numpy()
    assert (y[:30] == C).all()  # confident and not overturned (0.9 vs 2 * 0.09)
    assert (y[30:50] == IGNORE_INDEX).all()  # overturned to maj7, but unconfident (0.55)
    assert (y[50:] == IGNORE_INDEX).all()  # padding
    assert "probs" not in ds[0]  # read for the policy only
    tally = ds.tally(LARGE)
    assert (tally["maj"].teacher, tally["maj"].target, tally["maj"].kept) == (50, 30, 30)
    assert (tally["maj7"].teacher, tally["maj7"].target, tally["maj7"].kept) == (0, 20, 0)
    assert tally["maj"].to_dict()["kept_share"] == 1.0


def test_shift_bins_matches_the_numpy_transposition():
    x = torch.randn(3, 5, 144) - 4
    bins = torch.tensor([4, -6, 0])
    out = shift_bins(x, bins)
    for i, semitones in enumerate((2, -3, 0)):
        np.testing.assert_allclose(out[i].numpy(), shift_cqt(x[i].numpy(), semitones), rtol=1e-6)


def test_second_view_transposes_targets_and_probs():
    torch.manual_seed(0)
    rotations = Rotations.of(LARGE, CPU)
    y = torch.tensor([[C, G, LARGE.n_index, IGNORE_INDEX]] * 8)
    probs = torch.from_numpy(np.stack([_two_way(C, G, 0.7, 4)] * 8))
    view = second_view(torch.randn(8, 4, 144), y, probs, rotations)
    for b in range(8):
        k = SHIFTS[int(view.shift[b])]
        assert view.y[b].tolist() == LARGE.transpose(y[b].numpy(), k).tolist()
        np.testing.assert_allclose(
            view.probs[b].numpy(), shift_probs(probs[b].numpy(), k, LARGE), rtol=1e-6
        )


def test_consistency_is_zero_for_an_equivariant_prediction():
    torch.manual_seed(1)
    rotations = Rotations.of(LARGE, CPU)
    logits = torch.randn(4, 6, LARGE.size)
    shift = torch.tensor([0, 3, 5, 10])
    # the second view's prediction: each class moved to its transposition
    rotated = torch.empty_like(logits)
    for b in range(4):
        rotated[b][:, rotations.forward[shift[b]]] = logits[b]
    mask = torch.ones(4, 6, dtype=torch.bool)
    assert float(consistency_loss(logits, rotated, shift, mask, rotations)) == pytest.approx(
        0.0, abs=1e-5
    )
    assert float(consistency_loss(logits, logits, shift, mask, rotations)) > 0.1
    mask[:, 3:] = False  # masked frames do not count
    partial = consistency_loss(logits, rotated, shift, mask, rotations)
    assert float(partial) == pytest.approx(0.0, abs=1e-5)
