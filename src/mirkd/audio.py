"""Audio decoding to the pipeline's input: mono float32 at 22050 Hz.

libsndfile (through soundfile) decodes wav/flac/ogg/opus/mp3 of any rate, channel count and bit
depth; no ffmpeg is needed. Every failure becomes an AudioError naming the file and the cause, so
one bad file in a large unlabeled collection is reported clearly instead of crashing obscurely.

Decoding never returns memory it did not write. A file that decodes to fewer frames than its
header promises (a cut download, a half-copied file) is an AudioError naming both lengths, or,
with ``allow_truncated=True``, a logged warning and only the decoded frames. libsndfile clamps a
WAV's length to the bytes present, so a WAV's promise is read from its data chunk. Ogg files carry
no length in their header: one cut at a page boundary is indistinguishable from a shorter file
(cut inside a page, libsndfile reports no frames and the file is too short).
"""

from __future__ import annotations

import logging
import struct
from pathlib import Path

import numpy as np
import soundfile as sf

from mirkd.errors import AudioError, os_cause

TARGET_SR = 22050
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".opus", ".mp3")
MIN_SECONDS = 0.5  # shorter audio is refused (load_audio's default; planning checks headers)
_BLOCK_FRAMES = 1 << 20
_PCM_WAVE_FORMATS = (0x0001, 0x0003, 0xFFFE)  # PCM, IEEE float, extensible: frames = bytes/align
log = logging.getLogger(__name__)


# What libsndfile says of an existing file whose content it cannot parse as MPEG audio (a text
# or HTML file saved as .mp3); _check_file has already seen that the file exists.
_MISLEADING_CAUSE = "File does not exist or is not a regular file (possibly a pipe?)."


def _decoder_cause(exc: Exception) -> str:
    """libsndfile's error in words, its misleading "does not exist" for an existing file that
    holds no audio it recognises replaced by what it means."""
    return str(exc).replace(_MISLEADING_CAUSE, "Format not recognised (no audio stream found).")


def _check_file(path: Path) -> None:
    if path.suffix.lower() not in AUDIO_EXTENSIONS:
        supported = ", ".join(AUDIO_EXTENSIONS)
        raise AudioError(path, f"unsupported extension {path.suffix!r} (supported: {supported})")
    if not path.is_file():
        raise AudioError(path, "file not found")
    try:
        with open(path, "rb") as fh:
            empty = not fh.read(1)
    except OSError as exc:  # libsndfile would only say "System error"
        raise AudioError(path, f"cannot open: {os_cause(exc)}") from exc
    if empty:
        raise AudioError(path, "empty file")


def _wav_declared_frames(path: Path) -> int | None:
    """Frames the data chunk of a PCM/float WAV declares; None if not such a WAV."""
    with open(path, "rb") as fh:
        riff = fh.read(12)
        if len(riff) < 12 or riff[:4] != b"RIFF" or riff[8:] != b"WAVE":
            return None
        block_align = None
        while len(header := fh.read(8)) == 8:
            chunk, size = struct.unpack("<4sI", header)
            if chunk == b"data":
                return None if not block_align or size == 0xFFFFFFFF else size // block_align
            body = fh.read(size + (size & 1))
            if chunk == b"fmt " and len(body) >= 14:
                tag, _, _, _, block_align = struct.unpack("<HHIIH", body[:14])
                if tag not in _PCM_WAVE_FORMATS:
                    return None
    return None


def _read_mono(path: Path, allow_truncated: bool = False) -> tuple[np.ndarray, int]:
    """Decode block by block, averaging channels, so peak memory stays near the mono size.

    Only frames the decoder delivered are kept; fewer than the header promises is an
    AudioError, or with `allow_truncated` a warning naming both lengths.
    """
    blocks = []
    try:
        with sf.SoundFile(path) as f:
            sr, promised = f.samplerate, f.frames
            while len(block := f.read(_BLOCK_FRAMES, dtype="float32", always_2d=True)):
                blocks.append(block.mean(axis=1, dtype=np.float32))
    except (sf.LibsndfileError, RuntimeError, ValueError) as exc:
        raise AudioError(path, f"cannot decode audio: {_decoder_cause(exc)}") from exc
    y = np.concatenate(blocks) if blocks else np.zeros(0, dtype=np.float32)
    if path.suffix.lower() == ".wav":
        promised = max(promised, _wav_declared_frames(path) or 0)
    if len(y) < promised:
        cause = f"truncated: decoded {len(y)} frames, the header promises {promised}"
        if not allow_truncated:
            raise AudioError(path, cause)
        log.warning("%s: %s; using the %d decoded frames", path, cause, len(y))
    return y, sr


def load_audio(
    path: str | Path,
    sr: int = TARGET_SR,
    min_seconds: float = MIN_SECONDS,
    allow_truncated: bool = False,
) -> np.ndarray:
    """Decode `path` to a mono float32 signal at `sr` Hz.

    Raises AudioError for an unsupported extension, a missing, empty, undecodable or truncated
    file (unless `allow_truncated`), a non-finite signal, or audio shorter than `min_seconds`.
    """
    path = Path(path)
    _check_file(path)
    y, file_sr = _read_mono(path, allow_truncated)
    seconds = len(y) / file_sr
    if seconds < min_seconds:
        raise AudioError(path, f"audio too short: {seconds:.3f} s < {min_seconds} s")
    if not np.isfinite(y).all():
        raise AudioError(path, "decoded signal contains NaN or infinite samples")
    if file_sr != sr:
        import librosa  # here, not at the top: planning reads headers without librosa's import

        y = librosa.resample(y, orig_sr=file_sr, target_sr=sr, res_type="soxr_hq")
    return np.ascontiguousarray(y, dtype=np.float32)


def audio_duration(path: str | Path) -> float:
    """Duration in seconds from the file header (no full decode)."""
    path = Path(path)
    _check_file(path)
    try:
        return float(sf.info(str(path)).duration)
    except (sf.LibsndfileError, RuntimeError, ValueError) as exc:
        raise AudioError(path, f"cannot read audio header: {_decoder_cause(exc)}") from exc
