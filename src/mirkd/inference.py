"""Run a loaded model on features or audio files: batched windows, segments (the device:
mirkd.devices)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mirkd.audio import load_audio
from mirkd.beats import BEAT_STAY, BeatChord, BeatGrid, decode_beats, track_beats
from mirkd.checkpoints import ModelBundle
from mirkd.decoding import decode, log_softmax
from mirkd.errors import MirkdError
from mirkd.features import log_cqt
from mirkd.labels import ChordSegment, frames_to_segments


def predict_logits(
    bundle: ModelBundle, features: np.ndarray, device: torch.device, batch_windows: int = 16
) -> np.ndarray:
    """Frame logits [T, C] float32 of a bundle's model (in eval mode) for raw log-CQT
    `features` [T, n_bins] (the bundle's number of CQT bins, else MirkdError).

    Features are normalised by the bundle (`ModelBundle.normalise`), zero-padded to whole model
    windows (as the models pad) and run in batches of `batch_windows` windows (inference mode,
    autocast on CUDA). The model is moved to `device`. Used for evaluation, transcription,
    teachers and the validation scores during training alike.
    """
    return predict_logits_many(bundle, [features], device, batch_windows)[0]


def predict_logits_many(
    bundle: ModelBundle,
    tracks: Sequence[np.ndarray],
    device: torch.device,
    batch_windows: int = 16,
) -> list[np.ndarray]:
    """`predict_logits` of several tracks at once: each track is padded to whole windows on its
    own, then the windows of all tracks share the batches, so a batch can be full (on a GPU)
    even when the tracks are short. Windows never see each other, so each track's logits are
    those `predict_logits` gives it alone (up to the float rounding of another batch size)."""
    n_bins = bundle.feature_params.n_bins
    for features in tracks:
        if features.ndim != 2 or features.shape[1] != n_bins:
            raise MirkdError(f"features of shape {features.shape} do not match {n_bins} CQT bins")
    model = bundle.model.to(device)
    window = int(model.window)
    counts = [-(-len(f) // window) for f in tracks]
    padded = np.zeros((sum(counts) * window, n_bins), dtype=np.float32)
    starts = np.concatenate([[0], np.cumsum(counts)]) * window
    for features, start in zip(tracks, starts[:-1], strict=True):
        padded[start : start + len(features)] = bundle.normalise(features)
    windows = torch.from_numpy(padded).view(sum(counts), window, n_bins)
    outputs = [torch.zeros((0, model.num_classes))]
    with torch.inference_mode(), torch.autocast(device.type, enabled=device.type == "cuda"):
        for start in range(0, len(windows), batch_windows):
            batch = windows[start : start + batch_windows].to(device)
            outputs.append(model(batch).float().cpu().reshape(-1, model.num_classes))
    logits = torch.cat(outputs).numpy()
    return [logits[start : start + len(f)] for f, start in zip(tracks, starts[:-1], strict=True)]


def frame_log_probs(
    bundle: ModelBundle, y: np.ndarray, device: torch.device | None = None
) -> np.ndarray:
    """Frame log-posteriors [T, C] (float64) of a mono signal at the bundle's sample rate."""
    features = log_cqt(y, bundle.feature_params)
    if device is None:
        device = next(bundle.model.parameters()).device
    return log_softmax(predict_logits(bundle, features, device))


def transcribe_file(
    bundle: ModelBundle,
    audio_path: str | Path,
    device: torch.device | None = None,
    stay: float | None = None,
) -> list[ChordSegment]:
    """Chord segments of an audio file (merged runs, ending at the audio's duration).

    Frames are decoded by argmax, or by Viterbi with self-transition probability `stay`
    (mirkd.decoding). `device` defaults to the device the bundle's model is on."""
    return transcribe_song(bundle, audio_path, device, stay).segments


@dataclass(frozen=True)
class Transcription:
    """What `transcribe_song` finds in one audio file: the signal's duration, the frame
    log-posteriors and frame-level segments, and with beats the beat grid (None when no beat
    was detected) and the chord of each beat interval."""

    duration: float
    log_probs: np.ndarray
    segments: list[ChordSegment]
    grid: BeatGrid | None = None
    beat_chords: list[BeatChord] | None = None
    beats_requested: bool = False


def transcribe_song(
    bundle: ModelBundle,
    audio_path: str | Path,
    device: torch.device | None = None,
    stay: float | None = None,
    beats: bool = False,
    beat_stay: float = BEAT_STAY,
) -> Transcription:
    """Frame-level chords of an audio file (as transcribe_file) and, with `beats`, its beats
    and downbeats (mirkd.beats.track_beats) and the chords decided per beat
    (mirkd.beats.decode_beats, per-beat self-transition probability `beat_stay`)."""
    params = bundle.feature_params
    y = load_audio(audio_path, sr=params.sr)
    duration = len(y) / params.sr
    log_probs = frame_log_probs(bundle, y, device)
    frames = decode(log_probs, stay)
    segments = frames_to_segments(frames, params.frame_period, bundle.vocab, duration=duration)
    if not beats:
        return Transcription(duration, log_probs, segments)
    grid = track_beats(y, params.sr)
    if grid is None:
        return Transcription(duration, log_probs, segments, beats_requested=True)
    chords = decode_beats(log_probs, params.frame_period, grid, duration, bundle.vocab, beat_stay)
    return Transcription(duration, log_probs, segments, grid, chords, beats_requested=True)
