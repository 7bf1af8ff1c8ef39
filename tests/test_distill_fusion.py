"""Residual fusion chains (spec TFCKD.md §5): processing order, shapes, exact fast path."""

import copy

import pytest
import torch

from tfckd_lite.distill import FusionBlock, FusionChain, processing_order
from tfckd_lite.distill.fusion import fused_fusion_step, scalar_prelu

B, T, C = 2, 5, 6


pytestmark = pytest.mark.usefixtures("one_torch_thread")
# taps in *network* order, as DPDCRN returns them
SETS = {
    "encoder": ([C, C, C], [129, 64, 64]),      # E1, E2, E3
    "dual_path": ([C, C, C], [64, 64, 64]),     # M1..M3
    "decoder": ([C, C, 2], [64, 129, 257]),     # D1, D2, D3 (the mask)
}


def _taps(set_name, seed=0, requires_grad=False):
    g = torch.Generator().manual_seed(seed)
    channels, bins = SETS[set_name]
    return [(2 * torch.randn(B, c, T, f, generator=g) + 0.5).requires_grad_(requires_grad)
            for c, f in zip(channels, bins)]


def test_processing_orders():
    assert processing_order("encoder", 3) == [0, 1, 2]          # E1 -> E2 -> E3
    assert processing_order("dual_path", 4) == [0, 1, 2, 3]     # M1 -> ... -> M4
    assert processing_order("decoder", 3) == [2, 1, 0]          # D3 -> D2 -> D1
    with pytest.raises(KeyError):
        processing_order("bottleneck", 2)


@pytest.mark.parametrize("set_name", list(SETS))
def test_chain_output_shape_and_residual_sizes_follow_the_order(set_name):
    torch.manual_seed(0)
    channels, _ = SETS[set_name]
    chain = FusionChain(set_name, channels, out_channels=7, mid_channels=16, lazy=False)
    out, residuals = chain(_taps(set_name), return_residuals=True)
    assert out.shape == (B, 7, T, 64)                            # every chain ends at F = 64
    assert all(r.shape[:3] == (B, 16, T) for r in residuals)
    expected_bins = {"encoder": [129, 64, 64], "dual_path": [64, 64, 64],
                     "decoder": [257, 129, 64]}[set_name]
    assert [r.shape[-1] for r in residuals] == expected_bins
    # the first processed member has no gate, the others do
    assert chain.blocks[0].gate is None and all(b.gate is not None for b in chain.blocks[1:])
    assert chain.blocks[0].project[0].in_channels == channels[chain.order[0]]


def test_decoder_chain_starts_from_the_mask():
    torch.manual_seed(0)
    chain = FusionChain("decoder", [C, C, 2], out_channels=C, mid_channels=8)
    assert chain.blocks[0].project[0].in_channels == 2                 # D3 first
    assert [b.project[0].in_channels for b in chain.blocks] == [2, C, C]


def test_block_follows_the_formula():
    torch.manual_seed(0)
    block = FusionBlock(3, mid_channels=4, fuse=True)
    f = torch.randn(B, 3, T, 10)
    residual = torch.randn(B, 4, T, 20)
    got = block(f, residual)
    x = block.project(f)
    r = torch.nn.functional.interpolate(residual, size=(T, 10), mode="nearest")
    a, b = torch.sigmoid(block.gate(torch.cat((x, r), dim=1))).chunk(2, dim=1)
    torch.testing.assert_close(got, a * x + b * r)
    with pytest.raises(ValueError, match="needs the residual"):
        block(f)


@pytest.mark.parametrize("slope", [0.25, -0.3])
def test_scalar_prelu_matches_torch_in_value_and_gradients(slope):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, 4, 5, 6, generator=g)
    x[0, 0, 0, :3] = 0.0                          # the kink: torch uses the slope there
    upstream = torch.randn(x.shape, generator=g)
    grads = []
    for prelu in (torch.nn.functional.prelu, scalar_prelu):
        xi = x.clone().requires_grad_()
        w = torch.tensor([slope], requires_grad=True)
        y = prelu(xi, w)
        y.backward(upstream)
        grads.append((y.detach(), xi.grad, w.grad))
    (y0, gx0, gw0), (y1, gx1, gw1) = grads
    assert torch.equal(y0, y1) and torch.equal(gx0, gx1)
    torch.testing.assert_close(gw1, gw0)          # one dot product vs torch's two-pass sum
    with pytest.raises(ValueError, match="one shared slope"):
        scalar_prelu(x, torch.ones(4, 1, 1))


@pytest.mark.parametrize("set_name", list(SETS))
def test_lazy_evaluation_equals_the_literal_chain(set_name):
    torch.manual_seed(0)
    channels, _ = SETS[set_name]
    lazy = FusionChain(set_name, channels, out_channels=5, mid_channels=8, lazy=True)
    with torch.no_grad():                      # move the affine norms away from their init
        for p in lazy.parameters():
            p.add_(0.1 * torch.randn_like(p))
    literal = copy.deepcopy(lazy)
    literal.lazy = False
    taps = _taps(set_name, seed=1, requires_grad=True)
    out_lazy, out_literal = lazy(taps), literal(taps)
    torch.testing.assert_close(out_lazy, out_literal, rtol=1e-4, atol=1e-5)
    g = torch.randn_like(out_lazy)
    grads_lazy = torch.autograd.grad(out_lazy, taps + list(lazy.parameters()), g)
    grads_literal = torch.autograd.grad(out_literal, taps + list(literal.parameters()), g)
    for a, b in zip(grads_lazy, grads_literal):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-5)


def test_detached_inputs_and_gradients_to_the_chain():
    torch.manual_seed(0)
    taps = _taps("encoder", requires_grad=True)
    chain = FusionChain("encoder", [C, C, C], out_channels=4, mid_channels=8, detach_inputs=True)
    chain(taps).square().mean().backward()
    assert all(t.grad is None for t in taps)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in chain.parameters())
    free = FusionChain("encoder", [C, C, C], out_channels=4, mid_channels=8)
    free(taps).square().mean().backward()
    assert all(t.grad is not None and t.grad.abs().sum() > 0 for t in taps)


def test_silent_taps_are_finite():
    chain = FusionChain("decoder", [C, C, 2], out_channels=4, mid_channels=8)
    zeros = [torch.zeros_like(t).requires_grad_() for t in _taps("decoder")]
    out = chain(zeros)
    assert torch.isfinite(out).all()
    out.square().mean().backward()
    assert all(torch.isfinite(p.grad).all() for p in chain.parameters() if p.grad is not None)


def test_wrong_taps_raise():
    chain = FusionChain("encoder", [C, C, C], out_channels=4, mid_channels=8)
    with pytest.raises(ValueError, match="expects 3 taps"):
        chain(_taps("encoder")[:2])
    bad = _taps("encoder")
    bad[1] = bad[1][:, :2]
    with pytest.raises(ValueError, match="tap 1"):
        chain(bad)


def test_checkpointed_chain_gives_the_same_numbers_and_gradients():
    torch.manual_seed(0)
    plain = FusionChain("decoder", [C, C, 2], out_channels=4, mid_channels=8)
    saving = copy.deepcopy(plain)
    saving.checkpoint = True
    taps = _taps("decoder", seed=2, requires_grad=True)
    out_plain, out_saving = plain(taps), saving(taps)
    torch.testing.assert_close(out_saving, out_plain)
    g = torch.randn_like(out_plain)
    for a, b in zip(torch.autograd.grad(out_saving, taps + list(saving.parameters()), g),
                    torch.autograd.grad(out_plain, taps + list(plain.parameters()), g)):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("slope", [0.25, -0.3])
def test_fused_step_gradients_are_exact(slope):
    """The fused step's hand-written backward pass equals finite differences (float64),
    with and without a residual, for a positive and a negative PReLU slope."""
    g = torch.Generator().manual_seed(2)
    batch, channels, mid, positions = 2, 3, 4, 5

    def rand(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float64).requires_grad_()

    f, weight, shift, residual = (rand(batch, positions, channels), rand(batch, mid, channels),
                                  rand(batch, mid), rand(batch, positions, mid))
    slope = torch.tensor([slope], dtype=torch.float64, requires_grad=True)
    gate = torch.nn.Conv2d(2 * mid, 2, kernel_size=1).double()

    def gated(f, weight, shift, slope, residual, gate_weight, gate_bias):
        conv = torch.nn.Conv2d(2 * mid, 2, kernel_size=1).double()
        del conv.weight, conv.bias
        conv.weight, conv.bias = gate_weight, gate_bias
        return fused_fusion_step(f, weight, shift, slope, residual, conv)

    assert torch.autograd.gradcheck(gated, (f, weight, shift, slope, residual, gate.weight,
                                            gate.bias))
    assert torch.autograd.gradcheck(fused_fusion_step, (f, weight, shift, slope))


def test_fused_step_equals_the_module_ops():
    """One fused step equals φ (1x1 conv, InstanceNorm, PReLU), the gate and the residual sum
    computed with the block's own modules."""
    torch.manual_seed(0)
    block = FusionBlock(3, mid_channels=4, fuse=True)
    with torch.no_grad():
        for p in block.parameters():
            p.add_(0.1 * torch.randn_like(p))
    f = torch.randn(B, 3, T, 10)
    residual = torch.randn(B, 4, T, 10)
    rows = residual.permute(0, 2, 3, 1).reshape(B, -1, 4)
    got = block.fused_step(f, rows, None)                     # position rows [B, T·F, mid]
    torch.testing.assert_close(got, block(f, residual).permute(0, 2, 3, 1).reshape(B, -1, 4),
                               rtol=1e-5, atol=1e-6)
