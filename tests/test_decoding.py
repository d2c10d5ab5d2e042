"""Viterbi decoding with a self-transition prior, and its tuning on validation songs."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from mirkd.decoding import decode, log_softmax, tune_stay, viterbi


def _brute_force(log_probs: np.ndarray, stay: float) -> tuple[int, ...]:
    n_frames, n_classes = log_probs.shape
    switch = (1 - stay) / (n_classes - 1)

    def score(path: tuple[int, ...]) -> float:
        total = log_probs[0, path[0]]
        for t in range(1, n_frames):
            total += np.log(stay if path[t] == path[t - 1] else switch) + log_probs[t, path[t]]
        return total

    return max(itertools.product(range(n_classes), repeat=n_frames), key=score)


def test_known_path_on_a_toy_hmm() -> None:
    probs = np.array([[0.6, 0.4], [0.4, 0.6], [0.6, 0.4], [0.1, 0.9], [0.1, 0.9]])
    # a strong prior keeps one chord through the two weak flips, a weak one follows the frames
    assert viterbi(np.log(probs), 0.9).tolist() == [1, 1, 1, 1, 1]
    assert viterbi(np.log(probs), 0.5).tolist() == [0, 1, 0, 1, 1]


@pytest.mark.parametrize("seed", range(5))
def test_matches_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    log_probs = log_softmax(rng.normal(size=(6, 3)) * 2)
    for stay in (0.05, 0.2, 0.4, 0.8, 0.97):  # below and above 1/K
        assert tuple(viterbi(log_probs, stay)) == _brute_force(log_probs, stay)


def test_ties_keep_the_chord_then_take_the_lowest_class() -> None:
    flat = np.log(np.full((4, 3), 1 / 3))
    assert viterbi(flat, 0.9).tolist() == [0, 0, 0, 0]
    tie_then_one = np.log(np.array([[0.5, 0.5], [0.5, 0.5], [0.2, 0.8]]))
    assert viterbi(tie_then_one, 0.9).tolist() == [1, 1, 1]


def test_one_frame_and_no_frame() -> None:
    assert viterbi(np.log([[0.2, 0.7, 0.1]]), 0.9).tolist() == [1]
    assert viterbi(np.zeros((0, 4)), 0.9).shape == (0,)


def test_uniform_transitions_equal_the_argmax() -> None:
    log_probs = log_softmax(np.random.default_rng(0).normal(size=(50, 5)))
    assert (viterbi(log_probs, 1 / 5) == log_probs.argmax(axis=1)).all()
    assert (decode(log_probs, None) == log_probs.argmax(axis=1)).all()


def test_bad_prior_is_refused() -> None:
    with pytest.raises(ValueError, match="stay"):
        viterbi(np.zeros((3, 2)), 1.0)


def test_tuning_picks_the_prior_that_scores_best() -> None:
    truth = np.repeat([0, 1, 2], 20)
    noisy = np.full((60, 3), np.log(0.2))
    noisy[np.arange(60), truth] = np.log(0.6)
    noisy[::7] = np.log([0.45, 0.1, 0.45])  # isolated confusions
    tracks = {"a": noisy}

    def accuracy(frames: dict[str, np.ndarray]) -> float:
        return float((frames["a"] == truth).mean())

    best, scores = tune_stay(tracks, accuracy, grid=(0.34, 0.9))
    assert best == 0.9 and scores[0.9] > scores[0.34]
