"""STFT front-end: waveforms <-> real/imaginary planes in (batch, channel, time, frequency) order.

Notebook: 02_dpdcrn.ipynb

The settings are those of DPDCRN (shared/spec/DPDCRN.md): 16 kHz, n_fft 512 (257 bins),
window 512, hop 256, periodic Hann, centred frames, no power-law compression. A multi-channel
waveform ``[B, M, N]`` becomes ``[B, 2M, T, 257]`` with channel ``m`` on planes ``2m`` (real)
and ``2m + 1`` (imaginary), so the first two planes are always the reference channel.
"""

from __future__ import annotations

import torch
from torch import nn

SAMPLE_RATE = 16_000
N_FFT = 512
HOP_LENGTH = 256
WIN_LENGTH = 512
N_BINS = N_FFT // 2 + 1


def num_frames(num_samples: int, hop_length: int = HOP_LENGTH) -> int:
    """Frames of a centred STFT of ``num_samples`` samples (1 s at 16 kHz -> 63).

    Notebook: 02_dpdcrn.ipynb
    """
    return 1 + int(num_samples) // hop_length


def segment_samples(seconds: float) -> int:
    """Samples of a crop of ``seconds`` at :data:`SAMPLE_RATE` (rounded: 0.5 s -> 8000).

    Notebook: 01_signals_and_data.ipynb
    """
    return int(round(seconds * SAMPLE_RATE))


def segment_frames(seconds: float) -> int:
    """STFT frames of a crop of ``seconds`` (1 s -> 63): the frame count that training batches
    have and that a distiller's calibration blocks are built for.

    Notebook: 03_training.ipynb
    """
    return num_frames(segment_samples(seconds))


class STFT(nn.Module):
    """Forward and inverse STFT as a module (ESPnet/asteroid style), holding its window as a buffer.

    Notebook: 02_dpdcrn.ipynb

    ``forward(wav)`` takes ``[N]``, ``[B, N]`` or ``[B, M, N]`` real samples and returns
    ``[2, T, F]``, ``[B, 2, T, F]`` or ``[B, 2M, T, F]``; ``inverse(spec, length)`` undoes it.
    The window buffer is not persistent, so it never appears in a model's state dict.
    """

    def __init__(self, n_fft: int = N_FFT, hop_length: int = HOP_LENGTH,
                 win_length: int = WIN_LENGTH, sample_rate: int = SAMPLE_RATE):
        super().__init__()
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.win_length = win_length
        self.sample_rate = sample_rate
        self.register_buffer("window", torch.hann_window(win_length, periodic=True), persistent=False)

    @property
    def n_bins(self) -> int:
        return self.n_fft // 2 + 1

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        if not isinstance(wav, torch.Tensor):
            raise TypeError(f"STFT expects a torch.Tensor waveform, got {type(wav).__name__}")
        if wav.is_complex():
            raise TypeError("STFT expects a real waveform but got a complex tensor; "
                            "to go from a spectrum back to samples use STFT.inverse")
        if not wav.is_floating_point():
            raise TypeError(f"STFT expects floating-point samples, got {wav.dtype}; "
                            "convert integer PCM with wav.float() / 32768")
        if wav.dim() not in (1, 2, 3):
            raise ValueError(f"STFT expects [time], [batch, time] or [batch, mics, time], "
                             f"got a tensor of rank {wav.dim()} with shape {tuple(wav.shape)}")
        if wav.shape[-1] < self.n_fft // 2 + 1:
            raise ValueError(f"waveform too short: {wav.shape[-1]} samples; the centred STFT "
                             f"needs at least {self.n_fft // 2 + 1}")
        lead = wav.shape[:-1]
        spec = torch.stft(wav.reshape(-1, wav.shape[-1]), self.n_fft, self.hop_length,
                          self.win_length, self.window.to(wav), center=True,
                          return_complex=True)                      # [L, F, T]
        planes = torch.stack((spec.real, spec.imag), dim=1)          # [L, 2, F, T]
        planes = planes.transpose(-1, -2)                            # [L, 2, T, F]
        if len(lead) == 0:
            return planes[0]
        if len(lead) == 1:
            return planes
        batch, mics = lead
        return planes.reshape(batch, 2 * mics, *planes.shape[-2:])

    def inverse(self, spec: torch.Tensor, length: int | None = None) -> torch.Tensor:
        """Real/imaginary planes back to samples; ``length`` trims or pads to the original size."""
        if not isinstance(spec, torch.Tensor):
            raise TypeError(f"STFT.inverse expects a torch.Tensor, got {type(spec).__name__}")
        if spec.is_complex():
            raise TypeError("STFT.inverse expects real/imaginary planes [..., 2, T, F], got a "
                            "complex tensor; stack it with torch.stack((z.real, z.imag), dim=-3)")
        if length is not None and (isinstance(length, bool) or not isinstance(length, int)):
            raise TypeError(f"length must be an int number of samples, got {type(length).__name__}")
        if spec.dim() not in (3, 4):
            raise ValueError(f"STFT.inverse expects [2, T, F] or [B, 2M, T, F], got shape "
                             f"{tuple(spec.shape)}")
        if spec.shape[-1] != self.n_bins:
            raise ValueError(f"spectrum has {spec.shape[-1]} frequency bins, expected "
                             f"{self.n_bins} (n_fft {self.n_fft}); is it [.., T, F] ordered?")
        if spec.shape[-3] % 2:
            raise ValueError(f"the channel axis must hold real/imaginary pairs, got "
                             f"{spec.shape[-3]} planes")
        squeeze = spec.dim() == 3
        spec = spec.unsqueeze(0) if squeeze else spec
        batch, planes, frames, bins = spec.shape
        mics = planes // 2
        pairs = spec.reshape(batch * mics, 2, frames, bins).transpose(-1, -2)  # [L, 2, F, T]
        z = torch.complex(pairs[:, 0].contiguous(), pairs[:, 1].contiguous())
        wav = torch.istft(z, self.n_fft, self.hop_length, self.win_length,
                          self.window.to(pairs.dtype), center=True, length=length)
        if squeeze:
            return wav[0]
        return wav.reshape(batch, mics, -1) if mics > 1 else wav

    def extra_repr(self) -> str:
        return (f"n_fft={self.n_fft}, hop_length={self.hop_length}, "
                f"win_length={self.win_length}, sample_rate={self.sample_rate}")
