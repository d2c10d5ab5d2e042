"""Checkpoints: mirkd round trip, public BTC files, refusal of pickled code, clear errors."""

from __future__ import annotations

import dataclasses
import io
import os
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from mirkd import __version__
from mirkd.checkpoints import (
    FORMAT,
    load_checkpoint,
    load_public_btc,
    read_checkpoint_state,
    save_checkpoint,
)
from mirkd.errors import CheckpointError
from mirkd.models import BTC, BTCConfig
from mirkd.vocab import LARGE, MAJMIN

from model_helpers import tiny_bundle


def _outputs(model: torch.nn.Module, n_frames: int = 150) -> torch.Tensor:
    x = torch.randn(2, n_frames, 144, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return model(x)


def _public_file(path: Path, num_chords: int = 170, legacy_numpy_names: bool = False) -> BTC:
    """A public-format BTC file with random weights, as released: {'model','mean','std'} with
    numpy scalars. `legacy_numpy_names` rewrites it as numpy 1.x / old torch would have."""
    torch.manual_seed(3)
    model = BTC(BTCConfig(num_chords=num_chords)).eval()
    payload = {"model": model.state_dict(), "mean": np.float32(-4.25), "std": np.float64(1.75)}
    if legacy_numpy_names:
        buffer = io.BytesIO()
        torch.save(payload, buffer, _use_new_zipfile_serialization=False)
        data = buffer.getvalue()
        assert data.count(b"numpy._core.multiarray\nscalar") == 1  # memoized
        path.write_bytes(data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))
    else:
        torch.save(payload, path)
    return model


@pytest.mark.parametrize("legacy", [False, True])
def test_public_btc_loads_strictly(tmp_path, legacy):
    path = tmp_path / "btc_model_large_voca.pt"
    source = _public_file(path, legacy_numpy_names=legacy)
    with pytest.raises(Exception, match="numpy"):
        torch.load(path, weights_only=True)  # needs the allow-list
    for bundle in (load_public_btc(path), load_checkpoint(path)):
        assert bundle.arch == "btc" and bundle.vocab is LARGE
        assert bundle.mean == -4.25 and bundle.std == 1.75
        assert type(bundle.mean) is float and type(bundle.std) is float
        assert not bundle.model.training
        assert torch.equal(_outputs(bundle.model, 20), _outputs(source, 20))
        assert bundle.provenance["source"] == "public-btc"


def test_public_btc_majmin_vocabulary_from_output_shape(tmp_path):
    path = tmp_path / "btc_model.pt"
    _public_file(path, num_chords=25)
    bundle = load_checkpoint(path)
    assert bundle.vocab is MAJMIN and bundle.hparams["num_chords"] == 25


def test_public_btc_missing_and_misshapen_keys_are_named(tmp_path):
    torch.manual_seed(0)
    state = BTC(BTCConfig(num_chords=170)).state_dict()
    del state["output_layer.lstm.bias_hh_l0_reverse"]
    path = tmp_path / "cut.pt"
    torch.save({"model": state, "mean": np.float64(0.0), "std": np.float64(1.0)}, path)
    with pytest.raises(CheckpointError, match="cut.pt.*missing keys.*bias_hh_l0_reverse"):
        load_checkpoint(path)

    state = BTC(BTCConfig(num_chords=170)).state_dict()
    state["self_attn_layers.embedding_proj.weight"] = torch.zeros(128, 100)
    torch.save({"model": state, "mean": np.float64(0.0), "std": np.float64(1.0)}, path)
    with pytest.raises(CheckpointError, match="shape mismatch.*embedding_proj"):
        load_checkpoint(path)

    state["output_layer.output_projection.weight"] = torch.zeros(30, 128)
    torch.save({"model": state, "mean": np.float64(0.0), "std": np.float64(1.0)}, path)
    with pytest.raises(CheckpointError, match="30 classes"):
        load_checkpoint(path)


@pytest.mark.parametrize("arch", ["btc", "chordnet"])
def test_mirkd_round_trip_is_exact(tmp_path, arch):
    bundle = tiny_bundle(arch, data_fingerprint="abc123", config={"lr": 1e-4})
    path = tmp_path / "model.pt"
    training_state = {
        "epoch": 3,
        "optimizer": {"state": {0: {"exp_avg": torch.ones(2)}}, "lr": [0.1]},
        "rng": {"torch": torch.get_rng_state(), "python": (3, (1, 2), None)},
    }
    save_checkpoint(path, bundle, extra_state={"training_state": training_state})

    raw = torch.load(path, weights_only=True)  # no allow-list needed
    assert raw["format"] == FORMAT and raw["arch"] == arch
    assert type(raw["mean"]) is float and type(raw["std"]) is float

    loaded = load_checkpoint(path)
    assert not loaded.model.training
    assert torch.equal(_outputs(loaded.model), _outputs(bundle.model))
    assert loaded.hparams == dataclasses.asdict(bundle.model.config)
    assert loaded.vocab is LARGE and loaded.feature_params == bundle.feature_params
    assert (loaded.mean, loaded.std) == (-3.5, 2.25)
    prov = loaded.provenance
    assert prov["data_fingerprint"] == "abc123" and prov["config"] == {"lr": 1e-4}
    assert prov["mirkd_version"] == __version__ and "created" in prov and "git_commit" in prov

    state = read_checkpoint_state(path)["training_state"]
    assert state["epoch"] == 3
    assert torch.equal(state["optimizer"]["state"][0]["exp_avg"], torch.ones(2))
    assert torch.equal(state["rng"]["torch"], training_state["rng"]["torch"])
    assert list(tmp_path.iterdir()) == [path]  # the atomic temp file is gone


def test_save_refuses_values_weights_only_cannot_load(tmp_path):
    path = tmp_path / "bad.pt"
    with pytest.raises(CheckpointError, match=r"training_state\.seed is a float64"):
        save_checkpoint(
            path, tiny_bundle(), extra_state={"training_state": {"seed": np.float64(1)}}
        )
    with pytest.raises(CheckpointError, match="reserved key"):
        save_checkpoint(path, tiny_bundle(), extra_state={"mean": 0.0})
    bundle = tiny_bundle()
    bundle.hparams = {**bundle.hparams, "num_layers": 2}
    with pytest.raises(CheckpointError, match="differ from the model"):
        save_checkpoint(path, bundle)
    assert not list(tmp_path.iterdir())


class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').close()",))


@pytest.mark.parametrize("where", ["state", "mean"])
def test_pickled_code_is_refused(tmp_path, where):
    marker = tmp_path / "pwned"
    state = BTC(BTCConfig(num_layers=1)).state_dict()
    payload = {"model": state, "mean": np.float32(0.0), "std": np.float32(1.0)}
    if where == "state":
        payload["model"] = {**state, "evil": _Exploit(marker)}
    else:
        payload["mean"] = _Exploit(marker)
    path = tmp_path / "evil.pt"
    torch.save(payload, path)
    for loader in (load_checkpoint, load_public_btc, read_checkpoint_state):
        with pytest.raises(CheckpointError, match="evil.pt.*exec"):
            loader(path)
    assert not marker.exists()


def test_unusable_files_raise_checkpoint_error(tmp_path):
    with pytest.raises(CheckpointError, match="missing.pt: not a file"):
        load_checkpoint(tmp_path / "missing.pt")
    with pytest.raises(CheckpointError, match="not a file"):
        load_checkpoint(tmp_path)
    text = tmp_path / "notes.pt"
    text.write_text("hello\n")
    with pytest.raises(CheckpointError, match="notes.pt"):
        load_checkpoint(text)
    zipped = tmp_path / "archive.pt"
    with zipfile.ZipFile(zipped, "w") as zf:
        zf.writestr("x.txt", "x")
    with pytest.raises(CheckpointError, match="archive.pt"):
        load_checkpoint(zipped)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(1)}, other)
    with pytest.raises(CheckpointError, match="other.pt: not a mirkd or public BTC"):
        load_checkpoint(other)
    with pytest.raises(CheckpointError, match="other.pt: not a mirkd checkpoint"):
        read_checkpoint_state(other)


def test_mirkd_checkpoint_inconsistencies_are_named(tmp_path):
    path = tmp_path / "model.pt"
    save_checkpoint(path, tiny_bundle())
    raw = torch.load(path, weights_only=True)

    def _resave(**changes):
        torch.save({**raw, **changes}, path)

    _resave(hparams={**raw["hparams"], "hidden_size": 32, "total_key_depth": 32})
    with pytest.raises(CheckpointError, match="model.pt: state dict does not fit.*shape mismatch"):
        load_checkpoint(path)
    _resave(hparams={**raw["hparams"], "bogus": 1})
    with pytest.raises(CheckpointError, match="bogus"):
        load_checkpoint(path)
    _resave(vocab="majmin25")
    with pytest.raises(CheckpointError, match="170 classes but vocabulary majmin25"):
        load_checkpoint(path)
    _resave(std=0.0)
    with pytest.raises(CheckpointError, match="std must be positive"):
        load_checkpoint(path)
    _resave(format_version=99)
    with pytest.raises(CheckpointError, match="format_version 99"):
        load_checkpoint(path)
    torch.save({k: v for k, v in raw.items() if k != "feature_params"}, path)
    with pytest.raises(CheckpointError, match="missing entries: feature_params"):
        load_checkpoint(path)


class _System:
    def __reduce__(self):
        return (os.system, ("true",))


def test_refused_pickled_code_names_the_global_and_never_suggests_unsafe_loading(tmp_path):
    path = tmp_path / "system.pt"
    torch.save({"model": {"w": torch.zeros(1)}, "mean": _System()}, path)
    for loader in (load_checkpoint, load_public_btc, read_checkpoint_state):
        with pytest.raises(CheckpointError) as info:
            loader(path)
        message = str(info.value)
        assert "system.pt" in message and f"GLOBAL {os.system.__module__}.system" in message
        assert "never loads pickled code" in message
        assert "weights_only" not in message and "False" not in message


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused_naming_the_first_bad_tensor(tmp_path, bad):
    path = tmp_path / "model.pt"
    save_checkpoint(path, tiny_bundle())
    raw = torch.load(path, weights_only=True)
    names = [k for k, v in raw["state_dict"].items() if v.is_floating_point()]
    for name in names[3:5]:  # two bad tensors; the first is named
        raw["state_dict"][name].view(-1)[:2] = bad
    torch.save(raw, path)
    with pytest.raises(
        CheckpointError, match=rf"model.pt: tensor {re.escape(names[3])} has 2 non-finite value"
    ):
        load_checkpoint(path)
    public = tmp_path / "public.pt"
    model = _public_file(public)
    state = model.state_dict()
    first = next(k for k, v in state.items() if v.is_floating_point())
    state[first].view(-1)[0] = bad
    torch.save({"model": state, "mean": np.float32(-4.25), "std": np.float64(1.75)}, public)
    with pytest.raises(CheckpointError, match=rf"public.pt: tensor {re.escape(first)} has 1 "):
        load_checkpoint(public)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"mean": float("nan")}, "mean is nan"),
        ({"std": float("inf")}, "std is inf"),
        ({"std": -1.0}, "std must be positive, got -1.0"),
    ],
)
def test_non_finite_or_non_positive_statistics_are_refused(tmp_path, changes, message):
    path = tmp_path / "model.pt"
    save_checkpoint(path, tiny_bundle())
    torch.save({**torch.load(path, weights_only=True), **changes}, path)
    with pytest.raises(CheckpointError, match=f"model.pt: {message}"):
        load_checkpoint(path)
    public = tmp_path / "public.pt"
    model = _public_file(public)
    stats = {"mean": np.float32(-4.25), "std": np.float64(1.75)}
    stats.update({k: np.float64(v) for k, v in changes.items()})
    torch.save({"model": model.state_dict(), **stats}, public)
    with pytest.raises(CheckpointError, match=f"public.pt: {message}"):
        load_public_btc(public)
