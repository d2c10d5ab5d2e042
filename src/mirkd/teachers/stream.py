"""Stream many tracks through a teacher: its CPU front end (decoding, the teacher's own
transform) runs in DataLoader workers while the networks run in this process on the teacher's
device, so preparing the next tracks overlaps inference of the current ones.

Workers receive only the teacher's `front_end` (a small picklable object), the items and the
caller's `load_features`, never the networks; DataLoader runs torch on one thread in each
worker. Results come back in the order of the items, `teacher.tracks_per_pass` prepared tracks
per `infer` call.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

import numpy as np
from torch.utils.data import DataLoader, Dataset

from mirkd.errors import AudioError
from mirkd.teachers import FrontEnd, Teacher


class TrackItem(Protocol):
    """What the stream reads from an item: the audio file the front end decodes."""

    @property
    def audio(self) -> str | Path: ...


T = TypeVar("T", bound=TrackItem)


@dataclass(frozen=True)
class TeacherResult(Generic[T]):
    """One track's outcome: its [T, 170] float32 probabilities, or (probs None) the cause of
    the AudioError its front end raised."""

    item: T
    probs: np.ndarray | None
    cause: str | None


@dataclass(frozen=True)
class Unusable:
    """What a worker returns for a track whose front end raised AudioError."""

    cause: str


@dataclass(frozen=True)
class PreparedTracks(Dataset[Any], Generic[T]):
    """The front end's output for each item, by index: what the DataLoader workers compute."""

    front_end: FrontEnd
    items: Sequence[T]
    load_features: Callable[[T], np.ndarray]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> Any:
        item = self.items[index]
        try:
            return self.front_end(Path(item.audio), self.load_features(item))
        except AudioError as exc:
            return Unusable(exc.cause)


def prepared_tracks(
    dataset: PreparedTracks[T], num_workers: int, prefetch_factor: int = 2
) -> Iterator[Any]:
    """The dataset's items in order, computed by `num_workers` workers (inline with 0), each
    keeping `prefetch_factor` tracks ready ahead of the consumer."""
    ahead = prefetch_factor if num_workers else None  # DataLoader refuses it without workers
    return iter(
        DataLoader(dataset, batch_size=None, num_workers=num_workers, prefetch_factor=ahead)
    )


def teacher_results(
    teacher: Teacher,
    items: Sequence[T],
    load_features: Callable[[T], np.ndarray],
    num_workers: int = 0,
    prefetch_factor: int = 2,
) -> Iterator[TeacherResult[T]]:
    """Teacher probabilities of each item, in order; `load_features(item)` gives its [T, 144]
    log-CQT (the caller decides where features live; with workers it must be picklable).

    An AudioError while preparing a track becomes a result with its cause (the caller decides
    whether to skip or fail); any other error propagates. With `num_workers` > 0 the front end
    runs in that many DataLoader workers.
    """
    dataset = PreparedTracks(teacher.front_end, items, load_features)
    pending: list[tuple[T, Any]] = []
    prepared_in_order = prepared_tracks(dataset, num_workers, prefetch_factor)
    for item, prepared in zip(items, prepared_in_order, strict=True):
        pending.append((item, prepared))
        if sum(not isinstance(x, Unusable) for _, x in pending) == teacher.tracks_per_pass:
            yield from inferred(teacher, pending)
            pending = []
    yield from inferred(teacher, pending)


def inferred(teacher: Teacher, pending: Sequence[tuple[T, Any]]) -> Iterator[TeacherResult[T]]:
    """Results of consecutive prepared tracks, in order; the usable ones in one `infer` call."""
    probs = iter(teacher.infer([x for _, x in pending if not isinstance(x, Unusable)]))
    for item, prepared in pending:
        if isinstance(prepared, Unusable):
            yield TeacherResult(item, None, prepared.cause)
        else:
            yield TeacherResult(item, next(probs), None)
