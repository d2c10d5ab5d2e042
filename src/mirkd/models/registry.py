"""Build a model from its architecture name and a plain hyper-parameter dict.

Checkpoints store exactly this pair (arch, hparams), so a model is always rebuilt from
what was saved, never from shapes or defaults guessed at load time. The config dataclasses and
build_config live in mirkd.model_configs (no torch: planning checks hparams with them).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from mirkd.model_configs import arch_config, build_config
from mirkd.models.btc import BTC
from mirkd.models.chordnet import ChordNet
from mirkd.models.common import ChordModel

# The model class of each architecture; its config dataclass and the fields naming its class
# count and window are mirkd.model_configs.ARCH_CONFIGS (one entry per architecture in each).
ARCHITECTURES: dict[str, type[ChordModel]] = {"btc": BTC, "chordnet": ChordNet}


def default_hparams(arch: str) -> dict[str, Any]:
    """The default hyper-parameters of `arch` as a plain dict."""
    return dataclasses.asdict(arch_config(arch).config())


def build_model(arch: str, hparams: dict[str, Any], n_classes: int | None = None) -> ChordModel:
    """A freshly initialised `arch` model with `hparams` (missing keys take defaults); with
    `n_classes`, its output size is set to that (whatever the architecture calls the field)."""
    if n_classes is not None:
        hparams = {**hparams, arch_config(arch).classes_field: n_classes}
    config = build_config(arch, hparams)  # ConfigError for an unknown arch or hparam
    return ARCHITECTURES[arch](config)
