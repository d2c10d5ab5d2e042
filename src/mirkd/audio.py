"""Audio decoding to the pipeline's input: mono float32 at 22050 Hz.

libsndfile (through soundfile) decodes wav/flac/ogg/opus/mp3 of any rate, channel count and bit
depth; no ffmpeg is needed. Every failure becomes an AudioError naming the file and the cause, so
one bad file in a large unlabeled collection is reported clearly instead of crashing obscurely.
"""

from __future__ import annotations

from pathlib import Path

import librosa
import numpy as np
import soundfile as sf

from mirkd.errors import AudioError

TARGET_SR = 22050
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".opus", ".mp3")
_BLOCK_FRAMES = 1 << 20


def _check_file(path: Path) -> None:
    if path.suffix.lower() not in AUDIO_EXTENSIONS:
        supported = ", ".join(AUDIO_EXTENSIONS)
        raise AudioError(path, f"unsupported extension {path.suffix!r} (supported: {supported})")
    if not path.is_file():
        raise AudioError(path, "file not found")
    if path.stat().st_size == 0:
        raise AudioError(path, "empty file")


def _read_mono(path: Path) -> tuple[np.ndarray, int]:
    """Decode block by block, averaging channels, so peak memory stays near the mono size."""
    try:
        with sf.SoundFile(path) as f:
            sr = f.samplerate
            blocks = [
                block.mean(axis=1, dtype=np.float32)
                for block in f.blocks(blocksize=_BLOCK_FRAMES, dtype="float32", always_2d=True)
            ]
    except (sf.LibsndfileError, RuntimeError, ValueError) as exc:
        raise AudioError(path, f"cannot decode audio: {exc}") from exc
    y = np.concatenate(blocks) if blocks else np.zeros(0, dtype=np.float32)
    return y, sr


def load_audio(path: str | Path, sr: int = TARGET_SR, min_seconds: float = 0.5) -> np.ndarray:
    """Decode `path` to a mono float32 signal at `sr` Hz.

    Raises AudioError for an unsupported extension, a missing, empty or undecodable file, a
    non-finite signal, or audio shorter than `min_seconds`.
    """
    path = Path(path)
    _check_file(path)
    y, file_sr = _read_mono(path)
    seconds = len(y) / file_sr
    if seconds < min_seconds:
        raise AudioError(path, f"audio too short: {seconds:.3f} s < {min_seconds} s")
    if not np.isfinite(y).all():
        raise AudioError(path, "decoded signal contains NaN or infinite samples")
    if file_sr != sr:
        y = librosa.resample(y, orig_sr=file_sr, target_sr=sr, res_type="soxr_hq")
    return np.ascontiguousarray(y, dtype=np.float32)


def audio_duration(path: str | Path) -> float:
    """Duration in seconds from the file header (no full decode)."""
    path = Path(path)
    _check_file(path)
    try:
        return float(sf.info(str(path)).duration)
    except (sf.LibsndfileError, RuntimeError, ValueError) as exc:
        raise AudioError(path, f"cannot read audio header: {exc}") from exc
