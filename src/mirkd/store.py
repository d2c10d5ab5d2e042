"""HDF5 bucket files: the features and teacher outputs of a bucket of tracks (mirkd.buckets).

A bucket file holds its tracks back to back in contiguous, uncompressed per-frame arrays
(features float16 [N, 144]; teacher labels int16 [N], probabilities float16 [N, C], confidence
float16 [N]), with `offsets` [n + 1] marking where each track starts, and per-track columns
under `tracks/` (id, fingerprint, source, duration, skip cause, feature moments). Contiguous
arrays are memory-mapped for training (`BucketFile.memmap`): a window is a slice, no HDF5 call.

A bucket job writes each finished track to a part file (`write_part`, atomic, in a work folder
that survives a killed job), so a rerun resumes where the job stopped; `pack_bucket` then writes
the bucket file in one atomic step. Every file carries its own metadata as attributes (what made
it, with which parameters), so a file from another teacher, vocabulary or frame grid is
recognised instead of being mixed in silently.

Integrity: each array's CRC-32 is recorded at pack time (attribute `crc32`; a stored digest, not
HDF5's fletcher32 filter, which needs chunking and would break the memory maps), and a part
with a non-finite feature or probability or a label outside [0, C) is refused. Readers check
offsets on opening and each per-frame array on its first use in a process (`BucketFile.verify`:
truncation, checksum; the values when the checksum does not match, to name the cause), cached by
file version, so training, evaluation and carry-over never use damaged data: a
`DamagedBucketError` names the file, the array and the cause. Packing verifies what it wrote, and
a verification is recorded beside the file (`<file>.verified`: the file's inode, size, mtime and
ctime), so other processes skip the checksum of a file version already verified. A file packed
before checksums existed has its values checked and is named in a warning.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import weakref
import zipfile
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from mirkd import __version__
from mirkd.atomic import atomic_path, atomic_write_json
from mirkd.errors import DamagedBucketError, MirkdError
from mirkd.features import CQTParams

TEACHER_FRAMES = ("labels", "probs", "confidence")
TEACHER_IDENTITY_KEYS = ("teacher_kind", "teacher_fingerprint", "vocab", "sr", "hop_length")
_TEXT_COLUMNS = ("track_id", "fingerprint", "source", "skipped")
CHECKSUM = "crc32"  # attribute of each array: zlib.crc32 of its bytes as stored
VERIFIED_SUFFIX = ".verified"  # beside a bucket file: which arrays of which version verified
_VERIFY_CHUNK_BYTES = 1 << 20  # verified in chunks, so the value checks need little memory
log = logging.getLogger("mirkd")


@dataclass(frozen=True)
class TeacherOutput:
    """A teacher's per-frame output for one track on the pipeline's frame grid."""

    labels: np.ndarray  # int16 [T], argmax class
    probs: np.ndarray  # float16 [T, C]
    confidence: np.ndarray  # float16 [T], max probability

    @classmethod
    def from_probs(cls, probs: np.ndarray) -> TeacherOutput:
        """Hard labels and confidences from a [T, C] probability matrix."""
        probs = np.asarray(probs, dtype=np.float32)
        return cls(
            labels=probs.argmax(axis=1).astype(np.int16),
            probs=probs.astype(np.float16),
            confidence=probs.max(axis=1).astype(np.float16),
        )


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _open(path: str | Path) -> h5py.File:
    if not Path(path).is_file():
        raise MirkdError(f"{path}: no such bucket file")
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise DamagedBucketError(path, "file", f"cannot open as HDF5 ({exc})") from exc


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


@dataclass(frozen=True)
class TrackPart:
    """One finished track of a bucket job: its per-frame arrays (all of the bucket's frame
    datasets, zero rows for a skipped track) and per-track facts.

    `skipped` is the cause a track cannot be used ("" for a usable one); `values` are numbers
    stored as float64 columns (duration, and for features the frame moments of the log-CQT).
    """

    track_id: str
    fingerprint: str
    source: str
    skipped: str
    frames: dict[str, np.ndarray]
    values: dict[str, float]


def write_part(path: str | Path, part: TrackPart) -> None:
    """Store one track's part atomically (a killed job never leaves half a part)."""
    meta = {
        "track_id": part.track_id,
        "fingerprint": part.fingerprint,
        "source": part.source,
        "skipped": part.skipped,
        "values": part.values,
    }
    arrays: dict[str, Any] = {f"frames_{k}": np.asarray(v) for k, v in part.frames.items()}
    arrays["meta"] = np.array(json.dumps(meta, sort_keys=True))
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)


def read_part(path: str | Path) -> TrackPart | None:
    """A part written by `write_part`, or None if it is missing or unreadable (redo it)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            frames = {k[len("frames_") :]: data[k] for k in data.files if k.startswith("frames_")}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        return None
    return TrackPart(frames=frames, **meta)


def pack_bucket(
    out: str | Path, parts: Sequence[TrackPart | str | Path], attrs: Mapping[str, Any]
) -> None:
    """Write a bucket file from its tracks' parts (objects or part files), in the given order.

    Per-frame arrays go back to back into contiguous uncompressed datasets, written one track
    at a time (a bucket never has to fit in memory); `attrs` describe what made the file.
    Each array's checksum is recorded; a part with impossible values (non-finite features or
    probabilities, labels outside [0, C)) is refused, naming the track.
    """
    loaded = [p if isinstance(p, TrackPart) else _must_read_part(p) for p in parts]
    if not loaded:
        raise MirkdError(f"{out}: a bucket needs at least one track")
    first = loaded[0]
    n_classes = first.frames["probs"].shape[1] if "probs" in first.frames else None
    lengths = np.array([len(next(iter(p.frames.values()))) for p in loaded], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    with atomic_path(out) as tmp, h5py.File(tmp, "w") as f:
        for name, array in first.frames.items():
            data = f.create_dataset(
                name, shape=(int(offsets[-1]), *array.shape[1:]), dtype=array.dtype
            )
            crc = 0
            for part, start, stop in zip(loaded, offsets[:-1], offsets[1:], strict=True):
                if stop > start:
                    rows = np.ascontiguousarray(part.frames[name], dtype=data.dtype)
                    problem = _value_problem(rows, n_classes)
                    if problem:
                        raise MirkdError(f"{out}: track {part.track_id}: {name}: {problem}")
                    data[start:stop] = rows
                    crc = zlib.crc32(rows.data, crc)
            data.attrs[CHECKSUM] = crc
        f.create_dataset("offsets", data=offsets).attrs[CHECKSUM] = zlib.crc32(offsets.data)
        columns = f.create_group("tracks")
        for name in _TEXT_COLUMNS:
            values = [str(getattr(p, name)) for p in loaded]
            columns.create_dataset(name, data=values, dtype=h5py.string_dtype())
        for name in first.values:
            columns.create_dataset(
                name, data=np.array([p.values[name] for p in loaded], dtype=np.float64)
            )
        f.attrs["n_tracks"] = len(loaded)
        f.attrs["mirkd_version"] = __version__
        f.attrs["created"] = _now()
        for key, value in attrs.items():
            f.attrs[key] = value
    # what was written, read back once and recorded for the readers (not this process's cache,
    # so a change in the same timestamp tick is still seen here)
    BucketFile(out).verify(in_process=False)


def _must_read_part(path: str | Path) -> TrackPart:
    part = read_part(path)
    if part is None:
        raise MirkdError(f"{path}: track part missing or unreadable")
    return part


def _value_problem(values: np.ndarray, n_classes: int | None, first_row: int = 0) -> str | None:
    """What is impossible in rows of a per-frame array (a non-finite feature or probability, a
    class index outside [0, n_classes)), naming the first bad row; None if nothing is."""
    if values.dtype == np.float16:  # inf and NaN have all exponent bits set; faster than isfinite
        bad, what = (values.view(np.uint16) & 0x7C00) == 0x7C00, "non-finite value"
    elif values.dtype.kind == "f":
        bad, what = ~np.isfinite(values), "non-finite value"
    elif values.dtype.kind in "iu" and n_classes is not None:
        bad, what = (values < 0) | (values >= n_classes), f"class index outside [0, {n_classes})"
    else:
        return None
    if not bad.any():
        return None
    where = tuple(np.argwhere(bad)[0])
    return f"{what} at row {first_row + int(where[0])}: {values[where]}"


@dataclass(frozen=True)
class FileStamp:
    """One version of a file: a file rewritten, even in place with its size and mtime kept,
    gets another ctime (no writer can set it), so it is verified again."""

    path: str
    inode: int
    size: int
    mtime_ns: int
    ctime_ns: int

    @classmethod
    def of(cls, path: str) -> FileStamp:
        st = os.stat(path)
        return cls(path, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)

    @property
    def version(self) -> list[int]:
        return [self.inode, self.size, self.mtime_ns, self.ctime_ns]


def verified_path(path: str | Path) -> str:
    """The file beside a bucket file recording which of its arrays were verified, and in which
    version of the file (`BucketFile.verify`)."""
    return f"{path}{VERIFIED_SUFFIX}"


def _recorded(stamp: FileStamp) -> set[str]:
    """The arrays recorded verified for exactly this version of the file; none if the record is
    missing, of another version, or written within the file's last change's timestamp tick (a
    change in that same tick would leave ctime as it was: verified again, like a racy index
    entry of git)."""
    path = verified_path(stamp.path)
    try:
        written = os.stat(path).st_mtime_ns
        with open(path, encoding="utf-8") as f:
            record = json.load(f)
    except (OSError, ValueError):
        return set()
    if not isinstance(record, dict) or record.get("version") != stamp.version:
        return set()
    if stamp.ctime_ns >= written:
        return set()
    return {str(a) for a in record.get("arrays", [])}


def _record(stamp: FileStamp, arrays: set[str]) -> None:
    """Record `arrays` verified in this version of the file, unless it changed meanwhile; a
    folder that cannot be written only means the next process verifies again."""
    if FileStamp.of(stamp.path) != stamp:
        return
    try:
        atomic_write_json(
            verified_path(stamp.path), {"version": stamp.version, "arrays": sorted(arrays)}
        )
    except OSError as exc:
        log.debug("%s: verification not recorded (%s)", stamp.path, exc)


_VERIFIED: set[tuple[FileStamp, str]] = set()  # (file, array) verified in this process
# (file, array) -> its read-only map while something holds it (each map holds a descriptor)
_MAPS: weakref.WeakValueDictionary[tuple[FileStamp, str], np.ndarray] = (
    weakref.WeakValueDictionary()
)
_UNCHECKSUMMED: set[FileStamp] = set()  # files packed without checksums, warned about once


@dataclass(frozen=True)
class _Array:
    """Where a contiguous dataset lies in its file, and the checksum recorded when packed."""

    offset: int | None  # None: HDF5 allocated no storage (an empty array)
    shape: tuple[int, ...]
    dtype: np.dtype
    crc32: int | None  # None: packed by a mirkd without checksums

    @property
    def row_bytes(self) -> int:
        return math.prod(self.shape[1:]) * self.dtype.itemsize


def _array(data: h5py.Dataset) -> _Array:
    if data.chunks is not None or data.compression is not None:
        raise MirkdError(f"{data.file.filename}: {data.name} is not contiguous")
    crc = data.attrs.get(CHECKSUM)
    return _Array(data.id.get_offset(), data.shape, data.dtype, None if crc is None else int(crc))


def _chunk_rows(row_bytes: int) -> int:
    """Rows of an array read at a time when it is verified (_VERIFY_CHUNK_BYTES at most)."""
    return max(1, _VERIFY_CHUNK_BYTES // max(1, row_bytes))


def _chunked_crc(data: np.ndarray, rows: int) -> int:
    """zlib.crc32 of an array's bytes, `rows` rows at a time (a map is never read whole)."""
    crc = 0
    for start in range(0, len(data), rows):
        crc = zlib.crc32(data[start : start + rows].data, crc)
    return crc


class BucketFile:
    """The read side of a bucket file: track ids, offsets, columns, and frame arrays by track.

    Opening reads only the small columns (and checks the offsets); frame arrays are
    memory-mapped on use (the file is complete and never changes once written), one map per
    array while in use in a process (a forked DataLoader worker inherits it). Each array is
    verified before its first use in a process (`verify`).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        with _open(path) as f:
            try:
                self.attrs = {k: _plain(v) for k, v in f.attrs.items()}
                self.offsets = f["offsets"][:]
                columns = f["tracks"]
                self.text = {n: list(columns[n].asstr()[:]) for n in _TEXT_COLUMNS}
                self.values = {n: columns[n][:] for n in columns if n not in _TEXT_COLUMNS}
                self._arrays = {n: _array(f[n]) for n in f if isinstance(f[n], h5py.Dataset)}
            except KeyError as exc:
                raise MirkdError(f"{path}: not a mirkd bucket file ({exc})") from exc
            except OSError as exc:
                raise DamagedBucketError(path, "file", f"unreadable ({exc})") from exc
        self.stamp = FileStamp.of(self.path)
        self.track_ids: list[str] = self.text["track_id"]
        self.index = {tid: i for i, tid in enumerate(self.track_ids)}
        self.frame_names = [n for n in self._arrays if n != "offsets"]
        self.n_classes = self._arrays["probs"].shape[1] if "probs" in self._arrays else None
        self._check_offsets()

    def _check_offsets(self) -> None:
        """Damaged offsets would misplace every track: their checksum, and 0, never
        decreasing, one more than the tracks, ending at each per-frame array's length."""
        offsets, crc = self.offsets, self._arrays["offsets"].crc32
        ends = {self._arrays[n].shape[0] for n in self.frame_names}
        if crc is not None and zlib.crc32(offsets.data) != crc:
            cause = "checksum mismatch"
        elif len(offsets) != len(self.track_ids) + 1:
            cause = f"{len(offsets)} offsets for {len(self.track_ids)} tracks"
        elif offsets[0] != 0 or (np.diff(offsets) < 0).any() or ends - {int(offsets[-1])}:
            cause = f"not rising from 0 to the arrays' {sorted(ends)} rows"
        else:
            return
        raise DamagedBucketError(self.path, "offsets", cause)

    @property
    def checksummed(self) -> bool:
        """Whether every array has a checksum (files packed by older mirkd versions lack it)."""
        return all(a.crc32 is not None for a in self._arrays.values())

    def verify(self, *names: str, in_process: bool = True) -> None:
        """Check per-frame arrays `names` (all by default) once per file version: the file
        holds them whole and their checksum is the one recorded when packed (so their values
        are those checked then). Without a matching checksum, their values are checked (finite
        features and probabilities, labels in [0, C)) to name the cause. Raises
        DamagedBucketError; a file without checksums whose values pass gets a warning.

        Once per process, and once per file version across processes: verified checksummed
        arrays are recorded beside the file (`verified_path`) with the file's inode, size,
        mtime and ctime, and a process finding its arrays recorded for the version it opened
        skips the checksum. Any change through the file system (a rewrite, bytes written in
        place, even with the mtime restored) changes the ctime, so the file is verified again;
        damage that bypasses the file system (a failing disk) is not seen after the record.
        `in_process` False: recorded beside the file only (the packing job's check)."""
        todo = [n for n in names or self.frame_names if (self.stamp, n) not in _VERIFIED]
        if not todo:
            return
        recorded = _recorded(self.stamp)
        for name in todo:
            if name not in recorded:
                self._verify(name)
            if in_process:
                _VERIFIED.add((self.stamp, name))
        checksummed = {n for n in todo if self._arrays[n].crc32 is not None}
        if not checksummed <= recorded:
            _record(self.stamp, recorded | checksummed)

    def _verify(self, name: str) -> None:
        array = self._arrays[name]
        end = (array.offset or 0) + array.shape[0] * array.row_bytes
        if end > self.stamp.size:
            cause = f"truncated (the file has {self.stamp.size} bytes, the array ends at {end})"
            raise DamagedBucketError(self.path, name, cause)
        data = self._map(name)
        rows = _chunk_rows(array.row_bytes)
        starts = range(0, len(data), rows)
        causes = []
        if array.crc32 is None:
            if self.stamp not in _UNCHECKSUMMED:
                _UNCHECKSUMMED.add(self.stamp)
                log.warning(
                    "%s: packed without checksums by an older mirkd, so only its values are "
                    "checked; run `mirkd add-checksums` on it (or delete it and rerun snakemake)",
                    self.path,
                )
        else:
            crc = _chunked_crc(data, rows)
            if crc == array.crc32:
                return  # the bytes packed, whose values were checked then
            causes.append(f"checksum mismatch (crc32 {crc:08x}, packed {array.crc32:08x})")
        problems = (_value_problem(data[s : s + rows], self.n_classes, s) for s in starts)
        causes += [p for p in problems if p][:1]
        if causes:
            raise DamagedBucketError(self.path, name, "; ".join(causes))

    def position(self, track_id: str) -> int:
        try:
            return self.index[track_id]
        except KeyError as exc:
            raise MirkdError(f"{self.path}: no track {track_id!r} in this bucket") from exc

    def span(self, track_id: str) -> slice:
        """The rows of `track_id` in every per-frame array."""
        i = self.position(track_id)
        return slice(int(self.offsets[i]), int(self.offsets[i + 1]))

    def memmap(self, name: str) -> np.ndarray:
        """The whole per-frame array `name`, verified, memory-mapped read-only."""
        mapped = self._map(name)  # held, so verification reads through this same map
        self.verify(name)
        return mapped

    def _map(self, name: str) -> np.ndarray:
        """The map of array `name` in use in this process, or a new one: the pages verification
        touched are then already mapped when training reads them."""
        mapped = _MAPS.get((self.stamp, name))
        if mapped is None:
            array = self._arrays[name]
            mapped = (
                np.zeros(array.shape, dtype=array.dtype)  # HDF5 stores nothing for no rows
                if array.offset is None
                else np.memmap(
                    self.path, dtype=array.dtype, mode="r", offset=array.offset, shape=array.shape
                )
            )
            _MAPS[(self.stamp, name)] = mapped
        return mapped

    def frames(self, name: str, track_id: str) -> np.ndarray:
        """A track's rows of per-frame array `name` (a read-only view of the mapped file)."""
        return self.memmap(name)[self.span(track_id)]

    def skipped(self) -> dict[str, str]:
        """Track id -> cause, for the tracks of this bucket that cannot be used."""
        return {t: c for t, c in zip(self.track_ids, self.text["skipped"], strict=True) if c}

    def usable(self) -> list[str]:
        return [t for t, c in zip(self.track_ids, self.text["skipped"], strict=True) if not c]

    def part(self, track_id: str) -> TrackPart:
        """A track as the part it was packed from (to carry it into a new version of the
        bucket without computing it again)."""
        frames = {n: np.array(self.frames(n, track_id)) for n in self.frame_names}
        return TrackPart(
            track_id,
            self.column("fingerprint", track_id),
            self.column("source", track_id),
            self.column("skipped", track_id),
            frames,
            {n: self.column(n, track_id) for n in self.values},
        )

    def column(self, name: str, track_id: str) -> Any:
        if name in self.text:
            return self.text[name][self.position(track_id)]
        return float(self.values[name][self.position(track_id)])


def cqt_part(
    track_id: str,
    fingerprint: str,
    source: str,
    cqt: np.ndarray,
    duration: float,
    skipped: str = "",
) -> TrackPart:
    """A features bucket's part for one track: its log-CQT as stored (float16), the audio's
    duration and the moments stage 1 normalises with (zero frames with the cause if skipped)."""
    stored = np.asarray(cqt, dtype=np.float16)
    values = {"duration": duration, **moments(stored)}
    return TrackPart(track_id, fingerprint, source, skipped, {"cqt": stored}, values)


def feature_attrs(params: CQTParams) -> dict[str, Any]:
    """The attributes every features bucket carries: how its features were computed."""
    return {"kind": "features", "feature_params": json.dumps(params.to_dict(), sort_keys=True)}


def feature_params(bucket: BucketFile) -> CQTParams:
    return CQTParams.from_dict(json.loads(bucket.attrs["feature_params"]))


def read_track_features(path: str | Path, track_id: str) -> np.ndarray:
    """A track's whole [T, n_bins] log-CQT from a features bucket, as float32 (by path: for a
    loader worker that gets one track at a time)."""
    return BucketFile(path).frames("cqt", track_id).astype(np.float32)


def open_buckets(paths: Iterable[str]) -> dict[str, BucketFile]:
    """Each bucket file among `paths` opened once: a step that reads many songs reads each
    song's features, grid and teacher outputs from these, not by reopening its files."""
    return {path: BucketFile(path) for path in dict.fromkeys(paths)}


@dataclass(frozen=True)
class FrameGrid:
    """The time axis of a track's features: frame period, frame count and audio duration."""

    frame_period: float
    n_frames: int
    duration: float


def feature_grid(bucket: BucketFile, track_id: str) -> FrameGrid:
    """The frame grid a track's features sit on (labels and predictions use the same), from
    its open features bucket."""
    span = bucket.span(track_id)
    return FrameGrid(
        feature_params(bucket).frame_period,
        span.stop - span.start,
        bucket.column("duration", track_id),
    )


def feature_moments(bucket: BucketFile, track_ids: Sequence[str]) -> np.ndarray:
    """[n, 3] (count, mean, M2) of the log-CQT values of each track (stored at pack time)."""
    rows = [bucket.position(t) for t in track_ids]
    return np.stack([bucket.values[k][rows] for k in ("count", "mean", "m2")], axis=1)


def moments(values: np.ndarray) -> dict[str, float]:
    """count, mean and M2 (sum of squared deviations) of an array, in float64."""
    flat = np.asarray(values, dtype=np.float64).ravel()
    if flat.size == 0:
        return {"count": 0.0, "mean": 0.0, "m2": 0.0}
    mean = float(flat.mean())
    return {"count": float(flat.size), "mean": mean, "m2": float(((flat - mean) ** 2).sum())}


def merged_mean_std(rows: np.ndarray) -> tuple[float, float]:
    """Mean and population std of the union of sets given as (count, mean, M2) rows, exactly
    (the parallel form of Chan et al.), in float64."""
    counts, means, m2 = rows[:, 0], rows[:, 1], rows[:, 2]
    total = counts.sum()
    if total == 0:
        raise MirkdError("no feature frames to compute the normalisation from")
    mean = float((counts * means).sum() / total)
    return mean, math.sqrt(float(m2.sum() + (counts * (means - mean) ** 2).sum()) / total)


def teacher_attrs(teacher: Mapping[str, str], vocab_name: str, params: CQTParams) -> dict[str, Any]:
    """The attributes every teacher bucket carries: which teacher, vocabulary and grid."""
    return {
        "kind": "teacher",
        "teacher_kind": teacher["kind"],
        "teacher_name": teacher["name"],
        "teacher_fingerprint": teacher["fingerprint"],
        "vocab": vocab_name,
        "sr": params.sr,
        "hop_length": params.hop_length,
        "frame_period": params.frame_period,
    }


def teacher_part(
    track_id: str,
    fingerprint: str,
    source: str,
    output: TeacherOutput | None,
    cause: str,
    n_classes: int,
) -> TrackPart:
    """A teacher bucket's part for one track (zero frames with the cause when skipped)."""
    if output is None:
        output = TeacherOutput(
            np.zeros(0, np.int16), np.zeros((0, n_classes), np.float16), np.zeros(0, np.float16)
        )
    frames = {"labels": output.labels, "probs": output.probs, "confidence": output.confidence}
    return TrackPart(track_id, fingerprint, source, cause, frames, {})


def read_teacher_output(bucket: BucketFile, track_id: str) -> TeacherOutput:
    """A track's teacher outputs (labels, probabilities, confidence) from its open teacher
    bucket."""
    return TeacherOutput(*(np.array(bucket.frames(n, track_id)) for n in TEACHER_FRAMES))


def check_teacher_compatible(buckets: Sequence[BucketFile]) -> dict[str, Any]:
    """The common identity (teacher, vocabulary, grid) of teacher buckets; raises naming an odd
    one."""
    reference: dict[str, Any] | None = None
    first = ""
    for bucket in buckets:
        identity = {k: bucket.attrs.get(k) for k in TEACHER_IDENTITY_KEYS}
        if reference is None:
            reference, first = identity, bucket.path
            continue
        diff = [k for k in TEACHER_IDENTITY_KEYS if identity[k] != reference[k]]
        if diff:
            detail = ", ".join(f"{k}={identity[k]!r} vs {reference[k]!r}" for k in diff)
            raise MirkdError(f"{bucket.path}: teacher bucket does not match {first} ({detail})")
    if reference is None:
        raise MirkdError("no teacher buckets given")
    return reference


def add_checksums(path: str | Path) -> bool:
    """Give a bucket file packed by a mirkd without checksums its arrays' checksums, after
    checking every value (finite features and probabilities, labels in range), so hours of
    teacher outputs need not be computed again. What the checksums then vouch for is the file
    as it is now. Atomic (a copy is changed, then renamed over the file), with the file's mtime
    kept: its content is unchanged, so the jobs downstream must not rerun (Snakemake compares
    mtimes). False if the file already had them. Raises DamagedBucketError when a value is
    impossible."""
    bucket = BucketFile(path)
    if bucket.checksummed:
        return False
    _UNCHECKSUMMED.add(bucket.stamp)  # no warning to run what is running
    bucket.verify()  # without checksums: the values of every array, or DamagedBucketError
    crcs = {  # of the bytes just checked, as pack_bucket computes them
        name: _chunked_crc(bucket._map(name), _chunk_rows(bucket._arrays[name].row_bytes))
        for name in bucket.frame_names
    }
    crcs["offsets"] = zlib.crc32(bucket.offsets.data)
    before = os.stat(path)
    with atomic_path(path) as tmp:
        shutil.copyfile(path, tmp)
        with h5py.File(tmp, "r+") as f:
            for name, crc in crcs.items():
                f[name].attrs[CHECKSUM] = crc
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))  # what Snakemake compares
    log.info("%s: checksums added", path)
    return True
