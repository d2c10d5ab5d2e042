"""Small models and checkpoints for the model, checkpoint and CLI tests."""

from __future__ import annotations

from mirkd.checkpoints import ModelBundle
from mirkd.models import build_model

TINY_BTC = {
    "hidden_size": 16,
    "num_layers": 1,
    "num_heads": 2,
    "total_key_depth": 16,
    "total_value_depth": 16,
    "filter_size": 16,
}
TINY_CHORDNET = {"f_layer": 1, "t_layer": 1, "d_layer": 1, "t_head": 2, "d_head": 2}


def tiny_bundle(arch: str = "btc", seed: int = 0, **provenance) -> ModelBundle:
    """A randomly initialised small model in eval mode with a LARGE-vocabulary bundle."""
    import torch

    torch.manual_seed(seed)
    hparams = dict(TINY_BTC if arch == "btc" else TINY_CHORDNET)
    model = build_model(arch, hparams).eval()
    return ModelBundle.student(model, arch, hparams, mean=-3.5, std=2.25, provenance=provenance)


def resolved_config(config: dict) -> dict:
    """`config` validated against config.schema.yaml with every default filled in, as the
    Snakefile does (in place; returned for convenience)."""
    from pathlib import Path

    from snakemake.utils import validate

    validate(
        config, str(Path(__file__).resolve().parents[1] / "config.schema.yaml"), set_default=True
    )
    return config


def stage_settings(stage: str, **settings) -> dict:
    """A stage's settings as a workflow step receives them: `settings` + schema defaults."""
    required = {"epochs": 1, "batch_size": 8, "lr": 1e-3}
    config = {
        "data": {"demo": None},
        "teacher": {"kind": "lvchordia"},
        "student": {"arch": "btc"},
        "stage1": dict(required),
        "stage2": dict(required),
        "baseline": dict(required),
    }
    config[stage] = {**required, **settings}
    return resolved_config(config)[stage]


def train_config(stage: str = "stage1", device: str = "cpu", **settings):
    """The TrainConfig of `stage` with `settings` over the schema defaults."""
    from mirkd.training.trainer import TrainConfig

    return TrainConfig.from_settings(stage_settings(stage, **settings), device)
