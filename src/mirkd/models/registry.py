"""Build a model from its architecture name and a plain hyper-parameter dict.

Checkpoints store exactly this pair (arch, hparams), so a model is always rebuilt from
what was saved, never from shapes or defaults guessed at load time. The config dataclasses and
build_config live in mirkd.model_configs (no torch: planning checks hparams with them).
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

from mirkd.errors import ConfigError
from mirkd.model_configs import build_config
from mirkd.models.btc import BTC, BTCConfig
from mirkd.models.chordnet import ChordNet, ChordNetConfig
from mirkd.models.common import ChordModel


class Architecture(NamedTuple):
    """A model class, its config dataclass and the config field holding the class count."""

    model: type[ChordModel]
    config: type
    classes_field: str


ARCHITECTURES: dict[str, Architecture] = {
    "btc": Architecture(BTC, BTCConfig, "num_chords"),
    "chordnet": Architecture(ChordNet, ChordNetConfig, "n_classes"),
}


def _entry(arch: str) -> Architecture:
    if arch not in ARCHITECTURES:
        raise ConfigError(
            f"unknown model architecture {arch!r}; known: {', '.join(sorted(ARCHITECTURES))}"
        )
    return ARCHITECTURES[arch]


def default_hparams(arch: str) -> dict[str, Any]:
    """The default hyper-parameters of `arch` as a plain dict."""
    return dataclasses.asdict(_entry(arch).config())


def build_model(arch: str, hparams: dict[str, Any], n_classes: int | None = None) -> ChordModel:
    """A freshly initialised `arch` model with `hparams` (missing keys take defaults); with
    `n_classes`, its output size is set to that (whatever the architecture calls the field)."""
    entry = _entry(arch)
    if n_classes is not None:
        hparams = {**hparams, entry.classes_field: n_classes}
    return entry.model(build_config(arch, hparams))
