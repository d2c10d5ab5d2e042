"""Chord recognition models (BTC, ChordNet 2E1D) and the registry that builds them by name."""

from mirkd.models.btc import BTC, BTCConfig
from mirkd.models.chordnet import ChordNet, ChordNetConfig
from mirkd.models.registry import ARCHITECTURES, build_config, build_model, default_hparams

__all__ = [
    "ARCHITECTURES",
    "BTC",
    "BTCConfig",
    "ChordNet",
    "ChordNetConfig",
    "build_config",
    "build_model",
    "default_hparams",
]
