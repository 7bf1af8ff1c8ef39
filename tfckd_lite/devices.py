"""Which device a run uses: ``--device auto|cpu|cuda|cuda:N``, checked before any work starts.

Notebook: 03_training.ipynb

``auto`` takes the GPU when PyTorch sees one and the CPU otherwise; ``cuda`` is the current
GPU (``cuda:0`` unless ``torch.cuda.set_device`` chose another); ``cuda:N`` is GPU ``N``.
Asking for CUDA where there is none is an error that says why (a CPU-only PyTorch build, or
no GPU visible) instead of PyTorch's own message at the first tensor moved, possibly minutes
into a run. Under ``torchrun`` each process takes the GPU of its ``LOCAL_RANK``
(:mod:`tfckd_lite.distributed`).

Everything a run creates lives on this one device: the batches are moved there as they arrive,
the STFT window is a buffer of the model (it moves with it), the calibration blocks and fusion
chains are modules of the distiller (moved with it), and the training state records the CUDA
generator's state next to the CPU one only when the run is on a GPU. Files are always written
from CPU copies, so a checkpoint written on a GPU loads on a CPU and resumes there (the CUDA
generator's state is then left aside: the CPU has none to restore).
"""

from __future__ import annotations

import re

import torch

#: the spellings --device accepts
DEVICE_CHOICES = ("auto", "cpu", "cuda", "cuda:N")


class DeviceError(ValueError):
    """A device that cannot be used here (CUDA asked for and absent, an unknown name, ...)."""


def _cuda_absent_reason() -> str:
    if torch.version.cuda is None:
        return f"this PyTorch build ({torch.__version__}) has no CUDA support"
    return "PyTorch sees no CUDA GPU (check the driver and CUDA_VISIBLE_DEVICES)"


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """The ``torch.device`` of a ``--device`` value, refused with :class:`DeviceError` when
    unusable.

    Notebook: 03_training.ipynb

    ``"auto"`` -> ``cuda`` when a GPU is visible, else ``cpu``; ``"cpu"``; ``"cuda"``;
    ``"cuda:N"`` (``N`` below the number of visible GPUs). A ``torch.device`` is checked the
    same way.
    """
    text = str(name).strip().lower()
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if text == "cpu":
        return torch.device("cpu")
    match = re.fullmatch(r"cuda(?::(\d+))?", text)
    if match is None:
        raise DeviceError(f"unknown device {name!r}; choose one of {', '.join(DEVICE_CHOICES)}")
    if not torch.cuda.is_available():
        raise DeviceError(f"device {name!r} asked for, but {_cuda_absent_reason()}; use "
                          "--device cpu (or auto, which falls back to the CPU)")
    if match.group(1) is not None:
        index, count = int(match.group(1)), torch.cuda.device_count()
        if index >= count:
            raise DeviceError(f"device {name!r} asked for, but PyTorch sees {count} GPU(s) "
                              f"(cuda:0 to cuda:{count - 1})")
        return torch.device("cuda", index)
    return torch.device("cuda", torch.cuda.current_device())
