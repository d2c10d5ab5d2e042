"""Device choice and batched windowed prediction."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mirkd.devices import select_device
from mirkd.errors import ConfigError, MirkdError
from mirkd.inference import bundle_logits

from model_helpers import tiny_bundle


def test_select_device():
    assert select_device("cpu") == torch.device("cpu")
    assert select_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ConfigError, match="unknown device 'gpu'"):
        select_device("gpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="'cuda' requested but CUDA is not available"):
            select_device("cuda")


@pytest.mark.parametrize("arch", ["btc", "chordnet"])
def test_predict_logits_matches_direct_forward(arch):
    bundle = tiny_bundle(arch)
    features = np.random.default_rng(0).normal(-3.0, 2.0, (250, 144)).astype(np.float32)
    cpu = torch.device("cpu")
    logits = bundle_logits(bundle, features, cpu, batch_windows=2)
    assert logits.shape == (250, 170) and logits.dtype == np.float32
    with torch.no_grad():
        normalised = (features - bundle.mean) / bundle.std
        direct = bundle.model(torch.from_numpy(normalised)[None])[0].numpy()
    np.testing.assert_allclose(logits, direct, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(
        bundle_logits(bundle, features, cpu, batch_windows=1), logits, rtol=1e-5, atol=1e-5
    )
    assert bundle_logits(bundle, features[:0], cpu).shape == (0, 170)
    with pytest.raises(MirkdError, match="144 CQT bins"):
        bundle_logits(bundle, features[:, :100], cpu)
