"""Which tracks a run uses: stable ids, content fingerprints, hash splits and shards.

Everything here is decided by a track's id (its path relative to its folder) alone, so
adding songs never moves an existing song between train and test or between shards.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mirkd.atomic import atomic_write_json
from mirkd.audio import AUDIO_EXTENSIONS
from mirkd.errors import ConfigError, MirkdError
from mirkd.labels import ANNOTATION_SUFFIXES, find_annotation

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Track:
    """One audio file of a set (unlabeled, labeled or test), with its annotation (.lab or
    .jams, read by mirkd.labels.read_annotation) if any."""

    set_name: str
    track_id: str
    audio: str
    lab: str | None = None


@dataclass(frozen=True)
class TrackFiles:
    """A track and its files as every step receives them: the shape of one track end to end.

    Rules pass these as plain dicts (`to_param`), which Snakemake can fingerprint for reruns;
    workflow scripts turn them back with `from_params`.
    """

    track_id: str
    audio: str
    features: str
    lab: str | None
    fingerprint: str

    @property
    def annotation(self) -> str:
        """The .lab path; MirkdError for an unlabeled track (a wiring error)."""
        if self.lab is None:
            raise MirkdError(f"{self.audio}: track {self.track_id} has no annotation file")
        return self.lab

    def to_param(self) -> dict[str, str | None]:
        return asdict(self)

    @classmethod
    def from_params(cls, params: Iterable[Mapping[str, Any]]) -> list[TrackFiles]:
        return [cls(**p) for p in params]


def hash_unit(text: str) -> float:
    """A uniform number in [0, 1) derived from `text` only."""
    return int(hashlib.sha1(text.encode("utf-8")).hexdigest()[:12], 16) / 16**12


def track_id(relpath: str) -> str:
    """A stable, filesystem-safe id: a readable slug plus 8 hex digits of the path's hash."""
    stem = os.path.splitext(relpath)[0]
    slug = re.sub(r"[^A-Za-z0-9]+", "_", stem).strip("_")[:60] or "track"
    return f"{slug}-{hashlib.sha1(relpath.encode('utf-8')).hexdigest()[:8]}"


def _files_under(root: Path) -> list[Path]:
    """Every file below `root`, sorted; symlinked folders are followed (data is often linked)."""
    return sorted(
        Path(folder) / name
        for folder, _, names in os.walk(root, followlinks=True)
        for name in names
        if (Path(folder) / name).is_file()
    )


def scan_audio(folder: str | Path, set_name: str, need_labels: bool) -> list[Track]:
    """All audio files under `folder` (recursive, sorted); labeled sets need an annotation
    beside each: <stem>.lab, else <stem>.jams (a .lab beside a .jams wins, with a warning).

    `~` and environment variables in `folder` are expanded, so configs need no absolute paths.
    """
    root = Path(os.path.expandvars(os.path.expanduser(str(folder))))
    if not root.is_dir():
        raise ConfigError(f"data folder for '{set_name}' does not exist: {root}")
    tracks, ignored, shadowed = [], [], []
    for path in _files_under(root):
        if path.suffix.lower() not in AUDIO_EXTENSIONS:
            if path.suffix.lower() not in ANNOTATION_SUFFIXES:
                ignored.append(path)
            continue
        lab = find_annotation(path) if need_labels else None
        if need_labels and lab is None:
            names = " or ".join(path.with_suffix(s).name for s in ANNOTATION_SUFFIXES)
            raise ConfigError(f"{path}: labeled audio has no annotation file {names}")
        if lab is not None and lab.suffix == ".lab" and lab.with_suffix(".jams").is_file():
            shadowed.append(lab.with_suffix(".jams"))
        rel = path.relative_to(root).as_posix()
        tracks.append(Track(set_name, track_id(rel), str(path), str(lab) if lab else None))
    if ignored:
        _warn_ignored(root, set_name, ignored)
    if shadowed:
        log.warning(
            "%s data under %s: %d audio file(s) have both a .lab and a .jams annotation; the "
            ".lab is read, e.g. not %s",
            set_name,
            root,
            len(shadowed),
            ", ".join(p.relative_to(root).as_posix() for p in shadowed[:3]),
        )
    if not tracks:
        raise ConfigError(f"no audio files ({', '.join(AUDIO_EXTENSIONS)}) under {root}")
    return tracks


def _warn_ignored(root: Path, set_name: str, ignored: list[Path]) -> None:
    """Say which files of a data folder are not used: a format mirkd cannot read is no silence."""
    kinds = Counter(p.suffix.lower() or "(none)" for p in ignored)
    examples = ", ".join(p.relative_to(root).as_posix() for p in ignored[:3])
    log.warning(
        "%s data under %s: %d file(s) ignored, extension not supported (%s; supported: %s), "
        "e.g. %s",
        set_name,
        root,
        len(ignored),
        ", ".join(f"{k}: {n}" for k, n in kinds.most_common()),
        ", ".join(AUDIO_EXTENSIONS),
        examples,
    )


def split_of(tid: str, val_fraction: float, test_fraction: float = 0.0) -> str:
    """'train', 'val' or 'test', from the hash of the id only."""
    u = hash_unit("split:" + tid)
    if u < test_fraction:
        return "test"
    if u < test_fraction + val_fraction:
        return "val"
    return "train"


def ensure_split(splits: dict[str, str], split: str) -> None:
    """Give `split` one track if the hash left it empty: the train track of lowest hash.

    Only tiny sets hit this; it keeps a val/test song available without moving any other.
    """
    if split in splits.values():
        return
    train = sorted((hash_unit("split:" + tid), tid) for tid, s in splits.items() if s == "train")
    if len(train) > 1:
        splits[train[0][1]] = split


def shard_of(tid: str, n_shards: int) -> int:
    """The pseudo-label shard a track falls in, from the hash of its id only."""
    return int(hash_unit("shard:" + tid) * n_shards)


def file_sha1(path: str | Path) -> str:
    digest = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def content_fingerprints(paths: list[str], cache_file: str | Path) -> dict[str, str]:
    """SHA-1 of each file's bytes, cached by (path, size, mtime) to skip unchanged files."""
    cache_file = Path(cache_file)
    try:
        cache = json.loads(cache_file.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        cache = {}
    result, changed = {}, False
    for path in paths:
        st = os.stat(path)
        key = f"{st.st_size}:{st.st_mtime_ns}"
        entry = cache.get(path)
        if entry is None or entry["key"] != key:
            entry = {"key": key, "sha1": file_sha1(path)}
            cache[path] = entry
            changed = True
        result[path] = entry["sha1"]
    if changed:
        atomic_write_json(cache_file, cache)
    return result
