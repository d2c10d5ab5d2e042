"""Reading/writing .lab files and converting between segments and frame labels."""

from __future__ import annotations

import numpy as np
import pytest

from mirkd.errors import LabFormatError
from mirkd.labels import ChordSegment, frames_to_segments, read_lab, segments_to_frames, write_lab
from mirkd.vocab import LARGE, MAJMIN

from workflow_helpers import POP909_SONGS

POP909_LABS = sorted(POP909_SONGS.glob("*/chord_midi.txt"))


def test_write_read_roundtrip(tmp_path):
    segs = [
        ChordSegment(0.0, 1.5, "N"), ChordSegment(1.5, 3.25, "C:min7"), ChordSegment(3.25, 4.0, "G")
    ]
    path = tmp_path / "sub" / "song.lab"
    write_lab(path, segs)
    assert path.read_text().splitlines()[1] == "1.500000\t3.250000\tC:min7"
    assert read_lab(path) == segs
    assert list(path.parent.iterdir()) == [path]  # no temp file left behind


def test_read_accepts_spaces_blank_lines_and_comments(tmp_path):
    path = tmp_path / "a.lab"
    path.write_text("# a comment\n\n0 1.0 C\n  1.0   2.5\tA:min/b3  \n\n")
    expected = [ChordSegment(0.0, 1.0, "C"), ChordSegment(1.0, 2.5, "A:min/b3")]
    assert read_lab(path, LARGE) == expected


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
        read_lab(path, LARGE)
    message = str(info.value)
    assert f"{path}:3:" in message and cause in message
    assert info.value.line_no == 3


def test_unknown_label_is_accepted_without_vocab(tmp_path):
    path = tmp_path / "a.lab"
    path.write_text("0 1 C:7sus4\n")
    assert read_lab(path)[0].label == "C:7sus4"


def test_missing_or_undecodable_file(tmp_path):
    with pytest.raises(LabFormatError, match="missing.lab: cannot read"):
        read_lab(tmp_path / "missing.lab")
    binary = tmp_path / "binary.lab"
    binary.write_bytes(b"\xff\xfe\x00\x80")
    with pytest.raises(LabFormatError, match="binary.lab: cannot read"):
        read_lab(binary)


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
    segs = [ChordSegment(0.0, 0.5 * p, "C"), ChordSegment(0.5 * p, 0.6 * p, "D"),
            ChordSegment(0.6 * p, 3 * p, "E")]
    frames = segments_to_frames(segs, 3, p, LARGE)
    assert [LARGE.to_label(int(i)) for i in frames] == ["C", "E", "E"]


def test_frames_to_segments_merges_runs():
    idx = np.array([169, 169, 1, 1, 1, 0, 168])
    segs = frames_to_segments(idx, 0.5, LARGE)
    assert segs == [
        ChordSegment(0.0, 1.0, "N"), ChordSegment(1.0, 2.5, "C"),
        ChordSegment(2.5, 3.0, "C:min"), ChordSegment(3.0, 3.5, "X"),
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
    n = sum(len(read_lab(path, LARGE)) for path in POP909_LABS)
    assert n > len(POP909_LABS)


def test_utf8_bom_is_ignored(tmp_path):
    path = tmp_path / "bom.lab"
    path.write_bytes("\ufeff0.0\t1.0\tC\n1.0\t2.0\tG:7\n".encode())
    assert read_lab(path, LARGE) == [ChordSegment(0.0, 1.0, "C"), ChordSegment(1.0, 2.0, "G:7")]


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "\ufeff"])
def test_empty_annotation_is_refused(tmp_path, text):
    path = tmp_path / "empty.lab"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(LabFormatError, match=r"empty.lab: no chord segments"):
        read_lab(path)


def test_overlapping_segments_name_file_and_line(tmp_path):
    path = tmp_path / "overlap.lab"
    path.write_text("0.0 2.0 C\n2.0 4.0 G\n3.5 6.0 A:min\n")
    with pytest.raises(LabFormatError, match=r"overlap.lab:3: segment starts at 3.5.*overlap"):
        read_lab(path)
    path.write_text("0.0 2.0000004 C\n2.0 4.0 G\n")  # printed-time rounding is no overlap
    assert len(read_lab(path)) == 2


def test_end_within_a_second_of_the_audio_is_trimmed(tmp_path):
    path = tmp_path / "song.lab"
    path.write_text("0.0 5.0 C\n5.0 10.6 G\n10.6 10.8 N\n")
    segments = read_lab(path, LARGE, duration=10.5)
    assert segments == [ChordSegment(0.0, 5.0, "C"), ChordSegment(5.0, 10.5, "G")]
    assert read_lab(path, duration=11.5)[-1].end == 10.8  # a little short: kept as written


@pytest.mark.parametrize("duration", [8.0, 12.0])
def test_end_far_from_the_audio_is_refused(tmp_path, duration):
    path = tmp_path / "other_song.lab"
    path.write_text("0.0 5.0 C\n5.0 10.0 G\n")
    with pytest.raises(LabFormatError) as info:
        read_lab(path, duration=duration)
    message = str(info.value)
    assert message.startswith(f"{path}: annotation ends at 10.000 s")
    assert f"the audio lasts {duration:.3f} s" in message
