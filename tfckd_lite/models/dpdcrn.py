"""DPDCRN, the dual-path dilated convolutional recurrent network (teacher and student backbone).

Notebook: 02_dpdcrn.ipynb

Specification: shared/spec/DPDCRN.md (reproduced from the authors' released single-channel
definitions; the paper presets match their parameter counts to the last parameter).

Layout, with width C and dual-path depth N (d = C/2)::

    noisy planes [B, 2M, T, 257]
      E1 conv(1x3, stride 2) -> [B, C, T, 129]      E2 conv(1x3, stride 2) -> [B, C, T, 64]
      E3 dilated dense block  -> [B, C, T, 64]
      dual-path bottleneck: 1x1 conv C->d, then N x (intra-frame + inter-frame transformer),
                            tap M_k = PReLU + 1x1 conv d->C after every layer
      D1 dilated dense block  -> [B, C, T, 64]
      D2 transposed conv      -> [B, C, T, 129]     D3 transposed conv -> mask [B, 2, T, 257]
      polar mask on the reference channel -> enhanced planes [B, 2, T, 257]

Causality, stated honestly: every convolution kernel looks only at the present and past frames
(the dense blocks pad on the past side only, the other kernels span one frame) and the
inter-frame GRU is unidirectional, but the inter-frame attention has no causal mask in the
released model, and the InstanceNorm/GroupNorm statistics are taken over the whole utterance.
The released model is therefore *not* a streaming (frame-by-frame) model; this library keeps it
as released rather than silently "fixing" it, because the distillation results must be about the
published network.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..stft import N_BINS, STFT


@dataclass(frozen=True)
class DPDCRNConfig:
    """Hyper-parameters of one DPDCRN.

    Notebook: 02_dpdcrn.ipynb

    ``channels`` is the width C (a multiple of 8 so that d = C/2 splits into 4 heads),
    ``dual_path_layers`` the depth N, ``in_channels`` the number of microphones M (2M input
    planes, mask on the first), ``heads`` the attention heads, ``dense_depth`` the layers of each
    dilated dense block (dilations 1, 2, 4, ...).
    """

    channels: int = 64
    dual_path_layers: int = 1
    in_channels: int = 1
    heads: int = 4
    dense_depth: int = 4

    def __post_init__(self):
        for name in ("channels", "dual_path_layers", "in_channels", "heads", "dense_depth"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"DPDCRNConfig.{name} must be a positive int, got {value!r}")
        if self.channels % 2 or (self.channels // 2) % self.heads:
            raise ValueError(f"channels={self.channels}: the dual-path width C/2 must be divisible "
                             f"by heads={self.heads} (use a multiple of {2 * self.heads})")


def conv_block(conv: nn.Module, channels: int) -> nn.Sequential:
    """A convolution followed by InstanceNorm2d(affine) and a per-channel PReLU."""
    return nn.Sequential(conv, nn.InstanceNorm2d(channels, affine=True), nn.PReLU(channels))


class DilatedDenseBlock(nn.Module):
    """Causal dilated dense block: layer i sees the block input and all earlier layer outputs.

    Notebook: 02_dpdcrn.ipynb

    Layer i pads 2**i frames on the past side (and one bin on each side of frequency), then a
    (2 time x 3 frequency) convolution with time dilation 2**i keeps T and F unchanged. With
    depth 4 the block's receptive field is 1 + 1 + 2 + 4 + 8 = 16 frames, all in the past.
    The output is the last layer's output, not the concatenation.
    """

    def __init__(self, channels: int, depth: int = 4):
        super().__init__()
        self.layers = nn.ModuleList()
        for i in range(depth):
            dilation = 2 ** i
            self.layers.append(nn.Sequential(
                nn.ConstantPad2d((1, 1, dilation, 0), 0.0),   # (F left, F right, T past, T future)
                *conv_block(nn.Conv2d(channels * (i + 1), channels, kernel_size=(2, 3),
                                      dilation=(dilation, 1)), channels),
            ))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = x
        for layer in self.layers:
            out = layer(features)
            features = torch.cat((features, out), dim=1)
        return out


class TransformerBlock(nn.Module):
    """Transformer block whose feed-forward part is a GRU (TSTNN-style), width d, no mask.

    Notebook: 02_dpdcrn.ipynb

    ``x = x + MHA(LN_a(x)); x = LN_b(x); h = GRU(x); x = x + Linear(ReLU(h)); x = LN_c(x)``
    on ``[batch, sequence, d]``; the GRU has hidden size 2d, bidirectional for the intra-frame
    (frequency) path and unidirectional for the inter-frame (time) path.
    """

    def __init__(self, width: int, heads: int = 4, bidirectional: bool = False):
        super().__init__()
        self.norm_attention = nn.LayerNorm(width)
        self.attention = nn.MultiheadAttention(width, heads, dropout=0.0, batch_first=True)
        self.norm_recurrent = nn.LayerNorm(width)
        self.gru = nn.GRU(width, 2 * width, num_layers=1, batch_first=True,
                          bidirectional=bidirectional)
        self.project = nn.Linear(2 * width * (2 if bidirectional else 1), width)
        self.norm_out = nn.LayerNorm(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm_attention(x)
        x = x + self.attention(y, y, y, need_weights=False)[0]
        x = self.norm_recurrent(x)
        hidden, _ = self.gru(x)
        x = x + self.project(torch.relu(hidden))
        return self.norm_out(x)


class DualPathBottleneck(nn.Module):
    """N dual-path layers between a 1x1 input projection (C -> d) and a shared output (d -> C).

    Notebook: 02_dpdcrn.ipynb

    Each layer runs the intra-frame path (sequences along the 64 frequency positions of a frame)
    and the inter-frame path (sequences along the T frames of a frequency position) on the same X
    and adds them: ``X <- X + k1 * intra + k2 * inter`` (k1, k2 shared by all layers). The shared
    output module turns X into the tap M_k after every layer; the last tap feeds the decoder.
    """

    def __init__(self, channels: int, num_layers: int, heads: int = 4):
        super().__init__()
        width = channels // 2
        self.input = nn.Sequential(nn.Conv2d(channels, width, kernel_size=1), nn.PReLU())
        self.intra = nn.ModuleList(TransformerBlock(width, heads, bidirectional=True)
                                   for _ in range(num_layers))
        self.inter = nn.ModuleList(TransformerBlock(width, heads, bidirectional=False)
                                   for _ in range(num_layers))
        self.intra_norm = nn.ModuleList(nn.GroupNorm(1, width, eps=1e-8) for _ in range(num_layers))
        self.inter_norm = nn.ModuleList(nn.GroupNorm(1, width, eps=1e-8) for _ in range(num_layers))
        self.k1 = nn.Parameter(torch.ones(1))
        self.k2 = nn.Parameter(torch.ones(1))
        self.output = nn.Sequential(nn.PReLU(), nn.Conv2d(width, channels, kernel_size=1))

    def forward(self, x: torch.Tensor, all_taps: bool = True) -> list[torch.Tensor]:
        x = self.input(x)
        batch, width, frames, bins = x.shape
        taps = []
        last = len(self.intra) - 1
        for k, (intra, inter, intra_norm, inter_norm) in enumerate(
                zip(self.intra, self.inter, self.intra_norm, self.inter_norm)):
            # intra-frame: one sequence of `bins` positions per (utterance, frame)
            seq = x.permute(0, 2, 3, 1).reshape(batch * frames, bins, width)
            intra_out = intra(seq).reshape(batch, frames, bins, width).permute(0, 3, 1, 2)
            # inter-frame: one sequence of `frames` steps per (utterance, frequency position)
            seq = x.permute(0, 3, 2, 1).reshape(batch * bins, frames, width)
            inter_out = inter(seq).reshape(batch, bins, frames, width).permute(0, 3, 2, 1)
            x = x + self.k1 * intra_norm(intra_out) + self.k2 * inter_norm(inter_out)
            if all_taps or k == last:
                taps.append(self.output(x))
        return taps


def _unit_phasor(real: torch.Tensor, imag: torch.Tensor):
    """(cos, sin) of atan2(imag, real) with atan2(0, 0) = 0, with finite gradients at 0."""
    power = real.square() + imag.square()
    nonzero = power > 0
    magnitude = torch.sqrt(torch.where(nonzero, power, torch.ones_like(power)))
    cos = torch.where(nonzero, real / magnitude, torch.ones_like(real))
    sin = torch.where(nonzero, imag / magnitude, torch.zeros_like(imag))
    return cos, sin, torch.where(nonzero, magnitude, torch.zeros_like(magnitude))


def apply_polar_mask(noisy: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """DCCRN-E polar mask: ``|S| = tanh(|M|) sqrt(|Y|^2 + 1e-8)``, ``angle S = angle Y + angle M``.

    Notebook: 02_dpdcrn.ipynb

    ``noisy`` and ``mask`` are ``[B, 2, T, F]`` real/imaginary planes. The angles are added as a
    product of unit phasors rather than through atan2 and cos/sin: the same numbers, but the
    gradient stays finite where a mask or noisy bin is exactly zero (atan2's is undefined there).
    """
    y_cos, y_sin, _ = _unit_phasor(noisy[:, 0], noisy[:, 1])
    m_cos, m_sin, m_abs = _unit_phasor(mask[:, 0], mask[:, 1])
    magnitude = torch.tanh(m_abs) * torch.sqrt(noisy[:, 0].square() + noisy[:, 1].square() + 1e-8)
    cos = y_cos * m_cos - y_sin * m_sin
    sin = y_sin * m_cos + y_cos * m_sin
    return torch.stack((magnitude * cos, magnitude * sin), dim=1)


class DPDCRN(nn.Module):
    """The DPDCRN speech enhancer with explicit feature taps for distillation.

    Notebook: 02_dpdcrn.ipynb

    ``model(spec)`` maps noisy planes ``[B, 2M, T, 257]`` to enhanced planes ``[B, 2, T, 257]``;
    ``model(spec, return_features=True)`` also returns
    ``{"encoder": [E1, E2, E3], "dual_path": [M1..MN], "decoder": [D1, D2, D3]}`` where D3 is the
    2-channel mask. ``model.enhance(wav)`` runs STFT -> network -> inverse STFT.
    """

    def __init__(self, config: DPDCRNConfig | None = None, **kwargs):
        super().__init__()
        if config is None:
            config = DPDCRNConfig(**kwargs)
        elif kwargs:
            raise TypeError("pass either a DPDCRNConfig or keyword hyper-parameters, not both")
        self.config = config
        C = config.channels
        self.stft = STFT()
        self.encoder = nn.ModuleDict({
            "E1": conv_block(nn.Conv2d(2 * config.in_channels, C, (1, 3), stride=(1, 2),
                                       padding=(0, 1)), C),
            "E2": conv_block(nn.Conv2d(C, C, (1, 3), stride=(1, 2)), C),
            "E3": DilatedDenseBlock(C, config.dense_depth),
        })
        self.dual_path = DualPathBottleneck(C, config.dual_path_layers, config.heads)
        self.decoder = nn.ModuleDict({
            "D1": DilatedDenseBlock(C, config.dense_depth),
            "D2": conv_block(nn.ConvTranspose2d(C, C, (1, 3), stride=(1, 2)), C),
            "D3": nn.ConvTranspose2d(C, 2, (1, 3), stride=(1, 2)),
        })

    def check_input(self, spec: torch.Tensor) -> None:
        """Raise a specific error for a spectrum this model cannot take."""
        if not isinstance(spec, torch.Tensor):
            raise TypeError(f"DPDCRN expects a torch.Tensor spectrum, got {type(spec).__name__}")
        if spec.is_complex():
            raise TypeError("DPDCRN expects real/imaginary planes [B, 2M, T, 257], got a complex "
                            "tensor; use tfckd_lite.STFT() to make the planes")
        if not spec.is_floating_point():
            raise TypeError(f"DPDCRN expects a floating-point spectrum, got {spec.dtype}")
        if spec.dim() != 4:
            raise ValueError(f"DPDCRN expects [batch, 2*mics, frames, 257], got rank {spec.dim()} "
                             f"shape {tuple(spec.shape)}" +
                             ("; add a batch axis with spec.unsqueeze(0)" if spec.dim() == 3 else ""))
        planes = 2 * self.config.in_channels
        if spec.shape[1] != planes:
            raise ValueError(f"this DPDCRN takes {self.config.in_channels} channel(s), i.e. "
                             f"{planes} real/imag planes on axis 1, got {spec.shape[1]}")
        if spec.shape[-1] != N_BINS:
            raise ValueError(f"expected {N_BINS} frequency bins on the last axis (n_fft 512), got "
                             f"{spec.shape[-1]}; is the spectrum ordered [B, C, T, F]?")
        if spec.shape[2] < 1:
            raise ValueError("the spectrum has no frames")

    def forward(self, spec: torch.Tensor, return_features: bool = False):
        self.check_input(spec)
        e1 = self.encoder["E1"](spec)
        e2 = self.encoder["E2"](e1)
        e3 = self.encoder["E3"](e2)
        dual_path = self.dual_path(e3, all_taps=return_features)
        d1 = self.decoder["D1"](dual_path[-1])
        d2 = self.decoder["D2"](d1)
        mask = self.decoder["D3"](d2)[..., :N_BINS]          # 259 bins -> drop the last two
        enhanced = apply_polar_mask(spec[:, :2], mask)        # reference channel only
        if not return_features:
            return enhanced
        return enhanced, {"encoder": [e1, e2, e3], "dual_path": dual_path,
                          "decoder": [d1, d2, mask]}

    @torch.no_grad()
    def enhance(self, wav: torch.Tensor) -> torch.Tensor:
        """Enhance a waveform ``[N]``, ``[B, N]`` (mono) or ``[B, M, N]``; returns ``[N]``/``[B, N]``.

        Notebook: 02_dpdcrn.ipynb

        A waveform with NaN or inf samples is refused (``ValueError``): the network would
        silently turn them, and the frames around them, into NaN output.
        """
        bad = ~torch.isfinite(wav)
        if bad.any():
            first = tuple(int(i) for i in bad.nonzero()[0])
            raise ValueError(f"the waveform has {int(bad.sum())} NaN/inf samples (the first at "
                             f"index {first[0] if len(first) == 1 else first}); the output "
                             f"would be NaN around them")
        if self.config.in_channels > 1 and wav.dim() != 3:
            raise ValueError(f"this model takes {self.config.in_channels} microphones: pass "
                             f"[batch, mics, samples], got shape {tuple(wav.shape)}")
        if self.config.in_channels == 1 and wav.dim() == 3:
            raise ValueError(f"this model is single-channel; got a multi-channel waveform "
                             f"{tuple(wav.shape)}: pick one channel or build with in_channels=M")
        single = wav.dim() == 1
        spec = self.stft(wav.unsqueeze(0) if single else wav)
        out = self.stft.inverse(self(spec), length=wav.shape[-1])
        return out[0] if single else out
