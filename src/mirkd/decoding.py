"""Frame posteriors -> chord sequence: per-frame argmax, or Viterbi with a self-transition prior.

The HMM is the one chord-recognition peers use: a state per class, probability `stay` of
keeping the chord from one frame to the next and the rest spread evenly over the other
classes, a uniform start. Because every switch costs the same, the best predecessor of a
state is either the state itself or the best *other* state of the previous frame (the
overall best, or the runner-up for the best state itself), so one frame costs O(K) instead
of O(K^2). `stay` = 1/K makes every transition equally likely and the decoding equals the
argmax. `stay` is tuned on the validation split (`tune_stay`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

DECODINGS = ("argmax", "viterbi")
STAY_GRID: tuple[float, ...] = (0.5, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.998)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise log-softmax of [T, K] logits in float64."""
    x = np.asarray(logits, dtype=np.float64)
    x = x - x.max(axis=1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=1, keepdims=True))


def viterbi(log_probs: np.ndarray, stay: float) -> np.ndarray:
    """Most likely class path [T] (int64) for frame log-posteriors [T, K].

    Ties prefer keeping the current chord, then the lowest class index.
    """
    log_probs = np.asarray(log_probs, dtype=np.float64)
    n_frames, n_classes = log_probs.shape
    if n_frames == 0:
        return np.zeros(0, dtype=np.int64)
    if not 0.0 < stay < 1.0 or n_classes < 2:
        raise ValueError(f"stay must be in (0, 1) with at least 2 classes, got {stay}")
    log_stay = np.log(stay)
    log_switch = np.log((1.0 - stay) / (n_classes - 1))
    back = np.empty((n_frames, n_classes), dtype=np.int64)
    score = log_probs[0].copy()
    states = np.arange(n_classes)
    for t in range(1, n_frames):
        order = np.argsort(-score, kind="stable")
        best, runner_up = int(order[0]), int(order[1])
        source = np.full(n_classes, best)  # best other state: the overall best ...
        source[best] = runner_up  # ... except for the best state itself
        keep = score + log_stay
        switch = score[source] + log_switch
        stays = keep >= switch
        back[t] = np.where(stays, states, source)
        score = np.where(stays, keep, switch) + log_probs[t]
    path = np.empty(n_frames, dtype=np.int64)
    path[-1] = int(np.argmax(score))
    for t in range(n_frames - 1, 0, -1):
        path[t - 1] = back[t, path[t]]
    return path


def decode(log_probs: np.ndarray, stay: float | None) -> np.ndarray:
    """Argmax per frame if `stay` is None, else the Viterbi path."""
    if stay is None:
        return np.asarray(log_probs).argmax(axis=1)
    return viterbi(log_probs, stay)


def decoding_identity(stay: float | None) -> dict[str, Any]:
    """How `decode` turned posteriors into frames, for the metadata of written annotations."""
    return {"decoding": "argmax"} if stay is None else {"decoding": "viterbi", "stay": stay}


def tune_stay(
    log_probs: Mapping[str, np.ndarray],
    score: Callable[[Mapping[str, np.ndarray]], float],
    grid: Sequence[float] = STAY_GRID,
) -> tuple[float, dict[float, float]]:
    """The `stay` of `grid` whose decoded paths score best (ties: the smaller `stay`).

    `score` maps {track: frame classes} to a number where higher is better (for example the
    validation WCSR). Returns the choice and the score of every grid value.
    """
    scores = {
        float(stay): float(score({tid: viterbi(lp, stay) for tid, lp in log_probs.items()}))
        for stay in grid
    }
    best = max(scores, key=lambda s: (scores[s], -s))
    return best, scores
