"""Buckets: groups of tracks, a few hours of audio each, that share one features job and one
teacher job (and one file each).

A bucket is a prefix of the bits of a hash of the track id. Every group of tracks starts as one
bucket ("b"); a bucket holding more than the size limit splits on its next hash bit into two
("b0", "b1"), recursively. The assignment is a function of the set of (id, duration) pairs, and
adding a track only grows the bucket it hashes into: no other bucket's tracks change, and when
that bucket outgrows the limit it splits, so only its tracks are redone. 1,000 h of audio in
8-h buckets make about 180 buckets (a split bucket's halves hold between 0 and the limit).
When tracks come or go, a bucket's tracks were held before by its ancestor (it split) or its
descendants (they merged): `related` says which earlier files a new bucket may carry tracks from.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping

ROOT = "b"
MAX_DEPTH = 48  # bits of the hash used; no real corpus needs that many splits
_NAME = re.compile(rf"{ROOT}[01]*")


def _hash_bits(track_id: str) -> str:
    """The first MAX_DEPTH bits of the track id's bucket hash, as a string of 0/1."""
    value = int(hashlib.sha1(("bucket:" + track_id).encode("utf-8")).hexdigest()[:12], 16)
    return format(value, f"0{MAX_DEPTH}b")


def assign_buckets(durations: Mapping[str, float], max_seconds: float) -> dict[str, list[str]]:
    """Bucket name -> sorted track ids, each bucket holding at most `max_seconds` of audio
    unless it is a single track (or MAX_DEPTH is reached). Empty halves make no bucket."""
    if max_seconds <= 0:
        raise ValueError(f"bucket size must be positive, got {max_seconds} s")
    bits = {tid: _hash_bits(tid) for tid in durations}
    buckets: dict[str, list[str]] = {}
    pending = [(ROOT, sorted(durations))] if durations else []
    while pending:
        name, ids = pending.pop()
        depth = len(name) - len(ROOT)
        if len(ids) > 1 and depth < MAX_DEPTH and sum(durations[t] for t in ids) > max_seconds:
            for bit in "01":
                half = [t for t in ids if bits[t][depth] == bit]
                if half:
                    pending.append((name + bit, half))
        else:
            buckets[name] = ids
    return dict(sorted(buckets.items()))


def related(name: str, other: str) -> bool:
    """Whether bucket `other` (of an earlier plan of the same group) may hold tracks that bucket
    `name` holds now: one is a prefix of the other (a split or a merge since), not the same."""
    if other == name or not (_NAME.fullmatch(name) and _NAME.fullmatch(other)):
        return False
    return name.startswith(other) or other.startswith(name)
