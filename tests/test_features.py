"""Log-CQT front end and its parameter record."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from mirkd.errors import ConfigError
from mirkd.features import CQTParams, log_cqt, n_frames

SR = 22050


def _sine(freq: float, seconds: float, sr: int = SR) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_reference_parameters():
    p = CQTParams()
    assert (p.sr, p.hop_length, p.n_bins, p.bins_per_octave) == (22050, 2048, 144, 24)
    assert p.log_eps == 1e-6
    assert p.fmin == pytest.approx(32.7032, abs=1e-4)
    assert p.frame_period == pytest.approx(0.0928798, abs=1e-7)


@pytest.mark.parametrize(
    "n_samples", [SR // 2, 2048 * 10, 2048 * 10 + 1, 2048 * 11 - 1, 2048 * 12 - 1, 5 * SR + 17]
)
def test_shape_follows_frame_grid(n_samples):
    y = np.random.default_rng(0).normal(scale=0.1, size=n_samples).astype(np.float32)
    c = log_cqt(y)
    assert c.shape == (n_frames(n_samples), 144) == (1 + n_samples // 2048, 144)
    assert c.dtype == np.float32 and np.isfinite(c).all()


def test_sine_peaks_at_its_bin():
    c = log_cqt(_sine(440.0, 2.0))  # A4 is 45 semitones above C1 -> bin 90 at 24 bins/octave
    assert int(np.argmax(c[5:-5].mean(axis=0))) == 90
    c = log_cqt(_sine(32.70319566257483 * 2 ** (1 / 24), 2.0))  # lowest bins are covered too
    assert int(np.argmax(c[5:-5].mean(axis=0))) == 1


def test_silence_is_log_eps():
    c = log_cqt(np.zeros(SR, dtype=np.float32))
    assert np.allclose(c, math.log(1e-6))


def test_onset_lands_on_the_frame_grid():
    y = np.concatenate([np.zeros(3 * SR, dtype=np.float32), _sine(440.0, 2.0)])
    energy = log_cqt(y)[:, 90]
    onset_frame = 3.0 / CQTParams().frame_period  # 32.3
    assert energy[int(onset_frame) - 3] < -10 < energy[int(onset_frame) + 3]


def test_custom_hop():
    p = CQTParams(hop_length=1024)
    assert log_cqt(_sine(220.0, 1.0), p).shape == (1 + SR // 1024, 144)


def test_params_dict_roundtrip_through_json():
    p = CQTParams(hop_length=1024, log_eps=1e-5)
    assert CQTParams.from_dict(json.loads(json.dumps(p.to_dict()))) == p


def test_params_from_dict_rejects_missing_and_unknown_keys():
    d = CQTParams().to_dict()
    with pytest.raises(ConfigError, match="missing \\['log_eps'\\]"):
        CQTParams.from_dict({k: v for k, v in d.items() if k != "log_eps"})
    with pytest.raises(ConfigError, match="unknown \\['window'\\]"):
        CQTParams.from_dict({**d, "window": "hann"})


def test_rejects_multichannel_input():
    with pytest.raises(ValueError, match="mono"):
        log_cqt(np.zeros((2, SR), dtype=np.float32))
