"""End to end without Snakemake: train a small BTC on synthesized chord songs, transcribe
held-out songs with `mirkd transcribe` and score them with mir_eval.

The training recipe is the pipeline's own baseline step (`steps.train.train_supervised`:
ground-truth frame labels, pitch-shift augmentation, early stopping on validation majmin,
best checkpoint copied out), so this test also checks that the step learns something real.
The held-out songs are the demo's `test` part, whose seeds differ from the training songs'.
Measured on the 2-core CPU: held-out majmin 0.97 (best constant label 0.19), ~40 s in all
(one thread, machine under load).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
import torch

from mirkd.cli import main
from mirkd.demo import write_demo_corpus
from mirkd.evaluation import song_scores, weighted_mean_scores
from mirkd.history import read_history
from mirkd.labels import ChordSegment, read_annotation
from mirkd.manifest import TrackFiles
from mirkd.steps.data import extract_bucket_features
from mirkd.steps.train import train_supervised
from mirkd.vocab import MAJMIN

from model_helpers import stage_settings

SEED = 7
N_TRAIN = 8  # training songs; one more labeled song validates
STUDENT = {
    "arch": "btc",
    "hparams": {
        "hidden_size": 64,
        "num_layers": 2,
        "num_heads": 4,
        "total_key_depth": 64,
        "total_value_depth": 64,
        "filter_size": 64,
    },
}
TRAIN = {
    "epochs": 6,
    "batch_size": 16,
    "lr": 2e-3,
    "warmup_epochs": 1,
    "patience": 6,
    "seed": 0,
    "stride": 54,
    "pitch_shift": [-5, -4, -3, -2, -1, 1, 2, 3, 4, 5, 6],
}
MIN_MAJMIN = 0.75  # measured 0.97; other corpus seeds gave 0.87-0.97
MAX_CONSTANT_MAJMIN = 0.4  # measured 0.19


@pytest.fixture()
def one_thread() -> Iterator[None]:
    """Train on one thread: on the shared 2-core machine two busy-waiting threads are ~8x
    slower than one."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _majmin(songs: dict[str, tuple[Sequence[ChordSegment], Sequence[ChordSegment]]]) -> float:
    score = weighted_mean_scores(song_scores(songs))["majmin"]
    assert score is not None
    return score


@pytest.mark.slow
def test_trained_btc_transcribes_held_out_songs(tmp_path: Path, one_thread: None) -> None:
    data = tmp_path / "data"
    corpus = write_demo_corpus(
        data,
        n_unlabeled=0,
        n_labeled=N_TRAIN + 1,
        n_test=2,
        seed=SEED,
        min_seconds=20,
        max_seconds=30,
    )
    rows: dict[str, list[TrackFiles]] = {"labeled": [], "test": []}
    for song in corpus["songs"]:
        rows[song["part"]].append(
            TrackFiles(
                song["name"],
                str(data / song["audio"]),
                str(tmp_path / "features" / f"{song['part']}.h5"),
                str(tmp_path / "teacher" / f"{song['part']}.h5"),
                str(data / song["lab"]),
                f"demo-{SEED}-{song['name']}",
            )
        )
    for part, tracks in rows.items():
        extract_bucket_features(tracks[0].features, str(tmp_path / "work" / part), tracks)

    checkpoint, history = tmp_path / "baseline.pt", tmp_path / "history.json"
    train_supervised(
        "baseline",
        {"student": STUDENT, "device": "cpu"},
        stage_settings("baseline", **TRAIN),
        rows["labeled"][:-1],
        rows["labeled"][-1:],
        str(tmp_path / "work"),
        str(checkpoint),
        str(history),
    )
    epochs = read_history(history)
    assert len(epochs) == TRAIN["epochs"]
    assert max(e.val_score for e in epochs) > epochs[0].val_score

    out = tmp_path / "predicted"
    audio = [row.audio for row in rows["test"]]
    assert (
        main(
            [
                "transcribe",
                *audio,
                "--checkpoint",
                str(checkpoint),
                "--out",
                str(out),
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    references = {row.track_id: read_annotation(row.annotation) for row in rows["test"]}
    model = _majmin(
        {name: (ref, read_annotation(out / f"{name}.lab")) for name, ref in references.items()}
    )

    def constant(label: str) -> float:
        return _majmin(
            {
                name: (ref, [ChordSegment(ref[0].start, ref[-1].end, label)])
                for name, ref in references.items()
            }
        )

    best_constant = max(constant(label) for label in MAJMIN.labels)
    print(f"held-out majmin: model {model:.3f}, best constant label {best_constant:.3f}")
    assert best_constant <= MAX_CONSTANT_MAJMIN
    assert model >= MIN_MAJMIN
