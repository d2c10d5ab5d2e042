"""From teacher outputs to training targets: confidence thresholds and distribution matching.

Stage 1 (and stage-2 rehearsal) train on the teacher's argmax. Two semi-supervised remedies for
a teacher's biases act on those targets (``PseudoLabelPolicy``):

- **Confidence threshold**: a frame whose teacher confidence (max probability, as stored) is
  below ``threshold`` is left out of the loss (its target becomes IGNORE_INDEX), so only the
  pseudo-labels the teacher is sure of train (FixMatch, OF-SS4).
- **Distribution matching**: the teacher's probabilities are multiplied by a factor per class
  before the argmax, ``(p_lab(g) / p_teacher(g)) ** strength`` for the class's group ``g`` (its
  chord quality; N; X keeps factor 1), where ``p_lab`` is the labeled training songs' share of
  time per group and ``p_teacher`` the teacher's mean probability mass per group over the
  unlabeled frames (ReMixMatch's distribution alignment, over qualities: roots are
  transposition-symmetric and a few labeled songs cannot estimate 170 class frequencies).
  A quality the teacher under-predicts (maj7, sus4, ...) then wins the frames where it was a
  close second. The threshold still reads the teacher's own confidence.

Groups: index ``q`` for rooted classes of quality ``q`` (``vocab.qualities`` order), then N,
then X.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from mirkd.labels import ChordSegment
from mirkd.vocab import IGNORE_INDEX, Vocabulary

# Added to both shares before their ratio, so a group absent from the labeled songs (or never
# predicted) gets a bounded factor instead of 0 or infinity.
SHARE_FLOOR = 1e-3
CHUNK_ROWS = 1 << 16  # probability rows summed at a time (bounded memory at any corpus size)


@dataclass(frozen=True)
class PseudoLabelPolicy:
    """How teacher outputs become targets: ``threshold`` in [0, 1) on the teacher's confidence
    (0: keep every frame); ``class_factors`` float32 [C] multiplying the teacher's probabilities
    before the argmax (None: the stored argmax)."""

    threshold: float = 0.0
    class_factors: np.ndarray | None = None

    @property
    def reads_probs(self) -> bool:
        return self.class_factors is not None

    @property
    def reads_confidence(self) -> bool:
        return self.threshold > 0

    def targets(
        self, labels: np.ndarray, probs: np.ndarray | None, confidence: np.ndarray | None
    ) -> np.ndarray:
        """int64 targets of frames (any leading shape): the (re-weighted) argmax, IGNORE_INDEX
        where the confidence is below the threshold."""
        return self.kept(self.chosen(labels, probs), confidence)

    def chosen(self, labels: np.ndarray, probs: np.ndarray | None) -> np.ndarray:
        """int64 class of each frame before the threshold: the stored argmax, or the argmax of
        the re-weighted probabilities."""
        if self.class_factors is None:
            return np.asarray(labels, dtype=np.int64)
        if probs is None:
            raise ValueError("distribution matching needs the teacher's probabilities")
        return np.argmax(probs.astype(np.float32) * self.class_factors, axis=-1).astype(np.int64)

    def kept(self, chosen: np.ndarray, confidence: np.ndarray | None) -> np.ndarray:
        """`chosen` with IGNORE_INDEX where the confidence is below the threshold."""
        if self.threshold <= 0:
            return chosen
        if confidence is None:
            raise ValueError("a confidence threshold needs the teacher's confidences")
        return np.where(confidence.astype(np.float32) < self.threshold, IGNORE_INDEX, chosen)


def group_names(vocab: Vocabulary) -> tuple[str, ...]:
    """Names of the groups: the qualities, then N, then X."""
    return (*vocab.qualities, "N", "X")


def class_groups(vocab: Vocabulary) -> np.ndarray:
    """int64 [C]: the group of each class (quality index, N, X)."""
    names = group_names(vocab)
    return np.array([names.index(vocab.quality(c)) for c in range(vocab.size)], dtype=np.int64)


def group_shares(class_mass: np.ndarray, vocab: Vocabulary) -> np.ndarray:
    """float64 [G]: share of the mass per group, X left out (it is no chord to match)."""
    mass = np.bincount(class_groups(vocab), weights=np.asarray(class_mass, np.float64))
    mass = np.pad(mass, (0, len(group_names(vocab)) - len(mass)))
    mass[group_names(vocab).index("X")] = 0.0
    total = mass.sum()
    return mass / total if total > 0 else mass


def segment_seconds(segments: Iterable[ChordSegment], vocab: Vocabulary) -> np.ndarray:
    """float64 [C]: seconds per class of annotated segments (the labeled songs' prior)."""
    seconds = np.zeros(vocab.size)
    for seg in segments:
        seconds[vocab.to_index(seg.label)] += max(0.0, seg.end - seg.start)
    return seconds


def probability_mass(probs_arrays: Sequence[np.ndarray]) -> np.ndarray:
    """float64 [C]: the sum of probability rows over arrays of [N, C] (e.g. memory-mapped
    teacher buckets), read in chunks."""
    total: np.ndarray | None = None
    for probs in probs_arrays:
        for start in range(0, len(probs), CHUNK_ROWS):
            part = np.asarray(probs[start : start + CHUNK_ROWS], dtype=np.float32).sum(axis=0)
            total = part.astype(np.float64) if total is None else total + part
    if total is None:
        raise ValueError("no teacher probabilities to sum")
    return total


def alignment_factors(
    teacher_mass: np.ndarray, labeled_mass: np.ndarray, strength: float, vocab: Vocabulary
) -> np.ndarray:
    """float32 [C]: ``((p_lab(g) + floor) / (p_teacher(g) + floor)) ** strength`` per class
    group ``g`` (X: 1). Both masses are [C] (teacher: summed probabilities; labeled: seconds)."""
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"distribution matching strength {strength} must lie in [0, 1]")
    ratio = (group_shares(labeled_mass, vocab) + SHARE_FLOOR) / (
        group_shares(teacher_mass, vocab) + SHARE_FLOOR
    )
    ratio[group_names(vocab).index("X")] = 1.0
    return (ratio**strength)[class_groups(vocab)].astype(np.float32)


@dataclass(frozen=True)
class GroupTally:
    """Frames of one group: as the teacher's argmax, as the policy's target before the
    threshold, and the targets kept by it."""

    teacher: int
    target: int
    kept: int

    def to_dict(self) -> dict[str, float]:
        share = self.kept / self.target if self.target else 0.0
        return {
            "teacher": self.teacher,
            "target": self.target,
            "kept": self.kept,
            "kept_share": share,
        }


def tally_targets(
    labels: np.ndarray,
    probs: np.ndarray | None,
    confidence: np.ndarray | None,
    policy: PseudoLabelPolicy,
    vocab: Vocabulary,
) -> dict[str, GroupTally]:
    """Per group: the teacher's argmax frames, the policy's targets and those it keeps, over
    some frames of a bucket (add tallies of several with ``add_tallies``)."""
    groups = class_groups(vocab)
    n = len(group_names(vocab))
    target = policy.chosen(labels, probs)
    kept = policy.kept(target, confidence)
    teacher_n = np.bincount(groups[np.asarray(labels, np.int64)], minlength=n)
    target_n = np.bincount(groups[target], minlength=n)
    kept_n = np.bincount(groups[kept[kept != IGNORE_INDEX]], minlength=n)
    return {
        name: GroupTally(int(teacher_n[g]), int(target_n[g]), int(kept_n[g]))
        for g, name in enumerate(group_names(vocab))
    }


def add_tallies(a: dict[str, GroupTally], b: dict[str, GroupTally]) -> dict[str, GroupTally]:
    return {
        k: GroupTally(a[k].teacher + b[k].teacher, a[k].target + b[k].target, a[k].kept + b[k].kept)
        for k in a
    }
