"""Feature extraction throughput per audio format, decoding included.

A 60-s demo song is written as wav, flac, ogg (Vorbis) and mp3 with soundfile; each file goes
through `mirkd.steps.data.extract_features` end to end (decode, resample if needed, log-CQT,
HDF5 write). The three parts are also timed on their own to show where the time goes.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import benchlib  # first: limits threads and silences tqdm before torch loads
import numpy as np
import soundfile as sf

from mirkd.audio import load_audio
from mirkd.demo import synthesize_song
from mirkd.features import CQTParams, log_cqt
from mirkd.steps.data import extract_features
from mirkd.store import write_features

SECONDS = 60.0
FORMATS = {  # extension -> (soundfile format, subtype)
    "wav": ("WAV", "PCM_16"),
    "flac": ("FLAC", "PCM_16"),
    "ogg": ("OGG", "VORBIS"),
    "mp3": ("MP3", "MPEG_LAYER_III"),
}
CD_FORMATS = ("flac", "mp3")  # also timed as 44.1 kHz stereo, as real music usually comes
JOB_IMPORTS = "import mirkd.steps; import mirkd.steps.data"


def job_start_seconds() -> float:
    """A fresh interpreter importing what a `features` job imports (paid once per track)."""
    cmd = [sys.executable, "-c", JOB_IMPORTS]
    return benchlib.median_time(lambda: subprocess.run(cmd, check=True), warmup=1)


def main() -> str:
    machine = benchlib.machine_line()
    params = CQTParams()
    y, _ = synthesize_song([0, 0, 0], SECONDS, params.sr)
    y_cd, _ = synthesize_song([0, 0, 0], SECONDS, 44100)
    stereo = np.stack([y_cd, 0.8 * y_cd], axis=1)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "features.h5"
        cqt = log_cqt(y, params)
        meta = {"track_id": "t", "source": "s", "fingerprint": "f", "duration": SECONDS}
        t_cqt = benchlib.median_time(lambda: log_cqt(y, params), warmup=1)
        t_write = benchlib.median_time(lambda: write_features(out, cqt, params, meta))
        cases = [(ext, "22.05 kHz mono", y, params.sr) for ext in FORMATS]
        cases += [(ext, "44.1 kHz stereo", stereo, 44100) for ext in CD_FORMATS]
        for ext, kind, signal, rate in cases:
            fmt, subtype = FORMATS[ext]
            audio = Path(tmp) / f"song_{rate}.{ext}"
            sf.write(audio, signal, rate, format=fmt, subtype=subtype)
            t_decode = benchlib.median_time(lambda a=audio: load_audio(a, params.sr))
            t_total = benchlib.median_time(
                lambda a=audio: extract_features(str(a), str(out), "t", "f", params)
            )
            rows.append(
                (
                    ext,
                    kind,
                    f"{audio.stat().st_size / 1e6:.2f}",
                    t_total,
                    SECONDS / t_total,
                    t_decode,
                    t_cqt,
                    t_write,
                )
            )
    t_job = job_start_seconds()
    body = benchlib.table(
        (
            "format",
            "input",
            "file MB",
            "end to end s",
            "audio s per s",
            "decode (+resample) s",
            "log-CQT s",
            "HDF5 write s",
        ),
        rows,
    ) + (
        f"\n\nPer-job fixed cost: a fresh Python importing `mirkd.steps.data` takes "
        f"**{t_job:.2f} s** (median), i.e. {t_job / rows[1][3]:.0f}x the work of a "
        f"{SECONDS:.0f}-s flac. The pipeline runs one `features` job per track, so on short "
        "tracks the job start (plus Snakemake's own per-job overhead) dominates."
    )
    intro = (
        f"`extract_features` on one {SECONDS:.0f}-s synthesized song written by soundfile "
        "(22.05 kHz mono; flac and mp3 also as 44.1 kHz stereo, which adds the soxr_hq "
        f"resampling), median of {benchlib.REPEATS} runs; the part columns are timed separately "
        "(log-CQT and write do not depend on the format). 1 torch/BLAS thread."
    )
    return benchlib.section("Feature extraction", machine, intro, body)


if __name__ == "__main__":
    print(main())
