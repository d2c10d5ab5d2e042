"""Audio decoding to mono 22050 Hz and its error reporting."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from mirkd.audio import AUDIO_EXTENSIONS, TARGET_SR, audio_duration, load_audio
from mirkd.errors import AudioError

SECONDS = 1.5


def _write_tone(path, sr, channels, **kwargs):
    """440 Hz tone, amplitude 0.4 in channel 0 and 0.2 in the others."""
    t = np.arange(int(SECONDS * sr)) / sr
    tone = np.sin(2 * np.pi * 440.0 * t)
    data = np.stack([0.4 * tone] + [0.2 * tone] * (channels - 1), axis=1)
    sf.write(path, data, sr, **kwargs)


def _dominant_hz(y, sr=TARGET_SR):
    spectrum = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    return np.fft.rfftfreq(len(y), 1 / sr)[np.argmax(spectrum)]


@pytest.mark.parametrize(
    "name, sr, channels, kwargs, lossy",
    [
        ("pcm24_stereo.wav", 44100, 2, {"subtype": "PCM_24"}, False),
        ("float_mono.wav", 48000, 1, {"subtype": "FLOAT"}, False),
        ("pcm16_8k.wav", 8000, 1, {"subtype": "PCM_16"}, False),
        ("native_rate.flac", 22050, 2, {}, False),
        ("six_channels.flac", 32000, 6, {}, False),
        ("vorbis.ogg", 44100, 2, {"format": "OGG", "subtype": "VORBIS"}, True),
        ("opus.opus", 48000, 2, {"format": "OGG", "subtype": "OPUS"}, True),
        ("layer3.mp3", 44100, 2, {"format": "MP3", "subtype": "MPEG_LAYER_III"}, True),
    ],
)
def test_formats_decode_to_mono_22050(tmp_path, name, sr, channels, kwargs, lossy):
    path = tmp_path / name
    _write_tone(path, sr, channels, **kwargs)
    y = load_audio(path)
    assert y.dtype == np.float32 and y.ndim == 1
    assert abs(len(y) - SECONDS * TARGET_SR) <= (0.02 * TARGET_SR if lossy else 1)
    assert _dominant_hz(y) == pytest.approx(440.0, abs=2.0)
    mean_amplitude = (0.4 + 0.2 * (channels - 1)) / channels  # channels are averaged
    rms = np.sqrt(np.mean(y[len(y) // 4 : -len(y) // 4] ** 2))
    assert rms * np.sqrt(2) == pytest.approx(mean_amplitude, rel=0.1 if lossy else 0.01)
    assert audio_duration(path) == pytest.approx(SECONDS, abs=0.02 if lossy else 1e-3)


def test_other_target_rate(tmp_path):
    path = tmp_path / "a.wav"
    _write_tone(path, 44100, 1)
    assert len(load_audio(path, sr=16000)) == int(SECONDS * 16000)


def test_corrupt_file(tmp_path):
    path = tmp_path / "corrupt.wav"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(AudioError, match="corrupt.wav: cannot decode audio") as info:
        load_audio(path)
    assert info.value.path == str(path)
    with pytest.raises(AudioError, match="corrupt.wav: cannot read audio header"):
        audio_duration(path)


def test_a_text_file_named_mp3_is_not_said_to_be_missing(tmp_path):
    path = tmp_path / "page.mp3"  # a download that saved an HTML page
    path.write_text("<html>" + "not audio " * 500)
    for read in (load_audio, audio_duration):
        with pytest.raises(AudioError, match="Format not recognised") as info:
            read(path)
        assert "does not exist" not in str(info.value) and info.value.path == str(path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.flac"
    path.touch()
    with pytest.raises(AudioError, match="empty.flac: empty file"):
        load_audio(path)


def test_missing_file(tmp_path):
    with pytest.raises(AudioError, match="nothere.mp3: file not found"):
        load_audio(tmp_path / "nothere.mp3")


@pytest.mark.parametrize("suffix", [".aac", ".txt", ""])
def test_unsupported_extension(tmp_path, suffix):
    path = tmp_path / f"song{suffix}"
    _write_tone(path, 22050, 1, format="WAV")
    with pytest.raises(AudioError, match="unsupported extension"):
        load_audio(path)


def test_extensions_are_case_insensitive(tmp_path):
    path = tmp_path / "LOUD.WAV"
    _write_tone(path, 22050, 1)
    assert len(load_audio(path)) == int(SECONDS * 22050)
    assert ".mp3" in AUDIO_EXTENSIONS


def test_too_short(tmp_path):
    path = tmp_path / "short.wav"
    sf.write(path, np.zeros(4410), 44100)  # 0.1 s
    with pytest.raises(AudioError, match=r"short.wav: audio too short: 0.100 s < 0.5 s"):
        load_audio(path)
    assert len(load_audio(path, min_seconds=0.05)) == 2205


def test_header_only_wav_is_too_short(tmp_path):
    path = tmp_path / "header_only.wav"
    sf.write(path, np.zeros((0, 2)), 44100)
    with pytest.raises(AudioError, match="header_only.wav: audio too short"):
        load_audio(path)


def _cut(path, fraction):
    """Keep only the first `fraction` of the file's bytes, as an interrupted copy would."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])


@pytest.mark.parametrize(
    "name, kwargs",
    [
        ("cut.wav", {"subtype": "PCM_16"}),
        ("cut.mp3", {"format": "MP3", "subtype": "MPEG_LAYER_III"}),
    ],
)
def test_truncated_file_is_an_error_or_with_the_option_only_its_decoded_frames(
    tmp_path, caplog, name, kwargs
):
    path = tmp_path / name
    _write_tone(path, TARGET_SR, 1, **kwargs)
    promised = sf.info(str(path)).frames
    whole = load_audio(path)
    _cut(path, 0.5)
    with pytest.raises(
        AudioError,
        match=rf"{name}: truncated: decoded \d+ frames, the header "
        rf"promises {promised}",
    ):
        load_audio(path)
    with caplog.at_level("WARNING", logger="mirkd"):
        y = load_audio(path, allow_truncated=True)
    assert 0.3 * SECONDS < len(y) / TARGET_SR < 0.75 * SECONDS
    assert f"{name}: truncated" in caplog.text and str(promised) in caplog.text
    assert np.isfinite(y).all() and np.abs(y).max() < 0.45  # decoded tone, not stray memory
    if name.endswith(".wav"):  # lossless: exactly the first samples of the whole file
        np.testing.assert_array_equal(y, whole[: len(y)])


@pytest.mark.parametrize(
    "name, kwargs",
    [
        ("cut.flac", {}),
        ("cut.ogg", {"format": "OGG", "subtype": "VORBIS"}),
    ],
)
def test_truncated_flac_and_ogg_are_errors(tmp_path, name, kwargs):
    path = tmp_path / name
    _write_tone(path, TARGET_SR, 1, **kwargs)
    _cut(path, 0.77)
    with pytest.raises(AudioError, match=name):
        load_audio(path, allow_truncated=True)


def test_an_audio_file_that_may_not_be_read_says_permission_denied(tmp_path, monkeypatch):
    """libsndfile says only "System error"; the message names the file and the cause (root
    reads every file, so the refusal is simulated)."""
    path = tmp_path / "locked.wav"
    _write_tone(path, 22050, 1)

    def refusing(file, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(file))

    monkeypatch.setattr("mirkd.audio.open", refusing, raising=False)
    for read in (load_audio, audio_duration):
        with pytest.raises(AudioError) as info:
            read(path)
        assert str(info.value) == f"{path}: cannot open: permission denied"
