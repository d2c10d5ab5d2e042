"""Chord vocabularies (170-class large, 25-class majmin) and the Harte label -> class policy.

Vocabularies (as the reference BTC large-vocabulary and majmin models)
    LARGE "large170": index = 14*root + q for the 14 QUALITIES, 168 = X (unknown chord), 169 = N.
    MAJMIN "majmin25": index = 2*root + (1 if minor), 24 = N. It has no X class: X maps to N (24),
    as in the original BTC majmin model.
    Roots are pitch classes spelled with sharps (C, C#, ..., B); an index is emitted as ``ROOT``
    for maj and ``ROOT:quality`` otherwise, so flats are never produced.

Mapping policy for any Harte label (one policy, used for training targets and references alike;
also written up in docs/label-mapping.md)
    1. The label (surrounding whitespace stripped) is parsed with ``mir_eval.chord``; a label that
       is not valid Harte syntax (e.g. ``C:7sus4``, ``Cmaj``, ``C:b9``, empty) raises
       ChordLabelError naming the label. ``N`` -> N; ``X`` -> X.
    2. The root is folded to its pitch class (``Cb`` = B, ``E#`` = F, ``Db`` = C#).
    3. The bass (``/3``, ``/b7`` ...) is dropped: every chord maps to its root-position class.
    4. Added intervals in parentheses are dropped (``C:maj(9)`` -> C, ``G:sus4(b7)`` -> G:sus4).
       Omissions (``*``) are ignored too, unless they remove the root or the tone that defines the
       quality (the third; the 2nd of sus2; the 4th of sus4): then the chord is X
       (``C:maj(*3)`` is a power chord, not a major chord).
    5. Qualities: the 14 vocabulary qualities map to themselves (``minmaj7`` stays minmaj7, unlike
       mir_eval's reduction to min). Extended qualities are reduced as mir_eval does:
       9, 11, 13 -> 7; maj9, maj11, maj13 -> maj7; min9, min11, min13 -> min7. ``aug7`` -> aug
       (its seventh is dropped like an added interval; no augmented-seventh class exists).
    6. A label given only as an interval list (``C:(1,3,5)``) takes the quality whose pitch-class
       set (root included) equals the listed one exactly; otherwise X.
    7. Everything else that carries no triad (``1``, ``5``, ``C:(1)``, ``C:(1,5)``) is X, never maj.
    8. MAJMIN is derived from the large class: minor = the quality contains "min" (min, min6, min7,
       minmaj7); every other quality (incl. dim, dim7, hdim7, aug, sus2, sus4) counts as major,
       following the reference BTC majmin model; X -> N.

Training ignores X frames: ``Vocabulary.loss_targets`` replaces X by IGNORE_INDEX.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property, lru_cache

import mir_eval.chord
import numpy as np

from mirkd.errors import ChordLabelError, ConfigError

ROOTS: tuple[str, ...] = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
QUALITIES: tuple[str, ...] = (
    "min",
    "maj",
    "dim",
    "aug",
    "min6",
    "maj6",
    "min7",
    "minmaj7",
    "maj7",
    "7",
    "dim7",
    "hdim7",
    "sus2",
    "sus4",
)
IGNORE_INDEX = -100
NO_CHORD = "N"
UNKNOWN_CHORD = "X"

_EXTENDED = {
    "9": "7",
    "11": "7",
    "13": "7",
    "maj9": "maj7",
    "maj11": "maj7",
    "maj13": "maj7",
    "min9": "min7",
    "min11": "min7",
    "min13": "min7",
    "aug7": "aug",
}
# Semitones that must be present for a quality to keep its identity (root + defining tone).
_DEFINING = {q: {0, 3} if q.startswith(("min", "dim", "hdim")) else {0, 4} for q in QUALITIES}
_DEFINING.update({"sus2": {0, 2}, "sus4": {0, 5}})


def _pitch_class_set(quality: str) -> frozenset[int]:
    bitmap = mir_eval.chord.QUALITIES[quality]
    return frozenset(i for i, on in enumerate(bitmap) if on)


_QUALITY_OF_SET = {_pitch_class_set(q): q for q in QUALITIES}


@lru_cache(maxsize=4096)
def parse_chord(label: str) -> tuple[int, str]:
    """Map a Harte label to (root pitch class, quality) under the module's policy.

    The quality is one of QUALITIES, "N" or "X"; the root is -1 for N and X.
    """
    text = label.strip()
    if text == NO_CHORD:
        return -1, NO_CHORD
    if text == UNKNOWN_CHORD:
        return -1, UNKNOWN_CHORD
    try:
        root_name, quality, degrees, _bass = mir_eval.chord.split(text)
        root = mir_eval.chord.pitch_class_to_semitone(root_name) % 12
        added = {d for d in degrees if not d.startswith("*")}
        omitted = {
            mir_eval.chord.scale_degree_to_semitone(d[1:]) % 12
            for d in degrees
            if d.startswith("*")
        }
        added_set = {mir_eval.chord.scale_degree_to_semitone(d) % 12 for d in added}
    except mir_eval.chord.InvalidChordException as exc:
        raise ChordLabelError(label, f"not a valid Harte chord label ({exc.message})") from exc
    quality = _EXTENDED.get(quality, quality)
    if quality == "":
        quality = _QUALITY_OF_SET.get(frozenset(added_set | {0}), UNKNOWN_CHORD)
    if quality not in QUALITIES:
        return -1, UNKNOWN_CHORD
    if omitted & _DEFINING[quality]:
        return -1, UNKNOWN_CHORD
    return root, quality


@dataclass(frozen=True)
class Vocabulary:
    """A chord class set: `qualities` per root (index = len(qualities)*root + q), then X, N.

    `reduce` maps each of the 14 large-vocabulary QUALITIES to one of `qualities`.
    `x_index` is None when the vocabulary has no X class (X then maps to N).
    """

    name: str
    qualities: tuple[str, ...]
    reduce: dict[str, str] = field(hash=False, compare=False)
    n_index: int
    x_index: int | None

    @property
    def size(self) -> int:
        return self.n_index + 1

    @property
    def n_chords(self) -> int:
        """Number of rooted classes (those that move under transposition)."""
        return 12 * len(self.qualities)

    @cached_property
    def labels(self) -> tuple[str, ...]:
        rooted = [r if q == "maj" else f"{r}:{q}" for r in ROOTS for q in self.qualities]
        if self.x_index is not None:
            rooted.append(UNKNOWN_CHORD)
        return (*rooted, NO_CHORD)

    def to_index(self, label: str) -> int:
        """Class index of a Harte label (ChordLabelError if it cannot be parsed)."""
        root, quality = parse_chord(label)
        if quality == NO_CHORD:
            return self.n_index
        if quality == UNKNOWN_CHORD:
            return self.n_index if self.x_index is None else self.x_index
        return len(self.qualities) * root + self.qualities.index(self.reduce[quality])

    def to_label(self, index: int) -> str:
        """Canonical Harte label of a class index."""
        if not 0 <= index < self.size:
            raise ValueError(f"class index {index} outside {self.name} (0..{self.size - 1})")
        return self.labels[index]

    def quality(self, index: int) -> str:
        """Quality of a class ("N" or "X" for the non-rooted classes)."""
        label = self.to_label(index)
        if index >= self.n_chords:
            return label
        return self.qualities[index % len(self.qualities)]

    def root(self, index: int) -> int:
        """Root pitch class of a class, -1 for N and X."""
        self.to_label(index)
        return index // len(self.qualities) if index < self.n_chords else -1

    def transpose(self, indices: np.ndarray, semitones: int) -> np.ndarray:
        """Shift rooted classes by `semitones`; N, X and IGNORE_INDEX stay unchanged."""
        indices = np.asarray(indices)
        rooted = (indices >= 0) & (indices < self.n_chords)
        shifted = (indices + len(self.qualities) * semitones) % self.n_chords
        return np.where(rooted, shifted, indices).astype(indices.dtype, copy=False)

    def loss_targets(self, indices: np.ndarray) -> np.ndarray:
        """Frame targets for a loss: X frames become IGNORE_INDEX (no-op without an X class)."""
        indices = np.asarray(indices, dtype=np.int64)
        if self.x_index is None:
            return indices.copy()
        return np.where(indices == self.x_index, IGNORE_INDEX, indices)


LARGE = Vocabulary(
    name="large170",
    qualities=QUALITIES,
    reduce={q: q for q in QUALITIES},
    n_index=169,
    x_index=168,
)
MAJMIN = Vocabulary(
    name="majmin25",
    qualities=("maj", "min"),
    reduce={q: "min" if "min" in q else "maj" for q in QUALITIES},
    n_index=24,
    x_index=None,
)
VOCABULARIES = {v.name: v for v in (LARGE, MAJMIN)}


def get_vocabulary(name: str) -> Vocabulary:
    """Vocabulary by name ("large170" or "majmin25")."""
    try:
        return VOCABULARIES[name]
    except KeyError:
        raise ConfigError(f"unknown vocabulary {name!r}; known: {sorted(VOCABULARIES)}") from None
