"""Chord vocabularies and the label mapping policy (docs/label-mapping.md)."""

from __future__ import annotations

import numpy as np
import pytest

from mirkd.errors import ChordLabelError, ConfigError
from mirkd.vocab import IGNORE_INDEX, LARGE, MAJMIN, QUALITIES, ROOTS, get_vocabulary

from workflow_helpers import POP909_SONGS

POP909_LABS = sorted(POP909_SONGS.glob("*/chord_midi.txt"))


def test_large_layout_matches_reference():
    assert LARGE.size == 170 and len(LARGE.labels) == 170
    assert (LARGE.x_index, LARGE.n_index) == (168, 169)
    assert LARGE.to_label(0) == "C:min"
    assert LARGE.to_label(1) == "C"
    assert LARGE.to_label(149) == "A#:7"
    assert LARGE.to_label(155) == "B"
    assert LARGE.to_label(167) == "B:sus4"
    assert LARGE.labels[168:] == ("X", "N")
    assert len(set(LARGE.labels)) == 170


def test_majmin_layout_matches_reference():
    assert MAJMIN.size == 25 and MAJMIN.x_index is None and MAJMIN.n_index == 24
    assert MAJMIN.labels[:4] == ("C", "C:min", "C#", "C#:min")
    assert MAJMIN.labels[-3:] == ("B", "B:min", "N")


@pytest.mark.parametrize("vocab", [LARGE, MAJMIN])
def test_index_label_roundtrip_for_every_class(vocab):
    for i in range(vocab.size):
        assert vocab.to_index(vocab.to_label(i)) == i


def test_root_and_quality_of_every_large_class():
    for r, root in enumerate(ROOTS):
        for q, quality in enumerate(QUALITIES):
            i = 14 * r + q
            assert LARGE.root(i) == r and LARGE.quality(i) == quality
            assert LARGE.to_label(i).startswith(root)
    assert (LARGE.root(168), LARGE.quality(168)) == (-1, "X")
    assert (LARGE.root(169), LARGE.quality(169)) == (-1, "N")
    with pytest.raises(ValueError):
        LARGE.to_label(170)


@pytest.mark.parametrize(
    "label, index",
    [
        ("Cb", 155),  # B
        ("E#:min", 70),  # F:min
        ("Db:maj7", 22),  # C#:maj7
        ("B#:7", 9),  # C:7
        ("Fbb:min", 42),  # D#:min
        ("C:maj/3", 1),
        ("C:7/b7", 9),
        ("A:7/3", 135),
        ("C:9", 9),
        ("C:13", 9),
        ("C:7(#9)", 9),
        ("C:maj9", 8),
        ("C:maj13", 8),
        ("C:min11", 6),
        ("C:minmaj7", 7),  # kept, unlike mir_eval's reduction to min
        ("C:maj(9)", 1),
        ("C:min(9)", 0),
        ("G:sus4(b7)", 111),
        ("C:aug7", 3),
        ("C:(1,3,5)", 1),
        ("C:(3,5)", 1),
        ("C:(1,b3,5,b7)", 6),
        ("C:min7(*5)", 6),
        ("C:1", 168),
        ("C:5", 168),
        ("C:(1)", 168),
        ("C:(1,5)", 168),
        ("C:(1,2,3,4)", 168),
        ("C:maj(*3)", 168),
        ("C:sus4(*4)", 168),
        ("X", 168),
        ("N", 169),
        (" G:min \n", 98),
    ],
)
def test_large_mapping_policy(label, index):
    assert LARGE.to_index(label) == index


@pytest.mark.parametrize(
    "label, index",
    [
        ("C:min7", 1),
        ("D:minmaj7", 5),
        ("C:min6", 1),
        ("C:dim", 0),
        ("C:hdim7", 0),
        ("C:sus2", 0),
        ("C:aug", 0),
        ("Cb", 22),
        ("E#:min", 11),
        ("X", 24),
        ("C:5", 24),
        ("N", 24),
    ],
)
def test_majmin_mapping_policy(label, index):
    assert MAJMIN.to_index(label) == index


@pytest.mark.parametrize("label", ["C:7sus4", "Cmaj", "C:b9", "", "H", "C:min/x", "C::min"])
def test_unparsable_labels_raise_naming_the_label(label):
    with pytest.raises(ChordLabelError) as info:
        LARGE.to_index(label)
    assert repr(label) in str(info.value)


def test_transpose_moves_roots_and_keeps_n_x_ignore():
    idx = np.array([LARGE.to_index(x) for x in ["C:min", "B", "A#:7", "X", "N"]] + [IGNORE_INDEX])
    up2 = LARGE.transpose(idx, 2)
    assert [LARGE.to_label(int(i)) for i in up2[:5]] == ["D:min", "C#", "C:7", "X", "N"]
    assert up2[5] == IGNORE_INDEX
    assert up2.dtype == idx.dtype
    mm = np.array([MAJMIN.to_index(x) for x in ["C:min", "B", "N"]])
    assert [MAJMIN.to_label(int(i)) for i in MAJMIN.transpose(mm, -1)] == ["B:min", "A#", "N"]


@pytest.mark.parametrize("vocab", [LARGE, MAJMIN])
def test_transpose_roundtrip_all_shifts(vocab):
    idx = np.arange(vocab.size)
    for s in range(-5, 7):
        moved = vocab.transpose(idx, s)
        assert sorted(moved.tolist()) == idx.tolist()  # a permutation
        assert np.array_equal(vocab.transpose(moved, -s), idx)
    assert np.array_equal(vocab.transpose(idx, 12), idx)


def test_loss_targets_ignore_x_only_in_large():
    idx = np.array([0, 168, 169, 5])
    assert LARGE.loss_targets(idx).tolist() == [0, IGNORE_INDEX, 169, 5]
    assert MAJMIN.loss_targets(np.array([0, 24])).tolist() == [0, 24]


def test_get_vocabulary():
    assert get_vocabulary("large170") is LARGE
    assert get_vocabulary("majmin25") is MAJMIN
    with pytest.raises(ConfigError, match="nope"):
        get_vocabulary("nope")


@pytest.mark.skipif(not POP909_LABS, reason=f"POP909 annotations absent under {POP909_SONGS}")
def test_every_pop909_label_maps():
    labels = {line.split()[2] for path in POP909_LABS for line in open(path) if line.strip()}
    assert len(labels) > 100
    large = {label: LARGE.to_index(label) for label in labels}
    majmin = {label: MAJMIN.to_index(label) for label in labels}
    n_x = sum(i == LARGE.x_index for i in large.values())
    print(f"POP909: {len(labels)} distinct labels, {n_x} map to X")
    assert n_x == 0  # every POP909 label is a triad/tetrad of the vocabulary (after the policy)
    assert all(0 <= i < LARGE.size for i in large.values())
    assert all(0 <= i < MAJMIN.size for i in majmin.values())
    assert large["G:sus4(b7)"] == LARGE.to_index("G:sus4")
