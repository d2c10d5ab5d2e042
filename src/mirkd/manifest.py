"""Which tracks a run uses: stable ids, content fingerprints and durations, hash splits.

Splits are decided by a track's id (its path relative to its folder) alone, so adding songs
never moves an existing song between train and test.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import stat
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mirkd.atomic import atomic_write_json
from mirkd.audio import AUDIO_EXTENSIONS, MIN_SECONDS, audio_duration
from mirkd.errors import AudioError, ConfigError, LabFormatError, MirkdError, os_cause

log = logging.getLogger(__name__)
ANNOTATION_SUFFIXES = (".lab", ".jams")  # beside audio files, in find_annotation's order


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
    features: str  # the features bucket file holding the track
    teacher: str  # the teacher bucket file holding its teacher outputs ("" if none is read)
    lab: str | None
    fingerprint: str

    @property
    def annotation(self) -> str:
        """The .lab path; MirkdError for an unlabeled track (a wiring error)."""
        if self.lab is None:
            raise MirkdError(f"{self.audio}: track {self.track_id} has no annotation file")
        return self.lab

    def to_param(self) -> dict[str, str | None]:
        return dict(vars(self))  # flat fields: a shallow copy (asdict deep-copies, 10x slower)

    @classmethod
    def from_params(cls, params: Iterable[Mapping[str, Any]]) -> list[TrackFiles]:
        return [cls(**p) for p in params]


@dataclass(frozen=True)
class BucketFiles:
    """The features and teacher files of one bucket: the shape stage 1 reads its data in."""

    features: str
    teacher: str

    def to_param(self) -> dict[str, str]:
        return dict(vars(self))

    @classmethod
    def from_params(cls, params: Iterable[Mapping[str, Any]]) -> list[BucketFiles]:
        return [cls(**p) for p in params]


def hash_unit(text: str) -> float:
    """A uniform number in [0, 1) derived from `text` only."""
    return int(hashlib.sha1(text.encode("utf-8")).hexdigest()[:12], 16) / 16**12


def track_id(relpath: str) -> str:
    """A stable, filesystem-safe id: a readable slug plus 8 hex digits of the path's hash."""
    stem = os.path.splitext(relpath)[0]
    slug = re.sub(r"[^A-Za-z0-9]+", "_", stem).strip("_")[:60] or "track"
    return f"{slug}-{hashlib.sha1(relpath.encode('utf-8')).hexdigest()[:8]}"


@dataclass
class FolderWalk:
    """The files below a data folder, each real file once, and the links that lead nowhere."""

    files: list[Path] = field(default_factory=list)
    dangling: list[Path] = field(default_factory=list)  # symlinks whose target is missing
    repeated: list[Path] = field(default_factory=list)  # other paths of a file already found


def _inode(path: str | Path) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_dev, st.st_ino


def _unreadable(exc: OSError) -> None:
    """os.walk's error handler: a folder that cannot be listed is an error, never skipped."""
    raise ConfigError(f"{exc.filename}: cannot list this data folder: {os_cause(exc)}")


def walk_files(root: Path) -> FolderWalk:
    """Every file below `root`, sorted. Symlinked folders are followed (data is often linked),
    but a folder already walked (a link loop such as `loop -> .`, two links to one folder) is
    not walked again, and a file reached by several paths (links) counts once."""
    walk = FolderWalk()
    folders, seen = {_inode(root)}, set()
    for folder, dirs, names in os.walk(root, onerror=_unreadable, followlinks=True):
        kept = []
        for name in sorted(dirs):
            key = _inode(Path(folder) / name)
            if key not in folders:
                folders.add(key)
                kept.append(name)
        dirs[:] = kept  # os.walk descends into these only
        for name in sorted(names):
            path = Path(folder) / name
            try:
                st = path.stat()
            except OSError:  # a dangling link, or a loop of file links
                walk.dangling.append(path)
                continue
            if not stat.S_ISREG(st.st_mode):
                continue
            if (st.st_dev, st.st_ino) in seen:
                walk.repeated.append(path)
                continue
            seen.add((st.st_dev, st.st_ino))
            walk.files.append(path)
    walk.files.sort()
    return walk


def find_annotation(path: str | Path) -> Path | None:
    """The annotation file of `path` (audio file or track stem): with its suffix replaced by
    .lab if that file exists, else by .jams if that exists, else None. Upper-case suffixes
    (.LAB, .JAMS) count too, as audio suffixes do."""
    for suffix in ANNOTATION_SUFFIXES:
        for spelled in (suffix, suffix.upper()):
            candidate = Path(path).with_suffix(spelled)
            if candidate.is_file():
                return candidate
    return None


def data_root(folder: str | Path) -> Path:
    """A data folder of the config with `~` and environment variables expanded, so configs
    need no absolute paths."""
    return Path(os.path.expandvars(os.path.expanduser(str(folder))))


def scan_audio(folder: str | Path, set_name: str, need_labels: bool) -> list[Track]:
    """All audio files under `folder` (recursive, sorted); labeled sets need an annotation
    beside each: <stem>.lab, else <stem>.jams (a .lab beside a .jams wins, with a warning).

    `~` and environment variables in `folder` are expanded (`data_root`).
    """
    root = data_root(folder)
    if root.exists() and not root.is_dir():
        raise ConfigError(f"data folder for '{set_name}' is a file, not a folder: {root}")
    if not root.is_dir():
        raise ConfigError(f"data folder for '{set_name}' does not exist: {root}")
    walk = walk_files(root)
    tracks, ignored, shadowed = [], [], []
    for path in walk.files:
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
    _warn_links(root, set_name, walk)
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


def _warn_links(root: Path, set_name: str, walk: FolderWalk) -> None:
    """List the dangling links of a data folder, and count the files reached twice."""
    if walk.dangling:
        log.warning(
            "%s data under %s: %d dangling symlink(s) ignored (their target is missing): %s",
            set_name,
            root,
            len(walk.dangling),
            ", ".join(p.relative_to(root).as_posix() for p in walk.dangling),
        )
    if walk.repeated:
        log.warning(
            "%s data under %s: %d path(s) lead to a file already found (links), counted once, "
            "e.g. %s",
            set_name,
            root,
            len(walk.repeated),
            ", ".join(p.relative_to(root).as_posix() for p in walk.repeated[:3]),
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


SAMPLE_BLOCKS = 8  # most blocks read of a large file, evenly spaced, first and last included
SAMPLE_BLOCK_BYTES = 4096
SAMPLE_SHARE = 0.005  # of a file's bytes, at most, read for its digest (2 blocks at least)
WHOLE_FILE_BYTES = 256 * 1024  # files up to this size are read whole


def content_digest(path: str | Path) -> str:
    """A digest of a file's size and content that reads a few evenly spaced blocks of a large
    file (at most SAMPLE_SHARE of it, 32 KiB at most), so planning 1,000 h on a login node reads
    almost nothing; copies of a file get the same digest. What it cannot see: an edit that keeps
    the size and touches no sampled block and neither the header nor the end (a re-render, a
    gain change, a re-encode or a tag edit all change sampled bytes or the size). ConfigError
    naming the file if it cannot be read."""
    try:
        with open(path, "rb", buffering=0) as f:
            size = os.fstat(f.fileno()).st_size
            digest = hashlib.sha1(f"{size}:".encode())
            if size <= WHOLE_FILE_BYTES:
                offsets = list(range(0, size, SAMPLE_BLOCK_BYTES))
            else:
                last = size - SAMPLE_BLOCK_BYTES
                blocks = min(SAMPLE_BLOCKS, max(2, int(size * SAMPLE_SHARE) // SAMPLE_BLOCK_BYTES))
                offsets = [last * i // (blocks - 1) for i in range(blocks)]
            for offset in offsets:
                digest.update(os.pread(f.fileno(), SAMPLE_BLOCK_BYTES, offset))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read this data file: {os_cause(exc)}") from exc
    return digest.hexdigest()


@dataclass(frozen=True)
class AudioFacts:
    """What planning needs of an audio file: its content digest (what copies share: leakage),
    its fingerprint (what the jobs that decode it are keyed on: reruns, carry-over) and its
    duration (0 when the header cannot be read: the features step then skips or reports it)."""

    digest: str
    fingerprint: str
    seconds: float


def _cache_key(path: str) -> str:
    """What tells an unchanged file: size and mtime, and the ctime and inode that `cp -p` and
    `rsync -t` cannot keep, so audio rewritten with its size and mtime restored is read again."""
    st = os.stat(path)
    return f"{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}:{st.st_ino}"


def _fresh_entry(path: str, key: str) -> dict[str, Any]:
    """The facts of a new or rewritten file: its digest is also its fingerprint, so a copied or
    moved corpus (new inodes, same bytes) plans the same jobs, nothing reruns."""
    digest = content_digest(path)
    return {"key": key, "digest": digest, "fingerprint": digest, "seconds": _seconds(path)}


def audio_facts(paths: list[str], cache_file: str | Path) -> dict[str, AudioFacts]:
    """Digest, fingerprint and duration of each file, cached by path and `_cache_key` to skip
    unchanged files: only new or changed files are read (a few blocks and the header each), so
    planning 15,000 tracks twice reads them once. An entry of a mirkd that hashed whole files
    keeps that hash as its fingerprint (nothing reruns) and gains a digest."""
    cache_file = Path(cache_file)
    try:
        cache = json.loads(cache_file.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        cache = {}
    result, changed = {}, False
    for path in paths:
        key = _cache_key(path)
        entry = cache.get(path)
        if entry is None or entry.get("key") != key or "seconds" not in entry:
            entry = _fresh_entry(path, key)
        elif "digest" not in entry:
            entry = {**entry, "digest": content_digest(path), "fingerprint": entry["sha1"]}
        if cache.get(path) is not entry:
            cache[path] = entry
            changed = True
        result[path] = AudioFacts(entry["digest"], entry["fingerprint"], entry["seconds"])
    if changed:
        atomic_write_json(cache_file, cache)
    return result


def _seconds(path: str) -> float:
    try:
        return audio_duration(path)
    except AudioError as exc:
        log.warning("%s", exc)
        return 0.0


# What an annotation is checked against at planning; a cache entry made under other rules is
# checked again (bump when mirkd.labels' checks or tolerances change).
_ANNOTATION_RULES = "labels-v1"


def check_annotations(
    tracks: Iterable[Track], seconds: Mapping[str, float], cache_file: str | Path
) -> None:
    """Every annotation of `tracks` parses (mirkd.labels.read_annotation: its labels in the
    large vocabulary) and fits its audio's duration (`seconds`, read from the header); a
    ConfigError lists every bad file with its cause (an audio file whose header cannot be
    read, or shorter than MIN_SECONDS, too: its annotation cannot be checked or used). This is
    what a dry run can know before any job runs. Results are cached by annotation path,
    `_cache_key` and the audio's duration, so planning 15,000 tracks again parses only the
    annotations that changed."""
    from mirkd.labels import END_TOLERANCE, UNANNOTATED_TAIL, read_annotation
    from mirkd.vocab import LARGE

    rules = f"{_ANNOTATION_RULES}:{END_TOLERANCE}:{UNANNOTATED_TAIL}:{LARGE.name}"
    cache_file = Path(cache_file)
    try:
        cache = json.loads(cache_file.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        cache = {}
    problems, changed = [], False
    for t in tracks:
        if t.lab is None:
            continue
        duration = seconds.get(t.audio, 0.0)
        if not duration:
            problems.append(
                f"{t.audio}: cannot read the audio header, so its annotation {t.lab} "
                "cannot be checked"
            )
            continue
        if duration < MIN_SECONDS:
            problems.append(
                f"{t.audio}: audio too short: {duration:.3f} s < {MIN_SECONDS} s (its features "
                "step would refuse it)"
            )
            continue
        try:
            key = f"{_cache_key(t.lab)}:{duration!r}:{rules}"
        except OSError as exc:
            problems.append(f"{t.lab}: cannot read: {os_cause(exc)}")
            continue
        entry = cache.get(t.lab)
        if entry is None or entry.get("key") != key:
            try:
                read_annotation(t.lab, LARGE, duration)
                entry = {"key": key, "error": ""}
            except LabFormatError as exc:
                entry = {"key": key, "error": str(exc)}
            cache[t.lab] = entry
            changed = True
        if entry["error"]:
            problems.append(entry["error"])
    if changed:
        atomic_write_json(cache_file, cache)
    if problems:
        raise ConfigError(
            f"{len(problems)} annotation file(s) of the labeled or test songs cannot be used "
            "(fix or remove them):\n  " + "\n  ".join(problems)
        )
