"""Build a model from its architecture name and a plain hyper-parameter dict.

Checkpoints store exactly this pair (arch, hparams), so a model is always rebuilt from
what was saved, never from shapes or defaults guessed at load time.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

from mirkd.errors import ConfigError
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


def build_config(arch: str, hparams: dict[str, Any]) -> Any:
    """Validated config dataclass of `arch`: defaults overridden by `hparams`.

    Unknown keys, wrong types and inconsistent values raise ConfigError naming the key.
    """
    config_cls = _entry(arch).config
    known = {f.name for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(hparams) - known)
    if unknown:
        raise ConfigError(
            f"{arch}: unknown hyper-parameter(s) {', '.join(unknown)}; "
            f"known: {', '.join(sorted(known))}"
        )
    return config_cls(**hparams)


def build_model(arch: str, hparams: dict[str, Any], n_classes: int | None = None) -> ChordModel:
    """A freshly initialised `arch` model with `hparams` (missing keys take defaults); with
    `n_classes`, its output size is set to that (whatever the architecture calls the field)."""
    entry = _entry(arch)
    if n_classes is not None:
        hparams = {**hparams, entry.classes_field: n_classes}
    return entry.model(build_config(arch, hparams))
