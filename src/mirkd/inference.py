"""Run a loaded model on features or audio files: device choice, batched windows, segments."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from mirkd.audio import load_audio
from mirkd.checkpoints import ModelBundle
from mirkd.decoding import decode, log_softmax
from mirkd.errors import ConfigError, MirkdError
from mirkd.features import log_cqt
from mirkd.labels import ChordSegment, frames_to_segments
from mirkd.models.common import ChordModel


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


def predict_logits(
    model: ChordModel,
    mean: float,
    std: float,
    features: np.ndarray,
    device: torch.device,
    batch_windows: int = 16,
) -> np.ndarray:
    """Frame logits [T, C] float32 of a model (in eval mode) for raw log-CQT `features`.

    Features [T, n_bins] are normalised with `mean`/`std`, zero-padded to whole model windows
    (as the models pad) and run in batches of `batch_windows` windows (inference mode,
    autocast on CUDA). The model is moved to `device`. Used for evaluation, transcription,
    teachers and the validation scores during training alike.
    """
    model = model.to(device)
    (n_frames, n_bins), window = features.shape, int(model.window)
    n_windows = -(-n_frames // window)
    padded = np.zeros((n_windows * window, n_bins), dtype=np.float32)
    padded[:n_frames] = (features - mean) / std
    windows = torch.from_numpy(padded).view(n_windows, window, n_bins)
    outputs = []
    with torch.inference_mode(), torch.autocast(device.type, enabled=device.type == "cuda"):
        for start in range(0, n_windows, batch_windows):
            batch = windows[start : start + batch_windows].to(device)
            outputs.append(model(batch).float().cpu())
    if not outputs:
        return np.zeros((0, model.num_classes), dtype=np.float32)
    logits = torch.cat(outputs).reshape(n_windows * window, -1)[:n_frames]
    return logits.numpy()


def bundle_logits(
    bundle: ModelBundle, features: np.ndarray, device: torch.device, batch_windows: int = 16
) -> np.ndarray:
    """`predict_logits` with a checkpoint's model and normalisation; features must have the
    bundle's number of CQT bins."""
    n_bins = bundle.feature_params.n_bins
    if features.ndim != 2 or features.shape[1] != n_bins:
        raise MirkdError(f"features of shape {features.shape} do not match {n_bins} CQT bins")
    return predict_logits(bundle.model, bundle.mean, bundle.std, features, device, batch_windows)


def transcribe_file(
    bundle: ModelBundle,
    audio_path: str | Path,
    device: torch.device | None = None,
    stay: float | None = None,
) -> list[ChordSegment]:
    """Chord segments of an audio file (merged runs, ending at the audio's duration).

    Frames are decoded by argmax, or by Viterbi with self-transition probability `stay`
    (mirkd.decoding). `device` defaults to the device the bundle's model is on."""
    params = bundle.feature_params
    y = load_audio(audio_path, sr=params.sr)
    features = log_cqt(y, params)
    if device is None:
        device = next(bundle.model.parameters()).device
    frames = decode(log_softmax(bundle_logits(bundle, features, device)), stay)
    return frames_to_segments(
        frames, params.frame_period, bundle.vocab, duration=len(y) / params.sr
    )
