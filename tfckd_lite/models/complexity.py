"""Model complexity: parameters per block (the spec's table) and FLOPs per second of audio.

Notebook: 02_dpdcrn.ipynb
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from ..stft import N_BINS, segment_frames

# Rows of the parameter table in shared/spec/DPDCRN.md, each with the parameter-name prefixes
# it covers. The order is the order of the spec's table.
PARAMETER_ROWS = {
    "E1": ("encoder.E1.",),
    "E2": ("encoder.E2.",),
    "E3 dense block": ("encoder.E3.",),
    "dual-path input conv + PReLU": ("dual_path.input.",),
    "intra-frame transformer blocks": ("dual_path.intra.",),
    "inter-frame transformer blocks": ("dual_path.inter.",),
    "GroupNorms (intra)": ("dual_path.intra_norm.",),
    "GroupNorms (inter)": ("dual_path.inter_norm.",),
    "k1, k2": ("dual_path.k1", "dual_path.k2"),
    "dual-path out (PReLU + conv)": ("dual_path.output.",),
    "D1 dense block": ("decoder.D1.",),
    "D2": ("decoder.D2.",),
    "D3": ("decoder.D3.",),
}


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters of any module.

    Notebook: 02_dpdcrn.ipynb
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def parameter_table(model: nn.Module) -> dict[str, int]:
    """Parameters of a DPDCRN per block, in the rows of the specification, plus ``total``.

    Notebook: 02_dpdcrn.ipynb

    Raises if a parameter falls in no row, so the table always adds up to the model.
    """
    table = {row: 0 for row in PARAMETER_ROWS}
    for name, param in model.named_parameters():
        row = next((r for r, prefixes in PARAMETER_ROWS.items()
                    if any(name.startswith(p) for p in prefixes)), None)
        if row is None:
            raise ValueError(f"parameter {name!r} belongs to no row of the DPDCRN table")
        table[row] += param.numel()
    table["total"] = sum(table.values())
    return table


def count_flops(model: nn.Module, seconds: float = 1.0, batch: int = 1) -> int:
    """FLOPs of one forward pass on ``seconds`` of audio, by ``torch.utils.flop_counter``.

    Notebook: 02_dpdcrn.ipynb

    One second at 16 kHz is 63 frames. The counter counts a multiply-add as 2 FLOPs and covers
    convolutions, matrix products (linear, attention, GRU gates) and attention; element-wise work
    (norms, activations, the mask) is not counted, as usual. The pass computes every dual-path
    tap, as the released model does, and runs with autograd enabled: under ``no_grad`` PyTorch's
    fused inference path for ``nn.MultiheadAttention`` is invisible to the counter and the
    attention projections would go uncounted (about 1.6 GFLOP of the paper teacher's 26.5), and
    attention itself runs on the "math" backend because the counter has no formula for the fused
    CPU kernel (another 0.5 GFLOP).
    """
    in_planes = 2 * getattr(getattr(model, "config", None), "in_channels", 1)
    frames = segment_frames(seconds)
    param = next(model.parameters())
    # requires_grad on the input keeps the fused MHA path off even for a frozen model (a
    # distiller's teacher), whose parameters do not require grad
    spec = torch.randn(batch, in_planes, frames, N_BINS, device=param.device, dtype=param.dtype,
                       requires_grad=True)
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad(), sdpa_kernel(SDPBackend.MATH), \
                FlopCounterMode(display=False) as counter:
            model(spec, return_features=True)
    finally:
        model.train(was_training)
    return int(counter.get_total_flops())
