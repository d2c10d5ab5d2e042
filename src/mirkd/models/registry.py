"""Build a model from its architecture name and a plain hyper-parameter dict.

Checkpoints store exactly this pair (arch, hparams), so a model is always rebuilt from
what was saved, never from shapes or defaults guessed at load time.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from torch import nn

from mirkd.errors import ConfigError
from mirkd.models.btc import BTC, BTCConfig
from mirkd.models.chordnet import ChordNet, ChordNetConfig

ARCHITECTURES: dict[str, tuple[type[nn.Module], type]] = {
    "btc": (BTC, BTCConfig),
    "chordnet": (ChordNet, ChordNetConfig),
}


def _entry(arch: str) -> tuple[type[nn.Module], type]:
    if arch not in ARCHITECTURES:
        raise ConfigError(
            f"unknown model architecture {arch!r}; known: {', '.join(sorted(ARCHITECTURES))}"
        )
    return ARCHITECTURES[arch]


def default_hparams(arch: str) -> dict[str, Any]:
    """The default hyper-parameters of `arch` as a plain dict."""
    return dataclasses.asdict(_entry(arch)[1]())


def build_config(arch: str, hparams: dict[str, Any]) -> Any:
    """Validated config dataclass of `arch`: defaults overridden by `hparams`.

    Unknown keys, wrong types and inconsistent values raise ConfigError naming the key.
    """
    config_cls = _entry(arch)[1]
    known = {f.name for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(hparams) - known)
    if unknown:
        raise ConfigError(
            f"{arch}: unknown hyper-parameter(s) {', '.join(unknown)}; "
            f"known: {', '.join(sorted(known))}"
        )
    return config_cls(**hparams)


def build_model(arch: str, hparams: dict[str, Any]) -> nn.Module:
    """A freshly initialised `arch` model with `hparams` (missing keys take defaults)."""
    model_cls = _entry(arch)[0]
    return model_cls(build_config(arch, hparams))
