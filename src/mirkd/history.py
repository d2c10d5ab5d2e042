"""A training run's epochs as named records, and the history file that lists them.

One record (`EpochRecord`), one writer (the trainer, through `steps.train`'s
results/**/models/<model>_history.json: {"history": [epoch, ...], "checkpoint", and stage 1's
"pseudo_labels"}) and one reader (`read_history`), used by the summary and the figures. The
trainer keeps the same rows as plain dicts in its checkpoints (`to_dict`), which
`weights_only=True` loads.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from mirkd.errors import MetricsFileError
from mirkd.scores import read_results_json


@dataclass(frozen=True)
class EpochRecord:
    """One finished epoch: its number (from 1), mean training loss, validation score (higher
    is better; -inf when there was nothing to score), the LR after it and its seconds."""

    epoch: int
    train_loss: float
    val_score: float
    lr: float
    seconds: float

    def to_dict(self) -> dict[str, float]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Self:
        """The record of a row written by `to_dict`; ValueError naming the missing keys."""
        missing = [f.name for f in dataclasses.fields(cls) if f.name not in raw]
        if missing:
            raise ValueError(f"an epoch row lacks {', '.join(missing)}")
        return cls(**{f.name: raw[f.name] for f in dataclasses.fields(cls)})


def read_history(path: str | Path) -> list[EpochRecord]:
    """The epochs of the history file at `path`; MetricsFileError naming it when it is
    missing, not JSON (`read_results_json`) or has no complete "history" list."""
    rows = read_results_json(path, "history").get("history")
    if not isinstance(rows, list):
        raise MetricsFileError(path, 'no "history" list of epochs')
    try:
        return [EpochRecord.from_dict(row) for row in rows]
    except ValueError as exc:
        raise MetricsFileError(path, str(exc)) from exc
