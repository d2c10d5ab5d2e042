"""Bucket files: parts, packing, memory-mapped reads, and a resumable bucket job."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from mirkd.errors import MirkdError
from mirkd.manifest import TrackFiles
from mirkd.steps.buckets import BucketWork
from mirkd.store import BucketFile, TrackPart, pack_bucket, read_part, write_part


def _part(tid: str, n: int, fingerprint: str = "fp", skipped: str = "") -> TrackPart:
    cqt = np.arange(n * 4, dtype=np.float16).reshape(n, 4) + len(tid)
    return TrackPart(tid, fingerprint, f"{tid}.wav", skipped, {"cqt": cqt}, {"duration": n / 10})


def test_part_round_trip_and_unreadable_parts(tmp_path):
    part = _part("a", 5)
    write_part(tmp_path / "a.npz", part)
    back = read_part(tmp_path / "a.npz")
    assert back is not None and back.track_id == "a" and back.values == {"duration": 0.5}
    np.testing.assert_array_equal(back.frames["cqt"], part.frames["cqt"])
    assert read_part(tmp_path / "missing.npz") is None
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04 half a zip")
    assert read_part(tmp_path / "bad.npz") is None


def test_packed_bucket_is_contiguous_and_memory_mapped(tmp_path):
    parts = [_part("a", 5), _part("skip", 0, skipped="bad audio"), _part("c", 3)]
    path = tmp_path / "b.h5"
    pack_bucket(path, parts, {"kind": "test"})
    bucket = BucketFile(path)
    assert bucket.track_ids == ["a", "skip", "c"] and bucket.usable() == ["a", "c"]
    assert bucket.skipped() == {"skip": "bad audio"} and bucket.attrs["kind"] == "test"
    assert list(bucket.offsets) == [0, 5, 5, 8]
    mapped = bucket.memmap("cqt")
    assert isinstance(mapped, np.memmap) and mapped.shape == (8, 4)
    np.testing.assert_array_equal(bucket.frames("cqt", "c"), parts[2].frames["cqt"])
    assert bucket.column("duration", "a") == 0.5 and bucket.column("source", "c") == "c.wav"
    with h5py.File(path) as f:
        assert f["cqt"].chunks is None and f["cqt"].compression is None
    with pytest.raises(MirkdError, match="no track 'x'"):
        bucket.span("x")
    assert [p.name for p in tmp_path.iterdir()] == ["b.h5"]  # written atomically


def test_bucket_work_resumes_only_matching_parts(tmp_path):
    tracks = [TrackFiles(t, f"{t}.wav", str(tmp_path / "b.h5"), "", None, f"fp-{t}") for t in "abc"]
    job = BucketWork.open(tmp_path / "work", {"params": 1})
    job.save(_part("a", 2, fingerprint="fp-a"))
    job.save(_part("b", 2, fingerprint="old content"))
    assert [t.track_id for t in job.todo(tracks)] == ["b", "c"]
    other = BucketWork.open(tmp_path / "work", {"params": 2})  # changed settings: start afresh
    assert [t.track_id for t in other.todo(tracks)] == ["a", "b", "c"]
    assert not job.folder.exists()
    for t in tracks:
        other.save(_part(t.track_id, 3, fingerprint=t.fingerprint))
    other.finish(tracks[0].features, tracks, {"kind": "test"})
    assert BucketFile(tracks[0].features).track_ids == ["a", "b", "c"]
    assert not (tmp_path / "work").exists()


def test_a_redone_bucket_carries_over_the_tracks_made_the_same_way(tmp_path):
    previous = tmp_path / "b.h5"
    parts = [_part("a", 3, "fp-a"), _part("b", 2, "fp-b"), _part("s", 0, "fp-s", skipped="bad")]
    pack_bucket(previous, parts, {"kind": "test"})
    tracks = [
        TrackFiles(t, f"{t}.wav", str(previous), "", None, fp)
        for t, fp in (("a", "fp-a"), ("b", "new content"), ("c", "fp-c"), ("s", "fp-s"))
    ]
    job = BucketWork.open(tmp_path / "work", {"params": 1})
    job.reuse(str(previous), tracks, {"kind": "test"})
    assert [t.track_id for t in job.todo(tracks)] == ["b", "c", "s"]  # a carried over; s retried
    carried = read_part(job.part_path("a"))
    assert carried is not None and carried.values == {"duration": 0.3}
    np.testing.assert_array_equal(carried.frames["cqt"], _part("a", 3).frames["cqt"])

    other = BucketWork.open(tmp_path / "work2", {"params": 1})
    other.reuse(str(previous), tracks, {"kind": "made otherwise"})
    assert [t.track_id for t in other.todo(tracks)] == ["a", "b", "c", "s"]
    other.reuse(str(tmp_path / "missing.h5"), tracks, {"kind": "test"})  # first run: nothing
