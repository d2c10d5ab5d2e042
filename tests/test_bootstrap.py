"""Song-level bootstrap intervals and paired differences of the weighted mean scores."""

from __future__ import annotations

import numpy as np
import pytest

from mirkd.evaluation import METRICS, bootstrap_ci, mean7, paired_difference, weighted_mean_scores


def _per_song(values: list[float], durations: list[float]) -> dict[str, dict]:
    return {
        f"s{i}": {"duration": d, "scores": {m: v for m in METRICS}}
        for i, (v, d) in enumerate(zip(values, durations, strict=True))
    }


def test_interval_contains_the_mean_and_narrows_with_more_songs() -> None:
    rng = np.random.default_rng(0)
    few = _per_song(list(rng.uniform(0.5, 0.9, 8)), [100.0] * 8)
    many = _per_song(list(rng.uniform(0.5, 0.9, 200)), [100.0] * 200)
    for songs in (few, many):
        lo, hi = bootstrap_ci(songs)["mean7"]
        assert lo <= mean7(weighted_mean_scores(songs)) <= hi
    width = {k: np.diff(bootstrap_ci(s)["majmin"])[0] for k, s in (("few", few), ("many", many))}
    assert width["many"] < width["few"] / 2


def test_identical_songs_give_a_point_interval_and_durations_weigh() -> None:
    assert bootstrap_ci(_per_song([0.7] * 5, [10.0] * 5))["root"] == pytest.approx([0.7, 0.7])
    weighted = bootstrap_ci(_per_song([1.0, 0.0], [99.0, 1.0]), n_resamples=500)
    assert weighted["root"][1] == pytest.approx(1.0)
    assert bootstrap_ci({})["mean7"] is None


def test_missing_metric_of_a_song_is_left_out() -> None:
    songs = _per_song([0.8, 0.6], [10.0, 10.0])
    songs["s1"]["scores"]["tetrads"] = None
    assert bootstrap_ci(songs)["tetrads"] == pytest.approx([0.8, 0.8])


def test_paired_difference_cancels_song_difficulty() -> None:
    rng = np.random.default_rng(1)
    difficulty = rng.uniform(0.3, 0.95, 40)
    a = _per_song(list(difficulty + 0.02), [60.0] * 40)
    b = _per_song(list(difficulty), [60.0] * 40)
    diff = paired_difference(a, b)
    assert diff["mean7"] == pytest.approx(0.02)
    assert diff["ci95"][0] == pytest.approx(0.02) and diff["ci95"][1] == pytest.approx(0.02)
    with pytest.raises(ValueError, match="same songs"):
        paired_difference(a, _per_song([0.5], [1.0]))
