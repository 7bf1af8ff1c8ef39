"""The speech-enhancement (SE) loss used to train every model of the project.

Notebook: 03_training.ipynb

Choice: the power-law compressed complex + magnitude spectral MSE (Braun & Tashev, "A
consolidated view of loss functions for supervised deep learning-based speech enhancement",
2021), with compression exponent c = 0.3 and a 0.3 / 0.7 mix of the complex and the magnitude
term, on the model's own STFT (512 / 256, Hann). Why this one:

- DPDCRN predicts a complex mask, so the loss must see phase; the complex term does, and the
  magnitude term keeps the spectral envelope right where phase is noisy;
- compression (|S|^0.3) balances loud low-frequency harmonics against quiet consonants, which
  is what perceptual metrics such as PESQ reward; the comparison in that study found this
  combination the best or near-best on PESQ, STOI and SI-SDR among common SE losses;
- it is computed on the spectra the model already produces (no extra STFT resolutions), which
  matters on a 2-core CPU, and the paper leaves the base loss open (TFCKD.md, section 7).

Compressed magnitudes use ``(|S|^2 + eps)^(c/2)``, so the gradient stays finite on silent bins.
"""

from __future__ import annotations

import torch

COMPRESSION = 0.3
COMPLEX_WEIGHT = 0.3
EPS = 1e-12


def _compress(spec: torch.Tensor, power: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Compressed magnitude and compressed complex planes of ``[B, 2, T, F]`` real/imag planes."""
    energy = spec[:, 0].square() + spec[:, 1].square() + EPS
    magnitude = energy.pow(power / 2)
    scale = energy.pow((power - 1) / 2)             # |S|^c / |S|: keeps the phase of S
    return magnitude, spec[:, :2] * scale.unsqueeze(1)


def compressed_spectral_loss(estimate: torch.Tensor, reference: torch.Tensor,
                             power: float = COMPRESSION,
                             complex_weight: float = COMPLEX_WEIGHT) -> torch.Tensor:
    """``w * MSE(complex |S|^c e^{j angle S}) + (1 - w) * MSE(|S|^c)`` on ``[B, 2, T, F]`` planes.

    Notebook: 03_training.ipynb

    Both arguments are real/imaginary planes from the same STFT; the mean runs over every
    element, so the value does not depend on batch size or utterance length.
    """
    if estimate.shape != reference.shape:
        raise ValueError(f"estimate {tuple(estimate.shape)} and reference "
                         f"{tuple(reference.shape)} spectra differ in shape")
    if estimate.dim() != 4 or estimate.shape[1] != 2:
        raise ValueError(f"expected [B, 2, T, F] real/imag planes, got {tuple(estimate.shape)}")
    est_mag, est_cplx = _compress(estimate, power)
    ref_mag, ref_cplx = _compress(reference, power)
    complex_term = (est_cplx - ref_cplx).square().sum(1).mean()
    magnitude_term = (est_mag - ref_mag).square().mean()
    return complex_weight * complex_term + (1 - complex_weight) * magnitude_term
