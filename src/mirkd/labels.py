"""Chord annotations: .lab files (``start end label``) and conversion to/from frame labels.

Annotations that would distort scores are refused rather than guessed at (policy in
docs/label-mapping.md, "Annotation files"): segments must not overlap, a file must hold at least
one segment, and, given the audio's duration, the annotation's end may differ from it by at most
END_TOLERANCE seconds (a longer annotation is trimmed to the audio). A UTF-8 BOM is ignored.

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

END_TOLERANCE = 1.0  # s: annotation end vs audio duration (rounding, fades, encoder padding)
OVERLAP_TOLERANCE = 1e-3  # s: rounding of printed times, not an overlap


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


def read_lab(
    path: str | Path, vocab: Vocabulary | None = None, duration: float | None = None
) -> list[ChordSegment]:
    """Read a .lab file: one ``start end label`` per line, separated by tabs or spaces.

    Blank lines and lines starting with ``#`` are skipped. With `vocab`, every label must map
    to a class of it. With `duration` (of the audio, in seconds) the annotation must end within
    END_TOLERANCE of it and is trimmed to it. Raises LabFormatError naming the file (and line):
    a malformed line, overlapping segments, no segment at all, an end too far from `duration`.
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise LabFormatError(path, None, f"cannot read: {exc}") from exc
    segments: list[ChordSegment] = []
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
        if segments and start < segments[-1].end - OVERLAP_TOLERANCE:
            raise LabFormatError(
                path, line_no, f"segment starts at {start}, before the previous one ends "
                f"({segments[-1].end}): segments overlap"
            )
        if vocab is not None:
            try:
                vocab.to_index(parts[2])
            except ChordLabelError as exc:
                raise LabFormatError(path, line_no, str(exc)) from exc
        segments.append(ChordSegment(start, end, parts[2]))
    if not segments:
        raise LabFormatError(path, None, "no chord segments: the annotation is empty")
    return segments if duration is None else _fit_to_duration(segments, duration, path)


def _fit_to_duration(
    segments: list[ChordSegment], duration: float, path: Path
) -> list[ChordSegment]:
    """Segments trimmed to [0, duration]; an end more than END_TOLERANCE away is an error."""
    end = segments[-1].end
    if abs(end - duration) > END_TOLERANCE:
        raise LabFormatError(
            path, None, f"annotation ends at {end:.3f} s but the audio lasts {duration:.3f} s "
            f"(more than {END_TOLERANCE:g} s apart: wrong audio file or annotation?)"
        )
    kept = [s for s in segments if s.start < duration]
    if not kept:
        raise LabFormatError(path, None, f"no segment starts within the audio ({duration:.3f} s)")
    return [ChordSegment(s.start, min(s.end, duration), s.label) for s in kept]


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
