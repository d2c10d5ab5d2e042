"""The named records the steps pass around: one shape per idea."""

from __future__ import annotations

import pickle

import pytest

from mirkd.errors import MirkdError
from mirkd.manifest import TrackFiles


def test_track_files_round_trip_through_rule_params():
    track = TrackFiles("song-1234abcd", "a/song.flac", "results/features/labeled/x.h5",
                       "a/song.lab", "sha1")
    params = [track.to_param()]
    assert params == [{"track_id": "song-1234abcd", "audio": "a/song.flac",
                       "features": "results/features/labeled/x.h5", "lab": "a/song.lab",
                       "fingerprint": "sha1"}]
    assert TrackFiles.from_params(params) == [track]
    assert pickle.loads(pickle.dumps(track)) == track
    assert track.annotation == "a/song.lab"
    with pytest.raises(MirkdError, match="no annotation"):
        _ = TrackFiles("u", "u.wav", "u.h5", None, "fp").annotation


def test_feature_grid_is_read_from_the_file(tmp_path):
    import numpy as np

    from mirkd.features import CQTParams
    from mirkd.store import FrameGrid, feature_grid, write_features

    path = tmp_path / "f.h5"
    write_features(path, np.zeros((7, 144), np.float32), CQTParams(), {"duration": 0.6})
    assert feature_grid(path) == FrameGrid(CQTParams().frame_period, 7, 0.6)


@pytest.mark.parametrize("arch", ["btc", "chordnet"])
def test_registry_sets_the_class_count_whatever_its_field_name(arch):
    from mirkd.models.registry import build_model

    from model_helpers import TINY_BTC, TINY_CHORDNET

    model = build_model(arch, TINY_BTC if arch == "btc" else TINY_CHORDNET, n_classes=25)
    assert model.num_classes == 25


def test_rule_patterns_come_from_the_plan():
    from mirkd.workflow_plan import RunPlan

    plan = RunPlan(results="res", tracks={}, splits={}, n_shards=2)
    assert plan.shard_path(3) == "res/pseudo/shard_003.h5"
    assert plan.shard_path("{shard}") == "res/pseudo/shard_{shard}.h5"
    assert plan.model_file("{vdir}", "stage1") == "res/{vdir}models/stage1.pt"
    assert plan.features_path("{set}", "{track}") == "res/features/{set}/{track}.h5"
