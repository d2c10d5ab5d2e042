"""Which torch device a job runs on: the one place a device setting is read, and what the
CPU computes natively."""

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


# x86 instruction sets with bfloat16 arithmetic (AVX-512 BF16: AMD Zen 4+, Intel Cooper Lake;
# AMX: Intel Sapphire Rapids+), as torch.cpu.get_capabilities names them
NATIVE_BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_computes_bf16() -> bool:
    """Whether this CPU has bfloat16 arithmetic (NATIVE_BF16_CPU_FLAGS), where bfloat16
    autocast trains faster than float32 (a BTC 8x128 step 1.3x as fast, RESULTS.md);
    elsewhere oneDNN emulates it and it is slower. False where torch cannot tell (a torch without
    `torch.cpu.get_capabilities`) and on ARM, whose bf16 has not been measured."""
    capabilities = getattr(torch.cpu, "get_capabilities", None)
    if capabilities is None:
        return False
    found = capabilities()
    return any(bool(found.get(flag, False)) for flag in NATIVE_BF16_CPU_FLAGS)
