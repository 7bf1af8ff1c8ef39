"""Looking inside a DPDCRN: which input frames can influence an output frame.

Notebook: 02_dpdcrn.ipynb
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

import torch
from torch import nn

_NORMS = (nn.InstanceNorm2d, nn.GroupNorm, nn.LayerNorm)


@contextmanager
def norms_as_identity(module: nn.Module, kinds: tuple[type, ...] = (nn.InstanceNorm2d,)
                      ) -> Iterator[nn.Module]:
    """Temporarily replace normalisation layers by identities, to see what the kernels alone reach.

    Notebook: 02_dpdcrn.ipynb

    InstanceNorm2d pools its statistics over the whole utterance, so through the norms every
    output frame depends a little on every input frame; swapping them out isolates the reach of
    the convolution kernels (and recurrences). The original layers are restored on exit.
    """
    swapped = []
    for parent in module.modules():
        for name, child in list(parent.named_children()):
            if isinstance(child, kinds):
                swapped.append((parent, name, child))
                setattr(parent, name, nn.Identity())
    try:
        yield module
    finally:
        for parent, name, child in swapped:
            setattr(parent, name, child)


def temporal_influence(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                       frame: int, time_dim: int = 2) -> torch.Tensor:
    """``|d fn(x)[..., frame, ...] / d x|`` summed per input frame, scaled so the maximum is 1.

    Notebook: 02_dpdcrn.ipynb

    ``x`` is ``[B, C, T, F]`` (``time_dim=2``, the default) or e.g. a sequence batch ``[B, T, d]``
    (``time_dim=1``); ``fn`` must keep the time axis where it is. Returns a ``[T]`` tensor: the
    gradient-based receptive field of output frame ``frame``. Zero entries are frames that cannot
    influence that output at all (e.g. the future, for a causal layer).
    """
    if not 0 <= frame < x.shape[time_dim]:
        raise ValueError(f"frame {frame} is outside the {x.shape[time_dim]} frames of the input")
    x = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        fn(x).select(time_dim, frame).abs().sum().backward()
    others = [d for d in range(x.dim()) if d != time_dim % x.dim()]
    influence = x.grad.abs().sum(dim=others)
    peak = influence.max()
    return influence / peak if peak > 0 else influence
