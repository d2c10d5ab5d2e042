"""Resumable bucket jobs: each finished track is kept as a part file in a work folder, so a
killed job loses at most the track it was on, and the bucket file is packed at the end.

The work folder is keyed by what the job computes (feature parameters, teacher fingerprint):
parts made with other settings are never reused. A part is reused only for the same audio
content (fingerprint) and path. When a bucket is redone because a track was added, the tracks
of its previous file that were made the same way are carried over (the rules mark bucket files
`update`, so Snakemake keeps the old file until the job replaces it): one new song costs one
song's work, not a bucket's. A bucket that split (or merged) carries over from its ancestor's
(descendants') files in the same folder too; those files are stale once the new buckets exist
(`mirkd.stale.stale_results` lists them). Only a verified file is carried over
(`BucketFile.verify`): damaged tracks are computed again, never copied into a file with fresh
checksums.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mirkd.buckets import related
from mirkd.errors import MirkdError
from mirkd.manifest import TrackFiles
from mirkd.steps import log
from mirkd.store import BucketFile, TrackPart, pack_bucket, read_part, write_part


def settings_key(settings: Any) -> str:
    """A short stable hash of JSON-able settings."""
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]


def keyed_work_dir(work: str | Path, key: str) -> Path:
    """`work`/`key`, created; folders of any other key in `work` (stale state) are removed."""
    work_dir = Path(work) / key
    if Path(work).is_dir():
        for other in Path(work).iterdir():
            if other != work_dir:
                shutil.rmtree(other, ignore_errors=True)
    work_dir.mkdir(parents=True, exist_ok=True)
    return work_dir


@dataclass(frozen=True)
class BucketWork:
    """The finished tracks of one bucket job, as part files under `folder` (in `root`, the
    job's work folder)."""

    root: Path
    folder: Path

    @classmethod
    def open(cls, work: str | Path, settings: Any) -> BucketWork:
        return cls(Path(work), keyed_work_dir(work, settings_key(settings)))

    def part_path(self, track_id: str) -> Path:
        return self.folder / f"{track_id}.npz"

    def todo(self, tracks: Sequence[TrackFiles]) -> list[TrackFiles]:
        """The tracks without a valid part (all of them in a fresh job)."""
        missing = [t for t in tracks if not self._done(t)]
        if len(missing) < len(tracks):
            done = len(tracks) - len(missing)
            log.info("resuming: %d of %d tracks already done", done, len(tracks))
        return missing

    def _done(self, track: TrackFiles) -> bool:
        part = read_part(self.part_path(track.track_id))
        return part is not None and (part.fingerprint, part.source) == (
            track.fingerprint,
            track.audio,
        )

    def reuse(self, out: str, tracks: Sequence[TrackFiles], attrs: Mapping[str, Any]) -> None:
        """Carry over the tracks of `out` (the bucket file being replaced) and of the files of
        its related buckets (`previous_files`) that were made with the same `attrs` from the
        same audio."""
        todo = self.todo(tracks)  # the part files are read once, not once per earlier file
        for previous in previous_files(out):
            if not todo:
                return
            todo = self._reuse_file(previous, todo, len(tracks), attrs)

    def _reuse_file(
        self, previous: Path, todo: Sequence[TrackFiles], n_tracks: int, attrs: Mapping[str, Any]
    ) -> list[TrackFiles]:
        """Carry over the tracks of `todo` that one earlier file holds; nothing if it is
        missing, unreadable, damaged or without checksums (its data could not be verified, and
        the new file's checksums would vouch for it). Skipped tracks are tried again (a failure
        is quick, and a strict job must see it). Returns the tracks still to do."""
        if not previous.is_file():
            return list(todo)
        try:
            old = BucketFile(previous)
            if any(old.attrs.get(k) != v for k, v in attrs.items()):
                return list(todo)
            if not old.checksummed:
                raise MirkdError("packed without checksums by an older mirkd")
            old.verify()
        except MirkdError as exc:
            log.warning("%s: not reused, its tracks are computed again (%s)", previous, exc)
            return list(todo)
        left = []
        for track in todo:
            tid = track.track_id
            usable = tid in old.index and not old.column("skipped", tid)
            made = usable and (old.column("fingerprint", tid), old.column("source", tid))
            if made == (track.fingerprint, track.audio):
                self.save(old.part(track.track_id))
            else:
                left.append(track)
        log.info(
            "%s: %d of %d tracks carried over from the previous file",
            previous,
            len(todo) - len(left),
            n_tracks,
        )
        return left

    def save(self, part: TrackPart) -> None:
        write_part(self.part_path(part.track_id), part)

    def finish(self, out: str, tracks: Sequence[TrackFiles], attrs: Mapping[str, Any]) -> None:
        """Pack the parts of `tracks` (in order) into the bucket file; drop the work folder."""
        pack_bucket(out, [self.part_path(t.track_id) for t in tracks], attrs)
        shutil.rmtree(self.root, ignore_errors=True)


def previous_files(out: str | Path) -> list[Path]:
    """`out` and the files of its related buckets in its folder (nearest first): the earlier
    files that may hold tracks of bucket `out`."""
    out = Path(out)
    if not out.parent.is_dir():
        return [out]
    others = [p for p in out.parent.glob(f"*{out.suffix}") if related(out.stem, p.stem)]
    return [out, *sorted(others, key=lambda p: abs(len(p.stem) - len(out.stem)))]
