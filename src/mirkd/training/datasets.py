"""Torch datasets of fixed-length windows read straight from the HDF5 caches (no audio decoding).

Items are dicts of tensors:
    x     float16 or float32 [L, n_bins]  raw log-CQT (float16 as stored in stage 1; the trainer
                               converts and normalises on the device)
    y     int64   [L]          class targets; padding and X frames are IGNORE_INDEX
    mask  bool    [L]          True on real frames, False on padding past the end of the track
    probs float16 or float32 [L, C]  teacher probabilities (only when the dataset has them;
                               the losses compute in float32)
Frames past the end of a track are left as the reader pads them; the trainer sets them to 0
*after* normalisation (using ``mask``), as the models pad windows at inference time.
Stage 1 reads memory-mapped bucket files (store.BucketFile), mapped lazily in each process, so
forked DataLoader workers map their own; labeled datasets hold read-only views of the same maps.
"""

from __future__ import annotations

import math
import os
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset, default_collate

from mirkd.errors import MirkdError
from mirkd.features import CQTParams
from mirkd.manifest import BucketFiles
from mirkd.store import BucketFile, feature_moments, merged_mean_std
from mirkd.training.losses import class_frame_counts
from mirkd.training.pseudo_labels import (
    CHUNK_ROWS,
    GroupTally,
    PseudoLabelPolicy,
    add_tallies,
    tally_targets,
)
from mirkd.vocab import IGNORE_INDEX, LARGE, Vocabulary

LOG_FLOOR = math.log(CQTParams().log_eps)
BINS_PER_SEMITONE = CQTParams().bins_per_octave // 12


@dataclass(frozen=True)
class LabeledTrack:
    """A track's features [T, n_bins] (float16, a view of its mapped bucket) with its ground
    truth per frame (int64 [T] in the dataset's vocabulary) and, for distillation, the
    teacher's probabilities [T, C]."""

    name: str
    features: np.ndarray
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


class WindowDataset(Dataset):
    """A dataset of training windows that can also hand out a whole batch at once (the
    trainer's loader asks for batches: one call per batch, not per window)."""

    def __len__(self) -> int:
        raise NotImplementedError

    def batch(self, items: Sequence[int]) -> dict[str, torch.Tensor]:
        """Windows `items` stacked into one batch (datasets with a faster gather override)."""
        return default_collate([self[i] for i in items])


def _padded_window(frames: np.ndarray, start: int, n_real: int, length: int) -> np.ndarray:
    """Rows [start, start + n_real) of `frames` as float32, zero-padded to `length` rows."""
    out = np.zeros((length, *frames.shape[1:]), dtype=np.float32)
    out[:n_real] = frames[start : start + n_real]
    return out


@dataclass(frozen=True)
class _MappedBucket:
    """One bucket's per-frame arrays as this process maps them."""

    cqt: np.ndarray
    labels: np.ndarray
    probs: np.ndarray | None
    confidence: np.ndarray | None


class PseudoLabelDataset(WindowDataset):
    """Stage-1 windows: features + teacher targets (+ teacher probabilities for optional KD),
    sliced from the memory-mapped features and teacher files of the given buckets.

    Targets are the teacher's argmax as ``policy`` turns them (``training.pseudo_labels``:
    confidence threshold, distribution matching); the default policy keeps the argmax as is.

    ``seq_len`` is the model's window (``model.window``), ``stride`` the step between windows.
    Every usable track of the buckets is used (tracks skipped by the features or the teacher
    job are left out). Teacher labels are used as targets as they are (an X argmax is a class
    to imitate); only padding is ignored. The window index is one [windows, 4] integer array
    (bucket, first feature row, first teacher row, real frames), so 15,000 tracks cost a few
    MB and forked workers share it.
    """

    def __init__(
        self,
        buckets: Sequence[BucketFiles],
        seq_len: int,
        stride: int,
        with_probs: bool = False,
        policy: PseudoLabelPolicy | None = None,
    ) -> None:
        self.buckets = list(buckets)
        self.seq_len = seq_len
        self.with_probs = with_probs
        self.policy = policy or PseudoLabelPolicy()
        self.track_ids: list[str] = []
        index: list[np.ndarray] = []
        for b, files in enumerate(self.buckets):
            features, teacher = BucketFile(files.features), BucketFile(files.teacher)
            for tid in teacher.usable():
                f_span, t_span = features.span(tid), teacher.span(tid)
                n = f_span.stop - f_span.start
                if n != t_span.stop - t_span.start:
                    raise MirkdError(
                        f"{files.teacher}: track {tid} has {t_span.stop - t_span.start} teacher "
                        f"frames but {files.features} has {n}"
                    )
                starts = np.array(window_starts(n, seq_len, stride), dtype=np.int64)
                rows = np.empty((len(starts), 4), dtype=np.int64)
                rows[:, 0] = b
                rows[:, 1] = f_span.start + starts
                rows[:, 2] = t_span.start + starts
                rows[:, 3] = np.minimum(seq_len, n - starts)
                index.append(rows)
                self.track_ids.append(tid)
        self.index = np.concatenate(index) if index else np.zeros((0, 4), dtype=np.int64)
        self._pid = -1
        self._maps: dict[int, _MappedBucket] = {}

    def _mapped(self, b: int) -> _MappedBucket:
        if self._pid != os.getpid():
            self._pid, self._maps = os.getpid(), {}
        if b not in self._maps:
            files = self.buckets[b]
            features, teacher = BucketFile(files.features), BucketFile(files.teacher)
            reads_probs = self.with_probs or self.policy.reads_probs
            self._maps[b] = _MappedBucket(  # plain views: no memmap subclass overhead
                np.asarray(features.memmap("cqt")),
                np.asarray(teacher.memmap("labels")),
                np.asarray(teacher.memmap("probs")) if reads_probs else None,
                (
                    np.asarray(teacher.memmap("confidence"))
                    if self.policy.reads_confidence
                    else None
                ),
            )
        return self._maps[b]

    def tally(self, vocab: Vocabulary = LARGE) -> dict[str, GroupTally]:
        """Frames per chord-quality group of the training tracks: the teacher's argmax, the
        policy's targets, and those the confidence threshold keeps (read in chunks; a skipped
        track has no rows, so every row of a bucket belongs to a usable track)."""
        total: dict[str, GroupTally] | None = None
        for b in range(len(self.buckets)):
            mapped = self._mapped(b)
            for start in range(0, len(mapped.labels), CHUNK_ROWS):
                rows = slice(start, start + CHUNK_ROWS)
                part = tally_targets(
                    mapped.labels[rows],
                    None if mapped.probs is None else mapped.probs[rows],
                    None if mapped.confidence is None else mapped.confidence[rows],
                    self.policy,
                    vocab,
                )
                total = part if total is None else add_tallies(total, part)
        if total is None:
            raise MirkdError("no pseudo-labeled frame to tally")
        return total

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, item: int) -> dict[str, torch.Tensor]:
        return {k: v[0] for k, v in self.batch([item]).items()}

    def batch(self, items: Sequence[int]) -> dict[str, torch.Tensor]:
        """The windows `items` as one batch, gathered per bucket by one fancy index each.

        x stays float16 as stored ([B, L, n_bins]); the trainer converts it on the device, so
        a GPU receives half the bytes. One gather per bucket instead of one copy per window is
        what lets one core deliver tens of thousands of windows per second.
        """
        rows = self.index[np.asarray(items, dtype=np.int64)]
        offsets = np.arange(self.seq_len)
        real = offsets[None, :] < rows[:, 3:4]  # [B, L]
        x = np.empty((len(rows), self.seq_len, self._n_bins(rows)), dtype=np.float16)
        y = np.empty((len(rows), self.seq_len), dtype=np.int64)  # every row gathered below
        probs = None
        for b in np.unique(rows[:, 0]):
            mapped = self._mapped(int(b))
            sel = np.flatnonzero(rows[:, 0] == b)
            # past a track's end the rows repeat its window's first row; zeroed below
            frames = np.where(real[sel], offsets, 0)
            teacher_rows = rows[sel, 2:3] + frames
            x[sel] = np.take(mapped.cqt, rows[sel, 1:2] + frames, axis=0)
            window_probs = (
                None if mapped.probs is None else np.take(mapped.probs, teacher_rows, axis=0)
            )
            y[sel] = self.policy.targets(
                np.take(mapped.labels, teacher_rows, axis=0),
                window_probs,
                None
                if mapped.confidence is None
                else np.take(mapped.confidence, teacher_rows, axis=0),
            )
            if self.with_probs and window_probs is not None:
                if probs is None:  # float16 as stored, like x
                    probs = np.empty((len(rows), self.seq_len, window_probs.shape[-1]), np.float16)
                probs[sel] = window_probs
        padding = ~real
        if padding.any():
            x[padding] = 0
            y[padding] = IGNORE_INDEX
            if probs is not None:
                probs[padding] = 0
        batch = {
            "x": torch.from_numpy(x),
            "y": torch.from_numpy(y),
            "mask": torch.from_numpy(real),
        }
        if probs is not None:
            batch["probs"] = torch.from_numpy(probs)
        return batch

    def _n_bins(self, rows: np.ndarray) -> int:
        return int(self._mapped(int(rows[0, 0])).cqt.shape[1]) if len(rows) else 0

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_pid": -1, "_maps": {}}


class LabeledDataset(WindowDataset):
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
        self.tracks: list[LabeledTrack] = []
        self.with_probs = all(t.probs is not None for t in tracks) and bool(tracks)
        self.index: list[tuple[int, int, int]] = []
        for i, track in enumerate(tracks):
            n = len(track.features)
            self._check(track, n)
            labels = np.asarray(track.labels, dtype=np.int64)
            self.tracks.append(LabeledTrack(track.name, track.features, labels, track.probs))
            self.index.extend(
                (i, start, shift)
                for start in window_starts(n, seq_len, stride)
                for shift in self.shifts
            )

    def _check(self, track: LabeledTrack, n: int) -> None:
        if len(track.labels) != n:
            raise MirkdError(
                f"{track.name}: {n} feature frames but {len(track.labels)} frame labels"
            )
        if track.probs is not None and track.probs.shape != (n, self.vocab.size):
            raise MirkdError(
                f"{track.name}: teacher probabilities have shape {track.probs.shape}, "
                f"expected ({n}, {self.vocab.size}) for vocabulary {self.vocab.name}"
            )

    def __len__(self) -> int:
        return len(self.index)

    def class_counts(self) -> np.ndarray:
        """int64 [vocab.size]: frames per class of the targets this dataset yields (after
        loss_targets and each pitch shift; IGNORE_INDEX not counted), each track frame once
        per shift copy (overlapping windows are not counted twice)."""
        counts = np.zeros(self.vocab.size, dtype=np.int64)
        for track in self.tracks:
            for shift in self.shifts:
                targets = self.vocab.loss_targets(self.vocab.transpose(track.labels, shift))
                counts += class_frame_counts(targets, self.vocab.size)
        return counts

    def __getitem__(self, item: int) -> dict[str, torch.Tensor]:
        i, start, shift = self.index[item]
        track = self.tracks[i]
        labels = track.labels
        end = min(start + self.seq_len, len(labels))
        n_real = end - start
        x = _padded_window(track.features, start, n_real, self.seq_len)
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
            item_dict["probs"] = torch.from_numpy(
                _padded_window(window, 0, len(window), self.seq_len)
            )
        return item_dict


class RehearsalDataset(WindowDataset):
    """Stage-2 windows with rehearsal: every batch of labeled windows is topped up with
    pseudo-labeled windows of the unlabeled audio, so that continual learning on a few songs
    keeps practising what stage 1 learned from the teacher (the standard remedy for
    forgetting in continual learning).

    ``fraction`` is the share of each batch that is pseudo-labeled: a batch of ``n`` labeled
    windows gets ``round(n * fraction / (1 - fraction))`` more. An epoch still passes once over
    the labeled windows (``len`` is theirs). The pseudo-labeled windows of a batch are drawn
    from a generator seeded by ``seed`` and the batch's labeled items, so a resumed run draws
    the same ones. Their targets are the teacher's argmax; with teacher probabilities in the
    labeled batch (KD), theirs come too and the KD term covers them as well.
    """

    def __init__(
        self, labeled: LabeledDataset, pseudo: PseudoLabelDataset, fraction: float, seed: int
    ) -> None:
        if not 0.0 < fraction < 1.0:
            raise MirkdError(f"rehearsal fraction {fraction} must lie in (0, 1)")
        if len(pseudo) == 0:
            raise MirkdError("rehearsal: no pseudo-labeled window to rehearse")
        if labeled.seq_len != pseudo.seq_len:
            raise MirkdError(
                f"rehearsal: labeled windows of {labeled.seq_len} frames, pseudo-labeled of "
                f"{pseudo.seq_len}"
            )
        self.labeled, self.pseudo = labeled, pseudo
        self.fraction, self.seed = fraction, seed
        self.with_probs = labeled.with_probs

    def __len__(self) -> int:
        return len(self.labeled)

    def __getitem__(self, item: int) -> dict[str, torch.Tensor]:
        return self.labeled[item]

    def class_counts(self) -> np.ndarray:
        """The labeled windows' class counts: class-balanced weights follow the ground truth
        (the rehearsed targets are the teacher's)."""
        return self.labeled.class_counts()

    def n_pseudo(self, n_labeled: int) -> int:
        return round(n_labeled * self.fraction / (1.0 - self.fraction))

    def pseudo_items(self, items: Sequence[int]) -> np.ndarray:
        """The pseudo-labeled windows that join the batch of labeled `items`."""
        key = zlib.crc32(np.asarray(items, dtype=np.int64).tobytes())
        rng = np.random.default_rng([self.seed, key])
        return rng.integers(0, len(self.pseudo), size=self.n_pseudo(len(items)))

    def batch(self, items: Sequence[int]) -> dict[str, torch.Tensor]:
        """The labeled windows `items` followed by their pseudo-labeled companions."""
        labeled = self.labeled.batch(items)
        extra = self.pseudo_items(items)
        if len(extra) == 0:
            return labeled
        pseudo = self.pseudo.batch(extra.tolist())
        batch = {
            k: torch.cat([labeled[k], pseudo[k].to(labeled[k].dtype)]) for k in ("x", "y", "mask")
        }
        if "probs" in labeled:
            batch["probs"] = torch.cat(
                [labeled["probs"], pseudo["probs"].to(labeled["probs"].dtype)]
            )
        return batch


def compute_mean_std(tracks: Mapping[str, Sequence[str]]) -> tuple[float, float]:
    """Global scalar mean and (population) std of all log-CQT values of the given tracks
    (features bucket path -> track ids), merged exactly from the per-track moments each
    features bucket stores (no feature is read)."""
    rows = [feature_moments(BucketFile(path), ids) for path, ids in tracks.items() if ids]
    if not rows:
        raise MirkdError("compute_mean_std: no tracks given")
    return merged_mean_std(np.concatenate(rows))
