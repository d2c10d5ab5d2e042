"""Reading/writing .lab and JAMS files and converting between segments and frame labels."""

from __future__ import annotations

from pathlib import Path

import jams
import numpy as np
import pytest

from mirkd.errors import LabFormatError
from mirkd.labels import (
    ChordSegment,
    frames_to_segments,
    read_annotation,
    segments_to_frames,
    write_annotation,
    write_lab,
)
from mirkd.manifest import find_annotation
from mirkd.vocab import LARGE, MAJMIN

from workflow_helpers import POP909_SONGS

POP909_LABS = sorted(POP909_SONGS.glob("*/chord_midi.txt"))


def test_write_read_roundtrip(tmp_path):
    segs = [
        ChordSegment(0.0, 1.5, "N"),
        ChordSegment(1.5, 3.25, "C:min7"),
        ChordSegment(3.25, 4.0, "G"),
    ]
    path = tmp_path / "sub" / "song.lab"
    write_lab(path, segs)
    assert path.read_text().splitlines()[1] == "1.500000\t3.250000\tC:min7"
    assert read_annotation(path) == segs
    assert list(path.parent.iterdir()) == [path]  # no temp file left behind


def test_read_accepts_spaces_blank_lines_and_comments(tmp_path):
    path = tmp_path / "a.lab"
    path.write_text("# a comment\n\n0 1.0 C\n  1.0   2.5\tA:min/b3  \n\n")
    expected = [ChordSegment(0.0, 1.0, "C"), ChordSegment(1.0, 2.5, "A:min/b3")]
    assert read_annotation(path, LARGE) == expected


@pytest.mark.parametrize(
    "bad_line, cause",
    [
        ("1.0 abc C", "not a number"),
        ("2.0 1.0 C", "before start"),
        ("1.0 2.0", "2 field"),
        ("1.0 2.0 C maj", "4 field"),
        ("-1.0 2.0 C", "finite time"),
        ("1.0 nan C", "finite time"),
        ("1.0 2.0 C:7sus4", "'C:7sus4'"),
        ("1.0 2.0 Hmaj", "'Hmaj'"),
    ],
)
def test_bad_line_names_file_and_line(tmp_path, bad_line, cause):
    path = tmp_path / "broken.lab"
    path.write_text(f"# header\n0.0 1.0 N\n{bad_line}\n")
    with pytest.raises(LabFormatError) as info:
        read_annotation(path, LARGE)
    message = str(info.value)
    assert f"{path}:3:" in message and cause in message
    assert info.value.line_no == 3


def test_unknown_label_is_accepted_without_vocab(tmp_path):
    path = tmp_path / "a.lab"
    path.write_text("0 1 C:7sus4\n")
    assert read_annotation(path)[0].label == "C:7sus4"


def test_missing_or_undecodable_file(tmp_path):
    with pytest.raises(LabFormatError, match="missing.lab: cannot read"):
        read_annotation(tmp_path / "missing.lab")
    binary = tmp_path / "binary.lab"
    binary.write_bytes(b"\xff\xfe\x00\x80")
    with pytest.raises(LabFormatError, match="binary.lab: cannot read"):
        read_annotation(binary)


def test_segments_to_frames_largest_overlap():
    segs = [
        ChordSegment(0.0, 1.6, "C"),  # frame 0 fully, frame 1 by 0.6
        ChordSegment(1.6, 3.0, "A:min"),  # frame 1 by 0.4, frame 2 fully
        ChordSegment(4.5, 5.5, "G:7"),  # half of frames 4 and 5: tie with nothing -> G:7
        ChordSegment(5.5, 6.5, "D"),  # ties with G:7 on frame 5: the earlier segment wins
        ChordSegment(9.0, 20.0, "E"),  # beyond n_frames: clipped
    ]
    frames = segments_to_frames(segs, 8, 1.0, LARGE)
    expected = ["C", "C", "A:min", "N", "G:7", "G:7", "D", "N"]
    assert frames.dtype == np.int64
    assert [LARGE.to_label(int(i)) for i in frames] == expected


def test_segments_to_frames_short_segment_inside_a_frame():
    p = 2048 / 22050
    segs = [
        ChordSegment(0.0, 0.5 * p, "C"),
        ChordSegment(0.5 * p, 0.6 * p, "D"),
        ChordSegment(0.6 * p, 3 * p, "E"),
    ]
    frames = segments_to_frames(segs, 3, p, LARGE)
    assert [LARGE.to_label(int(i)) for i in frames] == ["C", "E", "E"]


def test_frames_to_segments_merges_runs():
    idx = np.array([169, 169, 1, 1, 1, 0, 168])
    segs = frames_to_segments(idx, 0.5, LARGE)
    assert segs == [
        ChordSegment(0.0, 1.0, "N"),
        ChordSegment(1.0, 2.5, "C"),
        ChordSegment(2.5, 3.0, "C:min"),
        ChordSegment(3.0, 3.5, "X"),
    ]
    assert frames_to_segments(idx, 0.5, LARGE, duration=3.2)[-1] == ChordSegment(3.0, 3.2, "X")
    clipped = frames_to_segments(idx, 0.5, LARGE, duration=2.7)
    assert clipped[-1] == ChordSegment(2.5, 2.7, "C:min") and len(clipped) == 3
    assert frames_to_segments(np.array([], dtype=np.int64), 0.5, LARGE) == []


@pytest.mark.parametrize("vocab", [LARGE, MAJMIN])
def test_frames_segments_frames_roundtrip(vocab):
    rng = np.random.default_rng(0)
    idx = np.repeat(rng.integers(0, vocab.size, 40), rng.integers(1, 6, 40))
    p = 2048 / 22050
    segs = frames_to_segments(idx, p, vocab)
    assert np.array_equal(segments_to_frames(segs, len(idx), p, vocab), idx)


@pytest.mark.skipif(not POP909_LABS, reason=f"POP909 annotations absent under {POP909_SONGS}")
def test_all_pop909_annotations_read_with_vocab():
    n = sum(len(read_annotation(path, LARGE)) for path in POP909_LABS)
    assert n > len(POP909_LABS)


def test_utf8_bom_is_ignored(tmp_path):
    path = tmp_path / "bom.lab"
    path.write_bytes("\ufeff0.0\t1.0\tC\n1.0\t2.0\tG:7\n".encode())
    expected = [ChordSegment(0.0, 1.0, "C"), ChordSegment(1.0, 2.0, "G:7")]
    assert read_annotation(path, LARGE) == expected


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "\ufeff"])
def test_empty_annotation_is_refused(tmp_path, text):
    path = tmp_path / "empty.lab"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(LabFormatError, match=r"empty.lab: no chord segments"):
        read_annotation(path)


def test_overlapping_segments_name_file_and_line(tmp_path):
    path = tmp_path / "overlap.lab"
    path.write_text("0.0 2.0 C\n2.0 4.0 G\n3.5 6.0 A:min\n")
    with pytest.raises(LabFormatError, match=r"overlap.lab:3: segment starts at 3.5.*overlap"):
        read_annotation(path)
    path.write_text("0.0 2.0000004 C\n2.0 4.0 G\n")  # printed-time rounding is no overlap
    assert len(read_annotation(path)) == 2


def test_end_within_a_second_of_the_audio_is_trimmed(tmp_path):
    path = tmp_path / "song.lab"
    path.write_text("0.0 5.0 C\n5.0 10.6 G\n10.6 10.8 N\n")
    segments = read_annotation(path, LARGE, duration=10.5)
    assert segments == [ChordSegment(0.0, 5.0, "C"), ChordSegment(5.0, 10.5, "G")]
    assert read_annotation(path, duration=11.5)[-1].end == 10.8  # a little short: kept as written
    # a rendered or recorded song often rings on after its last chord: the tail stays "N"
    assert read_annotation(path, duration=12.8)[-1].end == 10.8


@pytest.mark.parametrize("duration", [8.0, 20.5])
def test_end_far_from_the_audio_is_refused(tmp_path, duration):
    path = tmp_path / "other_song.lab"
    path.write_text("0.0 5.0 C\n5.0 10.0 G\n")
    with pytest.raises(LabFormatError) as info:
        read_annotation(path, duration=duration)
    message = str(info.value)
    assert message.startswith(f"{path}: annotation ends at 10.000 s")
    assert f"the audio lasts {duration:.3f} s" in message


def _jams_file(path, *annotations: tuple[str, list[tuple[float, float, object]]]):
    """A JAMS file holding one annotation per (namespace, [(time, duration, value)])."""
    jam = jams.JAMS(file_metadata=jams.FileMetadata(duration=20.0))
    for namespace, observations in annotations:
        annotation = jams.Annotation(namespace=namespace)
        for time, duration, value in observations:
            annotation.append(time=time, duration=duration, value=value)
        jam.annotations.append(annotation)
    jam.save(str(path), strict=False)
    return path


def test_lab_to_jams_to_segments_roundtrip(tmp_path):
    segs = [
        ChordSegment(0.0, 1.5, "N"),
        ChordSegment(1.5, 3.25, "C:min7"),
        ChordSegment(3.25, 4.0, "G:7/b7"),
        ChordSegment(4.0, 4.5, "X"),
    ]
    write_lab(tmp_path / "song.lab", segs)
    write_annotation(
        tmp_path / "song.jams", read_annotation(tmp_path / "song.lab"), 4.5, {"name": "test"}
    )
    assert read_annotation(tmp_path / "song.jams", LARGE) == segs
    jam = jams.load(str(tmp_path / "song.jams"), validate=True)
    assert jam.file_metadata.duration == 4.5
    assert jam.annotations[0].annotation_metadata.annotator.name == "test"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["song.jams", "song.lab"]


def test_jams_reads_the_first_chord_annotation(tmp_path):
    path = _jams_file(
        tmp_path / "choco.jams",
        ("key_mode", [(0.0, 4.0, "C:major")]),
        ("chord", [(0.0, 2.0, "C"), (2.0, 2.0, "A:min")]),
        ("chord", [(0.0, 4.0, "G")]),
    )
    assert read_annotation(path, LARGE, duration=4.2) == [
        ChordSegment(0.0, 2.0, "C"),
        ChordSegment(2.0, 4.0, "A:min"),
    ]


def test_jams_bom_is_ignored(tmp_path):
    path = _jams_file(tmp_path / "a.jams", ("chord", [(0.0, 1.0, "C")]))
    path.write_bytes("\ufeff".encode() + path.read_bytes())
    assert read_annotation(path) == [ChordSegment(0.0, 1.0, "C")]


@pytest.mark.parametrize(
    "annotations, cause",
    [
        ([("chord", [])], "no chord segments: the annotation is empty"),
        (
            [("chord", [(0.0, 2.0, "C"), (1.5, 1.0, "G")])],
            "'chord' observation 1: segment starts at 1.5, before the previous one ends",
        ),
        ([("chord", [(0.0, 2.0, "C:7sus4")])], "'chord' observation 0: chord label 'C:7sus4'"),
        ([("beat", [(0.0, 0.0, 1)])], "no 'chord' annotation (namespaces found: beat)"),
        ([("chord", [(0.0, 2.0, None)])], "'chord' observation 0: value None is not a chord"),
    ],
)
def test_bad_jams_names_file_and_cause(tmp_path, annotations, cause):
    path = _jams_file(tmp_path / "bad.jams", *annotations)
    with pytest.raises(LabFormatError) as info:
        read_annotation(path, LARGE)
    assert str(info.value).startswith(f"{path}: ") and cause in str(info.value)


def test_jams_end_far_from_the_audio_is_refused(tmp_path):
    path = _jams_file(tmp_path / "other.jams", ("chord", [(0.0, 10.0, "C")]))
    with pytest.raises(LabFormatError, match=r"other.jams: annotation ends at 10.000 s"):
        read_annotation(path, duration=20.5)


@pytest.mark.parametrize("content", [b"not json", b"[1, 2]", b'{"annotations": [{}]}'])
def test_unreadable_jams_names_file(tmp_path, content):
    path = tmp_path / "broken.jams"
    path.write_bytes(content)
    with pytest.raises(LabFormatError, match=r"broken.jams: cannot read as JAMS"):
        read_annotation(path)


def test_find_annotation_prefers_lab(tmp_path):
    audio = tmp_path / "song.flac"
    assert find_annotation(audio) is None
    (tmp_path / "song.jams").write_text("{}")
    assert find_annotation(audio) == tmp_path / "song.jams"
    (tmp_path / "song.lab").write_text("0 1 C\n")
    assert find_annotation(audio) == tmp_path / "song.lab"


@pytest.mark.parametrize("name", ["locked.lab", "locked.jams"])
def test_an_annotation_that_may_not_be_read_says_permission_denied(tmp_path, monkeypatch, name):
    """Root reads every file, so the refusal is simulated."""
    path = tmp_path / name
    path.write_text("{}")
    read_text = Path.read_text

    def refusing(self, *args, **kwargs):
        if self == path:
            raise PermissionError(13, "Permission denied", str(self))
        return read_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", refusing)
    with pytest.raises(LabFormatError) as info:
        read_annotation(path)
    assert str(info.value) == f"{path}: cannot read: permission denied"
