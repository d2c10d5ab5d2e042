"""HDF5 layouts for cached features and teacher pseudo-label shards.

Every file is written atomically and carries its own metadata as attributes (what made
it, with which parameters), so a file from another teacher, vocabulary or frame grid is
recognised instead of being mixed in silently.
"""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from mirkd import __version__
from mirkd.atomic import atomic_path
from mirkd.errors import MirkdError
from mirkd.features import CQTParams

CHUNK_FRAMES = 108  # HDF5 chunk length in frames: a storage choice, not a model window
_COMPRESSION = {"compression": "gzip", "compression_opts": 1, "shuffle": True}
SHARD_IDENTITY_KEYS = ("teacher_kind", "teacher_fingerprint", "vocab", "sr", "hop_length")


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
    try:
        return h5py.File(path, "r")
    except (OSError, FileNotFoundError) as exc:
        raise MirkdError(f"{path}: cannot open HDF5 file ({exc})") from exc


def write_features(
    path: str | Path, cqt: np.ndarray, params: CQTParams, meta: dict[str, Any]
) -> None:
    """Store a [T, n_bins] log-CQT as float16 with the feature parameters and track metadata."""
    cqt = np.asarray(cqt)
    if cqt.ndim != 2 or cqt.shape[1] != params.n_bins:
        raise MirkdError(f"{path}: features must be [T, {params.n_bins}], got {cqt.shape}")
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset(
            "cqt",
            data=cqt.astype(np.float16),
            chunks=(min(len(cqt), CHUNK_FRAMES), cqt.shape[1]),
            **_COMPRESSION,
        )
        _set_feature_attrs(f, params, len(cqt), meta)


def write_skipped_features(
    path: str | Path, params: CQTParams, meta: dict[str, Any], cause: str
) -> None:
    """A zero-frame feature file standing for a track that cannot be used (attribute skipped).

    Unlabeled tracks that fail to decode get one, so one bad file among thousands neither
    stops the run nor is retried by every rerun; later steps leave the track out.
    """
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("cqt", shape=(0, params.n_bins), dtype=np.float16)
        _set_feature_attrs(f, params, 0, {**meta, "skipped": cause})


def _set_feature_attrs(f: h5py.File, params: CQTParams, n: int, meta: dict[str, Any]) -> None:
    f.attrs["feature_params"] = json.dumps(params.to_dict(), sort_keys=True)
    f.attrs["n_frames"] = n
    f.attrs["mirkd_version"] = __version__
    f.attrs["created"] = _now()
    for key, value in meta.items():
        f.attrs[key] = value


def read_features(path: str | Path) -> np.ndarray:
    """The whole [T, n_bins] log-CQT of a feature file as float32."""
    with _open(path) as f:
        return f["cqt"][:].astype(np.float32)


def read_feature_attrs(path: str | Path) -> dict[str, Any]:
    """A feature file's attributes, with feature_params decoded to a dict."""
    with _open(path) as f:
        attrs = {k: _plain(v) for k, v in f.attrs.items()}
    attrs["feature_params"] = json.loads(attrs["feature_params"])
    return attrs


@dataclass(frozen=True)
class FrameGrid:
    """The time axis of a feature file: its frame period, frame count and audio duration."""

    frame_period: float
    n_frames: int
    duration: float


def feature_grid(path: str | Path) -> FrameGrid:
    """The frame grid a feature file's frames sit on (labels and predictions use the same)."""
    attrs = read_feature_attrs(path)
    period = CQTParams.from_dict(attrs["feature_params"]).frame_period
    return FrameGrid(period, int(attrs["n_frames"]), float(attrs["duration"]))


def skipped_cause(path: str | Path) -> str | None:
    """Why a feature file stands for a skipped track, or None for a usable one."""
    return read_feature_attrs(path).get("skipped")


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


class WindowReader:
    """Random access to windows of HDF5 datasets, with files opened once per process.

    Safe inside DataLoader workers: handles are keyed by process id, so a forked worker
    opens its own files instead of sharing the parent's. At most `max_open` files stay
    open (least recently used closed first), so corpora of any size stay under the
    process's file-descriptor limit.
    """

    def __init__(self, max_open: int = 128) -> None:
        self.max_open = max_open
        self._pid = os.getpid()
        self._files: OrderedDict[str, h5py.File] = OrderedDict()

    def _file(self, path: str | Path) -> h5py.File:
        if os.getpid() != self._pid:
            self._pid, self._files = os.getpid(), OrderedDict()
        key = str(path)
        if key in self._files:
            self._files.move_to_end(key)
            return self._files[key]
        if len(self._files) >= self.max_open:
            self._files.popitem(last=False)[1].close()
        self._files[key] = _open(key)
        return self._files[key]

    def n_frames(self, path: str | Path, dataset: str = "cqt") -> int:
        return int(self._file(path)[dataset].shape[0])

    def window(self, path: str | Path, start: int, length: int, dataset: str = "cqt") -> np.ndarray:
        """Rows [start, start+length) of `dataset` as float32, zero-padded past the end."""
        data = self._file(path)[dataset]
        part = data[start : min(start + length, data.shape[0])].astype(np.float32)
        if len(part) == length:
            return part
        out = np.zeros((length, *data.shape[1:]), dtype=np.float32)
        out[: len(part)] = part
        return out

    def __getstate__(self) -> dict[str, Any]:
        return {"max_open": self.max_open, "_pid": -1, "_files": OrderedDict()}


def write_shard(
    path: str | Path,
    tracks: dict[str, TeacherOutput],
    teacher: dict[str, str],
    vocab_name: str,
    params: CQTParams,
    track_attrs: dict[str, dict[str, Any]] | None = None,
    skipped: dict[str, dict[str, str]] | None = None,
) -> None:
    """Store teacher outputs of several tracks in one HDF5 shard, stamped with the teacher.

    `skipped` (track id -> {"audio", "cause"}) records the shard's tracks that could not be used.
    """
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs["teacher_kind"] = teacher["kind"]
        f.attrs["teacher_name"] = teacher["name"]
        f.attrs["teacher_fingerprint"] = teacher["fingerprint"]
        f.attrs["vocab"] = vocab_name
        f.attrs["sr"] = params.sr
        f.attrs["hop_length"] = params.hop_length
        f.attrs["frame_period"] = params.frame_period
        f.attrs["n_tracks"] = len(tracks)
        f.attrs["skipped"] = json.dumps(skipped or {}, sort_keys=True)
        f.attrs["mirkd_version"] = __version__
        f.attrs["created"] = _now()
        group = f.create_group("tracks")
        for track_id, out in sorted(tracks.items()):
            g = group.create_group(track_id)
            n_classes = out.probs.shape[1]
            chunk = min(len(out.labels), CHUNK_FRAMES)
            g.create_dataset("labels", data=out.labels.astype(np.int16), **_COMPRESSION)
            g.create_dataset(
                "probs",
                data=out.probs.astype(np.float16),
                chunks=(chunk, n_classes),
                **_COMPRESSION,
            )
            g.create_dataset("confidence", data=out.confidence.astype(np.float16), **_COMPRESSION)
            for key, value in (track_attrs or {}).get(track_id, {}).items():
                g.attrs[key] = value


def read_shard_attrs(path: str | Path) -> dict[str, Any]:
    with _open(path) as f:
        return {k: _plain(v) for k, v in f.attrs.items()}


def shard_skipped(path: str | Path) -> dict[str, dict[str, str]]:
    """The tracks a shard left out: track id -> {"audio", "cause"} (none in older shards)."""
    return json.loads(read_shard_attrs(path).get("skipped", "{}"))


def shard_track_ids(path: str | Path) -> list[str]:
    with _open(path) as f:
        return sorted(f["tracks"].keys())


def shard_dataset(track_id: str, name: str) -> str:
    """HDF5 path of one of a track's teacher datasets (labels, probs, confidence) in a shard."""
    return f"tracks/{track_id}/{name}"


def _read_shard_datasets(path: str | Path, track_id: str, names: tuple[str, ...]) -> list:
    with _open(path) as f:
        keys = [shard_dataset(track_id, name) for name in names]
        if any(key not in f for key in keys):
            raise MirkdError(f"{path}: no track {track_id!r} in this shard")
        return [f[key][:] for key in keys]


def read_shard_labels(path: str | Path, track_id: str) -> np.ndarray:
    """Only the hard labels of a track (small: stage 1 keeps them all in memory)."""
    return _read_shard_datasets(path, track_id, ("labels",))[0]


def read_shard_track(path: str | Path, track_id: str) -> TeacherOutput:
    """A track's teacher outputs (labels, probabilities, confidence) from a shard."""
    return TeacherOutput(*_read_shard_datasets(path, track_id, ("labels", "probs", "confidence")))


def check_shards_compatible(paths: list[str | Path]) -> dict[str, Any]:
    """The common identity (teacher, vocabulary, grid) of shards; raises naming an odd one."""
    reference: dict[str, Any] | None = None
    first: str | Path | None = None
    for path in paths:
        attrs = read_shard_attrs(path)
        identity = {k: attrs.get(k) for k in SHARD_IDENTITY_KEYS}
        if reference is None:
            reference, first = identity, path
            continue
        diff = [k for k in SHARD_IDENTITY_KEYS if identity[k] != reference[k]]
        if diff:
            detail = ", ".join(f"{k}={identity[k]!r} vs {reference[k]!r}" for k in diff)
            raise MirkdError(f"{path}: shard does not match {first} ({detail})")
    if reference is None:
        raise MirkdError("no pseudo-label shards given")
    return reference
