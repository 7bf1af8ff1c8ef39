import pytest
import torch

from tfckd_lite.losses import compressed_spectral_loss


def test_zero_for_identical_spectra_and_positive_otherwise():
    torch.manual_seed(0)
    a = torch.randn(2, 2, 10, 257)
    assert compressed_spectral_loss(a, a) == 0
    assert compressed_spectral_loss(a, a * 0.5) > 0


def test_matches_the_formula():
    torch.manual_seed(1)
    est, ref = torch.randn(1, 2, 4, 257), torch.randn(1, 2, 4, 257)
    e, r = torch.complex(est[:, 0], est[:, 1]), torch.complex(ref[:, 0], ref[:, 1])
    ce = e.abs() ** 0.3 * torch.exp(1j * e.angle())
    cr = r.abs() ** 0.3 * torch.exp(1j * r.angle())
    expected = 0.3 * (ce - cr).abs().square().mean() + 0.7 * (e.abs() ** 0.3 - r.abs() ** 0.3).square().mean()
    assert compressed_spectral_loss(est, ref).item() == pytest.approx(expected.item(), rel=1e-4)


def test_phase_errors_are_penalised():
    torch.manual_seed(2)
    ref = torch.randn(1, 2, 6, 257)
    rotated = torch.stack((-ref[:, 1], ref[:, 0]), dim=1)  # same magnitude, phase + 90 degrees
    assert compressed_spectral_loss(rotated, ref) > 0.01


def test_finite_gradient_on_silence():
    est = torch.zeros(1, 2, 5, 257, requires_grad=True)
    compressed_spectral_loss(est, torch.zeros(1, 2, 5, 257)).backward()
    assert torch.isfinite(est.grad).all()


def test_shape_errors():
    with pytest.raises(ValueError, match="differ in shape"):
        compressed_spectral_loss(torch.zeros(1, 2, 5, 257), torch.zeros(1, 2, 6, 257))
    with pytest.raises(ValueError, match="real/imag planes"):
        compressed_spectral_loss(torch.zeros(1, 4, 5, 257), torch.zeros(1, 4, 5, 257))
