"""Small models and checkpoints for the model, checkpoint and CLI tests."""

from __future__ import annotations

from mirkd.checkpoints import ModelBundle
from mirkd.features import CQTParams
from mirkd.models import build_model
from mirkd.vocab import LARGE

TINY_BTC = {
    "hidden_size": 16, "num_layers": 1, "num_heads": 2, "total_key_depth": 16,
    "total_value_depth": 16, "filter_size": 16,
}
TINY_CHORDNET = {"f_layer": 1, "t_layer": 1, "d_layer": 1, "t_head": 2, "d_head": 2}


def tiny_bundle(arch: str = "btc", seed: int = 0, **provenance) -> ModelBundle:
    """A randomly initialised small model in eval mode with a LARGE-vocabulary bundle."""
    import torch

    torch.manual_seed(seed)
    hparams = dict(TINY_BTC if arch == "btc" else TINY_CHORDNET)
    model = build_model(arch, hparams).eval()
    return ModelBundle(
        model=model, arch=arch, hparams=hparams, vocab=LARGE, feature_params=CQTParams(),
        mean=-3.5, std=2.25, provenance=dict(provenance),
    )
