"""Ensemble teacher: the weighted mean of several teachers' frame probabilities.

Every teacher writes probabilities over the same 170-class vocabulary on the pipeline's frame
grid, so an ensemble needs no network of its own: it reads its members' bucket files (cached
outputs, each reused by any run that names that member) and averages them frame by frame.
Pseudo-labels better than any single open-weight model are the cheapest way past it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mirkd.errors import MirkdError

GRID_KEYS = ("vocab", "sr", "hop_length")  # what members must share to be averaged


def mean_probs(probs: Sequence[np.ndarray], weights: Sequence[float]) -> np.ndarray:
    """[T, C] float32 weighted mean of the members' [T, C] probabilities (rows sum to 1)."""
    if len(probs) != len(weights) or not probs:
        raise ValueError("one weight per member, at least one member")
    shapes = {p.shape for p in probs}
    if len(shapes) != 1:
        raise ValueError(f"members disagree on the frame grid: shapes {sorted(shapes)}")
    w = np.asarray(weights, dtype=np.float64)
    w = w / w.sum()
    total = np.zeros(probs[0].shape, dtype=np.float64)
    for p, wk in zip(probs, w, strict=True):
        total += wk * np.asarray(p, dtype=np.float64)
    total /= total.sum(axis=1, keepdims=True).clip(min=1e-12)  # stored float16 rows drift
    return total.astype(np.float32)


def ensemble_identity(
    members: Sequence[Mapping[str, Any]], weights: Sequence[float]
) -> dict[str, str]:
    """kind, name and fingerprint of an ensemble from its members' identities (bucket attrs
    teacher_kind / teacher_name / teacher_fingerprint) and weights."""
    parts = [
        {"fingerprint": m["teacher_fingerprint"], "weight": float(w)}
        for m, w in zip(members, weights, strict=True)
    ]
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()
    names = " + ".join(
        f"{m['teacher_name']}" + ("" if w == 1 else f" x{w:g}")
        for m, w in zip(members, weights, strict=True)
    )
    return {"kind": "ensemble", "name": f"ensemble({names})", "fingerprint": digest}


def check_same_grid(members: Sequence[Mapping[str, Any]], paths: Sequence[str]) -> None:
    """MirkdError naming the member file whose vocabulary or frame grid differs."""
    first = {k: members[0].get(k) for k in GRID_KEYS}
    for attrs, path in zip(members[1:], paths[1:], strict=True):
        other = {k: attrs.get(k) for k in GRID_KEYS}
        if other != first:
            raise MirkdError(
                f"{path}: ensemble member has {other}, but {paths[0]} has {first}; members "
                "must share the vocabulary and frame grid"
            )
