"""Chord annotations: .lab and JAMS files, and conversion to/from frame labels.

Every annotation is read by read_annotation: a .lab file (``start end label`` lines) or the
first annotation of namespace ``chord`` of a .jams file, both through the same checks.
Annotations that would distort scores are refused rather than guessed at (policy in
docs/label-mapping.md, "Annotation files"): segments must not overlap, a file must hold at least
one segment, and, given the audio's duration, the annotation may run past it by at most
END_TOLERANCE seconds (trimmed to the audio) and may leave at most UNANNOTATED_TAIL seconds of
audio unannotated at the end (a release tail, a fade-out; those frames are "N"). A UTF-8 BOM is
ignored.

Frame k covers [k*p, (k+1)*p) with p the feature frame period; it takes the label of the segment
overlapping it most (ties: the earlier segment in the list), or N where no segment overlaps it.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mirkd import __version__
from mirkd.atomic import atomic_path
from mirkd.errors import ChordLabelError, LabFormatError, os_cause
from mirkd.vocab import Vocabulary

END_TOLERANCE = 1.0  # s an annotation may run past the audio (rounding, encoder padding)
UNANNOTATED_TAIL = 10.0  # s of audio an annotation may leave out at the end (release, fade-out)
OVERLAP_TOLERANCE = 1e-3  # s: rounding of printed times, not an overlap
JAMS_NAMESPACE = "chord"  # the JAMS namespace read (first such annotation) and written


@dataclass(frozen=True)
class ChordSegment:
    start: float
    end: float
    label: str


def _read_text(path: Path) -> str:
    """The text of an annotation file; LabFormatError naming it and the cause if unreadable."""
    try:
        return path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise LabFormatError(path, None, f"cannot read: {os_cause(exc)}") from exc
    except UnicodeDecodeError as exc:
        raise LabFormatError(path, None, f"cannot read: {exc}") from exc


def _lab_rows(path: Path) -> Iterator[tuple[int, float, float, str]]:
    """(line number, start, end, label) of each segment line of a .lab file."""
    lines = _read_text(path).splitlines()
    for line_no, line in enumerate(lines, start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        parts = text.split()
        if len(parts) != 3:
            raise LabFormatError(
                path, line_no, f"expected 'start end label', got {len(parts)} field(s): {text!r}"
            )
        times = []
        for what, value in (("start", parts[0]), ("end", parts[1])):
            try:
                times.append(float(value))
            except ValueError:
                raise LabFormatError(
                    path, line_no, f"{what} time {value!r} is not a number"
                ) from None
        yield line_no, times[0], times[1], parts[2]


def _jams_rows(path: Path) -> Iterator[tuple[str, float, float, str]]:
    """(observation, start, end, label) of the first `chord` annotation of a JAMS file."""
    import jams  # imported here: it pulls in pandas (~1 s) that .lab-only runs never need

    text = _read_text(path)
    try:
        jam = jams.load(io.StringIO(text), validate=False)
    except Exception as exc:  # json, jams and its constructors raise many types for bad files
        raise LabFormatError(path, None, f"cannot read as JAMS: {exc}") from exc
    chords = [a for a in jam.annotations if a.namespace == JAMS_NAMESPACE]
    if not chords:
        found = sorted({str(a.namespace) for a in jam.annotations}) or ["none"]
        raise LabFormatError(
            path, None, f"no '{JAMS_NAMESPACE}' annotation (namespaces found: {', '.join(found)})"
        )
    for i, obs in enumerate(chords[0].data):
        where = f"'{JAMS_NAMESPACE}' observation {i}"
        if not isinstance(obs.value, str):
            raise LabFormatError(path, None, f"{where}: value {obs.value!r} is not a chord label")
        try:
            start, length = float(obs.time), float(obs.duration)
        except (TypeError, ValueError):
            raise LabFormatError(
                path,
                None,
                f"{where}: time {obs.time!r} / duration {obs.duration!r} are not numbers",
            ) from None
        yield where, start, start + length, obs.value


def _error(path: Path, where: int | str, cause: str) -> LabFormatError:
    """LabFormatError at a .lab line number or a named place (a JAMS observation)."""
    if isinstance(where, int):
        return LabFormatError(path, where, cause)
    return LabFormatError(path, None, f"{where}: {cause}")


def read_annotation(
    path: str | Path, vocab: Vocabulary | None = None, duration: float | None = None
) -> list[ChordSegment]:
    """Read a chord annotation: the first `chord` annotation of a .jams file, or .lab text.

    .lab text is one ``start end label`` per line, separated by tabs or spaces; blank lines and
    lines starting with ``#`` are skipped. Any extension but .jams is read as .lab text (POP909
    ships ``chord_midi.txt``). Both formats then pass the same checks: with `vocab`, every
    label must map to a class of it; with `duration` (of the audio, in seconds) the annotation
    must end within END_TOLERANCE of it and is trimmed to it. Raises LabFormatError naming the
    file (and line or observation): unreadable or malformed, a time that is not finite and
    >= 0, overlapping segments, no segment at all, an end too far from `duration`.
    """
    path = Path(path)
    rows = _jams_rows(path) if path.suffix.lower() == ".jams" else _lab_rows(path)
    segments: list[ChordSegment] = []
    for where, start, end, label in rows:
        for what, value in (("start", start), ("end", end)):
            if not math.isfinite(value) or value < 0:
                raise _error(path, where, f"{what} time {value!r} is not a finite time >= 0")
        if end < start:
            raise _error(path, where, f"end {end} is before start {start}")
        if segments and start < segments[-1].end - OVERLAP_TOLERANCE:
            raise _error(
                path,
                where,
                f"segment starts at {start}, before the previous one ends "
                f"({segments[-1].end}): segments overlap",
            )
        if vocab is not None:
            try:
                vocab.to_index(label)
            except ChordLabelError as exc:
                raise _error(path, where, str(exc)) from exc
        segments.append(ChordSegment(start, end, label))
    if not segments:
        raise LabFormatError(path, None, "no chord segments: the annotation is empty")
    return segments if duration is None else _fit_to_duration(segments, duration, path)


def _fit_to_duration(
    segments: list[ChordSegment], duration: float, path: Path
) -> list[ChordSegment]:
    """Segments trimmed to [0, duration]; an end too far from the audio's is an error."""
    end = segments[-1].end
    if end - duration > END_TOLERANCE or duration - end > UNANNOTATED_TAIL:
        raise LabFormatError(
            path,
            None,
            f"annotation ends at {end:.3f} s but the audio lasts {duration:.3f} s "
            f"(it may run at most {END_TOLERANCE:g} s past the audio and leave at most "
            f"{UNANNOTATED_TAIL:g} s unannotated: wrong audio file or annotation?)",
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


def jams_metadata(annotator: dict[str, Any], source: str) -> Any:
    """The annotation metadata mirkd writes: who made it (`annotator`), from what (`source`)."""
    import jams  # imported here: see _jams_rows

    return jams.AnnotationMetadata(
        annotator=annotator,
        version=__version__,
        annotation_tools=f"mirkd {__version__}",
        data_source=source,
    )


def chord_annotation(
    segments: list[ChordSegment], duration: float, annotator: dict[str, Any], source: str
) -> Any:
    """Segments as one JAMS `chord` annotation spanning `duration` seconds."""
    import jams

    annotation = jams.Annotation(
        namespace=JAMS_NAMESPACE,
        time=0.0,
        duration=duration,
        annotation_metadata=jams_metadata(annotator, source),
    )
    for s in segments:
        annotation.append(time=s.start, duration=s.end - s.start, value=s.label)
    return annotation


def save_jams(path: str | Path, annotations: list[Any], duration: float) -> None:
    """A JAMS file of `annotations` for audio of `duration` seconds, written atomically."""
    import jams

    jam = jams.JAMS(file_metadata=jams.FileMetadata(duration=duration))
    for annotation in annotations:
        jam.annotations.append(annotation)
    with atomic_path(path) as tmp, tmp.open("w", encoding="utf-8") as out:
        jam.save(out)


def write_jams(
    path: str | Path, segments: list[ChordSegment], duration: float, annotator: dict[str, Any]
) -> None:
    """Write segments as one `chord` annotation of a JAMS file, atomically.

    `annotator` (who made the annotation, e.g. the model's identity) becomes the annotation's
    annotator metadata; the file duration is `duration` (of the audio, in seconds). The file
    is validated against the JAMS schema and the chord namespace before it is written.
    """
    source = "automatic chord transcription (mirkd)"
    save_jams(path, [chord_annotation(segments, duration, annotator, source)], duration)


def write_annotation(
    path: str | Path, segments: list[ChordSegment], duration: float, annotator: dict[str, Any]
) -> None:
    """Write segments in the format of `path`'s extension: .lab (write_lab: times and labels
    only) or .jams (write_jams, with `duration` and `annotator`)."""
    suffix = Path(path).suffix.lower()
    if suffix == ".lab":
        write_lab(path, segments)
    elif suffix == ".jams":
        write_jams(path, segments, duration, annotator)
    else:
        raise ValueError(f"{path}: unknown annotation format; use .lab or .jams")


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
