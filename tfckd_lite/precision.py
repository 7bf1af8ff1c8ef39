"""Mixed precision: ``--precision fp32|bf16|fp16`` with autocast, fp32 islands and a gradient
scaler for fp16.

Notebook: 03_training.ipynb

``fp32`` (the default) changes nothing: no autocast, no scaler, every number as before (the
resume tests compare weights bit for bit). ``bf16`` and ``fp16`` run the training forward
under ``torch.autocast`` on the run's device type (CPU autocast exists too, so both are tested
on the CPU): convolutions, linear layers, attention and GRU matmuls run in the low precision,
the parameters, their gradients and the optimiser stay fp32. ``fp16`` adds a gradient scaler
(its 5 exponent bits underflow small gradients; bf16 has fp32's range and needs none); the
scaler's state is part of the training state, so an fp16 run resumes exactly too.

What stays in fp32, and why (``bench/bench_precision.py`` prints each part's bf16 error against
fp64, and the step times; the figures below are from its run on the 2-core CPU machine, lite
networks, batch 4 x 1 s):

- **STFT / iSTFT**: the CPU has no bf16 FFT at all (MKL: "doesn't support tensors of type:
  BFloat16"), and the spectra are the network's input and the losses' targets: the engine
  computes them in fp32 before entering autocast.
- **The polar mask** (``apply_polar_mask``): magnitudes and unit phasors of the mask and of the
  noisy spectrum; in bf16 (8 bits of mantissa) its output is off by 0.4 % (relative norm) and
  the phase it adds by up to 0.6 degrees, on every bin the losses then measure. The mask is
  cast to fp32 and applied with autocast off (``DPDCRN.forward``); it is cheap.
- **Relations, the calibration's softmaxes, fusion chains, adaptors and every loss**: a
  relation in bf16 is only 0.3 % off, but the KD terms are divergences between the student's
  and the teacher's relations, small differences of near-equal numbers once the student gets
  close: from relations rounded to bf16, the Jeffreys divergence of a student 10 % off its
  teacher is 17 % wrong, one 1 % off is wrong by a factor of 6 (590 %). The SE loss in bf16
  is 0.1 % off. All of this sits inside the distiller's KD computation, so the island is drawn
  at one place for every method, present and future: ``Distiller.run_models`` returns the
  networks' outputs and taps cast to fp32, and ``Distiller.forward`` computes the SE loss
  and ``kd_losses`` with autocast off (:func:`full_precision`); ``SupervisedTask`` does the
  same for the SE loss. The cost: the fusion chains' and adaptors' convolutions run in fp32
  too (the networks themselves, most of the time, run in low precision).

What it buys: on this CPU (AMD EPYC with AVX512-BF16, one thread, lite networks, batch 4 x 1 s)
nothing: a bf16 step takes 1.27 times the fp32 step for plain training and 1.14 times for
``tfckd`` (the casts cost more than the small matmuls save); without the islands plain
training is no faster (1.23 x, within the noise), and ``tfckd`` does not run at all (the
fusion chains' custom PReLU backward meets a bf16 gradient and an fp32 input). bf16 is there
for GPUs, where the paper-size networks' convolutions and GRUs gain from tensor cores; it is
tested on the CPU for correctness, not speed.

Validation (PESQ/SI-SDR on whole utterances) and the calibration-weight probe run without
autocast: the scores of a bf16 run are those of its fp32 weights.
"""

from __future__ import annotations

import contextlib

import torch

#: --precision values and the autocast dtype of each (None: no autocast)
PRECISIONS: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16,
                                             "fp16": torch.float16}
_AUTOCAST_DEVICES = ("cpu", "cuda")


def check_precision(name: str) -> str:
    """``name`` if it is a known precision, else a ValueError listing them.

    Notebook: 03_training.ipynb
    """
    if name not in PRECISIONS:
        raise ValueError(f"unknown precision {name!r}; choose one of {', '.join(PRECISIONS)}")
    return name


def autocast(device: torch.device, precision: str):
    """The context a training forward runs in: autocast to ``precision`` on ``device``'s type
    (a no-op context for fp32).

    Notebook: 03_training.ipynb
    """
    dtype = PRECISIONS[check_precision(precision)]
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=dtype)


@contextlib.contextmanager
def full_precision():
    """Turn autocast off inside (an fp32 island); nothing at all when it is not on.

    Notebook: 03_training.ipynb

    Ops inside run in their inputs' dtype, so pass them fp32 tensors (:func:`as_fp32`).
    """
    with contextlib.ExitStack() as stack:
        for device_type in _AUTOCAST_DEVICES:
            if torch.is_autocast_enabled(device_type):
                stack.enter_context(torch.autocast(device_type=device_type, enabled=False))
        yield


def as_fp32(value):
    """``value`` with every low-precision floating tensor in it (nested in tuples, lists and
    dicts) cast to fp32; fp32 tensors and anything else are returned as they are (the same
    objects, so an fp32 run is untouched).

    Notebook: 03_training.ipynb
    """
    if isinstance(value, torch.Tensor):
        low = value.is_floating_point() and value.dtype in (torch.bfloat16, torch.float16)
        return value.float() if low else value
    if isinstance(value, dict):
        return {k: as_fp32(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(as_fp32(v) for v in value)
    return value


def grad_scaler(device: torch.device, precision: str) -> torch.amp.GradScaler | None:
    """A gradient scaler for fp16 on ``device``'s type; ``None`` for fp32 and bf16.

    Notebook: 03_training.ipynb
    """
    if check_precision(precision) != "fp16":
        return None
    return torch.amp.GradScaler(torch.device(device).type)
