"""Bucket assignment: sized in audio seconds, decided by hashes, stable when tracks are added."""

from __future__ import annotations

import numpy as np
import pytest

from mirkd.buckets import ROOT, assign_buckets, related


def _durations(n: int, seed: int = 0) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    return {f"track-{i:05d}": float(rng.uniform(120, 360)) for i in range(n)}


def test_buckets_hold_at_most_the_size_and_every_track_once():
    durations = _durations(2000)
    buckets = assign_buckets(durations, 8 * 3600)
    assert sorted(t for ids in buckets.values() for t in ids) == sorted(durations)
    sizes = [sum(durations[t] for t in ids) for ids in buckets.values()]
    assert max(sizes) <= 8 * 3600
    assert 2000 * 240 / (8 * 3600) <= len(buckets) <= 4 * 2000 * 240 / (8 * 3600)
    assert all(name.startswith(ROOT) and set(name[1:]) <= {"0", "1"} for name in buckets)


def test_a_small_group_is_one_bucket_and_a_long_track_stays_whole():
    assert assign_buckets({"a": 10.0, "b": 20.0}, 100.0) == {ROOT: ["a", "b"]}
    assert assign_buckets({"long": 500.0}, 100.0) == {ROOT: ["long"]}
    assert assign_buckets({}, 100.0) == {}
    with pytest.raises(ValueError, match="positive"):
        assign_buckets({"a": 1.0}, 0)


def test_adding_a_track_changes_only_the_bucket_it_lands_in():
    durations = _durations(3000, seed=1)
    before = assign_buckets(durations, 4 * 3600)
    for k in range(20):  # whichever bucket each new track lands in
        grown = {**durations, f"new-{k}": 300.0}
        after = assign_buckets(grown, 4 * 3600)
        changed_before = {n for n, ids in before.items() if after.get(n) != ids}
        changed_after = {n for n, ids in after.items() if before.get(n) != ids}
        assert len(changed_before) == 1  # the bucket it fell into ...
        (old,) = changed_before
        # ... which grew, or split into its two halves
        assert changed_after == {old} or changed_after <= {old + "0", old + "1"}
        assert sorted(t for n in changed_after for t in after[n]) == sorted(
            before[old] + [f"new-{k}"]
        )


def test_assignment_does_not_depend_on_order():
    durations = _durations(500, seed=2)
    shuffled = dict(reversed(list(durations.items())))
    assert assign_buckets(durations, 3600) == assign_buckets(shuffled, 3600)


def test_related_buckets_are_ancestors_and_descendants_only():
    assert related("b01", "b") and related("b01", "b0") and related("b0", "b011")
    assert not related("b01", "b01") and not related("b01", "b1") and not related("b0", "b10")
    assert not related("b0", "bx") and not related("stage1", "b")
