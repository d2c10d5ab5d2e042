"""Writers of beat-level chords: a text lead sheet, JAMS with beats and chords, a MIDI chord
track, and a self-contained HTML page that plays the song along its bar grid.

Bars start at the tracked downbeats (position 1); beats before the first downbeat (and the
pickup before the first beat) form a first, shorter bar. A bar's cell lists its chords in
order, a chord repeated on consecutive beats once (`F G` = F, then G, within the bar).
"""

from __future__ import annotations

import base64
import html
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mir_eval.chord

from mirkd import __version__
from mirkd.atomic import atomic_path
from mirkd.beats import BeatChord, BeatGrid, beat_segments
from mirkd.inference import Transcription
from mirkd.labels import (
    ChordSegment,
    chord_annotation,
    jams_metadata,
    save_jams,
    write_annotation,
)

BARS_PER_LINE = 4
TICKS_PER_BEAT = 480
MAX_MIDI_BEAT = 10.0  # s: a longer interval (an intro before the first beat) spans several beats

# Harte quality -> lead-sheet suffix (root letter + suffix, e.g. A:min7 -> Am7)
_SUFFIX = {
    "maj": "",
    "min": "m",
    "dim": "dim",
    "aug": "aug",
    "min6": "m6",
    "maj6": "6",
    "min7": "m7",
    "minmaj7": "m(maj7)",
    "maj7": "maj7",
    "7": "7",
    "dim7": "dim7",
    "hdim7": "m7b5",
    "sus2": "sus2",
    "sus4": "sus4",
}
_PITCHES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
_ROOT_SPELLING = {"D#": "Eb", "G#": "Ab", "A#": "Bb"}  # as lead sheets write them
_MIME = {
    ".wav": "audio/wav",
    ".mp3": "audio/mpeg",
    ".flac": "audio/flac",
    ".ogg": "audio/ogg",
    ".opus": "audio/ogg",
}


@dataclass(frozen=True)
class Bar:
    """A bar [start, end) and the chord symbol of each of its beats."""

    start: float
    end: float
    chords: tuple[str, ...]

    @property
    def text(self) -> str:
        """The bar's chords in order, consecutive repeats once."""
        kept = [c for i, c in enumerate(self.chords) if i == 0 or c != self.chords[i - 1]]
        return " ".join(kept)


def chord_symbol(label: str) -> str:
    """Lead-sheet symbol of a Harte label: C:maj -> C, A:min7 -> Am7, G:7/3 -> G7/B, N -> N.C.

    D#, G# and A# roots (the vocabulary spells roots with sharps) are written Eb, Ab and Bb.
    Qualities outside the vocabulary keep their Harte name after the root (D:sus4(b7) ->
    Dsus4(b7)); X (unknown) stays X."""
    if label in ("N", "X"):
        return "N.C." if label == "N" else "X"
    root, _, rest = label.partition(":")
    quality, _, bass = (rest or "maj").partition("/")
    symbol = _ROOT_SPELLING.get(root, root) + _SUFFIX.get(quality, quality)
    if bass:
        try:
            root_pc, _, bass_pc = mir_eval.chord.encode(label)
            symbol += "/" + _PITCHES[(root_pc + bass_pc) % 12]
        except mir_eval.chord.InvalidChordException:
            symbol += "/" + bass
    return symbol


def bars_of(chords: list[BeatChord]) -> list[Bar]:
    """Beat chords grouped into bars: a bar starts at each downbeat (position 1)."""
    groups: list[list[BeatChord]] = []
    for c in chords:
        if not groups or c.position == 1:
            groups.append([c])
        else:
            groups[-1].append(c)
    return [
        Bar(g[0].start, g[-1].end, tuple(chord_symbol(c.label) for c in g)) for g in groups if g
    ]


def segment_cells(segments: list[ChordSegment]) -> list[Bar]:
    """One cell per chord segment: the page's grid for a song without a beat grid."""
    return [Bar(s.start, s.end, (chord_symbol(s.label),)) for s in segments]


def lead_sheet(bars: list[Bar], grid: BeatGrid, title: str, model: str) -> str:
    """The text lead sheet: a header (title, meter, tempo, model) and `| C | Am | F G | C |`
    lines of BARS_PER_LINE bars, cells padded to one width."""
    width = max((len(b.text) for b in bars), default=1)
    lines = [
        f"# {title}",
        f"# meter {grid.meter}/4, tempo {grid.tempo:.0f} BPM, {len(bars)} bars; "
        f"chords: {model} (mirkd {__version__})",
    ]
    for i in range(0, len(bars), BARS_PER_LINE):
        cells = [b.text.ljust(width) for b in bars[i : i + BARS_PER_LINE]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_lead_sheet(
    path: str | Path, bars: list[Bar], grid: BeatGrid, title: str, model: str
) -> None:
    """Write `lead_sheet` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(lead_sheet(bars, grid, title, model), encoding="utf-8")


def write_beats_jams(
    path: str | Path,
    grid: BeatGrid,
    chords: list[BeatChord],
    duration: float,
    annotator: dict[str, Any],
) -> None:
    """JAMS with a `beat` annotation (value: position in the bar, 1 = downbeat; meter and
    tempo in the sandbox) and a `chord` annotation of the beat-level chords, atomically."""
    import jams

    beats = jams.Annotation(
        namespace="beat",
        time=0.0,
        duration=duration,
        annotation_metadata=jams_metadata(annotator, "beat and downbeat tracking (madmom)"),
        sandbox=jams.Sandbox(meter=grid.meter, tempo_bpm=round(grid.tempo, 2)),
    )
    for t, p in zip(grid.times.tolist(), grid.positions.tolist(), strict=True):
        if t < duration:
            beats.append(time=t, duration=0.0, value=int(p), confidence=None)
    source = "chords decided per beat (mirkd, Viterbi over beats)"
    chord = chord_annotation(beat_segments(chords), duration, annotator, source)
    save_jams(path, [beats, chord], duration)


def chord_notes(label: str) -> list[int]:
    """MIDI notes of a chord: its pitch classes from the root upwards from C4 (root 60-71), the
    bass an octave below the root's octave (36-47); none for N and X."""
    root, bitmap, bass = mir_eval.chord.encode(label)
    if root < 0:
        return []
    notes = [60 + root + i for i in range(12) if bitmap[i]]
    return [36 + (root + bass) % 12, *notes]


def write_midi(
    path: str | Path, grid: BeatGrid, chords: list[BeatChord], title: str, velocity: int = 80
) -> None:
    """Type-1 MIDI file: a conductor track (time signature of the meter, a tempo change at every
    beat so each tracked beat falls on a quarter note) and a `chords` track holding each chord
    from its first beat to the beat where it changes. An interval longer than MAX_MIDI_BEAT
    seconds spans several quarter notes."""
    import mido

    mid = mido.MidiFile(type=1, ticks_per_beat=TICKS_PER_BEAT)
    conductor = mido.MidiTrack()
    conductor.append(mido.MetaMessage("track_name", name=title, time=0))
    conductor.append(mido.MetaMessage("time_signature", numerator=grid.meter, denominator=4))
    starts: list[int] = []  # tick of each interval's start
    tick = 0
    last = 0
    for c in chords:
        span = c.end - c.start
        quarters = max(1, math.ceil(span / MAX_MIDI_BEAT))
        tempo = max(1, min(round(span / quarters * 1e6), 0xFFFFFF))
        conductor.append(mido.MetaMessage("set_tempo", tempo=tempo, time=tick - last))
        last = tick
        starts.append(tick)
        tick += quarters * TICKS_PER_BEAT
    conductor.append(mido.MetaMessage("end_of_track", time=tick - last))
    track = mido.MidiTrack()
    track.append(mido.MetaMessage("track_name", name="chords", time=0))
    events: list[tuple[int, int, int]] = []  # (tick, 0 = off / 1 = on, note)
    i = 0
    while i < len(chords):
        j = i
        while j + 1 < len(chords) and chords[j + 1].label == chords[i].label:
            j += 1
        end = starts[j + 1] if j + 1 < len(chords) else tick
        for note in chord_notes(chords[i].label):
            events += [(starts[i], 1, note), (end, 0, note)]
        i = j + 1
    now = 0
    for at, on, note in sorted(events):
        kind = "note_on" if on else "note_off"
        track.append(mido.Message(kind, note=note, velocity=velocity if on else 0, time=at - now))
        now = at
    track.append(mido.MetaMessage("end_of_track", time=tick - now))
    mid.tracks += [conductor, track]
    with atomic_path(path) as tmp:
        mid.save(str(tmp))


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>__TITLE__ - chords</title>
<style>
body { font-family: system-ui, sans-serif; margin: 1.5em; background: #fafafa; color: #222; }
header p { margin: 0.2em 0; color: #555; }
audio { width: 100%; margin: 1em 0; }
#grid { display: grid; grid-template-columns: repeat(4, 1fr); gap: 4px; }
.bar { border: 1px solid #bbb; border-radius: 4px; padding: 0.6em 0.5em; background: #fff;
  font-size: 1.15em; cursor: pointer; min-height: 1.4em; }
.bar:hover { background: #eef; }
.bar.now { background: #ffd54f; border-color: #c79a00; font-weight: bold; }
.bar .n { display: block; font-size: 0.6em; color: #999; font-weight: normal; }
</style>
</head>
<body>
<header>
<h1>__TITLE__</h1>
<p>__INFO__</p>
<p>Model: <span id="model">__MODEL__</span> (mirkd __VERSION__)</p>
</header>
<audio id="audio" controls preload="auto" src="__SRC__"></audio>
<div id="grid">__CELLS__</div>
<script>
(function () {
  var audio = document.getElementById("audio");
  var bars = Array.prototype.slice.call(document.querySelectorAll(".bar"));
  var starts = bars.map(function (b) { return parseFloat(b.dataset.start); });
  var current = -1;
  function barAt(t) {
    var lo = 0, hi = starts.length - 1, found = 0;
    while (lo <= hi) {
      var mid = (lo + hi) >> 1;
      if (starts[mid] <= t) { found = mid; lo = mid + 1; } else { hi = mid - 1; }
    }
    return found;
  }
  function update() {
    var i = barAt(audio.currentTime);
    if (i !== current) {
      if (current >= 0) bars[current].classList.remove("now");
      bars[i].classList.add("now");
      current = i;
      document.body.dataset.bar = String(i);
      if (!audio.paused) bars[i].scrollIntoView({block: "nearest"});
    }
  }
  function tick() { update(); if (!audio.paused) requestAnimationFrame(tick); }
  audio.addEventListener("play", function () { requestAnimationFrame(tick); });
  audio.addEventListener("timeupdate", update);
  audio.addEventListener("seeked", update);
  bars.forEach(function (bar, i) {
    bar.addEventListener("click", function () {
      audio.currentTime = starts[i];
      update();
      audio.play();
    });
  });
  if (bars.length) update();
})();
</script>
</body>
</html>
"""


def page(title: str, info: str, model: str, bars: list[Bar], src: str) -> str:
    """The HTML page: header (title, `info`, model), the audio element with `src`, and the bar
    grid; a bar is highlighted while the audio plays through it, and a click seeks to it. No
    external script, style, font or request."""
    cells = "".join(
        f'<div class="bar" data-index="{i}" data-start="{b.start:.3f}" data-end="{b.end:.3f}">'
        f'<span class="n">{i + 1}</span>{html.escape(b.text)}</div>'
        for i, b in enumerate(bars)
    )
    return (
        _PAGE.replace("__TITLE__", html.escape(title))
        .replace("__INFO__", html.escape(info))
        .replace("__MODEL__", html.escape(model))
        .replace("__VERSION__", __version__)
        .replace("__SRC__", html.escape(src, quote=True))
        .replace("__CELLS__", cells)
    )


def audio_data_uri(audio: str | Path) -> str:
    """The audio file as a base64 data: URI (the page then needs nothing beside it)."""
    audio = Path(audio)
    mime = _MIME.get(audio.suffix.lower(), "application/octet-stream")
    return f"data:{mime};base64," + base64.b64encode(audio.read_bytes()).decode("ascii")


def write_page(
    path: str | Path, audio: str | Path, bars: list[Bar], title: str, info: str, model: str
) -> None:
    """Write `page` with the audio embedded, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(page(title, info, model, bars, audio_data_uri(audio)), encoding="utf-8")


def model_name(annotator: dict[str, Any]) -> str:
    """Short model name for headers: checkpoint name, arch and stage where known."""
    parts = [str(annotator.get("name", "model"))]
    details = [str(annotator[k]) for k in ("arch", "stage") if annotator.get(k) is not None]
    return parts[0] + (f" ({', '.join(details)})" if details else "")


def page_info(grid: BeatGrid | None, n_cells: int) -> str:
    """The page's line under the title: meter, tempo and bars, or why there is no bar grid."""
    if grid is None:
        return f"No beat detected: {n_cells} chord segments (frame level), no bars."
    return f"Meter {grid.meter}/4, tempo {grid.tempo:.0f} BPM, {n_cells} bars."


def write_outputs(
    out_dir: str | Path,
    audio: str | Path,
    song: Transcription,
    annotator: dict[str, Any],
    fmt: str = "lab",
    html_page: bool = False,
) -> tuple[list[Path], list[str]]:
    """Write a transcribed song's files into `out_dir`; returns (paths written, warnings).

    Always `<stem>.<fmt>` (frame-level chords, .lab or .jams). With a beat grid (`song.grid`):
    `<stem>.leadsheet.txt`, `<stem>.beats.jams` and `<stem>.chords.mid`. With `html_page`:
    `<stem>.html`, its grid the bars, or the frame-level chord segments when the song has no
    beat grid. A song transcribed with beats but without a detected beat gets a warning."""
    audio = Path(audio)
    out_dir = Path(out_dir)
    stem = audio.stem
    model = model_name(annotator)
    written = [out_dir / f"{stem}.{fmt}"]
    write_annotation(written[0], song.segments, song.duration, annotator)
    warnings: list[str] = []
    grid, chords = song.grid, song.beat_chords
    if grid is not None and chords is not None:
        bars = bars_of(chords)
        written += [
            out_dir / f"{stem}.leadsheet.txt",
            out_dir / f"{stem}.beats.jams",
            out_dir / f"{stem}.chords.mid",
        ]
        write_lead_sheet(written[-3], bars, grid, audio.name, model)
        write_beats_jams(written[-2], grid, chords, song.duration, annotator)
        write_midi(written[-1], grid, chords, stem)
    else:
        bars = segment_cells(song.segments)
        if song.beat_chords is None and song.beats_requested:
            warnings.append(
                f"{audio}: no beat detected; wrote frame-level chords only "
                "(no lead sheet, beat JAMS or MIDI)"
            )
    if html_page:
        written.append(out_dir / f"{stem}.html")
        write_page(written[-1], audio, bars, audio.name, page_info(grid, len(bars)), model)
    return written, warnings
