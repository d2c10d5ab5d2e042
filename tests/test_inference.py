"""Device choice and batched windowed prediction."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mirkd.checkpoints import load_checkpoint, save_checkpoint
from mirkd.devices import cpu_computes_bf16, select_device
from mirkd.errors import ConfigError, MirkdError
from mirkd.inference import predict_logits, predict_logits_many

from model_helpers import tiny_bundle


def test_select_device():
    assert select_device("cpu") == torch.device("cpu")
    assert select_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ConfigError, match="unknown device 'gpu'"):
        select_device("gpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="'cuda' requested but CUDA is not available"):
            select_device("cuda")


@pytest.mark.parametrize(
    ("found", "native"),
    [
        ({"avx512_bf16": True, "amx_bf16": False}, True),
        ({"avx512_bf16": False, "amx_bf16": True}, True),
        ({"avx512_bf16": False, "avx2": True}, False),
        ({"architecture": "arm64", "bf16": True}, False),  # ARM's bf16 not measured
        (None, False),  # a torch that cannot tell
    ],
)
def test_cpu_computes_bf16_from_the_instruction_sets(monkeypatch, found, native):
    if found is None:
        monkeypatch.delattr(torch.cpu, "get_capabilities", raising=False)
    else:
        monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: found)
    assert cpu_computes_bf16() is native


@pytest.mark.parametrize("arch", ["btc", "chordnet"])
def test_predict_logits_matches_direct_forward(arch):
    bundle = tiny_bundle(arch)
    features = np.random.default_rng(0).normal(-3.0, 2.0, (250, 144)).astype(np.float32)
    cpu = torch.device("cpu")
    logits = predict_logits(bundle, features, cpu, batch_windows=2)
    assert logits.shape == (250, 170) and logits.dtype == np.float32
    with torch.no_grad():
        normalised = (features - bundle.mean) / bundle.std
        direct = bundle.model(torch.from_numpy(normalised)[None])[0].numpy()
    np.testing.assert_allclose(logits, direct, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(
        predict_logits(bundle, features, cpu, batch_windows=1), logits, rtol=1e-5, atol=1e-5
    )
    assert predict_logits(bundle, features[:0], cpu).shape == (0, 170)
    with pytest.raises(MirkdError, match="144 CQT bins"):
        predict_logits(bundle, features[:, :100], cpu)


def test_a_bundle_normalises_numpy_and_torch_with_one_formula():
    bundle = tiny_bundle()
    features = np.random.default_rng(1).normal(-3.0, 2.0, (40, 144)).astype(np.float32)
    got = bundle.normalise(features)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, (features - bundle.mean) / bundle.std)
    as_torch = bundle.normalise(torch.from_numpy(features))
    assert as_torch.dtype == torch.float32
    np.testing.assert_array_equal(as_torch.numpy(), got)


def test_a_saved_bundle_loads_with_the_same_predictions(tmp_path):
    bundle = tiny_bundle("chordnet", seed=3, stage="test")
    path = tmp_path / "model.pt"
    save_checkpoint(path, bundle)
    loaded = load_checkpoint(path)
    assert (loaded.mean, loaded.std, loaded.arch) == (bundle.mean, bundle.std, bundle.arch)
    rng = np.random.default_rng(2)
    tracks = [rng.normal(-3.0, 2.0, (n, 144)).astype(np.float32) for n in (5, 130, 64)]
    cpu = torch.device("cpu")
    before = predict_logits_many(bundle, tracks, cpu)
    after = predict_logits_many(loaded, tracks, cpu)
    for a, b in zip(before, after, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(predict_logits(loaded, tracks[1], cpu), after[1])
    with pytest.raises(MirkdError, match="144 CQT bins"):
        predict_logits_many(loaded, [tracks[0], tracks[1][:, :12]], cpu)
