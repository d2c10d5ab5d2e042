"""A stage-1 epoch per hour of unlabeled audio, extrapolated from timed training epochs.

`mirkd.training.trainer.train` runs single epochs (its own loader of whole batches, focal loss,
AdamW, clipping, checkpoint saves; validation replaced by a constant) over a PseudoLabelDataset
of bucket files at stride 108; the wall time per window, times the windows in one hour of
4-minute songs, gives the figure.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import benchlib  # first: limits threads and silences tqdm before torch loads
import torch

from mirkd.checkpoints import ModelBundle
from mirkd.features import CQTParams, n_frames
from mirkd.manifest import BucketFiles
from mirkd.models.registry import build_model
from mirkd.training.datasets import PseudoLabelDataset, window_starts
from mirkd.training.trainer import train
from mirkd.vocab import LARGE

N_TRACKS, SECONDS = 4, 120.0  # one bucket; 12 windows per track at stride 108
SONG_SECONDS = 240.0
STRIDE = 108
REFERENCE_BTC = {"num_chords": LARGE.size}  # BTC defaults: 8 layers x 128, the paper's size


def windows_per_hour(stride: int) -> int:
    """Windows in one hour of audio cut into 4-minute songs (each song's tail padded)."""
    per_song = len(window_starts(n_frames(int(SONG_SECONDS * CQTParams().sr)), 108, stride))
    return round(3600 / SONG_SECONDS * per_song)


def epoch_seconds(
    buckets: list[BucketFiles], hparams: dict, arch: str, steps: int, threads: int
) -> tuple[float, int]:
    """Median wall seconds per window of one training epoch of `steps` batches (config.yaml's
    stage 1), and the batch size; `buckets` are listed as often as `steps` batches need."""
    window = build_model(arch, hparams).window
    config = benchlib.stage_config("stage1", epochs=1, warmup_epochs=1, use_kd=False, seed=0)
    batch = config.batch_size
    per_listing = len(PseudoLabelDataset(buckets, window, STRIDE))
    dataset = PseudoLabelDataset(buckets * math.ceil(steps * batch / per_listing), window, STRIDE)
    dataset.index = dataset.index[: steps * batch]
    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as tmp:
        runs = iter(range(benchlib.REPEATS + 1))

        def epoch() -> None:
            out = Path(tmp) / str(next(runs))
            bundle = ModelBundle.student(build_model(arch, hparams), arch, hparams, -5.0, 2.0)
            train(
                bundle,
                dataset,
                lambda m: 0.0,
                config,
                out / "best.pt",
                out / "last.pt",
                device=torch.device("cpu"),
                log=lambda _: None,
            )

        seconds = benchlib.median_time(epoch)
    torch.set_num_threads(1)
    return seconds / len(dataset), batch


def main() -> str:
    machine = benchlib.machine_line()
    arch, hparams = benchlib.default_student()
    per_hour = windows_per_hour(STRIDE)
    cases = [
        ("config.yaml student", arch, hparams, 60, 1),
        ("config.yaml student", arch, hparams, 8, 2),
        ("reference BTC 8x128", "btc", REFERENCE_BTC, 8, 1),
    ]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        buckets = benchlib.write_training_buckets(Path(tmp), N_TRACKS, SECONDS, N_TRACKS)
        for name, arch_, hp, steps, threads in cases:
            n_params = sum(p.numel() for p in build_model(arch_, hp).parameters())
            per_window, batch = epoch_seconds(buckets, hp, arch_, steps, threads)
            rows.append(
                (
                    name,
                    f"{n_params / 1e6:.3f} M",
                    threads,
                    batch,
                    steps,
                    1 / per_window,
                    per_window * per_hour,
                    per_window * per_hour * 2 / 60,
                )
            )
    body = benchlib.table(
        (
            "model",
            "parameters",
            "threads",
            "batch",
            "steps timed",
            "windows/s",
            "epoch s per hour of audio (stride 108)",
            "epoch min per hour (stride 54)",
        ),
        rows,
    ) + (
        f"\n\nOne hour of audio = {per_hour} windows at stride 108 (4-minute songs, last "
        f"window of each song padded), twice that at config.yaml's stage-1 stride 54. "
        "Validation (frame agreement on the unlabeled validation split) is not included; "
        f"it is one forward pass over the validation tracks per epoch. "
        f"Default student hparams: {hparams}."
    )
    intro = (
        "`trainer.train` for one epoch (config.yaml stage-1 batch size and LR, focal loss, "
        "no KD, the default two-view consistency term: both views in one pass) over "
        f"stride-{STRIDE} windows of one features + teacher bucket ({N_TRACKS} "
        f"synthesized {SECONDS:.0f}-s songs, listed as often as the steps need), median of "
        f"{benchlib.REPEATS} epochs; the time per window is extrapolated to one hour of "
        "unlabeled audio."
    )
    return benchlib.section("Stage-1 epoch per hour of unlabeled audio", machine, intro, body)


if __name__ == "__main__":
    print(main())
