"""Mixed precision: what each fp32 island protects (bf16 error against fp64) and what bf16 saves
per training step.

Notebook: 03_training.ipynb

Run:  .venv/bin/python bench/bench_precision.py [--batch 4] [--repeats 3] [--device cpu]

Setting: ``lite-student`` (and ``lite-teacher`` for ``tfckd``, 128-channel fusion chains) at a
fixed random initialisation, ``--batch`` utterances of 1 s of a synthetic signal (harmonics
under a syllable-rate envelope, plus noise; the errors depend on the signal's dynamics, not on
it being speech).

Part 1, the error of each part computed in bf16 (its inputs rounded to bf16, then computed in
bf16) against the same computation in fp64, as a relative error (norm of the difference over
the norm of the reference) or, for angles, the largest error in degrees:

- STFT: whether a bf16 FFT exists at all on this device;
- polar mask: ``apply_polar_mask`` (output spectrum, and the phase added by the mask);
- relations: ``layer_relations`` of the student's taps (time and "frequency" relations), and
  the Jeffreys divergence between those relations and ones of taps perturbed by 10 % and 1 %
  (a student close to its teacher, as late in training), from relations rounded to bf16;
- SE loss: ``compressed_spectral_loss``;
- KD terms of ``tfckd``: the distiller run under bf16 autocast *without* its fp32 island
  (networks and KD in bf16) and *with* it (networks in bf16, KD in fp32), each against fp64.

Part 2, one training step (forward under autocast, backward, AdamW) of ``none`` and ``tfckd``
in fp32, in bf16 with the islands, and in bf16 without them (reported as failing where it
does); median of ``--repeats`` after a warm-up, the variants interleaved, printed with the
ratio to fp32. All times come from one run, so the ratios compare like with like even on a
loaded machine; CPUs without native bf16 matmuls (no AVX512-BF16 or
AMX) gain little or lose from bf16, GPUs gain most.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import statistics
import time
from unittest import mock

import torch

from tfckd_lite.devices import resolve_device
from tfckd_lite.distill import build_distiller
from tfckd_lite.distill.losses import jeffreys
from tfckd_lite.distill.relations import layer_relations
from tfckd_lite.losses import compressed_spectral_loss
from tfckd_lite.models import build_model
from tfckd_lite.models.dpdcrn import apply_polar_mask
from tfckd_lite.precision import autocast
from tfckd_lite.stft import SAMPLE_RATE, num_frames


def synthetic_batch(batch: int, seconds: float, device) -> tuple[torch.Tensor, torch.Tensor]:
    """(noisy, clean) waveforms: harmonic tones under a 4 Hz envelope, plus white noise."""
    generator = torch.Generator().manual_seed(0)
    t = torch.arange(round(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    f0 = 100 + 150 * torch.rand(batch, 1, generator=generator)
    clean = sum(torch.sin(2 * math.pi * k * f0 * t) / k for k in range(1, 8))
    clean = 0.1 * clean * (0.5 + 0.5 * torch.sin(2 * math.pi * 4 * t)) ** 2
    noisy = clean + 0.03 * torch.randn(clean.shape, generator=generator)
    return noisy.to(device), clean.to(device)


def relative(low: torch.Tensor, ref: torch.Tensor) -> float:
    low, ref = low.detach().double(), ref.detach().double()
    return float((low - ref).norm() / ref.norm().clamp_min(1e-300))


@contextlib.contextmanager
def no_islands():
    """Every fp32 island switched off: autocast reaches the mask, the relations and losses."""
    with contextlib.ExitStack() as stack:
        for module in ("tfckd_lite.models.dpdcrn", "tfckd_lite.distill.distiller",
                       "tfckd_lite.train"):
            stack.enter_context(mock.patch(f"{module}.full_precision", contextlib.nullcontext))
            stack.enter_context(mock.patch(f"{module}.as_fp32", lambda value: value))
        yield


def errors(device, batch: int) -> None:
    torch.manual_seed(0)
    noisy, clean = synthetic_batch(batch, 1.0, device)
    student = build_model("lite-student").to(device).double()
    spec = student.stft(noisy.double())
    print("part 1: bf16 against fp64 (relative error unless stated)")
    try:
        student.stft(noisy.bfloat16())
        print("  STFT                     bf16 FFT available")
    except RuntimeError as error:
        print(f"  STFT                     no bf16 FFT here: {str(error).splitlines()[0][:60]}")

    mask = torch.randn(spec.shape[0], 2, *spec.shape[2:], dtype=torch.float64, device=device)
    full = apply_polar_mask(spec, mask)
    low = apply_polar_mask(spec.bfloat16(), mask.bfloat16())
    angle = lambda s: torch.atan2(s[:, 1], s[:, 0])  # noqa: E731
    turned = torch.remainder(angle(low.double()) - angle(full) + math.pi, 2 * math.pi) - math.pi
    loud = full.norm(dim=1) > 1e-3 * full.norm(dim=1).max()
    print(f"  polar mask output        {relative(low, full):.2e}   "
          f"(phase: up to {math.degrees(turned[loud].abs().max()):.2f} degrees)")

    with torch.no_grad():
        _, taps = student(spec, return_features=True)
    flat = [tap for name in ("encoder", "dual_path", "decoder") for tap in taps[name]]
    ref = layer_relations(flat)
    low = layer_relations([tap.bfloat16() for tap in flat])
    for stream in ("time", "freq"):
        err = max(relative(getattr(a, stream), getattr(b, stream)) for a, b in zip(low, ref))
        print(f"  {stream:<4} relations (worst)   {err:.2e}")
    # late in training the student's relations come close to the teacher's: the divergence is
    # then a small difference of near-equal numbers, where rounding weighs most
    for spread in (0.1, 0.01):
        near = layer_relations([tap * (1 + spread * torch.randn_like(tap)) for tap in flat])
        ref_kd = torch.stack([jeffreys(a.time, b.time).sum() for a, b in zip(ref, near)])
        low_kd = torch.stack([jeffreys(a.time.bfloat16(), b.time.bfloat16()).sum()
                              for a, b in zip(ref, near)])
        print(f"  time divergence, student {spread:.0%} off the teacher: "
              f"{relative(low_kd, ref_kd):.2e}")
    target = student.stft(clean.double())
    enhanced = student(spec)
    se_low = compressed_spectral_loss(enhanced.bfloat16(), target.bfloat16())
    se_full = compressed_spectral_loss(enhanced, target)
    print(f"  SE loss                  {relative(se_low, se_full):.2e}")

    teacher = build_model("lite-teacher").to(device)
    torch.manual_seed(0)
    frames = num_frames(noisy.shape[-1])
    distiller = build_distiller("tfckd", teacher, build_model("lite-student").to(device),
                                batch, frames, se_loss=compressed_spectral_loss).to(device)
    spec32, target32 = distiller.model.stft(noisy), distiller.model.stft(clean)
    with torch.no_grad():
        reference = distiller.double()(spec32.double(), target32.double())
        distiller.float()
        with autocast(device, "bf16"):
            islands = distiller(spec32, target32)
            with no_islands():
                bare = distiller(spec32, target32)
    keys = [k for k in reference if k.startswith("kd_")] + ["se"]
    print(f"  tfckd terms              {'no islands':>12} {'fp32 islands':>13}")
    for key in keys:
        print(f"    {key:<22} {relative(bare[key], reference[key]):>12.2e} "
              f"{relative(islands[key], reference[key]):>13.2e}")


def step_times(device, batch: int, repeats: int) -> None:
    noisy, clean = synthetic_batch(batch, 1.0, device)
    print(f"part 2: one training step, batch {batch} x 1 s, median of {repeats} (s; x fp32)")
    for method in ("none", "tfckd"):
        torch.manual_seed(0)
        teacher = build_model("lite-teacher").to(device) if method != "none" else None
        distiller = build_distiller(method, teacher, build_model("lite-student").to(device),
                                    batch, num_frames(noisy.shape[-1]),
                                    se_loss=compressed_spectral_loss).to(device).train()
        optimizer = torch.optim.AdamW(distiller.trainable_parameters(), lr=1e-5)
        spec, target = distiller.model.stft(noisy), distiller.model.stft(clean)

        def step(precision, islands=True):
            with contextlib.nullcontext() if islands else no_islands():
                optimizer.zero_grad(set_to_none=True)
                with autocast(device, precision):
                    losses = distiller(spec, target)
                losses["total"].backward()
                optimizer.step()

        variants = {"fp32": lambda: step("fp32"), "bf16": lambda: step("bf16"),
                    "bf16 without islands": lambda: step("bf16", islands=False)}
        times: dict[str, list[float] | str] = {}
        for name, run in variants.items():          # warm-up; a variant that fails is reported
            try:
                run()
                times[name] = []
            except RuntimeError as error:
                times[name] = f"fails: {str(error).splitlines()[0][:70]}"
        for _ in range(repeats):                    # interleaved: load drifts hit all alike
            for name, run in variants.items():
                if isinstance(times[name], list):
                    start = time.perf_counter()
                    run()
                    times[name].append(time.perf_counter() - start)
        fp32 = statistics.median(times["fp32"])
        cells = [f"{name} " + (value if isinstance(value, str) else
                               f"{statistics.median(value):.3f} "
                               f"(x{statistics.median(value) / fp32:.2f})")
                 for name, value in times.items()]
        print(f"  {method:<6} " + "   ".join(cells), flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: steadier ratios on a shared machine)")
    parser.add_argument("--skip-times", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    print(f"torch {torch.__version__}, {device}, {torch.get_num_threads()} threads")
    errors(device, args.batch)
    if not args.skip_times:
        step_times(device, args.batch, args.repeats)


if __name__ == "__main__":
    main()
