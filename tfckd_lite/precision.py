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

What stays in fp32, and why (measured by ``bench/bench_precision.py``, which prints each part's
error in bf16 against fp64 next to the step-time ratio; numbers in the README):

- **STFT / iSTFT**: the FFT has no bf16 kernel (pocketfft, and cuFFT takes fp16 only for
  power-of-two sizes), and the spectra are the loss targets: the engine computes them before
  entering autocast.
- **The polar mask** (``apply_polar_mask``): it takes magnitudes and unit phasors of the mask
  and of the noisy spectrum; in bf16 (8 bits of mantissa) a phasor's angle is off by up to
  ~0.4 degrees and ``|Y|`` by 0.4 %, an error on every bin of the output the losses then
  measure. The network's mask is cast to fp32 and the mask applied with autocast off
  (``DPDCRN.forward``).
- **Relations, the calibration's softmaxes, the fusion chains, adaptors and every loss**: the
  relations are Grams of cosine-normalised features (sums over hundreds of products, divided by
  norms), the calibration's attention is a softmax over logits of such Grams, and the KD
  divergences are differences of near-equal softmaxes (their logs): each is where low precision
  hurts most (a bf16 softmax of 63 frames has relative errors of a few percent, and the
  divergence between two such softmaxes is of that size). They are all inside the distiller's
  KD computation, so the island is drawn at one place for every method, present and future:
  ``Distiller.forward`` casts the networks' outputs and taps to fp32 (``Distiller.run_models``)
  and computes the SE loss and ``kd_losses`` with autocast off (:func:`full_precision`).
  The cost is that the fusion chains' and adaptors' convolutions run in fp32 too (measured in
  the bench; the networks themselves, where most of the time goes, run in low precision).

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
