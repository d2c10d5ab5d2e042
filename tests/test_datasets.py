"""Window datasets over small synthetic HDF5 caches."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from bucket_helpers import damage, feature_bucket, teacher_bucket
from torch.utils.data import DataLoader

from mirkd.errors import DamagedBucketError, MirkdError
from mirkd.features import CQTParams
from mirkd.manifest import BucketFiles
from mirkd.store import BucketFile, TeacherOutput
from mirkd.training.datasets import (
    LOG_FLOOR,
    LabeledDataset,
    LabeledTrack,
    PseudoLabelDataset,
    RehearsalDataset,
    compute_mean_std,
    shift_cqt,
    window_starts,
)
from mirkd.vocab import IGNORE_INDEX, LARGE

PARAMS = CQTParams()


def _cqt(n_frames, seed=0):
    return np.random.default_rng(seed).normal(-5, 2, (n_frames, 144)).astype(np.float16)


def _features(tmp_path, name, n_frames, seed=0):
    """A one-track features bucket; its path and the track's features (a mapped view)."""
    path = feature_bucket(tmp_path / f"{name}.h5", {name: _cqt(n_frames, seed)})
    return path, BucketFile(path).frames("cqt", name)


def _probs(n_frames, seed=0):
    logits = np.random.default_rng(seed).normal(0, 3, (n_frames, LARGE.size))
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (p / p.sum(axis=1, keepdims=True)).astype(np.float32)


def test_window_starts_cover_every_frame():
    assert window_starts(10, 108, 108) == [0]
    assert window_starts(108, 108, 108) == [0]
    assert window_starts(109, 108, 108) == [0, 108]
    assert window_starts(250, 108, 54) == [0, 54, 108, 162]


def test_pseudo_label_dataset_windows_and_padding(tmp_path):
    cqt1 = _cqt(150, seed=1)
    p1, p2 = _probs(150, 1), _probs(40, 2)
    outputs = {"a": TeacherOutput.from_probs(p1), "b": TeacherOutput.from_probs(p2), "c": None}
    files = BucketFiles(
        feature_bucket(tmp_path / "f.h5", {"a": cqt1, "b": _cqt(40, 2), "c": _cqt(0)}),
        teacher_bucket(tmp_path / "t.h5", outputs),
    )
    ds = PseudoLabelDataset([files], seq_len=108, stride=108, with_probs=True)
    assert len(ds) == 3 and ds.track_ids == ["a", "b"]  # c was skipped
    second = ds[1]  # track a, frames 108..149 then padding
    assert second["x"].shape == (108, 144) and second["x"].dtype == torch.float16
    np.testing.assert_array_equal(second["x"][:42].numpy(), cqt1[108:].astype(np.float32))
    assert second["y"].dtype == torch.int64
    np.testing.assert_array_equal(second["y"][:42].numpy(), p1[108:].argmax(axis=1))
    assert (second["y"][42:] == IGNORE_INDEX).all()
    assert second["mask"][:42].all() and not second["mask"][42:].any()
    assert second["probs"].shape == (108, 170)
    np.testing.assert_allclose(second["probs"][:42].numpy(), p1[108:], atol=1e-3)
    assert "probs" not in PseudoLabelDataset([files], 108, 108)[0]


def test_pseudo_label_dataset_refuses_mismatched_lengths(tmp_path):
    files = BucketFiles(
        feature_bucket(tmp_path / "f.h5", {"a": _cqt(50)}),
        teacher_bucket(tmp_path / "t.h5", {"a": TeacherOutput.from_probs(_probs(49))}),
    )
    with pytest.raises(MirkdError, match="49 teacher frames"):
        PseudoLabelDataset([files], 108, 108)


def test_pseudo_label_dataset_with_workers(tmp_path):
    files = BucketFiles(
        feature_bucket(tmp_path / "f.h5", {"a": _cqt(300, 1)}),
        teacher_bucket(tmp_path / "t.h5", {"a": TeacherOutput.from_probs(_probs(300))}),
    )
    ds = PseudoLabelDataset([files], 108, 108)
    batches = list(DataLoader(ds, batch_size=2, num_workers=2))
    assert sum(len(b["y"]) for b in batches) == 3
    assert torch.equal(batches[0]["x"][0], ds[0]["x"])


def test_shift_cqt_rolls_two_bins_per_semitone():
    x = np.arange(2 * 144, dtype=np.float32).reshape(2, 144)
    up = shift_cqt(x, 1)
    np.testing.assert_array_equal(up[:, 2:], x[:, :-2])
    assert (up[:, :2] == LOG_FLOOR).all()
    down = shift_cqt(x, -3)
    np.testing.assert_array_equal(down[:, :-6], x[:, 6:])
    assert (down[:, -6:] == LOG_FLOOR).all()


def test_labeled_dataset_pitch_shift_labels_probs_and_x(tmp_path):
    f, cqt = _features(tmp_path, "a", 60)
    labels = np.array(
        [LARGE.to_index("C:min")] * 20 + [LARGE.x_index] * 20 + [LARGE.n_index] * 20, dtype=np.int64
    )
    probs = _probs(60)
    ds = LabeledDataset(
        [LabeledTrack("a", cqt, labels, probs)], seq_len=64, stride=32, pitch_shift=range(-1, 2)
    )
    assert len(ds) == 3  # one window x three shifts
    by_shift = {ds.index[i][2]: ds[i] for i in range(3)}
    plain, up = by_shift[0], by_shift[1]
    assert plain["y"][0].item() == LARGE.to_index("C:min")
    assert up["y"][0].item() == LARGE.to_index("C#:min")
    assert by_shift[-1]["y"][0].item() == LARGE.to_index("B:min")
    for item in by_shift.values():
        assert (item["y"][20:40] == IGNORE_INDEX).all()  # X ignored
        assert (item["y"][40:60] == LARGE.n_index).all()  # N kept
        assert (item["y"][60:] == IGNORE_INDEX).all()  # padding
    np.testing.assert_array_equal(up["x"][:60, 2:].numpy(), cqt[:, :-2].astype(np.float32))
    c_min, cs_min = LARGE.to_index("C:min"), LARGE.to_index("C#:min")
    np.testing.assert_allclose(up["probs"][:60, cs_min].numpy(), probs[:, c_min], atol=1e-6)
    np.testing.assert_allclose(up["probs"][:60, LARGE.n_index].numpy(), probs[:, LARGE.n_index])
    assert torch.equal(
        up["probs"][:60].argmax(1), torch.from_numpy(LARGE.transpose(probs.argmax(1), 1))
    )


def test_labeled_dataset_without_probs_and_length_check(tmp_path):
    _, cqt = _features(tmp_path, "a", 60)
    ds = LabeledDataset([LabeledTrack("a", cqt, np.zeros(60, dtype=np.int64))], 108, 54)
    assert len(ds) == 1 and "probs" not in ds[0]
    with pytest.raises(MirkdError, match="a: 60 feature frames but 59 frame labels"):
        LabeledDataset([LabeledTrack("a", cqt, np.zeros(59, dtype=np.int64))], 108, 54)


def test_compute_mean_std_exact_from_stored_moments(tmp_path):
    a, b, c = _cqt(30, 1), _cqt(70, 2), _cqt(50, 3)
    one = feature_bucket(tmp_path / "one.h5", {"a": a, "c": c})
    two = feature_bucket(tmp_path / "two.h5", {"b": b})
    mean, std = compute_mean_std({one: ["a"], two: ["b"]})  # c is not asked for
    values = np.concatenate([a.ravel(), b.ravel()]).astype(np.float64)
    assert mean == pytest.approx(values.mean(), rel=1e-12)
    assert std == pytest.approx(values.std(), rel=1e-12)


def test_pseudo_label_batch_gathers_across_buckets_like_single_items(tmp_path):
    buckets = []
    for b, lengths in enumerate(([150, 40], [230])):
        names = [f"b{b}t{i}" for i in range(len(lengths))]
        cqts = {n: _cqt(k, seed=k) for n, k in zip(names, lengths, strict=True)}
        outs = {
            n: TeacherOutput.from_probs(_probs(k, k)) for n, k in zip(names, lengths, strict=True)
        }
        buckets.append(
            BucketFiles(
                feature_bucket(tmp_path / f"f{b}.h5", cqts),
                teacher_bucket(tmp_path / f"t{b}.h5", outs),
            )
        )
    ds = PseudoLabelDataset(buckets, seq_len=108, stride=54, with_probs=True)
    items = [5, 0, 3, len(ds) - 1, 2]
    batch = ds.batch(items)
    assert batch["x"].shape == (5, 108, 144) and batch["probs"].shape == (5, 108, 170)
    for row, item in enumerate(items):
        # the single-item reference: slice the track's arrays by hand
        b, f_start, t_start, n_real = (int(v) for v in ds.index[item])
        features = BucketFile(buckets[b].features).memmap("cqt")
        teacher = BucketFile(buckets[b].teacher)
        np.testing.assert_array_equal(
            batch["x"][row, :n_real], features[f_start : f_start + n_real]
        )
        assert (batch["x"][row, n_real:] == 0).all()
        labels = teacher.memmap("labels")[t_start : t_start + n_real]
        np.testing.assert_array_equal(batch["y"][row, :n_real], labels)
        assert (batch["y"][row, n_real:] == IGNORE_INDEX).all()
        assert batch["mask"][row].sum() == n_real
        probs = teacher.memmap("probs")[t_start : t_start + n_real].astype(np.float32)
        np.testing.assert_array_equal(batch["probs"][row, :n_real], probs)
        assert (batch["probs"][row, n_real:] == 0).all()


def _rehearsal(tmp_path, fraction, with_probs=False):
    path, feats = _features(tmp_path, "lab", 300, seed=3)
    labels = np.arange(300) % 24
    probs = _probs(300, 3) if with_probs else None
    labeled = LabeledDataset([LabeledTrack("lab", feats, labels, probs)], 108, 108)
    pseudo_out = {"u": TeacherOutput.from_probs(_probs(500, 4))}
    files = BucketFiles(
        feature_bucket(tmp_path / "uf.h5", {"u": _cqt(500, 4)}),
        teacher_bucket(tmp_path / "ut.h5", pseudo_out),
    )
    pseudo = PseudoLabelDataset([files], 108, 108, with_probs=with_probs)
    return labeled, pseudo, RehearsalDataset(labeled, pseudo, fraction, seed=7)


def test_rehearsal_tops_up_each_batch_with_pseudo_labeled_windows(tmp_path):
    labeled, pseudo, ds = _rehearsal(tmp_path, 0.5)
    assert len(ds) == len(labeled) == 3  # an epoch passes over the labeled windows only
    batch = ds.batch([0, 2])
    assert batch["x"].shape == (4, 108, 144) and batch["x"].dtype == torch.float32
    torch.testing.assert_close(batch["y"][:2], labeled.batch([0, 2])["y"])
    extra = ds.pseudo_items([0, 2])
    torch.testing.assert_close(batch["y"][2:], pseudo.batch(extra.tolist())["y"])
    # the same labeled items draw the same pseudo windows (exact resume), others may differ
    torch.testing.assert_close(ds.batch([0, 2])["x"], batch["x"])
    assert ds.n_pseudo(32) == 32 and RehearsalDataset(labeled, pseudo, 0.25, 0).n_pseudo(30) == 10


def test_rehearsal_carries_teacher_probabilities_when_the_stage_distils(tmp_path):
    _, _, ds = _rehearsal(tmp_path, 0.25, with_probs=True)
    batch = ds.batch([0, 1, 2])
    assert batch["probs"].shape == (4, 108, LARGE.size) and batch["probs"].dtype == torch.float32


def test_rehearsal_rejects_a_fraction_outside_0_1(tmp_path):
    labeled, pseudo, _ = _rehearsal(tmp_path, 0.5)
    with pytest.raises(MirkdError, match="rehearsal fraction"):
        RehearsalDataset(labeled, pseudo, 1.0, 0)


def test_class_counts_count_each_frame_once_per_shift(tmp_path):
    _, feats = _features(tmp_path, "lab", 150, seed=5)
    labels = np.array([1] * 100 + [LARGE.x_index] * 50)  # X frames are ignored targets
    track = LabeledTrack("lab", feats, labels)
    plain = LabeledDataset([track], 108, 54).class_counts()
    assert plain[1] == 100 and plain.sum() == 100
    shifted = LabeledDataset([track], 108, 54, pitch_shift=(0, 2)).class_counts()
    assert shifted[1] == 100 and shifted[LARGE.transpose(np.array([1]), 2)[0]] == 100


def test_pseudo_label_dataset_never_trains_on_damaged_teacher_labels(tmp_path):
    files = BucketFiles(
        feature_bucket(tmp_path / "f.h5", {"a": _cqt(300, 1)}),
        teacher_bucket(tmp_path / "t.h5", {"a": TeacherOutput.from_probs(_probs(300))}),
    )
    damage(files.teacher, "labels", at=100)  # random bytes, size and mtime kept
    ds = PseudoLabelDataset([files], 108, 54)
    with pytest.raises(DamagedBucketError, match=f"{files.teacher}: labels: checksum mismatch"):
        ds.batch([0, 1])
