"""Teacher streaming: front ends in DataLoader workers, results equal to `frame_probs`, in
order, undecodable audio reported as a cause, other errors raised."""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from mirkd import checkpoints
from mirkd.errors import AudioError, MirkdError
from mirkd.features import CQTParams, log_cqt
from mirkd.teachers import Teacher, build_teacher
from mirkd.teachers.checkpoint import CheckpointTeacher
from mirkd.teachers.lvchordia import LV_SR, LvChordiaTeacher
from mirkd.teachers.stream import PreparedTracks, teacher_results
from mirkd.vocab import LARGE

from model_helpers import tiny_bundle


@dataclass(frozen=True)
class Item:
    """A track as a caller might hold it: id, audio file, features file (.npy)."""

    track_id: str
    audio: str
    features: str


def load_npy(item: Item) -> np.ndarray:
    return np.load(item.features)


def frames_of_id(item: Item) -> np.ndarray:
    """Zero features, as many frames as the number in the track id (stub tracks)."""
    return np.zeros((int(item.track_id[1:]), 144), dtype=np.float32)


@dataclass(frozen=True)
class StubInput:
    n_frames: int
    torch_threads: int


@dataclass(frozen=True)
class StubFrontEnd:
    """Records the torch threads it ran with; refuses audio named 'broken*'."""

    def __call__(self, audio_path: Path, features: np.ndarray) -> StubInput:
        if audio_path.name.startswith("broken"):
            raise AudioError(audio_path, "cannot decode audio: stub")
        return StubInput(len(features), torch.get_num_threads())


class StubTeacher:
    """Probabilities filled with the worker's torch thread count; records each pass's size."""

    kind, name, fingerprint = "stub", "stub", "0" * 64

    def __init__(self, tracks_per_pass: int) -> None:
        self.front_end = StubFrontEnd()
        self.tracks_per_pass = tracks_per_pass
        self.passes: list[int] = []

    def infer(self, inputs: Sequence[StubInput]) -> list[np.ndarray]:
        self.passes.append(len(inputs))
        return [np.full((x.n_frames, LARGE.size), x.torch_threads, np.float32) for x in inputs]

    def frame_probs(self, audio_path: Path, features: np.ndarray) -> np.ndarray:
        return self.infer([self.front_end(audio_path, features)])[0]


def stub_items() -> list[Item]:
    names = ["a.wav", "b.wav", "broken1.wav", "c.wav", "d.wav", "broken2.wav", "e.wav"]
    return [Item(f"t{i + 3}", name, "") for i, name in enumerate(names)]


@pytest.mark.parametrize("workers", [0, 2])
def test_stream_keeps_order_groups_passes_and_reports_causes(workers: int) -> None:
    teacher = StubTeacher(tracks_per_pass=2)
    assert isinstance(teacher, Teacher)
    items = stub_items()
    results = list(teacher_results(teacher, items, frames_of_id, num_workers=workers))
    assert [r.item for r in results] == items
    for result in results:
        if result.item.audio.startswith("broken"):
            assert result.probs is None and result.cause == "cannot decode audio: stub"
        else:
            assert result.cause is None and result.probs is not None
            assert result.probs.shape == (int(result.item.track_id[1:]), LARGE.size)
    assert teacher.passes == [2, 2, 1]


def test_workers_run_torch_on_one_thread() -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        results = list(teacher_results(StubTeacher(1), stub_items()[:2], frames_of_id, 2))
    finally:
        torch.set_num_threads(threads)
    assert [float(r.probs[0, 0]) for r in results if r.probs is not None] == [1.0, 1.0]


@pytest.fixture(scope="module")
def checkpoint_teacher(tmp_path_factory: pytest.TempPathFactory) -> CheckpointTeacher:
    path = tmp_path_factory.mktemp("teacher") / "tiny.pt"
    checkpoints.save_checkpoint(path, tiny_bundle("btc"))
    teacher = build_teacher("btc", str(path), device="cpu")
    assert isinstance(teacher, CheckpointTeacher)
    teacher.tracks_per_pass = 2  # three tracks: one shared pass and one alone
    return teacher


@pytest.mark.parametrize("workers", [0, 2])
def test_checkpoint_stream_equals_frame_probs(
    checkpoint_teacher: CheckpointTeacher, tmp_path: Path, workers: int
) -> None:
    rng = np.random.default_rng(0)
    items = []
    for i, frames in enumerate([250, 40, 333]):
        features = tmp_path / f"t{i}.npy"
        np.save(features, rng.normal(-5, 2, size=(frames, 144)).astype(np.float32))
        items.append(Item(f"t{i}", str(tmp_path / f"t{i}.wav"), str(features)))
    results = list(teacher_results(checkpoint_teacher, items, load_npy, num_workers=workers))
    assert [r.item for r in results] == items
    for result in results:
        item = result.item
        expected = checkpoint_teacher.frame_probs(Path(item.audio), load_npy(item))
        assert result.cause is None and result.probs is not None
        np.testing.assert_allclose(result.probs, expected, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("workers", [0, 2])
def test_other_errors_propagate(
    checkpoint_teacher: CheckpointTeacher, tmp_path: Path, workers: int
) -> None:
    features = tmp_path / "narrow.npy"
    np.save(features, np.zeros((20, 100), dtype=np.float32))
    items = [Item("t0", "narrow.wav", str(features))]
    with pytest.raises(MirkdError, match="narrow.wav: features of shape"):
        list(teacher_results(checkpoint_teacher, items, load_npy, num_workers=workers))


@pytest.fixture(scope="module")
def lv_teacher() -> LvChordiaTeacher:
    return LvChordiaTeacher(device="cpu")


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> list[Item]:
    """Two short synthesized clips around an undecodable file, features beside them."""
    from mirkd.demo import synthesize_song

    folder = tmp_path_factory.mktemp("clips")
    items = []
    for name, seconds in [("clip0", 4.0), ("broken", 0.0), ("clip1", 3.0)]:
        audio, features = folder / f"{name}.wav", folder / f"{name}.npy"
        if seconds:
            y, _ = synthesize_song(len(items), seconds, sr=LV_SR)
            sf.write(audio, y, LV_SR, subtype="FLOAT")
            np.save(features, log_cqt(y, CQTParams()))
        else:
            audio.write_bytes(b"RIFF\x00\x00garbage" * 100)
            np.save(features, np.zeros((10, 144), dtype=np.float32))
        items.append(Item(name, str(audio), str(features)))
    return items


@pytest.mark.parametrize("workers", [0, 2])
def test_lvchordia_stream_equals_frame_probs(
    lv_teacher: LvChordiaTeacher, clips: list[Item], workers: int
) -> None:
    results = list(teacher_results(lv_teacher, clips, load_npy, num_workers=workers))
    assert [r.item for r in results] == clips
    broken = results[1]
    assert broken.probs is None and broken.cause is not None
    assert broken.cause.startswith("cannot decode audio")
    for result in (results[0], results[2]):
        item = result.item
        assert result.cause is None and result.probs is not None
        expected = lv_teacher.frame_probs(Path(item.audio), load_npy(item))
        np.testing.assert_array_equal(result.probs, expected)


def test_workers_get_the_front_end_not_the_networks(
    lv_teacher: LvChordiaTeacher, clips: list[Item]
) -> None:
    """What a spawned worker would unpickle: kilobytes, whereas the networks are megabytes."""
    weights = sum(p.numel() * p.element_size() for net in lv_teacher.nets for p in net.parameters())
    shipped = len(pickle.dumps(PreparedTracks(lv_teacher.front_end, clips, load_npy)))
    assert shipped < 10_000 < weights
