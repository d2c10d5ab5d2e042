"""Bucket files: parts, packing, memory-mapped reads, integrity, and a resumable bucket job."""

from __future__ import annotations

import logging
import os
import re
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from bucket_helpers import damage, feature_bucket, teacher_bucket

from mirkd import store
from mirkd.errors import DamagedBucketError, MirkdError
from mirkd.manifest import TrackFiles
from mirkd.steps.buckets import BucketWork
from mirkd.store import (
    BucketFile,
    TeacherOutput,
    TrackPart,
    add_checksums,
    pack_bucket,
    read_part,
    read_teacher_output,
    read_track_features,
    verified_path,
    write_part,
)
from mirkd.vocab import LARGE


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
    # written atomically; its verification recorded beside it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.h5", "b.h5.verified"]


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


def test_a_split_or_merged_bucket_carries_over_from_its_related_files(tmp_path):
    parent = tmp_path / "b.h5"
    pack_bucket(parent, [_part("a", 3, "fp-a"), _part("b", 2, "fp-b")], {"kind": "test"})
    pack_bucket(tmp_path / "b11.h5", [_part("c", 4, "fp-c")], {"kind": "test"})
    pack_bucket(tmp_path / "b0x.h5", [_part("x", 4, "fp-x")], {"kind": "test"})  # no bucket
    tracks = [TrackFiles(t, f"{t}.wav", "", "", None, f"fp-{t}") for t in ("a", "c", "d", "x")]
    job = BucketWork.open(tmp_path / "work", {"params": 1})
    job.reuse(str(tmp_path / "b1.h5"), tracks, {"kind": "test"})  # b split; b11 merged into b1
    assert [t.track_id for t in job.todo(tracks)] == ["d", "x"]
    carried = read_part(job.part_path("c"))
    assert carried is not None and carried.values == {"duration": 0.4}


def _features(tmp_path, name: str = "f.h5") -> str:
    rng = np.random.default_rng(0)
    tracks = {"a": rng.normal(-5, 2, (200, 144)), "b": rng.normal(-5, 2, (100, 144))}
    return feature_bucket(tmp_path / name, tracks)


def _damaged(path: str, array: str) -> str:
    """What a DamagedBucketError about `array` of `path` says: file, array, how to remake."""
    return rf"{re.escape(path)}: {array}: .*delete it and rerun snakemake to remake it"


def test_damaged_features_are_never_read(tmp_path):
    path = _features(tmp_path)
    damage(path, "cqt", at=1000)  # random bytes, size and mtime kept
    for read in (
        lambda: BucketFile(path).memmap("cqt"),
        lambda: read_track_features(path, "a"),
        lambda: BucketFile(path).part("b"),
    ):
        with pytest.raises(DamagedBucketError, match=_damaged(path, "cqt")) as caught:
            read()
        assert "checksum mismatch" in caught.value.cause


def test_damaged_teacher_labels_name_the_class_index_out_of_range(tmp_path):
    probs = np.full((50, LARGE.size), 1 / LARGE.size)
    path = teacher_bucket(tmp_path / "t.h5", {"a": TeacherOutput.from_probs(probs)})
    damage(path, "labels", np.int16(9999).tobytes(), at=2 * 10)
    message = r"checksum mismatch .*; class index outside \[0, 170\) at row 10: 9999"
    with pytest.raises(DamagedBucketError, match=_damaged(path, "labels")) as caught:
        read_teacher_output(BucketFile(path), "a")
    assert re.search(message, caught.value.cause)


def test_damaged_offsets_or_a_truncated_file_are_refused_on_opening(tmp_path):
    path = _features(tmp_path)
    damage(path, "offsets", np.int64(150).tobytes(), at=8)
    with pytest.raises(DamagedBucketError, match=_damaged(path, "offsets")):
        BucketFile(path)
    truncated = _features(tmp_path, "t.h5")
    os.truncate(truncated, os.path.getsize(truncated) // 2)
    with pytest.raises(DamagedBucketError, match=_damaged(truncated, "file")):
        BucketFile(truncated)


def test_packing_refuses_impossible_values_naming_the_track(tmp_path):
    cqt = np.zeros((5, 144))
    cqt[3, 7] = np.inf
    with pytest.raises(MirkdError, match="f.h5: track a: cqt: non-finite value at row 3: inf"):
        feature_bucket(tmp_path / "f.h5", {"a": cqt})
    probs = np.full((4, LARGE.size), 1 / LARGE.size, dtype=np.float16)
    labels = np.array([0, 1, 170, 2], dtype=np.int16)
    bad = TeacherOutput(labels, probs, probs.max(axis=1))
    with pytest.raises(MirkdError, match=r"track b: labels: class index outside \[0, 170\) at"):
        teacher_bucket(tmp_path / "t.h5", {"b": bad})
    probs[1, 5] = np.nan
    with pytest.raises(MirkdError, match="track c: probs: non-finite value at row 1: nan"):
        teacher_bucket(tmp_path / "t.h5", {"c": TeacherOutput(labels[:2], probs, probs[:, 0])})
    assert not list(tmp_path.iterdir())


def test_each_file_version_is_verified_once_per_process(tmp_path, monkeypatch):
    path = _features(tmp_path)
    BucketFile(path).memmap("cqt")
    calls: list[str] = []
    monkeypatch.setattr(BucketFile, "_verify", lambda self, name: calls.append(name))
    BucketFile(path).frames("cqt", "a")
    read_track_features(path, "b")
    assert calls == []
    _features(tmp_path)  # packed again: another version of the file
    BucketFile(path).memmap("cqt")
    assert calls == ["cqt"]


def _strip_checksums(path: str | Path) -> None:
    """Make `path` look like a bucket file packed before checksums existed."""
    with h5py.File(path, "r+") as f:
        for name in f:
            if isinstance(f[name], h5py.Dataset):
                del f[name].attrs["crc32"]


def test_a_file_without_checksums_is_read_with_one_warning_and_its_values_checked(tmp_path, caplog):
    path = _features(tmp_path)
    _strip_checksums(path)
    bucket = BucketFile(path)
    assert not bucket.checksummed
    with caplog.at_level(logging.WARNING, logger="mirkd"):
        bucket.memmap("cqt")
        BucketFile(path).frames("cqt", "a")
    assert [r.getMessage() for r in caplog.records] == [
        f"{path}: packed without checksums by an older mirkd, so only its values are checked; "
        "run `mirkd add-checksums` on it (or delete it and rerun snakemake)"
    ]
    old = _features(tmp_path, "old.h5")
    _strip_checksums(old)
    damage(old, "cqt", np.float16(np.nan).tobytes(), at=2 * 144 * 7)
    with pytest.raises(DamagedBucketError, match=_damaged(old, "cqt")) as caught:
        BucketFile(old).memmap("cqt")
    assert caught.value.cause == "non-finite value at row 7: nan"


def test_add_checksums_upgrades_an_old_file_whose_values_pass_and_refuses_a_damaged_one(tmp_path):
    path = teacher_bucket(tmp_path / "t.h5", {"a": _uniform_teacher(40), "s": None})
    packed = _checksums(path)
    _strip_checksums(path)
    mtime = os.stat(path).st_mtime_ns
    assert add_checksums(path) and _checksums(path) == packed  # the CRCs pack_bucket wrote
    assert os.stat(path).st_mtime_ns == mtime  # downstream outputs stay up to date
    BucketFile(path).verify()
    assert not add_checksums(path)  # already there: untouched
    old = _features(tmp_path, "old.h5")
    _strip_checksums(old)
    damage(old, "cqt", np.float16(np.inf).tobytes(), at=2 * 144 * 3)
    with pytest.raises(DamagedBucketError, match="non-finite value at row 3"):
        add_checksums(old)
    assert not BucketFile(old).checksummed  # left as it was


def _uniform_teacher(frames: int) -> TeacherOutput:
    return TeacherOutput.from_probs(np.full((frames, LARGE.size), 1 / LARGE.size))


def _checksums(path: str | Path) -> dict[str, dict]:
    with h5py.File(path, "r") as f:
        return {n: dict(f[n].attrs) for n in f if isinstance(f[n], h5py.Dataset)}


@pytest.mark.parametrize("kind", ["damaged", "without checksums"])
def test_a_previous_file_that_cannot_be_verified_is_not_carried_over(tmp_path, caplog, kind):
    previous = tmp_path / "b.h5"
    pack_bucket(previous, [_part("a", 30, "fp-a"), _part("b", 20, "fp-b")], {"kind": "test"})
    if kind == "damaged":
        damage(previous, "cqt", b"\x01" * 16, at=8)
    else:
        _strip_checksums(previous)
    tracks = [TrackFiles(t, f"{t}.wav", str(previous), "", None, f"fp-{t}") for t in "ab"]
    job = BucketWork.open(tmp_path / "work", {"params": 1})
    with caplog.at_level(logging.WARNING, logger="mirkd"):
        job.reuse(str(previous), tracks, {"kind": "test"})
    assert [t.track_id for t in job.todo(tracks)] == ["a", "b"]  # computed again
    expected = "checksum mismatch" if kind == "damaged" else "packed without checksums"
    assert f"{previous}: not reused" in caplog.text and expected in caplog.text


def _a_new_process() -> None:
    """What a new process has verified: nothing yet."""
    store._VERIFIED.clear()
    store._MAPS.clear()


def _no_checksum_reading(monkeypatch) -> list[str]:
    """Arrays whose checksum is computed from now on (listed, then checked as usual)."""
    computed: list[str] = []
    verify = BucketFile._verify

    def counted(self, name):
        computed.append(name)
        verify(self, name)

    monkeypatch.setattr(BucketFile, "_verify", counted)
    return computed


def _recorded_a_tick_later(path: str) -> None:
    """The verification record of `path` as written a timestamp tick after the file changed
    (a real record is written after reading the whole file back)."""
    ctime = os.stat(path).st_ctime_ns
    os.utime(verified_path(path), ns=(ctime + 10**7, ctime + 10**7))


def test_a_verified_file_version_is_not_checksummed_again_by_other_processes(tmp_path, monkeypatch):
    path = _features(tmp_path)  # packing verified it and recorded that beside it
    _recorded_a_tick_later(path)
    computed = _no_checksum_reading(monkeypatch)
    _a_new_process()
    BucketFile(path).memmap("cqt")
    assert computed == []
    os.utime(verified_path(path), ns=(0, os.stat(path).st_ctime_ns))  # same tick: not trusted
    _a_new_process()
    BucketFile(path).memmap("cqt")
    assert computed == ["cqt"]


def test_damage_after_a_recorded_verification_is_still_found(tmp_path):
    """Bytes written in place with the size and mtime kept change the ctime: the record is of
    another version, so the file is checksummed again."""
    path = _features(tmp_path)
    _recorded_a_tick_later(path)
    _a_new_process()
    BucketFile(path).memmap("cqt")
    time.sleep(0.05)  # a later timestamp tick than the file's last change
    damage(path, "cqt", at=1000)
    _a_new_process()
    with pytest.raises(DamagedBucketError, match=_damaged(path, "cqt")):
        BucketFile(path).memmap("cqt")
    with pytest.raises(DamagedBucketError, match=_damaged(path, "cqt")):  # never recorded
        _a_new_process() or BucketFile(path).memmap("cqt")


def test_a_step_opens_each_bucket_once_for_all_its_songs(tmp_path, monkeypatch):
    """Stage 2 reads a song's features, grid, labels and teacher outputs from buckets opened
    once per step (not once per song and read), as validation and evaluation do."""
    from mirkd import store
    from mirkd.manifest import TrackFiles
    from mirkd.references import reference_tracks
    from mirkd.steps.train import _labeled_tracks

    features = feature_bucket(tmp_path / "f.h5", {t: np.zeros((40, 144)) for t in "ab"})
    probs = np.full((40, LARGE.size), 1 / LARGE.size)
    out = TeacherOutput.from_probs(probs)
    teacher = teacher_bucket(tmp_path / "t.h5", {"a": out, "b": out})
    tracks = []
    for tid in "ab":
        lab = tmp_path / f"{tid}.lab"
        lab.write_text("0.0\t1.5\tC:maj\n1.5\t3.7\tA:min\n")
        tracks.append(TrackFiles(tid, f"{tid}.wav", features, teacher, str(lab), f"fp-{tid}"))
    opened: list[str] = []
    original = store.BucketFile.__init__

    def counting(self, path):
        opened.append(str(path))
        original(self, path)

    monkeypatch.setattr(store.BucketFile, "__init__", counting)
    rows = _labeled_tracks(tracks, distil=True)
    assert sorted(opened) == sorted([features, teacher])
    assert [r.labels[0] for r in rows] == [LARGE.to_index("C:maj")] * 2
    assert rows[0].probs is not None and rows[0].probs.shape == (40, LARGE.size)
    opened.clear()
    songs = reference_tracks(tracks)
    assert opened == [features] and [s.grid.n_frames for s in songs] == [40, 40]
