"""The architectures' hyper-parameters as config dataclasses, without torch.

Planning checks a run's student settings with these (a typo in student.hparams, a stride
longer than the model's window) before any job runs, without importing torch;
mirkd.models builds the models from them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, NamedTuple

from mirkd.errors import ConfigError


def check_config_fields(config: Any, arch: str) -> None:
    """Check a model config dataclass: int fields are positive ints, float fields (the
    dropout rates) are numbers in [0, 1). Raises ConfigError naming the field."""
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if field.type in (int, "int"):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ConfigError(f"{arch}: {field.name} must be a positive integer, got {value!r}")
        elif field.type in (float, "float"):
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not (0.0 <= value < 1.0)
            ):
                raise ConfigError(f"{arch}: {field.name} must be a number in [0, 1), got {value!r}")


@dataclass
class BTCConfig:
    """BTC hyper-parameters; defaults are those of the public large-vocabulary BTC model
    (the run_config.yaml of the BTC-ISMIR19 code, not part of this repository)."""

    feature_size: int = 144
    timestep: int = 108
    num_chords: int = 170
    hidden_size: int = 128
    num_layers: int = 8
    num_heads: int = 4
    total_key_depth: int = 128
    total_value_depth: int = 128
    filter_size: int = 128
    input_dropout: float = 0.2
    layer_dropout: float = 0.2
    attention_dropout: float = 0.2
    relu_dropout: float = 0.2

    def __post_init__(self) -> None:
        check_config_fields(self, "btc")
        for name in ("total_key_depth", "total_value_depth"):
            if getattr(self, name) % self.num_heads:
                raise ConfigError(
                    f"btc: {name}={getattr(self, name)} is not divisible by "
                    f"num_heads={self.num_heads}"
                )
        if self.hidden_size % 2:
            raise ConfigError(f"btc: hidden_size={self.hidden_size} must be even")


@dataclass
class ChordNetConfig:
    """ChordNet hyper-parameters; defaults are ChordMini's code default (3/2, 4/4, 3/4, 0.3).

    The ChordMini YAML variant is n_group=12, f_layer=5, f_head=6, t_layer=5, t_head=8,
    d_layer=5, d_head=8, dropout=0.2.
    """

    n_freq: int = 144
    n_classes: int = 170
    n_group: int = 12
    f_layer: int = 3
    f_head: int = 2
    t_layer: int = 4
    t_head: int = 4
    d_layer: int = 3
    d_head: int = 4
    dropout: float = 0.3
    seq_len: int = 108

    def __post_init__(self) -> None:
        check_config_fields(self, "chordnet")
        if self.n_freq % self.n_group:
            raise ConfigError(
                f"chordnet: n_freq={self.n_freq} is not divisible by n_group={self.n_group}"
            )
        token_width = self.n_freq // self.n_group
        for name, width in (
            ("f_head", token_width),
            ("t_head", self.n_freq),
            ("d_head", self.n_freq),
        ):
            heads = getattr(self, name)
            if width % heads:
                divisors = [h for h in range(1, heads) if width % h == 0]
                raise ConfigError(
                    f"chordnet: {name}={heads} does not divide the token width {width}; "
                    f"use a divisor such as {divisors[-1]} (ChordMini silently reduced it)"
                )


class ArchConfig(NamedTuple):
    """An architecture's config dataclass, the fields holding its class count and window, and
    whether `precision: auto` trains it in bfloat16 on a CPU that computes bfloat16."""

    config: type
    classes_field: str
    window_field: str  # frames the model sees at once (ChordModel.window)
    # whether bfloat16 autocast trains it faster than float32 on a CPU with bfloat16
    # instructions, so that `precision: auto` uses it there (benchmarks/RESULTS.md)
    cpu_bf16_faster: bool


ARCH_CONFIGS: dict[str, ArchConfig] = {
    # BTC 8x128: a step 1.32x as fast; 2E1D: 0.92x (its attention heads are 6 and 36 wide:
    # CPU attention in bf16 is slower, and the projections too small to gain)
    "btc": ArchConfig(BTCConfig, "num_chords", "timestep", cpu_bf16_faster=True),
    "chordnet": ArchConfig(ChordNetConfig, "n_classes", "seq_len", cpu_bf16_faster=False),
}


def arch_config(arch: str) -> ArchConfig:
    """The config entry of `arch`; ConfigError naming the known ones if there is none."""
    if arch not in ARCH_CONFIGS:
        raise ConfigError(
            f"unknown model architecture {arch!r}; known: {', '.join(sorted(ARCH_CONFIGS))}"
        )
    return ARCH_CONFIGS[arch]


def build_config(arch: str, hparams: dict[str, Any]) -> Any:
    """Validated config dataclass of `arch`: defaults overridden by `hparams`.

    Unknown keys, wrong types and inconsistent values raise ConfigError naming the key.
    """
    config_cls = arch_config(arch).config
    known = {f.name for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(hparams) - known)
    if unknown:
        raise ConfigError(
            f"{arch}: unknown hyper-parameter(s) {', '.join(unknown)}; "
            f"known: {', '.join(sorted(known))}"
        )
    return config_cls(**hparams)


def model_window(arch: str, hparams: dict[str, Any]) -> int:
    """Frames the `arch` model with `hparams` sees at once (its training window)."""
    return int(getattr(build_config(arch, hparams), arch_config(arch).window_field))


def student_differences(student: dict[str, Any], arch: str, hparams: dict[str, Any]) -> list[str]:
    """How the model `arch` with `hparams` differs from the `student` settings: its arch, and
    each hyper-parameter the student sets; empty when the student describes it."""
    if student["arch"] != arch:
        return [f"arch {student['arch']!r} (the model: {arch!r})"]
    return [
        f"{k} {v!r} (the model: {hparams.get(k)!r})"
        for k, v in (student.get("hparams") or {}).items()
        if hparams.get(k) != v
    ]


def check_init_is_student(
    where: str, init: str, student: dict[str, Any], arch: str, hparams: dict[str, Any]
) -> None:
    """Stage 2's starting model (`init`: a checkpoint path, or "released"; `where`: the
    setting that names it) must be the model `student` describes (`student_differences`):
    the baseline is built from `student`, and a stage 2 of another model would be compared
    with it as if only the data differed. ConfigError naming both and each difference; the
    one check of planning (a given path, released) and of the stage-2 job."""
    differ = student_differences(student, arch, hparams)
    if differ:
        info = "mirkd info" if init == "released" else f"mirkd info {init}"
        raise ConfigError(
            f"{where}: {init} holds a model that differs from the student "
            f"({'; '.join(differ)}), while the baseline is built from the student, so "
            f"stage 2 and baseline would not compare: set student to that model (see `{info}`)"
        )
