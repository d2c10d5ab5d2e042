"""Embedded demo data set: synthetic chord songs with exact Harte labels, generated offline.

The pipeline's default corpus is built here so that `make run` needs no download. A song is
first *planned* (key, tempo, timbre, chord events with voicings; all randomness lives in the plan)
and then *rendered* by vectorised wavetable synthesis. Chord tones are derived from the Harte label
itself (`mir_eval.chord.encode`), so label and audio cannot disagree; every chord sounds exactly
inside its segment (attack at the segment start, release finished at its end).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import mir_eval.chord
import numpy as np
import soundfile as sf

from mirkd.atomic import atomic_path, atomic_write_json
from mirkd.errors import ChordLabelError, ConfigError
from mirkd.labels import ChordSegment, write_lab
from mirkd.vocab import ROOTS

DEMO_VERSION = 1
PARTS = ("unlabeled", "labeled", "test")
TEMPO_RANGE = (70.0, 160.0)

# Share of chord events per quality: maj/min dominate, sevenths a few %, the rest ~1-2 % each.
QUALITY_WEIGHTS: dict[str, float] = {
    "maj": 0.425,
    "min": 0.30,
    "7": 0.05,
    "maj7": 0.04,
    "min7": 0.05,
    "sus4": 0.02,
    "sus2": 0.015,
    "dim": 0.015,
    "dim7": 0.015,
    "hdim7": 0.015,
    "aug": 0.015,
    "maj6": 0.015,
    "min6": 0.015,
    "minmaj7": 0.01,
}

# Plausible roots per quality, as {semitones above the tonic: weight}, for major and minor keys.
_MAJOR_KEY_ROOTS: dict[str, dict[int, float]] = {
    "maj": {0: 3, 5: 2, 7: 2.5, 2: 0.3, 10: 0.4, 8: 0.3},
    "min": {9: 3, 2: 2, 4: 1.5, 5: 0.4},
    "7": {7: 4, 2: 1, 4: 0.7, 9: 0.7, 0: 0.5},
    "maj7": {0: 2, 5: 2},
    "min7": {2: 2, 9: 1.5, 4: 1},
    "sus4": {7: 2, 0: 1, 5: 1, 2: 0.5},
    "sus2": {0: 1, 5: 1, 7: 1, 2: 0.5},
    "dim": {11: 3, 1: 0.5, 6: 0.5},
    "dim7": {11: 2, 1: 1, 6: 1, 8: 0.5},
    "hdim7": {11: 2, 2: 1, 6: 0.5},
    "aug": {0: 1, 7: 1.5, 5: 0.3},
    "maj6": {0: 2, 5: 1.5},
    "min6": {2: 1, 9: 1, 5: 1},
    "minmaj7": {9: 1, 2: 0.5},
}
_MINOR_KEY_ROOTS: dict[str, dict[int, float]] = {
    "maj": {3: 2, 8: 2, 10: 2, 7: 2, 5: 0.3},
    "min": {0: 3, 5: 2, 7: 1},
    "7": {7: 4, 10: 1, 0: 0.5},
    "maj7": {3: 1, 8: 1.5},
    "min7": {0: 1.5, 5: 1.5, 7: 0.5},
    "sus4": {7: 2, 0: 1, 5: 0.5},
    "sus2": {0: 1, 7: 1, 10: 0.5},
    "dim": {2: 2, 11: 2},
    "dim7": {11: 3, 2: 0.5},
    "hdim7": {2: 3, 11: 0.5},
    "aug": {3: 2, 7: 0.5},
    "maj6": {3: 1, 8: 1},
    "min6": {0: 1.5, 5: 1},
    "minmaj7": {0: 2},
}

# Inversions (slash chords) allowed per quality, as Harte bass degrees.
_INVERSIONS: dict[str, tuple[str, ...]] = {
    "maj": ("3", "5"),
    "min": ("b3", "5"),
    "7": ("3", "5", "b7"),
    "maj7": ("3", "5", "7"),
    "min7": ("b3", "5", "b7"),
}
INVERSION_PROB = 0.12

# Chord duration in beats ("bar" = one bar, "2bar" = two bars) and how often each is used.
_DURATION_CHOICES = ("1", "2", "3", "4", "bar", "2bar")
_DURATION_WEIGHTS = (0.08, 0.27, 0.05, 0.15, 0.35, 0.10)

_TABLE_SIZE = 4096


@dataclass(frozen=True)
class Timbre:
    """A wavetable voice: harmonic amplitudes plus an envelope (attack, decay, re-strike)."""

    harmonics: tuple[float, ...]  # amplitude of harmonic k+1
    attack_s: float
    decay_s: float | None  # exponential decay time constant; None = sustained
    restrike: str | None  # None, "beat" or "bar": the note is struck again on that grid


def _tilt(n: int, tilt: float, odd_only: bool = False) -> tuple[float, ...]:
    """Harmonic amplitudes k^-tilt (optionally odd harmonics only)."""
    return tuple(0.0 if odd_only and k % 2 == 0 else float(k**-tilt) for k in range(1, n + 1))


CHORD_TIMBRES: dict[str, Timbre] = {
    "bright_piano": Timbre(_tilt(10, 1.1), 0.005, 1.4, "bar"),
    "mellow_pad": Timbre(_tilt(8, 2.0), 0.03, None, None),
    "pluck": Timbre(_tilt(12, 1.3), 0.003, 0.35, "beat"),
    "organ": Timbre((1.0, 0.7, 0.35, 0.3, 0.0, 0.15, 0.0, 0.1), 0.015, None, None),
    "soft_square": Timbre(_tilt(11, 1.5, odd_only=True), 0.02, None, None),
}
BASS_TIMBRES: dict[str, Timbre] = {
    "sine_bass": Timbre((1.0, 0.3, 0.1), 0.01, None, None),
    "pluck_bass": Timbre(_tilt(8, 1.2), 0.004, 0.6, "beat"),
}
_RELEASE_S = 0.02


@dataclass(frozen=True)
class ChordEvent:
    """One labelled span of a planned song, in samples; N spans have no notes."""

    start: int
    end: int
    label: str
    notes: tuple[float, ...]  # MIDI pitches (fractional = detuned) of the chord voicing
    bass: float | None  # MIDI pitch of the bass note


@dataclass(frozen=True)
class SongPlan:
    """Everything random about a song; rendering a plan is deterministic."""

    sr: int
    n_samples: int
    tonic: int
    mode: str  # "major" | "minor"
    tempo: float
    beats_per_bar: int
    timbre: str
    bass_timbre: str
    noise_db: float | None  # background noise level in dB re. full scale; None = silence
    peak: float
    render_seed: int
    events: tuple[ChordEvent, ...]

    @property
    def duration(self) -> float:
        return self.n_samples / self.sr

    def segments(self) -> list[ChordSegment]:
        """The exact ground-truth segments (they tile [0, duration])."""
        return [ChordSegment(e.start / self.sr, e.end / self.sr, e.label) for e in self.events]

    def summary(self) -> dict:
        """Per-song facts recorded in corpus.json."""
        return {
            "duration": self.duration,
            "key": f"{ROOTS[self.tonic]}:{'maj' if self.mode == 'major' else 'min'}",
            "tempo": self.tempo,
            "beats_per_bar": self.beats_per_bar,
            "timbre": self.timbre,
            "bass_timbre": self.bass_timbre,
            "noise_db": self.noise_db,
            "n_chords": sum(e.label != "N" for e in self.events),
        }


def _as_rng(rng_or_seed: np.random.Generator | int | list[int]) -> np.random.Generator:
    if isinstance(rng_or_seed, np.random.Generator):
        return rng_or_seed
    return np.random.default_rng(rng_or_seed)


def _pick(rng: np.random.Generator, weights: dict) -> Any:
    keys = list(weights)
    p = np.array([weights[k] for k in keys], dtype=float)
    return keys[rng.choice(len(keys), p=p / p.sum())]


def chord_label(root: int, quality: str, bass_degree: str | None = None) -> str:
    """Harte label with sharp roots: "C", "C/3", "A:min", "G:7/b7"."""
    text = ROOTS[root] if quality == "maj" else f"{ROOTS[root]}:{quality}"
    return text if bass_degree is None else f"{text}/{bass_degree}"


@lru_cache(maxsize=4096)
def chord_pitch_classes(label: str) -> tuple[tuple[int, ...], int]:
    """(pitch classes of the chord tones, root first, then by interval; pitch class of the bass)
    of a Harte label."""
    root, bitmap, bass = mir_eval.chord.encode(label)
    if root < 0:
        raise ChordLabelError(label, "N and X have no chord tones")
    pcs = tuple(int((root + i) % 12) for i in np.flatnonzero(bitmap))
    return pcs, int((root + bass) % 12)


def _random_chord(rng: np.random.Generator, tonic: int, mode: str) -> str:
    quality = str(_pick(rng, QUALITY_WEIGHTS))
    table = _MAJOR_KEY_ROOTS if mode == "major" else _MINOR_KEY_ROOTS
    root = (tonic + int(_pick(rng, table[quality]))) % 12
    inversions = _INVERSIONS.get(quality, ())
    bass = None
    if inversions and rng.random() < INVERSION_PROB:
        bass = inversions[rng.integers(len(inversions))]
    return chord_label(root, quality, bass)


def _voicing(
    rng: np.random.Generator, label: str, center: float
) -> tuple[tuple[float, ...], float]:
    """Close voicing of the chord tones around `center` (MIDI), optional doubled root, bass in
    octave 2; a few cents of random detune per note."""
    pcs, bass_pc = chord_pitch_classes(label)
    c = center + rng.uniform(-2.5, 2.5)
    notes = [pc + 12 * np.round((c - pc) / 12) for pc in pcs]
    if rng.random() < 0.3:
        notes.append(notes[0] + 12)
    detune = rng.normal(0.0, 0.03, size=len(notes) + 1)
    voiced = tuple(float(n + d) for n, d in zip(sorted(notes), detune[:-1], strict=True))
    return voiced, float(36 + bass_pc + detune[-1])


def plan_song(
    rng_or_seed: np.random.Generator | int | list[int], duration_s: float, sr: int = 22050
) -> SongPlan:
    """Draw key, tempo, timbres and a chord sequence that fills exactly `duration_s` seconds.

    The song is N (silence or background noise) for a short lead-in and tail; in between, chords
    change on beats. Progressions of 3-6 chords are repeated with occasional substitutions, so the
    per-event quality shares follow QUALITY_WEIGHTS.
    """
    if duration_s < 3.0:
        raise ConfigError(f"plan_song: duration {duration_s} s is too short (minimum 3 s)")
    rng = _as_rng(rng_or_seed)
    n_samples = int(round(duration_s * sr))
    tonic = int(rng.integers(12))
    mode = "major" if rng.random() < 0.6 else "minor"
    tempo = float(round(rng.uniform(*TEMPO_RANGE), 1))
    beats_per_bar = 3 if rng.random() < 0.2 else 4
    timbre = str(rng.choice(list(CHORD_TIMBRES)))
    bass_timbre = str(rng.choice(list(BASS_TIMBRES)))
    noise_db = None if rng.random() < 0.3 else float(round(rng.uniform(-60.0, -42.0), 1))
    peak = float(round(rng.uniform(0.4, 0.9), 3))
    center = rng.uniform(55.0, 64.0)
    beat = 60.0 / tempo
    lead = min(rng.uniform(0.2, 2.0), 0.15 * duration_s)
    tail = min(rng.uniform(0.5, 3.0), 0.15 * duration_s)
    chord_end = duration_s - tail
    beats_of = {"1": 1, "2": 2, "3": 3, "4": 4, "bar": beats_per_bar, "2bar": 2 * beats_per_bar}

    def progression() -> list[tuple[str, int]]:
        chords: list[tuple[str, int]] = []
        for _ in range(int(rng.integers(3, 7))):
            label = _random_chord(rng, tonic, mode)
            while chords and label == chords[-1][0]:
                label = _random_chord(rng, tonic, mode)
            length = beats_of[_DURATION_CHOICES[rng.choice(6, p=_DURATION_WEIGHTS)]]
            chords.append((label, length))
        return chords

    progressions = [progression() for _ in range(int(rng.integers(2, 4)))]
    tonic_label = chord_label(tonic, "maj" if mode == "major" else "min")
    if rng.random() < 0.7:
        progressions[0][0] = (tonic_label, progressions[0][0][1])

    spans: list[tuple[float, float, str]] = [(0.0, lead, "N")]
    t = lead
    while t < chord_end:
        for label, length in progressions[int(rng.integers(len(progressions)))]:
            if rng.random() < 0.15:
                label = _random_chord(rng, tonic, mode)
            while label == spans[-1][2]:
                label = _random_chord(rng, tonic, mode)
            end = min(t + length * beat, chord_end)
            if chord_end - end < beat:
                end = chord_end
            spans.append((t, end, label))
            t = end
            if t >= chord_end:
                break
    spans.append((chord_end, duration_s, "N"))

    bounds = [int(round(s * sr)) for s, _, _ in spans] + [n_samples]
    events = []
    for (_, _, label), start, end in zip(spans, bounds[:-1], bounds[1:], strict=True):
        if label == "N":
            events.append(ChordEvent(start, end, "N", (), None))
        else:
            notes, bass = _voicing(rng, label, center)
            events.append(ChordEvent(start, end, label, notes, bass))
    return SongPlan(
        sr=sr,
        n_samples=n_samples,
        tonic=tonic,
        mode=mode,
        tempo=tempo,
        beats_per_bar=beats_per_bar,
        timbre=timbre,
        bass_timbre=bass_timbre,
        noise_db=noise_db,
        peak=peak,
        render_seed=int(rng.integers(2**32)),
        events=tuple(events),
    )


@lru_cache(maxsize=16)
def _wavetable(harmonics: tuple[float, ...]) -> np.ndarray:
    """One period of the additive waveform (peak 1), with a wrap-around sample for interpolation."""
    phase = np.arange(_TABLE_SIZE + 1) / _TABLE_SIZE * 2 * np.pi
    k = np.arange(1, len(harmonics) + 1)[:, None]
    wave = np.asarray(harmonics)[None, :] @ np.sin(k * phase[None, :])
    return (wave[0] / np.abs(wave).max()).astype(np.float32)


def _midi_hz(midi: np.ndarray) -> np.ndarray:
    return 440.0 * 2.0 ** ((np.asarray(midi, dtype=np.float64) - 69.0) / 12.0)


def _envelope(
    timbre: Timbre, n: int, sr: int, period_s: float | None, velocities: np.ndarray
) -> np.ndarray:
    """Amplitude envelope of one chord span: attack, decay, re-strikes every `period_s` with their
    own velocity, and a release that reaches 0 exactly at the end of the span."""
    t = np.arange(n) / sr
    if period_s is None:
        since, strike = t, np.zeros(n, dtype=np.int64)
    else:
        strike = (t // period_s).astype(np.int64)
        since = t - strike * period_s
    env = np.minimum(1.0, since / timbre.attack_s) * velocities[strike]
    if timbre.decay_s is not None:
        env *= np.exp(-since / timbre.decay_s)
    if period_s is not None:
        env *= np.clip((period_s - since) / _RELEASE_S, 0.0, 1.0)
    env *= np.clip((n - np.arange(n)) / (_RELEASE_S * sr), 0.0, 1.0)
    return env


def _voice(
    timbre: Timbre, pitches: np.ndarray, gains: np.ndarray, n: int, sr: int, phases: np.ndarray
) -> np.ndarray:
    """Sum of wavetable oscillators at `pitches` (MIDI) with per-note gains, over n samples."""
    table = _wavetable(timbre.harmonics)
    cycles = _midi_hz(pitches)[:, None] * (np.arange(n) / sr)[None, :] + phases[:, None]
    x = (cycles % 1.0) * _TABLE_SIZE
    i = x.astype(np.int64)
    frac = (x - i).astype(np.float32)
    wave = table[i] + frac * (table[i + 1] - table[i])
    return gains.astype(np.float32) @ wave


def render_song(plan: SongPlan) -> np.ndarray:
    """Synthesize a planned song: mono float32 in [-1, 1], exactly plan.n_samples long."""
    rng = np.random.default_rng(plan.render_seed)
    sr = plan.sr
    beat = 60.0 / plan.tempo
    periods = {None: None, "beat": beat, "bar": beat * plan.beats_per_bar}
    chord_voice, bass_voice = CHORD_TIMBRES[plan.timbre], BASS_TIMBRES[plan.bass_timbre]
    music = np.zeros(plan.n_samples, dtype=np.float32)
    for ev in plan.events:
        n = ev.end - ev.start
        if not ev.notes or n == 0:
            continue
        for timbre, pitches, level in (
            (chord_voice, np.asarray(ev.notes), 1.0 / np.sqrt(len(ev.notes))),
            (bass_voice, np.asarray([ev.bass]), 0.6),
        ):
            period = periods[timbre.restrike]
            n_strikes = 1 if period is None else int(n / sr // period) + 1
            velocities = rng.uniform(0.7, 1.0, size=n_strikes)
            gains = level * rng.uniform(0.8, 1.0, size=len(pitches))
            phases = rng.random(len(pitches))
            sound = _voice(timbre, pitches, gains, n, sr, phases)
            music[ev.start : ev.end] += sound * _envelope(timbre, n, sr, period, velocities)
    loudest = float(np.abs(music).max())
    if loudest > 0:
        music *= plan.peak / loudest
    if plan.noise_db is not None:
        noise = rng.standard_normal(plan.n_samples, dtype=np.float32)
        music += noise * np.float32(10.0 ** (plan.noise_db / 20.0))
    return np.clip(music, -1.0, 1.0).astype(np.float32)


def synthesize_song(
    rng_or_seed: np.random.Generator | int | list[int], duration_s: float, sr: int = 22050
) -> tuple[np.ndarray, list[ChordSegment]]:
    """A random song of `duration_s` seconds and its exact chord segments (Harte labels)."""
    plan = plan_song(rng_or_seed, duration_s, sr)
    return render_song(plan), plan.segments()


def song_name(part: str, index: int) -> str:
    """File stem of song `index` of a demo part (the pipeline predicts paths with it)."""
    return f"{part}_{index:04d}"


def song_seed(seed: int, part: str, index: int) -> list[int]:
    """Seed of song `index` of `part`: independent of how many songs are requested."""
    return [int(seed), PARTS.index(part), int(index)]


def write_demo_corpus(
    out_dir: str | Path,
    n_unlabeled: int,
    n_labeled: int,
    n_test: int,
    seed: int,
    min_seconds: float = 30.0,
    max_seconds: float = 90.0,
    sr: int = 22050,
) -> dict:
    """Write out_dir/{unlabeled,labeled,test}/<song>.flac (+ <song>.lab for labeled and test;
    unlabeled truth goes to out_dir/unlabeled_truth/) and out_dir/corpus.json; returns the
    corpus.json content. Same arguments -> byte-identical files."""
    if not 3.0 <= min_seconds <= max_seconds:
        raise ConfigError(
            f"write_demo_corpus: need 3 <= min_seconds <= max_seconds, got "
            f"{min_seconds}, {max_seconds}"
        )
    out = Path(out_dir)
    counts = {"unlabeled": n_unlabeled, "labeled": n_labeled, "test": n_test}
    songs = []
    for part, count in counts.items():
        lab_dir = out / ("unlabeled_truth" if part == "unlabeled" else part)
        (out / part).mkdir(parents=True, exist_ok=True)
        lab_dir.mkdir(parents=True, exist_ok=True)
        for index in range(count):
            rng = np.random.default_rng(song_seed(seed, part, index))
            duration = round(float(rng.uniform(min_seconds, max_seconds)), 2)
            plan = plan_song(rng, duration, sr)
            name = song_name(part, index)
            audio_path = out / part / f"{name}.flac"
            lab_path = lab_dir / f"{name}.lab"
            with atomic_path(audio_path) as tmp:
                sf.write(tmp, render_song(plan), sr, format="FLAC", subtype="PCM_16")
            write_lab(lab_path, plan.segments())
            songs.append(
                {
                    "part": part,
                    "name": name,
                    "audio": audio_path.relative_to(out).as_posix(),
                    "lab": lab_path.relative_to(out).as_posix(),
                    **plan.summary(),
                }
            )
    corpus = {
        "generator": "mirkd.demo",
        "version": DEMO_VERSION,
        "seed": int(seed),
        "parameters": {
            **{f"n_{part}": count for part, count in counts.items()},
            "min_seconds": min_seconds,
            "max_seconds": max_seconds,
            "sr": sr,
        },
        "songs": songs,
    }
    atomic_write_json(out / "corpus.json", corpus)
    return corpus
