"""Benchmark every DPDCRN preset on this machine: parameters, FLOPs, real-time factor, train step.

Run:  .venv/bin/python bench/bench_models.py [--presets lite-teacher lite-student] [--repeats 5]

Prints one row per preset (M microphones: the multi-channel presets take [B, M, N] input):
- params and GFLOP per second of audio (torch.utils.flop_counter, see tfckd_lite.models);
- RTF: wall time of enhancing 4 s of audio (batch 1, inference, STFT + network + iSTFT)
  divided by 4 s; below 1 is faster than real time;
- train step: forward + backward + Adam step on a batch of 8 x 1 s (the lite-size target is
  about 1 s for the lite teacher), median of --repeats after one warm-up;
- throughput: seconds of training audio processed per second of wall time (batch x length /
  step time).
Timings depend on the machine and its load; the README quotes a run on the 2-core CPU machine.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from tfckd_lite.models import (MULTICHANNEL_PRESETS, PRESETS, build_model, count_flops,
                               count_parameters)
from tfckd_lite.stft import SAMPLE_RATE


def median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up (allocator, oneDNN primitive caches)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _waveforms(model, batch: int, seconds: float) -> torch.Tensor:
    """Noise shaped as the model's input: ``[B, N]``, or ``[B, M, N]`` for M microphones."""
    mics = model.config.in_channels
    shape = (batch, int(seconds * SAMPLE_RATE)) if mics == 1 else \
        (batch, mics, int(seconds * SAMPLE_RATE))
    return torch.randn(shape) * 0.1


def real_time_factor(model, seconds: float, repeats: int) -> float:
    wav = _waveforms(model, 1, seconds)
    model.eval()
    return median_seconds(lambda: model.enhance(wav), repeats) / seconds


def train_step_seconds(model, batch: int, seconds: float, repeats: int) -> float:
    model.train()
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-4)
    noisy = model.stft(_waveforms(model, batch, seconds))
    target = noisy[:, :2] * 0.5                      # the model returns the reference channel

    def step():
        optimiser.zero_grad(set_to_none=True)
        loss = torch.nn.functional.mse_loss(model(noisy), target)
        loss.backward()
        optimiser.step()

    return median_seconds(step, repeats)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    names = list(PRESETS) + list(MULTICHANNEL_PRESETS)
    parser.add_argument("--presets", nargs="+", default=names, choices=names)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=1.0, help="length of a training item")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{'preset':<17} {'M':>2} {'C':>4} {'N':>2} {'params':>10} {'GFLOP/s':>8} {'RTF':>6} "
          f"{'train step (s)':>15} {'audio s/s':>10}")
    for name in args.presets:
        model = build_model(name)
        cfg = model.config
        params = count_parameters(model)
        gflops = count_flops(model) / 1e9
        rtf = real_time_factor(model, 4.0, args.repeats)
        step = train_step_seconds(model, args.batch, args.seconds, args.repeats)
        print(f"{name:<17} {cfg.in_channels:>2} {cfg.channels:>4} {cfg.dual_path_layers:>2} "
              f"{params:>10,} "
              f"{gflops:>8.2f} {rtf:>6.3f} {step:>15.3f} "
              f"{args.batch * args.seconds / step:>10.1f}", flush=True)
    print(f"(train step: batch {args.batch} x {args.seconds:g} s, Adam, median of {args.repeats})")


if __name__ == "__main__":
    main()
