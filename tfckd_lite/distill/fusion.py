"""Residual fusion chains: one representative feature map per correlated set (spec §5).

Notebook: 05_distillation.ipynb

Each set (encoder, dual path, decoder) of each network is fused into one map ``O`` by a chain
of attention-based fusion blocks in the style of ReviewKD's ABF. Members are processed in a
fixed order so that every chain ends at F = 64 (a common size for the inter-set stage):

* encoder  E1 -> E2 -> E3      (F 129 -> 64 -> 64)
* dual path M1 -> ... -> MN     (F 64 throughout)
* decoder  D3 -> D2 -> D1      (F 257 -> 129 -> 64; D3 is the 2-channel mask)

For member k (in processing order) with input ``f_k``::

    X_k = φ_k(f_k)                    φ = Conv1x1(C_in -> mid, no bias), IN(affine), PReLU
    R_1 = X_1
    R̃   = nearest-resize(R_{k-1}) to the (T, F) of f_k
    [a, b] = sigmoid(Conv1x1(2·mid -> 2)([X_k ; R̃]))
    R_k = a ⊙ X_k + b ⊙ R̃
    O   = ψ(R_n)                      ψ = Conv3x3(mid -> C_out, padding 1, no bias), IN, PReLU

``mid`` is 128 in the spec on both sides; ``C_out`` is the network's width. Both networks have
their own (trainable) chains; teacher inputs are detached. Choices where the spec is silent:
PReLU with a single parameter (as in ReviewKD's ABF and the released demo), and a single ψ per
chain applied once at the end (the released demo builds a ψ in every block but only the last
one's output is ever used, so the others are dead parameters).

Speed (exact rewrites, not approximations): nearest resizing only *selects* positions, and
every operation before ψ is pointwise in (t, f) except the InstanceNorm statistics. So an early
member is needed only at the bins that survive the later resizes (64 of the 257 mask bins of D3).
``FusionChain(lazy=True)`` (the default) evaluates each member only there, and takes the
InstanceNorm mean and variance of ``y = W f`` (a 1x1 conv without bias) from the mean and
covariance of the input, ``mean_y = W mean_f``, ``var_y = diag(W Σ_f Wᵀ)``, which are exact
over the full map. The normalisation is then an affine map per utterance that folds into the
1x1 conv, ``φ(f) = PReLU(A_b f + c_b)`` with ``A_b = diag(γ / sqrt(var_y + ε)) W``, and a whole
fusion step, projection, gate and residual sum, runs as one autograd function
(``fused_fusion_step``) that keeps only its narrow input ``f`` and the residual for the
backward pass and recomputes the 128-channel ``X_k`` there: the wide intermediate maps are
neither stored nor re-read, which is most of the chains' memory and time. The result equals the
literal computation (``lazy=False``, kept as the reference and checked against it in the tests)
up to float rounding.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.utils.checkpoint
from torch import nn
from torch.nn import functional as F

#: The three correlated sets of DPDCRN taps, in the order of the inter-set stage.
SET_NAMES = ("encoder", "dual_path", "decoder")

#: Default width of the fusion chains (spec §5).
FUSION_MID_CHANNELS = 128


def processing_order(set_name: str, n_members: int) -> list[int]:
    """Indices of a set's taps in fusion order: encoder/dual path forward, decoder reversed.

    Notebook: 05_distillation.ipynb

    >>> processing_order("decoder", 3)     # D3 -> D2 -> D1
    [2, 1, 0]
    """
    if set_name not in SET_NAMES:
        raise KeyError(f"unknown set {set_name!r}; choose one of {SET_NAMES}")
    if n_members < 1:
        raise ValueError(f"a set needs at least one member, got {n_members}")
    order = list(range(n_members))
    return order[::-1] if set_name == "decoder" else order


class _ScalarPReLUFunction(torch.autograd.Function):
    """``F.prelu`` with one shared slope, with a faster backward pass on the CPU.

    The same numbers as ``F.prelu`` (forward identical; gradients equal up to float summation
    order). Why: torch's CPU PReLU backward first writes a per-element slope gradient the size
    of the input and reduces it afterwards; on the chains' 128-channel maps that was about 15 %
    of a full TFCKD step. Here the slope gradient is one dot product, ``Σ min(x, 0) · g``, and
    the input gradient is leaky ReLU's vectorised backward kernel with the slope's current
    value: about 8 x faster on a [8, 128, 63, 64] map (36 -> 4.4 ms, one thread).
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        return F.prelu(x, weight)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor):
        x, weight = ctx.saved_tensors
        grad_x = grad_weight = None
        if ctx.needs_input_grad[0]:
            # leaky ReLU's backward kernel with the current slope: x > 0 ? g : slope · g
            grad_x = torch.ops.aten.leaky_relu_backward(grad, x, weight.item(), False)
        if ctx.needs_input_grad[1]:
            grad_weight = torch.dot(x.clamp(max=0).reshape(-1),
                                    grad.reshape(-1)).reshape(weight.shape)
        return grad_x, grad_weight


def scalar_prelu(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``F.prelu(x, weight)`` for a single shared slope (``weight.numel() == 1``)."""
    if weight.numel() != 1:
        raise ValueError(f"scalar_prelu takes one shared slope, got {weight.numel()}")
    return _ScalarPReLUFunction.apply(x, weight)


class _ScalarPReLU(nn.PReLU):
    """``nn.PReLU()`` (one slope, same parameter and state-dict key) using ``scalar_prelu``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return scalar_prelu(x, self.weight)


def _phi(in_channels: int, out_channels: int, kernel: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel, padding=kernel // 2, bias=False),
        nn.InstanceNorm2d(out_channels, affine=True),
        _ScalarPReLU(),
    )


class _FusedStepFunction(torch.autograd.Function):
    """One lazy fusion step ``R = a ⊙ X + b ⊙ R_prev`` with ``X = PReLU(A f + c)`` on position
    rows (see ``fused_fusion_step``). It keeps only narrow or already-kept tensors for the
    backward pass, recomputes ``X`` there, and works in place where it can: every wide
    (``[B, L, M]``) buffer it allocates is a fresh page-faulted block on the CPU, which costs
    more than the arithmetic on it."""

    @staticmethod
    def forward(ctx, f, weight, shift, slope, residual, gate_x, gate_r, gate_bias):
        # f [B, L, C]; weight [B, M, C]; shift [B, M]; residual [B, L, M] or None
        x = torch.baddbmm(shift.unsqueeze(1), f, weight.transpose(1, 2))
        F.leaky_relu_(x, slope.item())           # PReLU with its one slope, in place
        if residual is None:
            ctx.save_for_backward(f, weight, shift, slope)
            return x
        mid = x.shape[-1]
        rows, residual_rows = x.view(-1, mid), residual.reshape(-1, mid)
        logits = torch.mm(rows, gate_x.t()) + torch.addmm(gate_bias, residual_rows, gate_r.t())
        gates = torch.sigmoid(logits)                                         # [B·L, 2]
        rows.mul_(gates[:, :1]).addcmul_(residual_rows, gates[:, 1:])         # x becomes R
        ctx.save_for_backward(f, weight, shift, slope, residual, gate_x, gate_r, gates)
        return x

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        saved = ctx.saved_tensors                 # unpacked once (torch.utils.checkpoint)
        f, weight, shift, slope = saved[:4]
        alpha = slope.item()
        z = torch.baddbmm(shift.unsqueeze(1), f, weight.transpose(1, 2))     # [B, L, M]
        grads = [None] * 8
        if len(saved) > 4:                        # a gated step
            residual, gate_x, gate_r, gates = saved[4:]
            mid = z.shape[-1]
            grad_rows = grad.reshape(-1, mid)
            x_rows = F.leaky_relu(z, alpha).view(-1, mid)
            residual_rows = residual.reshape(-1, mid)
            a, b = gates[:, :1], gates[:, 1:]
            # d/d(logits) of Σ grad ⊙ (a X + b R): per position <grad, X> and <grad, R>,
            # as batched 1 x M by M x 1 products (no wide temporary)
            column = grad_rows.unsqueeze(1)
            grad_logits = torch.cat((torch.bmm(column, x_rows.unsqueeze(2)).view(-1, 1),
                                     torch.bmm(column, residual_rows.unsqueeze(2)).view(-1, 1)),
                                    dim=1)
            grad_logits = grad_logits * gates * (1.0 - gates)                 # [B·L, 2]
            if ctx.needs_input_grad[4]:
                grads[4] = (grad_rows * b).addmm_(grad_logits, gate_r).view_as(residual)
            if ctx.needs_input_grad[5]:
                grads[5] = torch.mm(grad_logits.t(), x_rows)
            if ctx.needs_input_grad[6]:
                grads[6] = torch.mm(grad_logits.t(), residual_rows)
            if ctx.needs_input_grad[7]:
                grads[7] = grad_logits.sum(0)
            # X is no longer needed: its buffer takes grad_x = a ⊙ grad + (d logits) G_x
            grad_x = torch.mul(grad_rows, a, out=x_rows).addmm_(grad_logits, gate_x).view_as(z)
            del x_rows
        else:
            grad_x = grad
        # PReLU backward with the one shared slope (as _ScalarPReLUFunction)
        grad_z = torch.ops.aten.leaky_relu_backward(grad_x, z, alpha, False)
        if ctx.needs_input_grad[3]:
            grads[3] = torch.dot(z.clamp_(max=0).reshape(-1),
                                 grad_x.reshape(-1)).reshape(slope.shape)
        del z, grad_x
        if ctx.needs_input_grad[0]:
            grads[0] = torch.bmm(grad_z, weight)
        if ctx.needs_input_grad[1]:
            grads[1] = torch.bmm(f.transpose(1, 2), grad_z).transpose(1, 2)
        if ctx.needs_input_grad[2]:
            grads[2] = grad_z.sum(1)
        return tuple(grads)


def fused_fusion_step(f: torch.Tensor, weight: torch.Tensor, shift: torch.Tensor,
                      slope: torch.Tensor, residual: torch.Tensor | None = None,
                      gate: nn.Conv2d | None = None) -> torch.Tensor:
    """``R = a ⊙ X + b ⊙ R_prev``, ``X = PReLU(A_b f + c_b)``, in one memory-light autograd step.

    Notebook: 05_distillation.ipynb

    Maps are *position rows*, channels last: ``f``: ``[B, L, C]`` (a member at its selected
    positions, ``L = T·P``); ``weight`` ``A_b``: ``[B, M, C]`` and ``shift`` ``c_b``: ``[B, M]``,
    the 1x1 conv with the InstanceNorm folded in (``FusionBlock.folded_projection``); ``slope``:
    the PReLU's one parameter; ``residual``: ``[B, L, M]``, aligned with ``f`` (``None`` for the
    first member, which returns ``X``); ``gate``: the block's ``Conv2d(2M -> 2, 1x1)``,
    ``[a, b] = sigmoid(gate([X ; R]))``. Returns ``[B, L, M]``. The same numbers as the module
    ops up to float rounding. Why rows: the gate and the per-position sums become plain matrix
    products over contiguous channels, and ψ's 3x3 conv reads the result as a channels-last map,
    whose backward pass is faster on the CPU. The backward pass recomputes ``X`` from ``f``
    (a C -> M matmul) instead of storing the M-channel maps.
    """
    if slope.numel() != 1:
        raise ValueError(f"fused_fusion_step takes one shared PReLU slope, got {slope.numel()}")
    if residual is None:
        return _FusedStepFunction.apply(f, weight, shift, slope, None, None, None, None)
    if gate is None:
        raise ValueError("a fusing step needs its gate")
    mid = weight.shape[1]
    gate_weight = gate.weight.view(2, 2 * mid)
    return _FusedStepFunction.apply(f, weight, shift, slope, residual, gate_weight[:, :mid],
                                    gate_weight[:, mid:], gate.bias)


class FusionBlock(nn.Module):
    """One ABF-style step: project a member to ``mid`` channels and gate it with the residual.

    Notebook: 05_distillation.ipynb

    ``forward(f, residual=None)`` returns ``R_k`` ``[B, mid, T, F_k]``. The first block of a
    chain (``fuse=False``) has no gate and returns ``φ(f)``.
    """

    def __init__(self, in_channels: int, mid_channels: int = FUSION_MID_CHANNELS,
                 fuse: bool = True):
        super().__init__()
        self.project = _phi(in_channels, mid_channels, 1)
        self.gate = nn.Conv2d(2 * mid_channels, 2, kernel_size=1) if fuse else None

    def folded_projection(self, f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """φ's conv and InstanceNorm as one affine map per utterance: ``(A [B, M, C], c [B, M])``
        with ``IN(W f) = A_b f + c_b`` (exact, see module doc).

        The InstanceNorm statistics of ``y = W f`` over the *whole* (T, F) map come from the
        input's per-utterance mean and covariance, so no M-channel map is needed for them.
        """
        conv, norm, _ = self.project
        batch, channels, frames, n_bins = f.shape
        flat = f.reshape(batch, channels, frames * n_bins)
        mean = flat.mean(dim=-1)                                               # [B, C_in]
        centred = flat - mean.unsqueeze(-1)
        cov = centred @ centred.transpose(1, 2) / (frames * n_bins)            # [B, C_in, C_in]
        weight = conv.weight[:, :, 0, 0]                                       # [mid, C_in]
        mean_y = mean @ weight.t()                                             # [B, mid]
        var_y = torch.einsum("mc,bcd,md->bm", weight, cov, weight).clamp_min(0.0)
        scale = torch.rsqrt(var_y + norm.eps)
        if norm.affine:
            shift = norm.bias - mean_y * scale * norm.weight
            scale = scale * norm.weight
        else:
            shift = -mean_y * scale
        return scale.unsqueeze(-1) * weight, shift

    def fused_step(self, f: torch.Tensor, residual: torch.Tensor | None,
                   bins: torch.Tensor | None) -> torch.Tensor:
        """``R_k`` as position rows ``[B, T·P, mid]`` at the frequency positions ``bins``
        (``None``: all of them) through ``fused_fusion_step``; ``residual`` (rows) must already
        be aligned with them."""
        if (self.gate is None) != (residual is None):
            raise ValueError("the first block of a fusion chain takes no residual, a fusing "
                             "block needs the residual of the previous member")
        weight, shift = self.folded_projection(f)
        return fused_fusion_step(_position_rows(f, bins), weight, shift, self.project[2].weight,
                                 residual, self.gate)

    def project_at(self, f: torch.Tensor, bins: torch.Tensor) -> torch.Tensor:
        """``φ(f)[..., bins]`` without computing φ on the other bins (exact, see module doc)."""
        weight, shift = self.folded_projection(f)
        rows = fused_fusion_step(_position_rows(f, bins), weight, shift, self.project[2].weight)
        return _rows_to_map(rows, f.shape[-2])

    def forward(self, f: torch.Tensor, residual: torch.Tensor | None = None,
                bins: torch.Tensor | None = None) -> torch.Tensor:
        """``R_k``; with ``bins``, only at those frequency positions, and ``residual`` must then
        already be aligned with them (no resizing is done)."""
        x = self.project(f) if bins is None else self.project_at(f, bins)
        if self.gate is None:
            if residual is not None:
                raise ValueError("the first block of a fusion chain takes no residual")
            return x
        if residual is None:
            raise ValueError("a fusing block needs the residual of the previous member")
        if residual.shape[-2:] != x.shape[-2:]:
            residual = F.interpolate(residual, size=x.shape[-2:], mode="nearest")
        # Conv1x1(2·mid -> 2) on [X ; R̃], computed as W_x X + W_r R̃ + bias: the same numbers
        # without materialising (and saving for backward) the 2·mid-channel concatenation.
        mid = x.shape[1]
        logits = F.conv2d(x, self.gate.weight[:, :mid]) + \
            F.conv2d(residual, self.gate.weight[:, mid:], self.gate.bias)
        a, b = torch.sigmoid(logits).chunk(2, dim=1)
        return a * x + b * residual


class FusionChain(nn.Module):
    """Fuse the taps of one set into a representative map ``O [B, C_out, T, F_last]``.

    Notebook: 05_distillation.ipynb

    ``FusionChain(set_name, in_channels, out_channels, mid_channels=128, detach_inputs=False)``:
    ``in_channels`` lists the taps' channels in *network* order (e.g. ``[C, C, 2]`` for the
    decoder); the chain applies ``processing_order(set_name, n)`` itself. ``forward(taps)``
    takes the taps in network order; ``forward(taps, return_residuals=True)`` also returns the
    list of ``R_k`` in processing order (for teaching and tests; with ``lazy=True`` each early
    ``R_k`` holds only the bins that the later resizes keep, in their order). ``detach_inputs=True``
    is used for the teacher's chain: the teacher is a fixed target, only the chain itself learns.
    ``lazy`` selects the exact fast evaluation described in the module docstring.
    ``checkpoint=True`` trades time for memory: the chain keeps only its inputs for the backward
    pass and recomputes its activations there (``torch.utils.checkpoint``); same numbers.
    """

    def __init__(self, set_name: str, in_channels: Sequence[int], out_channels: int,
                 mid_channels: int = FUSION_MID_CHANNELS, detach_inputs: bool = False,
                 lazy: bool = True, checkpoint: bool = False):
        super().__init__()
        self.lazy = bool(lazy)
        self.checkpoint = bool(checkpoint)
        self.set_name = set_name
        self.in_channels = list(in_channels)
        self.order = processing_order(set_name, len(self.in_channels))
        self.detach_inputs = detach_inputs
        self.blocks = nn.ModuleList(
            FusionBlock(self.in_channels[index], mid_channels, fuse=step > 0)
            for step, index in enumerate(self.order))
        self.output = _phi(mid_channels, out_channels, 3)

    def forward(self, taps: Sequence[torch.Tensor], return_residuals: bool = False):
        if len(taps) != len(self.in_channels):
            raise ValueError(f"{self.set_name} fusion chain expects {len(self.in_channels)} taps, "
                             f"got {len(taps)}")
        for index, tap in enumerate(taps):
            if tap.dim() != 4 or tap.shape[1] != self.in_channels[index]:
                raise ValueError(f"{self.set_name} tap {index} must be [B, "
                                 f"{self.in_channels[index]}, T, F], got {tuple(tap.shape)}")
        ordered = [taps[i].detach() if self.detach_inputs else taps[i] for i in self.order]
        bins = self._needed_bins(ordered) if self.lazy else [None] * len(ordered)
        if self.checkpoint and torch.is_grad_enabled() and not return_residuals:
            return torch.utils.checkpoint.checkpoint(self._run, ordered, bins, False,
                                                     use_reentrant=False)
        return self._run(ordered, bins, return_residuals)

    def _run(self, ordered, bins, return_residuals):
        residual = None
        residuals = []
        # fused steps when every member is evaluated on the same (T, F) grid (the lazy path)
        sizes = {(tap.shape[-2], tap.shape[-1] if needed is None else len(needed))
                 for tap, needed in zip(ordered, bins)}
        fused = self.lazy and len(sizes) == 1
        for block, tap, needed in zip(self.blocks, ordered, bins):
            residual = (block.fused_step(tap, residual, needed) if fused
                        else block(tap, residual, needed))
            residuals.append(residual)
        if fused:                                 # rows -> [B, mid, T, P] (channels last)
            residuals = [_rows_to_map(r, ordered[0].shape[-2]) for r in residuals]
            residual = residuals[-1]
        # ψ on a channels-last map returns one too; O leaves in the usual (contiguous) layout
        out = self.output(residual).contiguous()
        return (out, residuals) if return_residuals else out

    @staticmethod
    def _needed_bins(ordered: Sequence[torch.Tensor]) -> list[torch.Tensor | None]:
        """Per member, the bins that survive all later nearest resizes, aligned with the last
        member's bins (``None``: the full map, as for the last member)."""
        if len({tap.shape[-2] for tap in ordered}) > 1:
            return [None] * len(ordered)        # frame counts differ: use the literal path
        needed: list[torch.Tensor | None] = [None]
        current = None                           # positions in member k, None = all of them
        for k in range(len(ordered) - 1, 0, -1):
            src = _nearest_bins(ordered[k - 1].shape[-1], ordered[k].shape[-1],
                                ordered[k].device)
            current = src if current is None else src[current]
            needed.append(current)
        needed.reverse()
        # a member whose needed bins are all of its bins in order is computed densely
        def is_all(idx, n_bins):
            return len(idx) == n_bins and bool(
                (idx == torch.arange(n_bins, device=idx.device)).all())
        return [None if idx is None or is_all(idx, tap.shape[-1]) else idx
                for idx, tap in zip(needed, ordered)]


def _position_rows(f: torch.Tensor, bins: torch.Tensor | None) -> torch.Tensor:
    """``[B, C, T, F]`` at ``bins`` (``None``: all) -> position rows ``[B, T·P, C]``."""
    selected = f if bins is None else f.index_select(-1, bins)
    batch, channels = selected.shape[:2]
    return selected.permute(0, 2, 3, 1).reshape(batch, -1, channels)


def _rows_to_map(rows: torch.Tensor, frames: int) -> torch.Tensor:
    """Position rows ``[B, T·P, M]`` -> ``[B, M, T, P]``, a channels-last view (no copy)."""
    batch, positions, channels = rows.shape
    return rows.view(batch, frames, positions // frames, channels).permute(0, 3, 1, 2)


def _nearest_bins(n_in: int, n_out: int, device=None) -> torch.Tensor:
    """Source bin of each of ``n_out`` output bins under ``F.interpolate(mode="nearest")``."""
    ramp = torch.arange(n_in, dtype=torch.float32, device=device).view(1, 1, 1, n_in)
    return F.interpolate(ramp, size=(1, n_out), mode="nearest").view(n_out).long()
