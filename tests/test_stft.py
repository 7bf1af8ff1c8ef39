import math

import pytest
import torch

from tfckd_lite.stft import N_BINS, STFT, num_frames


@pytest.fixture(scope="module")
def stft():
    return STFT()


def _speech_like(n: int, seed: int = 0) -> torch.Tensor:
    """Harmonic tone with a syllable-rate envelope plus a little noise."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(n) / 16000
    f0 = 120 + 30 * torch.sin(2 * math.pi * 0.7 * t)
    phase = 2 * math.pi * torch.cumsum(f0, 0) / 16000
    voiced = sum(torch.sin(k * phase) / k for k in range(1, 12))
    envelope = 0.5 * (1 + torch.sin(2 * math.pi * 4 * t)).clamp(min=0)
    return 0.3 * voiced * envelope + 0.01 * torch.randn(n, generator=g)


def test_shape_and_settings(stft):
    x = torch.randn(3, 16000)
    spec = stft(x)
    assert spec.shape == (3, 2, num_frames(16000), N_BINS) == (3, 2, 63, 257)
    assert stft.window.shape == (512,)
    # periodic Hann: w[0] == 0 and w[256] == 1
    assert stft.window[0] == 0 and torch.isclose(stft.window[256], torch.tensor(1.0))
    assert "window" not in stft.state_dict()


@pytest.mark.parametrize("n", [16000, 12345, 48000])
def test_reconstruction_random(stft, n):
    x = torch.randn(2, n)
    y = stft.inverse(stft(x), length=n)
    assert y.shape == x.shape
    assert (y - x).abs().max() < 1e-5


def test_reconstruction_speech_like(stft):
    x = _speech_like(40000).unsqueeze(0)
    y = stft.inverse(stft(x), length=x.shape[-1])
    assert (y - x).abs().max() < 1e-5


def test_one_dimensional_and_multichannel_roundtrip(stft):
    mono = torch.randn(8000)
    assert stft(mono).shape == (2, 32, 257)
    assert (stft.inverse(stft(mono), length=8000) - mono).abs().max() < 1e-5
    multi = torch.randn(2, 4, 8000)
    spec = stft(multi)
    assert spec.shape == (2, 8, 32, 257)
    # planes 2m, 2m+1 hold channel m
    assert torch.allclose(spec[:, 2:4], stft(multi[:, 1]))
    assert (stft.inverse(spec, length=8000) - multi).abs().max() < 1e-5


def test_matches_a_direct_dft_of_one_frame(stft):
    x = torch.randn(1, 4096, dtype=torch.float64)
    spec = stft(x.float()).double()
    frame = 5  # centred: frame t covers samples t*256-256 .. t*256+255
    segment = x[0, frame * 256 - 256: frame * 256 + 256] * torch.hann_window(512, periodic=True,
                                                                               dtype=torch.float64)
    ref = torch.fft.rfft(segment)
    assert torch.allclose(spec[0, 0, frame], ref.real, atol=1e-3)
    assert torch.allclose(spec[0, 1, frame], ref.imag, atol=1e-3)


def test_bad_inputs_have_clear_errors(stft):
    with pytest.raises(ValueError, match="rank"):
        stft(torch.randn(1, 1, 1, 16000))
    with pytest.raises(TypeError, match="complex"):
        stft(torch.randn(1, 16000, dtype=torch.complex64))
    with pytest.raises(TypeError, match="floating-point"):
        stft(torch.zeros(1, 16000, dtype=torch.int16))
    with pytest.raises(TypeError, match="torch.Tensor"):
        stft([0.0] * 16000)
    with pytest.raises(ValueError, match="too short"):
        stft(torch.randn(1, 100))
    spec = stft(torch.randn(1, 16000))
    with pytest.raises(TypeError, match="length must be an int"):
        stft.inverse(spec, length=16000.0)
    with pytest.raises(TypeError, match="length must be an int"):
        stft.inverse(spec, length=torch.tensor(16000))
    with pytest.raises(TypeError, match="complex"):
        stft.inverse(torch.complex(spec[:, 0], spec[:, 1]))
    with pytest.raises(ValueError, match="frequency bins"):
        stft.inverse(spec.transpose(-1, -2))
    with pytest.raises(ValueError, match="pairs"):
        stft.inverse(spec[:, :1].expand(1, 3, -1, -1))
