"""Torch datasets of fixed-length windows read straight from the HDF5 caches (no audio decoding).

Items are dicts of tensors:
    x     float32 [L, n_bins]  raw log-CQT (normalisation happens in the trainer, on the device)
    y     int64   [L]          class targets; padding and X frames are IGNORE_INDEX
    mask  bool    [L]          True on real frames, False on padding past the end of the track
    probs float32 [L, C]       teacher probabilities (only when the dataset has them)
Frames past the end of a track are left as the reader pads them; the trainer sets them to 0
*after* normalisation (using ``mask``), as the models pad windows at inference time.
Files are opened lazily per process (store.WindowReader), so DataLoader workers are safe.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from mirkd.errors import MirkdError
from mirkd.features import CQTParams
from mirkd.store import WindowReader, read_features, read_shard_labels, shard_dataset
from mirkd.vocab import IGNORE_INDEX, LARGE, Vocabulary

LOG_FLOOR = math.log(CQTParams().log_eps)
BINS_PER_SEMITONE = CQTParams().bins_per_octave // 12


@dataclass(frozen=True)
class ShardTrack:
    """A track's features and the pseudo-label shard that holds its teacher outputs."""

    track_id: str
    features: str
    shard: str


@dataclass(frozen=True)
class LabeledTrack:
    """A track's features with its ground truth per frame (int64 [T] in the dataset's
    vocabulary) and, for distillation, the teacher's probabilities [T, C]."""

    features: str
    labels: np.ndarray
    probs: np.ndarray | None = None


def window_starts(n_frames: int, seq_len: int, stride: int) -> list[int]:
    """Window starts every ``stride`` frames until a window reaches the end of the track.

    Unlike the reference (which drops the tail after the last full window), every frame is
    covered; the last window may be padded. A track shorter than ``seq_len`` gives one window.
    """
    starts = [0]
    while starts[-1] + seq_len < n_frames:
        starts.append(starts[-1] + stride)
    return starts


def _targets(labels: np.ndarray, length: int, vocab: Vocabulary) -> np.ndarray:
    """Loss targets (X -> IGNORE_INDEX) padded with IGNORE_INDEX to ``length``."""
    y = np.full(length, IGNORE_INDEX, dtype=np.int64)
    y[: len(labels)] = vocab.loss_targets(labels)
    return y


def _padded_probs(probs: np.ndarray, length: int) -> np.ndarray:
    out = np.zeros((length, probs.shape[1]), dtype=np.float32)
    out[: len(probs)] = probs
    return out


def shift_cqt(x: np.ndarray, semitones: int) -> np.ndarray:
    """Transpose a [T, bins] log-CQT by rolling ``BINS_PER_SEMITONE`` bins per semitone.

    Bins that roll in from outside the range are set to the log floor (silence).
    """
    bins = BINS_PER_SEMITONE * semitones
    out = np.full_like(x, LOG_FLOOR)
    if bins > 0:
        out[:, bins:] = x[:, :-bins]
    elif bins < 0:
        out[:, :bins] = x[:, -bins:]
    else:
        out[:] = x
    return out


def shift_probs(probs: np.ndarray, semitones: int, vocab: Vocabulary) -> np.ndarray:
    """Move class probabilities the way ``vocab.transpose`` moves class indices."""
    destination = vocab.transpose(np.arange(vocab.size), semitones)
    out = np.empty_like(probs)
    out[:, destination] = probs
    return out


class PseudoLabelDataset(Dataset):
    """Stage-1 windows: features + teacher argmax (+ teacher probabilities for optional KD).

    ``seq_len`` is the model's window (``model.window``), ``stride`` the step between windows.
    Teacher labels are used as targets as they are (an X argmax is a class to imitate); only
    padding is ignored.
    """

    def __init__(
        self,
        tracks: Sequence[ShardTrack],
        seq_len: int,
        stride: int,
        with_probs: bool = False,
    ) -> None:
        self.tracks = list(tracks)
        self.seq_len = seq_len
        self.with_probs = with_probs
        self._features = WindowReader()
        self.index: list[tuple[int, int]] = []
        self.labels: list[np.ndarray] = []
        for i, track in enumerate(self.tracks):
            n = self._features.n_frames(track.features)
            labels = read_shard_labels(track.shard, track.track_id)
            if len(labels) != n:
                raise MirkdError(
                    f"{track.shard}: track {track.track_id} has {len(labels)} teacher frames "
                    f"but {track.features} has {n}"
                )
            self.labels.append(labels.astype(np.int64))
            self.index.extend((i, start) for start in window_starts(n, seq_len, stride))

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, item: int) -> dict[str, torch.Tensor]:
        i, start = self.index[item]
        track, labels = self.tracks[i], self.labels[i]
        end = min(start + self.seq_len, len(labels))
        n_real = end - start
        x = self._features.window(track.features, start, self.seq_len)
        y = np.full(self.seq_len, IGNORE_INDEX, dtype=np.int64)
        y[:n_real] = labels[start:end]
        mask = np.arange(self.seq_len) < n_real
        item_dict = {
            "x": torch.from_numpy(x),
            "y": torch.from_numpy(y),
            "mask": torch.from_numpy(mask),
        }
        if self.with_probs:
            probs = self._features.window(
                track.shard, start, self.seq_len, shard_dataset(track.track_id, "probs")
            )
            item_dict["probs"] = torch.from_numpy(probs)
        return item_dict


class LabeledDataset(Dataset):
    """Stage-2 / baseline windows: features + ground-truth frame labels (+ teacher probabilities).

    ``seq_len`` is the model's window (``model.window``), ``stride`` the step between windows.
    ``pitch_shift`` lists the semitone shifts to enumerate (e.g. ``range(-5, 7)``, which includes
    the unshifted copy); ``()`` means no augmentation. Each window appears once per shift, so the
    data set stays deterministic (exact resume). Probabilities are only returned when every
    track has them.
    """

    def __init__(
        self,
        tracks: Sequence[LabeledTrack],
        seq_len: int,
        stride: int,
        pitch_shift: Iterable[int] = (),
        vocab: Vocabulary = LARGE,
    ) -> None:
        self.vocab = vocab
        self.seq_len = seq_len
        self.shifts = tuple(pitch_shift) or (0,)
        self._features = WindowReader()
        self.tracks: list[LabeledTrack] = []
        self.with_probs = all(t.probs is not None for t in tracks) and bool(tracks)
        self.index: list[tuple[int, int, int]] = []
        for i, track in enumerate(tracks):
            n = self._features.n_frames(track.features)
            self._check(track, n)
            labels = np.asarray(track.labels, dtype=np.int64)
            self.tracks.append(LabeledTrack(track.features, labels, track.probs))
            self.index.extend(
                (i, start, shift)
                for start in window_starts(n, seq_len, stride)
                for shift in self.shifts
            )

    def _check(self, track: LabeledTrack, n: int) -> None:
        if len(track.labels) != n:
            raise MirkdError(
                f"{track.features}: {n} feature frames but {len(track.labels)} frame labels"
            )
        if track.probs is not None and track.probs.shape != (n, self.vocab.size):
            raise MirkdError(
                f"{track.features}: teacher probabilities have shape {track.probs.shape}, "
                f"expected ({n}, {self.vocab.size}) for vocabulary {self.vocab.name}"
            )

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, item: int) -> dict[str, torch.Tensor]:
        i, start, shift = self.index[item]
        track = self.tracks[i]
        labels = track.labels
        end = min(start + self.seq_len, len(labels))
        n_real = end - start
        x = self._features.window(track.features, start, self.seq_len)
        if shift:
            x = shift_cqt(x, shift)
        y = _targets(self.vocab.transpose(labels[start:end], shift), self.seq_len, self.vocab)
        mask = np.arange(self.seq_len) < n_real
        item_dict = {
            "x": torch.from_numpy(x),
            "y": torch.from_numpy(y),
            "mask": torch.from_numpy(mask),
        }
        if self.with_probs and track.probs is not None:
            window = np.asarray(track.probs[start:end], dtype=np.float32)
            if shift:
                window = shift_probs(window, shift, self.vocab)
            item_dict["probs"] = torch.from_numpy(_padded_probs(window, self.seq_len))
        return item_dict


def compute_mean_std(feature_paths: Iterable[str | Path]) -> tuple[float, float]:
    """Global scalar mean and (population) std of all log-CQT values of the given files.

    Streams one file at a time and merges per-file moments exactly (Chan et al.), in float64.
    """
    count, mean, m2 = 0, 0.0, 0.0
    for path in feature_paths:
        values = read_features(path).astype(np.float64).ravel()
        if values.size == 0:
            continue
        n_b, mean_b = values.size, float(values.mean())
        m2_b = float(((values - mean_b) ** 2).sum())
        delta = mean_b - mean
        total = count + n_b
        mean += delta * n_b / total
        m2 += m2_b + delta**2 * count * n_b / total
        count = total
    if count == 0:
        raise MirkdError("compute_mean_std: the given feature files hold no frames")
    return mean, math.sqrt(m2 / count)
