"""Window datasets over small synthetic HDF5 caches."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from mirkd.errors import MirkdError
from mirkd.features import CQTParams
from mirkd.store import TeacherOutput, WindowReader, write_features, write_shard
from mirkd.training.datasets import (
    LOG_FLOOR,
    LabeledDataset,
    LabeledTrack,
    PseudoLabelDataset,
    ShardTrack,
    compute_mean_std,
    shift_cqt,
    window_starts,
)
from mirkd.vocab import IGNORE_INDEX, LARGE

PARAMS = CQTParams()


def _features(tmp_path, name, n_frames, seed=0):
    cqt = np.random.default_rng(seed).normal(-5, 2, (n_frames, 144)).astype(np.float16)
    path = tmp_path / f"{name}.h5"
    write_features(path, cqt, PARAMS, {"track_id": name})
    return path, cqt.astype(np.float32)


def _shard(tmp_path, outputs):
    path = tmp_path / "shard.h5"
    teacher = {"kind": "test", "name": "test", "fingerprint": "0"}
    write_shard(path, outputs, teacher, LARGE.name, PARAMS)
    return path


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
    f1, cqt1 = _features(tmp_path, "a", 150, seed=1)
    f2, _ = _features(tmp_path, "b", 40, seed=2)
    p1, p2 = _probs(150, 1), _probs(40, 2)
    shard = _shard(tmp_path, {"a": TeacherOutput.from_probs(p1), "b": TeacherOutput.from_probs(p2)})
    ds = PseudoLabelDataset(
        [ShardTrack("a", str(f1), str(shard)), ShardTrack("b", str(f2), str(shard))],
        seq_len=108,
        stride=108,
        with_probs=True,
    )
    assert len(ds) == 3
    second = ds[1]  # track a, frames 108..149 then padding
    assert second["x"].shape == (108, 144) and second["x"].dtype == torch.float32
    np.testing.assert_array_equal(second["x"][:42].numpy(), cqt1[108:])
    assert second["y"].dtype == torch.int64
    np.testing.assert_array_equal(second["y"][:42].numpy(), p1[108:].argmax(axis=1))
    assert (second["y"][42:] == IGNORE_INDEX).all()
    assert second["mask"][:42].all() and not second["mask"][42:].any()
    assert second["probs"].shape == (108, 170)
    np.testing.assert_allclose(second["probs"][:42].numpy(), p1[108:], atol=1e-3)
    assert "probs" not in PseudoLabelDataset([ShardTrack("b", str(f2), str(shard))], 108, 108)[0]


def test_pseudo_label_dataset_with_workers(tmp_path):
    f1, _ = _features(tmp_path, "a", 300, seed=1)
    shard = _shard(tmp_path, {"a": TeacherOutput.from_probs(_probs(300))})
    ds = PseudoLabelDataset([ShardTrack("a", str(f1), str(shard))], 108, 108)
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
        [LabeledTrack(str(f), labels, probs)], seq_len=64, stride=32, pitch_shift=range(-1, 2)
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
    np.testing.assert_array_equal(up["x"][:60, 2:].numpy(), cqt[:, :-2])
    c_min, cs_min = LARGE.to_index("C:min"), LARGE.to_index("C#:min")
    np.testing.assert_allclose(up["probs"][:60, cs_min].numpy(), probs[:, c_min], atol=1e-6)
    np.testing.assert_allclose(up["probs"][:60, LARGE.n_index].numpy(), probs[:, LARGE.n_index])
    assert torch.equal(
        up["probs"][:60].argmax(1), torch.from_numpy(LARGE.transpose(probs.argmax(1), 1))
    )


def test_labeled_dataset_without_probs_and_length_check(tmp_path):
    f, _ = _features(tmp_path, "a", 60)
    ds = LabeledDataset([LabeledTrack(str(f), np.zeros(60, dtype=np.int64))], 108, 54)
    assert len(ds) == 1 and "probs" not in ds[0]
    with pytest.raises(MirkdError, match="frame labels"):
        LabeledDataset([LabeledTrack(str(f), np.zeros(59, dtype=np.int64))], 108, 54)


def test_compute_mean_std_exact(tmp_path):
    _, a = _features(tmp_path, "a", 30, seed=1)
    _, b = _features(tmp_path, "b", 70, seed=2)
    mean, std = compute_mean_std([tmp_path / "a.h5", tmp_path / "b.h5"])
    values = np.concatenate([a.ravel(), b.ravel()]).astype(np.float64)
    assert mean == pytest.approx(values.mean(), rel=1e-12)
    assert std == pytest.approx(values.std(), rel=1e-12)


def test_window_reader_keeps_few_files_open(tmp_path):
    paths = []
    for i in range(5):
        path = tmp_path / f"t{i}.h5"
        write_features(path, np.full((30, 144), float(i), np.float32), CQTParams(), {})
        paths.append(path)
    reader = WindowReader(max_open=2)
    for _ in range(2):
        for i, path in enumerate(paths):
            assert reader.window(path, 25, 10)[0, 0] == i
            assert reader.window(path, 25, 10)[9, 0] == 0.0  # padding past the end
    assert len(reader._files) == 2
