"""Which torch device a job runs on: the one place a device setting is read."""

from __future__ import annotations

import torch

from mirkd.errors import ConfigError


def select_device(pref: str = "auto") -> torch.device:
    """ "auto" -> cuda if available else cpu; "cpu"; "cuda" or "cuda:N" (ConfigError if absent)."""
    if pref == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if pref == "cpu":
        return torch.device("cpu")
    if pref == "cuda" or pref.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device {pref!r} requested but CUDA is not available")
        device = torch.device(pref)
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(
                f"device {pref!r} requested but only {torch.cuda.device_count()} GPU(s) exist"
            )
        return device
    raise ConfigError(f"unknown device {pref!r}; use auto, cpu, cuda or cuda:N")
