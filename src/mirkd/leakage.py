"""Audio shared between the sets of a run, found by the content fingerprints of planning.

A test song whose audio is also in a set the models learn or are selected from scores what a
model has seen: always an error. A labeled song whose audio is also unlabeled is trained on by
stage 1 with its teacher's labels: an error unless `data.allow_labeled_in_unlabeled` allows it,
and then listed in the summary. Copies inside one set are listed in a warning.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from mirkd.errors import ConfigError
from mirkd.manifest import Track

log = logging.getLogger(__name__)
SHOWN = 5  # pairs an error message names


@dataclass(frozen=True)
class SameAudio:
    """Two tracks whose audio files have the same content."""

    first: Track
    second: Track

    def __str__(self) -> str:
        return (
            f"{self.first.audio} ({self.first.set_name}) and "
            f"{self.second.audio} ({self.second.set_name})"
        )


@dataclass
class SharedAudio:
    """The pairs of tracks of a run with the same audio, by what they mean."""

    test: list[SameAudio] = field(default_factory=list)  # (test track, a track not tested on)
    labeled_in_unlabeled: list[SameAudio] = field(default_factory=list)  # (labeled, unlabeled)
    duplicates: list[SameAudio] = field(default_factory=list)  # two tracks of one set

    def check(self, allow_labeled_in_unlabeled: bool) -> None:
        """ConfigError for a test song in other data, or a labeled song in the unlabeled set
        unless that is allowed."""
        if self.test:
            raise ConfigError(
                f"{len(self.test)} test song(s) have the same audio as songs the models learn "
                f"or are selected from: {_listed(self.test)}. Remove them from one of the "
                "folders (test songs are those of data.test, or the labeled set's test split)"
            )
        if self.labeled_in_unlabeled and not allow_labeled_in_unlabeled:
            raise ConfigError(
                f"{len(self.labeled_in_unlabeled)} labeled song(s) are also in the unlabeled "
                f"set: {_listed(self.labeled_in_unlabeled)}. Remove them from the unlabeled "
                "folders, or set data.allow_labeled_in_unlabeled: true to let stage 1 train on "
                "them with teacher labels (they are then listed in results/summary.md)"
            )

    def report(self) -> None:
        """Warn of copies inside a set (all listed) and of allowed labeled-in-unlabeled songs."""
        if self.duplicates:
            log.warning(
                "%d audio file(s) are copies of another file of the same set (each is used as "
                "a track of its own): %s",
                len(self.duplicates),
                "; ".join(map(str, self.duplicates)),
            )
        if self.labeled_in_unlabeled:
            log.warning(
                "%d labeled song(s) are also in the unlabeled set (data.allow_labeled_in_"
                "unlabeled); listed in results/summary.md",
                len(self.labeled_in_unlabeled),
            )


def _listed(pairs: list[SameAudio]) -> str:
    more = f"; and {len(pairs) - SHOWN} more" if len(pairs) > SHOWN else ""
    return "; ".join(map(str, pairs[:SHOWN])) + more


def shared_audio(
    tracks: Iterable[Track], fingerprints: Mapping[str, str], is_test: Callable[[Track], bool]
) -> SharedAudio:
    """The pairs of `tracks` whose audio has the same fingerprint (audio path -> content hash).

    Each test track sharing audio with a non-test track is paired with the first of them, each
    labeled non-test track sharing audio with an unlabeled one likewise; copies inside a set
    (with the same test role) pair the first with each other one.
    """
    groups: dict[str, list[Track]] = defaultdict(list)
    for t in tracks:
        groups[fingerprints[t.audio]].append(t)
    shared = SharedAudio()
    for same in (g for g in groups.values() if len(g) > 1):
        tested = [t for t in same if is_test(t)]
        others = [t for t in same if not is_test(t)]
        if others:
            shared.test.extend(SameAudio(t, others[0]) for t in tested)
        unlabeled = [t for t in others if t.set_name == "unlabeled"]
        if unlabeled:
            shared.labeled_in_unlabeled.extend(
                SameAudio(t, unlabeled[0]) for t in others if t.set_name == "labeled"
            )
        copies: dict[tuple[str, bool], list[Track]] = defaultdict(list)
        for t in same:
            copies[(t.set_name, is_test(t))].append(t)
        for first, *rest in copies.values():
            shared.duplicates.extend(SameAudio(first, t) for t in rest)
    return shared
