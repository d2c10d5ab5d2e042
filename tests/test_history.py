"""The training history file: named epoch records, and clear errors for a broken file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mirkd.errors import MetricsFileError
from mirkd.history import EpochRecord, read_history


def test_a_history_file_reads_back_as_the_records_written(tmp_path: Path) -> None:
    epochs = [EpochRecord(1, 2.5, 0.25, 1e-3, 3.0), EpochRecord(2, 2.0, float("-inf"), 5e-4, 2.9)]
    path = tmp_path / "stage1_history.json"
    path.write_text(json.dumps({"history": [e.to_dict() for e in epochs], "checkpoint": "x.pt"}))
    assert read_history(path) == epochs


@pytest.mark.parametrize(
    ("text", "cause"),
    [
        (None, "cannot read the history file"),
        ("{", "not JSON"),
        ('{"checkpoint": "x.pt"}', 'no "history" list'),
        ('{"history": [{"epoch": 1, "val_score": 0.5, "seconds": 1.0}]}', "lacks train_loss, lr"),
    ],
    ids=["missing", "not-json", "no-history", "incomplete-row"],
)
def test_a_broken_history_file_is_named_with_its_cause(tmp_path: Path, text, cause) -> None:
    path = tmp_path / "stage2_history.json"
    if text is not None:
        path.write_text(text)
    with pytest.raises(MetricsFileError, match=cause) as caught:
        read_history(path)
    assert caught.value.path == str(path)
