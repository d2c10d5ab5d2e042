"""How many audio bytes planning reads on the head node (issue 21: at most 1 % at 1,000 h).

Planning reads, for each new or changed audio file, its content digest
(`mirkd.manifest.content_digest`: size + 8 blocks of 4 KiB) and its duration from the header
(`mirkd.audio.audio_duration`), through `audio_facts` with an empty cache, as the first plan of
a corpus does. Bytes read are the process's `rchar` (/proc/self/io: every byte returned by a
read system call, page cache or not) around each call; the whole-file SHA-1 that planning used
before is measured on the same files in the same loop (alternating, so load affects both).
Songs: 4 minutes of a chord texture with noise, 22.05 kHz mono, in the formats users bring.
"""

from __future__ import annotations

import hashlib
import statistics
import tempfile
from pathlib import Path

import benchlib  # first: limits threads and silences tqdm before torch loads
import numpy as np
import soundfile as sf

from mirkd.manifest import audio_facts

SR = 22050
SECONDS = 240.0
SONGS_PER_FORMAT = 4
FORMATS = {  # extension -> soundfile format/subtype
    "wav": ("WAV", "PCM_16"),
    "flac": ("FLAC", "PCM_16"),
    "ogg": ("OGG", "VORBIS"),
    "mp3": ("MP3", "MPEG_LAYER_III"),
}
CACHE = benchlib.CACHE_ROOT / "planning_io"
TRACKS_1000H = 15_000
LIMIT = 0.01


def song(seed: int) -> np.ndarray:
    """A 4-minute mono signal: a few sustained partials changing every 2 s, plus noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(SR * SECONDS)) / SR
    y = np.zeros_like(t)
    for start in np.arange(0, SECONDS, 2.0):
        span = (t >= start) & (t < start + 2.0)
        for f in 110 * 2 ** (rng.integers(0, 36, 3) / 12):
            y[span] += 0.1 * np.sin(2 * np.pi * f * t[span])
    return (y + 0.02 * rng.standard_normal(len(t))).astype(np.float32)


def corpus() -> list[Path]:
    """The songs in every format soundfile can write here, made once and reused."""
    paths = []
    for ext, (fmt, subtype) in FORMATS.items():
        if subtype not in sf.available_subtypes(fmt):
            continue
        for i in range(SONGS_PER_FORMAT):
            path = CACHE / f"song{i}.{ext}"
            if not path.exists():
                CACHE.mkdir(parents=True, exist_ok=True)
                write_song(path, song(i), fmt, subtype)
            paths.append(path)
    return paths


def write_song(path: Path, y: np.ndarray, fmt: str, subtype: str) -> None:
    """In blocks of 1 s: libsndfile's Vorbis encoder crashes on one 4-minute write."""
    with sf.SoundFile(path, "w", SR, 1, subtype, format=fmt) as f:
        for start in range(0, len(y), SR):
            f.write(y[start : start + SR])


def rchar() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise RuntimeError("no rchar in /proc/self/io")


def bytes_read(fn) -> int:
    before = rchar()
    fn()
    return rchar() - before


def whole_file_sha1(path: Path) -> None:
    digest = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)


def main() -> str:
    machine = benchlib.machine_line()
    paths = corpus()
    rows, planned, whole, total = [], 0, 0, 0
    for ext in FORMATS:
        files = [p for p in paths if p.suffix == f".{ext}"]
        if not files:
            continue
        sizes, now, before, seconds = [], [], [], []
        for path in files:
            with tempfile.TemporaryDirectory() as tmp:  # an empty cache: the first plan
                cache = Path(tmp) / "facts.json"
                now.append(bytes_read(lambda p=path, c=cache: audio_facts([str(p)], c)))
                seconds.append(benchlib.timed(lambda p=path, c=cache: audio_facts([str(p)], c)))
            before.append(bytes_read(lambda p=path: whole_file_sha1(p)))
            sizes.append(path.stat().st_size)
        planned, whole, total = planned + sum(now), whole + sum(before), total + sum(sizes)
        rows.append(
            (
                ext,
                f"{statistics.mean(sizes) / 1e6:.2f}",
                f"{statistics.mean(now) / 1e3:.1f}",
                f"{sum(now) / sum(sizes):.2%}",
                f"{sum(before) / sum(sizes):.1%}",
                f"{statistics.median(seconds) * 1e3:.1f}",
            )
        )
    share = planned / total
    per_track = planned / len(paths)
    body = (
        benchlib.table(
            (
                "format",
                "MB per 4-min song",
                "kB read by planning",
                "share of the file",
                "whole-file hash (before)",
                "ms per song (warm page cache)",
            ),
            rows,
        )
        + f"\n\nAll formats: planning reads {share:.2%} of the audio bytes "
        f"({'under' if share <= LIMIT else 'over'} the {LIMIT:.0%} target), the whole-file "
        f"hash {whole / total:.0%}. At 1,000 h ({TRACKS_1000H:,} such songs) the first plan reads "
        f"about {per_track * TRACKS_1000H / 1e9:.2f} GB on the head node instead of "
        f"{whole / len(paths) * TRACKS_1000H / 1e9:.0f} GB; later plans read only new or "
        "changed files."
    )
    intro = (
        f"{SONGS_PER_FORMAT} songs of {SECONDS:.0f} s per format (`song()` in the script), "
        f"cached in {CACHE}. Bytes = `rchar` of /proc/self/io around `audio_facts` with an "
        "empty cache (digest + header), and around a whole-file SHA-1 of the same file."
    )
    return benchlib.section("Audio bytes read by planning", machine, intro, body)


if __name__ == "__main__":
    print(main())
