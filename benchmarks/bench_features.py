"""Feature extraction throughput per audio format, decoding included.

A 60-s demo song is written as wav, flac, ogg (Vorbis) and mp3 with soundfile; each file goes
through `mirkd.steps.data.feature_part` (decode, resample if needed, log-CQT, float16, moments:
everything a features job does per track before saving it). Decoding and the log-CQT are also
timed on their own, and so are the writes: the part file a job keeps per track (`write_part`)
and the bucket file (`pack_bucket` of one part).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import benchlib  # first: limits threads and silences tqdm before torch loads
import numpy as np
import soundfile as sf
import yaml

from mirkd.audio import load_audio
from mirkd.demo import synthesize_song
from mirkd.features import CQTParams, log_cqt
from mirkd.manifest import TrackFiles
from mirkd.steps.data import feature_part
from mirkd.store import feature_attrs, pack_bucket, write_part

SECONDS = 60.0
SONG_SECONDS = 240.0  # a typical track, to put the per-job start cost in proportion
FORMATS = {  # extension -> (soundfile format, subtype)
    "wav": ("WAV", "PCM_16"),
    "flac": ("FLAC", "PCM_16"),
    "ogg": ("OGG", "VORBIS"),
    "mp3": ("MP3", "MPEG_LAYER_III"),
}
CD_FORMATS = ("flac", "mp3")  # also timed as 44.1 kHz stereo, as real music usually comes
# what every features job pays before its first track: imports, and librosa loading its lazy
# submodules and numba helpers on the first CQT (here of 1 s of silence)
JOB_START = (
    "import numpy as np; import mirkd.steps; from mirkd.steps.data import log_cqt; "
    "log_cqt(np.zeros(22050, np.float32))"
)


def job_start_seconds() -> float:
    """A fresh interpreter doing JOB_START (paid once per features job, i.e. per bucket)."""
    cmd = [sys.executable, "-c", JOB_START]
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
        t_cqt = benchlib.median_time(lambda: log_cqt(y, params), warmup=1)
        cases = [(ext, "22.05 kHz mono", y, params.sr) for ext in FORMATS]
        cases += [(ext, "44.1 kHz stereo", stereo, 44100) for ext in CD_FORMATS]
        for ext, kind, signal, rate in cases:
            fmt, subtype = FORMATS[ext]
            audio = Path(tmp) / f"song_{rate}.{ext}"
            sf.write(audio, signal, rate, format=fmt, subtype=subtype)
            track = TrackFiles("t", str(audio), str(out), "", None, "f")
            t_decode = benchlib.median_time(lambda a=audio: load_audio(a, params.sr))
            t_part = benchlib.median_time(lambda t=track: feature_part(t, params))
            rows.append(
                [
                    ext,
                    kind,
                    f"{audio.stat().st_size / 1e6:.2f}",
                    t_part,
                    SECONDS / t_part,
                    t_decode,
                    t_cqt,
                ]
            )
        part = feature_part(track, params)  # the last case's song: 60 s of frames as all
        t_part_file = benchlib.median_time(lambda: write_part(Path(tmp) / "t.npz", part))
        t_pack = benchlib.median_time(lambda: pack_bucket(out, [part], feature_attrs(params)))
    for row in rows:
        row += [t_part_file, t_pack]
    t_job = job_start_seconds()
    bucket_hours = yaml.safe_load((benchlib.REPO / "config.yaml").read_text())["data"][
        "bucket_hours"
    ]
    per_bucket = bucket_hours * 3600 / SONG_SECONDS
    flac_track = rows[1][3] * SONG_SECONDS / SECONDS
    body = benchlib.table(
        (
            "format",
            "input",
            "file MB",
            "feature_part s",
            "audio s per s",
            "decode (+resample) s",
            "log-CQT s",
            "part file write s",
            "bucket write s",
        ),
        rows,
    ) + (
        f"\n\nPer-job fixed cost: a fresh Python importing `mirkd.steps.data` and computing its "
        f"first log-CQT (1 s of audio; librosa loads its lazy parts then) takes "
        f"**{t_job:.2f} s** (median). The pipeline runs one `features` job per bucket of "
        f"`data.bucket_hours` = {bucket_hours:g} h (config.yaml), i.e. ~{per_bucket:.0f} "
        f"{SONG_SECONDS / 60:.0f}-minute tracks, so the start cost is paid once per "
        f"~{per_bucket:.0f} tracks: {t_job / per_bucket * 1e3:.1f} ms per track, "
        f"{t_job / per_bucket / flac_track:.2%} of a {SONG_SECONDS / 60:.0f}-minute 22.05-kHz "
        "flac's `feature_part` (Snakemake's own per-job overhead is likewise per bucket)."
    )
    intro = (
        f"`feature_part` on one {SECONDS:.0f}-s synthesized song written by soundfile "
        "(22.05 kHz mono; flac and mp3 also as 44.1 kHz stereo, which adds the soxr_hq "
        f"resampling), median of {benchlib.REPEATS} runs; the part columns are timed "
        "separately (log-CQT and the writes do not depend on the format). A features job "
        "saves each track's part file as it finishes (resumable) and packs the bucket file at "
        "the end; the bucket write is `pack_bucket` of this one track (file creation included: "
        "an upper bound of what packing costs per track). 1 torch/BLAS thread."
    )
    return benchlib.section("Feature extraction", machine, intro, body)


if __name__ == "__main__":
    print(main())
