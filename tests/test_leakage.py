"""Planning refuses audio shared between sets (by content hash) and lists copies in a set."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from mirkd.errors import ConfigError
from mirkd.workflow_plan import plan_run

from model_helpers import resolved_config
from workflow_helpers import tiny_config

SETS = {"unlabeled": 4, "labeled": 4, "test": 2}


@pytest.fixture()
def data(tmp_path: Path) -> Path:
    """Folders unlabeled/, labeled/ and test/ of one-second songs, each with its own audio."""
    level = 0
    for set_name, n in SETS.items():
        (tmp_path / set_name).mkdir()
        for i in range(n):
            level += 1
            song = tmp_path / set_name / f"{set_name}_{i}.wav"
            sf.write(song, np.full(8000, level / 100, np.float32), 8000)
            if set_name != "unlabeled":
                song.with_suffix(".lab").write_text("0 1 N\n")
    return tmp_path


def _plan(data: Path, reuse_manifest: bool = False, **data_settings):
    config = tiny_config(data)
    config["data"].update(data_settings)
    return plan_run(resolved_config(config), str(data / "results"), reuse_manifest)


def _copy(data: Path, song: str, to: str) -> Path:
    """A copy of `song` (a path under `data`) in folder `to`, under another name."""
    copy = data / to / f"copy_of_{Path(song).name}"
    shutil.copyfile(data / song, copy)
    if to != "unlabeled":
        copy.with_suffix(".lab").write_text("0 1 N\n")
    return copy


@pytest.mark.parametrize("into", ["labeled", "unlabeled"])
def test_a_test_song_in_another_set_is_an_error_naming_both_files(data, into):
    copy = _copy(data, "test/test_1.wav", into)
    with pytest.raises(ConfigError) as info:
        _plan(data, allow_labeled_in_unlabeled=True)
    message = str(info.value)
    assert "1 test song(s) have the same audio" in message
    assert f"{data / 'test/test_1.wav'} (test) and {copy} ({into})" in message


def test_an_unlabeled_folder_holding_the_labeled_and_test_folders_is_refused(data):
    with pytest.raises(ConfigError, match="2 test song"):
        _plan(data, unlabeled=[str(data)], allow_labeled_in_unlabeled=True)


def test_a_labeled_song_in_the_unlabeled_set_is_an_error_unless_allowed(data, caplog):
    copy = _copy(data, "labeled/labeled_2.wav", "unlabeled")
    with pytest.raises(ConfigError) as info:
        _plan(data)
    assert f"{data / 'labeled/labeled_2.wav'} (labeled) and {copy} (unlabeled)" in str(info.value)
    assert "data.allow_labeled_in_unlabeled: true" in str(info.value)
    with caplog.at_level(logging.WARNING, logger="mirkd.leakage"):
        plan = _plan(data, allow_labeled_in_unlabeled=True)
    assert plan.labeled_in_unlabeled_rows() == [[str(data / "labeled/labeled_2.wav"), str(copy)]]
    assert "1 labeled song(s) are also in the unlabeled set" in caplog.text


def test_the_labeled_sets_test_split_is_never_in_the_unlabeled_set(data):
    """Without data.test, the labeled set's test split is the test set: allowing labeled songs
    in the unlabeled set does not allow those."""
    plan = _plan(data, test=None)
    tested = plan.test_tracks[0]
    _copy(data, Path(tested.audio).relative_to(data).as_posix(), "unlabeled")
    with pytest.raises(ConfigError, match=f"{tested.audio} \\(labeled\\) and"):
        _plan(data, test=None, allow_labeled_in_unlabeled=True)


def test_copies_inside_a_set_are_listed_once_not_refused(data, caplog):
    copy = _copy(data, "unlabeled/unlabeled_0.wav", "unlabeled")
    with caplog.at_level(logging.WARNING, logger="mirkd.leakage"):
        plan = _plan(data)
    assert len(plan.tracks["unlabeled"]) == 5
    assert (
        "1 audio file(s) are copies of another file of the same set (each is used as a track of "
        f"its own): {copy} (unlabeled) and {data / 'unlabeled/unlabeled_0.wav'} (unlabeled)"
    ) in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="mirkd.leakage"):
        _plan(data, reuse_manifest=True)  # a job reading the head's manifest says nothing
    assert not caplog.text


def test_the_same_folder_as_test_and_labeled_is_an_error(data):
    with pytest.raises(ConfigError, match="data.test and data.labeled are the same folder"):
        _plan(data, test=str(data / "labeled" / "."))
