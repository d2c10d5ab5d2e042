"""What the repository may hold: weights only as the released model, float16 and small."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import torch

from mirkd import released
from mirkd.release import MAX_BYTES

REPO = Path(__file__).resolve().parents[1]
WEIGHT_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin", ".safetensors", ".onnx", ".h5", ".npz")


def _tracked() -> list[Path]:
    try:
        out = subprocess.run(
            ["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"not a git checkout or no git ({exc})")
    return [REPO / line for line in out.splitlines()]


def test_the_only_weights_in_the_repository_are_the_released_model():
    weights = [p for p in _tracked() if p.suffix in WEIGHT_SUFFIXES]
    outside = [p.relative_to(REPO) for p in weights if p.parent != released.FOLDER]
    assert not outside, f"weights outside src/mirkd/released/: {outside}"
    for path in weights:
        assert path.name in released.FILES, path
        assert path.stat().st_size <= MAX_BYTES, f"{path}: {path.stat().st_size} bytes"
        state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
        floats = {v.dtype for v in state.values() if v.is_floating_point()}
        assert floats == {torch.float16}, f"{path}: weights stored as {floats}"
