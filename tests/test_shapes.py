"""The named records the steps pass around: one shape per idea."""

from __future__ import annotations

import pickle

import pytest

from mirkd.errors import MirkdError
from mirkd.manifest import TrackFiles


def test_track_files_round_trip_through_rule_params():
    track = TrackFiles(
        "song-1234abcd",
        "a/song.flac",
        "results/features/labeled-train/b0.h5",
        "results/teacher/labeled-train/b0.h5",
        "a/song.lab",
        "sha1",
    )
    params = [track.to_param()]
    assert params == [
        {
            "track_id": "song-1234abcd",
            "audio": "a/song.flac",
            "features": "results/features/labeled-train/b0.h5",
            "teacher": "results/teacher/labeled-train/b0.h5",
            "lab": "a/song.lab",
            "fingerprint": "sha1",
        }
    ]
    assert TrackFiles.from_params(params) == [track]
    assert pickle.loads(pickle.dumps(track)) == track
    assert track.annotation == "a/song.lab"
    with pytest.raises(MirkdError, match="no annotation"):
        _ = TrackFiles("u", "u.wav", "u.h5", "t.h5", None, "fp").annotation


def test_feature_grid_is_read_from_the_file(tmp_path):
    import numpy as np
    from bucket_helpers import feature_bucket

    from mirkd.features import CQTParams
    from mirkd.store import BucketFile, FrameGrid, feature_grid

    path = feature_bucket(tmp_path / "f.h5", {"t": np.zeros((7, 144))}, duration=0.6)
    assert feature_grid(BucketFile(path), "t") == FrameGrid(CQTParams().frame_period, 7, 0.6)


@pytest.mark.parametrize("arch", ["btc", "chordnet"])
def test_registry_sets_the_class_count_whatever_its_field_name(arch):
    from mirkd.models.registry import build_model

    from model_helpers import TINY_BTC, TINY_CHORDNET

    model = build_model(arch, TINY_BTC if arch == "btc" else TINY_CHORDNET, n_classes=25)
    assert model.num_classes == 25


def test_rule_patterns_come_from_the_plan():
    from mirkd.workflow_plan import RunPlan

    plan = RunPlan(results="res", tracks={}, splits={})
    path = plan.teacher_path("lvchordia-0a", "unlabeled-train", "b01")
    assert path == "res/teacher/lvchordia-0a/unlabeled-train/b01.h5"
    assert plan.model_file("{vdir}", "stage1") == "res/{vdir}models/stage1.pt"
    assert plan.features_path("{group}", "{bucket}") == "res/features/{group}/{bucket}.h5"


def test_stage_defaults_come_from_the_schema_once():
    from mirkd.training.trainer import TrainConfig

    from model_helpers import stage_settings

    s1, s2, base = (stage_settings(s) for s in ("stage1", "stage2", "baseline"))
    assert (s1["stride"], s2["stride"], base["stride"]) == (108, 54, 54)
    assert (s1["use_kd"], s2["use_kd"], base["use_kd"]) == (False, True, False)
    assert s2["selective_kd"] and s2["val_metric"] == "majmin" and s2["pitch_shift"] == []
    config = TrainConfig.from_settings(s2, "cpu")
    assert config.use_kd and config.stride == 54 and config.shifts == ()
    assert config.to_dict()["pitch_shift"] == []
    shifted = TrainConfig.from_settings({**s2, "pitch_shift": [0, -1, 2]}, "cpu")
    assert shifted.shifts == (0, -1, 2)
    with pytest.raises(MirkdError, match=r"missing \['stride'\]"):
        TrainConfig.from_settings({k: v for k, v in s1.items() if k != "stride"}, "cpu")


def test_resources_and_run_defaults_are_filled():
    from model_helpers import resolved_config

    config = resolved_config(
        {
            "data": {"demo": None},
            "teacher": {"kind": "lvchordia"},
            "student": {"arch": "btc"},
            **{
                s: {"epochs": 1, "batch_size": 2, "lr": 1e-3}
                for s in ("stage1", "stage2", "baseline")
            },
        }
    )
    assert config["resources"]["threads"] == 1 and config["device"] == "auto"
    assert config["data"]["bucket_hours"] == 8 and config["split"]["labeled_val_fraction"] == 0.15


def test_variant_overrides_keep_the_base_settings():
    """Variant stage overrides carry no defaults: only what they set replaces the base run's."""
    from mirkd.variants import expand_variants

    from model_helpers import resolved_config

    config = resolved_config(
        {
            "data": {"demo": None},
            "teacher": {"kind": "lvchordia"},
            "student": {"arch": "btc"},
            **{
                s: {"epochs": 1, "batch_size": 2, "lr": 1e-3, "stride": 30}
                for s in ("stage1", "stage2", "baseline")
            },
            "variants": {"slow": {"stage2": {"lr": 1e-4}}},
        }
    )
    base, slow = expand_variants(config, ["a", "b"])
    assert slow.stages["stage2"] == {**base.stages["stage2"], "lr": 1e-4}
    assert slow.stages["stage2"]["stride"] == 30


def test_stride_is_checked_against_the_model_window(tmp_path):
    from mirkd.errors import ConfigError
    from mirkd.models.registry import build_model

    from model_helpers import TINY_BTC, train_config

    model = build_model("btc", {**TINY_BTC, "timestep": 32})
    assert model.window == 32
    train_config(stride=32).check_window(model.window, "stage1")
    with pytest.raises(ConfigError, match="stage1.stride 108 exceeds the model's window of 32"):
        train_config().check_window(model.window, "stage1")


def test_datasets_cut_windows_of_the_model_length(tmp_path):
    import numpy as np

    from mirkd.training.datasets import LabeledDataset, LabeledTrack

    features = np.zeros((100, 144), np.float16)
    ds = LabeledDataset([LabeledTrack("t", features, np.zeros(100, np.int64))], 32, 32)
    assert len(ds) == 4 and ds[0]["x"].shape == (32, 144)


def test_train_state_counts_epochs_decays_and_stops():
    from mirkd.training.trainer import TrainState

    from model_helpers import train_config

    config = train_config(schedule="plateau", lr=1e-3, plateau_factor=0.5, min_lr=3e-4, patience=2)
    state = TrainState(lr=config.lr)
    assert state.end_epoch(0.5, 1.0, 0.1, config)
    assert not state.end_epoch(0.4, 0.9, 0.1, config) and state.lr == pytest.approx(5e-4)
    assert not state.end_epoch(float("nan"), 0.8, 0.1, config) and state.lr == 3e-4
    assert state.stopped and state.epoch == 3 and state.best == 0.5
    assert [h.epoch for h in state.history] == [1, 2, 3]
    rows = [h.to_dict() for h in state.history]
    assert state.summary() == {"history": rows, "epoch": 3, "best": 0.5}
