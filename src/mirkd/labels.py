"""Chord annotations: .lab files (``start end label``) and conversion to/from frame labels.

Frame k covers [k*p, (k+1)*p) with p the feature frame period; it takes the label of the segment
overlapping it most (ties: the earlier segment in the list), or N where no segment overlaps it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mirkd.atomic import atomic_path
from mirkd.errors import ChordLabelError, LabFormatError
from mirkd.vocab import Vocabulary


@dataclass(frozen=True)
class ChordSegment:
    start: float
    end: float
    label: str


def _parse_time(text: str, what: str, path: Path, line_no: int) -> float:
    try:
        value = float(text)
    except ValueError:
        raise LabFormatError(path, line_no, f"{what} time {text!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise LabFormatError(path, line_no, f"{what} time {text!r} is not a finite time >= 0")
    return value


def read_lab(path: str | Path, vocab: Vocabulary | None = None) -> list[ChordSegment]:
    """Read a .lab file: one ``start end label`` per line, separated by tabs or spaces.

    Blank lines and lines starting with ``#`` are skipped. With `vocab`, every label must map
    to a class of it. Any malformed line raises LabFormatError naming the file and line number.
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise LabFormatError(path, None, f"cannot read: {exc}") from exc
    segments = []
    for line_no, line in enumerate(lines, start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        parts = text.split()
        if len(parts) != 3:
            raise LabFormatError(
                path, line_no, f"expected 'start end label', got {len(parts)} field(s): {text!r}"
            )
        start = _parse_time(parts[0], "start", path, line_no)
        end = _parse_time(parts[1], "end", path, line_no)
        if end < start:
            raise LabFormatError(path, line_no, f"end {end} is before start {start}")
        if vocab is not None:
            try:
                vocab.to_index(parts[2])
            except ChordLabelError as exc:
                raise LabFormatError(path, line_no, str(exc)) from exc
        segments.append(ChordSegment(start, end, parts[2]))
    return segments


def write_lab(path: str | Path, segments: list[ChordSegment]) -> None:
    """Write segments as ``%.6f\\t%.6f\\tlabel`` lines, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(
            "".join(f"{s.start:.6f}\t{s.end:.6f}\t{s.label}\n" for s in segments), encoding="utf-8"
        )


def segments_to_frames(
    segments: list[ChordSegment], n_frames: int, frame_period: float, vocab: Vocabulary
) -> np.ndarray:
    """Class index per frame (int64 [n_frames]): label of the segment overlapping it most."""
    frames = np.full(n_frames, vocab.n_index, dtype=np.int64)
    best = np.zeros(n_frames)
    for seg in segments:
        first = max(0, math.floor(seg.start / frame_period))
        last = min(n_frames, math.ceil(seg.end / frame_period))
        if last <= first:
            continue
        edges = np.arange(first, last + 1) * frame_period
        overlap = np.minimum(seg.end, edges[1:]) - np.maximum(seg.start, edges[:-1])
        wins = overlap > best[first:last]
        best[first:last][wins] = overlap[wins]
        frames[first:last][wins] = vocab.to_index(seg.label)
    return frames


def frames_to_segments(
    indices: np.ndarray, frame_period: float, vocab: Vocabulary, duration: float | None = None
) -> list[ChordSegment]:
    """Merge runs of equal frame classes into segments with times k * frame_period.

    With `duration`, segments starting at or after it are dropped and the last one ends at it.
    """
    indices = np.asarray(indices)
    if indices.size == 0:
        return []
    change = np.flatnonzero(np.diff(indices)) + 1
    starts = np.concatenate(([0], change))
    ends = np.concatenate((change, [indices.size]))
    segments = [
        ChordSegment(s * frame_period, e * frame_period, vocab.to_label(int(indices[s])))
        for s, e in zip(starts.tolist(), ends.tolist(), strict=True)
    ]
    if duration is not None:
        segments = [s for s in segments if s.start < duration] or segments[:1]
        last = segments[-1]
        segments[-1] = ChordSegment(last.start, max(duration, last.start), last.label)
    return segments
