"""Benchmark every distillation method: training-step time relative to plain training, peak memory.

Notebook: 05_distillation.ipynb

Run:  .venv/bin/python bench/bench_distill.py [--methods none output tfckd] [--repeats 3]
      [--threads N] [--clock wall|cpu] [--profile METHOD]

Setting: teacher ``lite-teacher`` and student ``lite-student`` at their random initialisation
(time and memory do not depend on the weights), batch 8 x 1 s (63 frames), each method of
``tfckd_lite.distill.METHODS`` with its default options (TFCKD: 128-channel fusion chains),
the SE loss of training (compressed spectral loss), on the CPU.

Prints one row per method:
- step (s): one distillation step - teacher forward (no grad), student forward, KD terms,
  backward, AdamW step over the student and the extra parameters - median of --repeats after
  one warm-up step;
- x plain: that time divided by the step of ``none`` (the student alone on the SE loss, the
  step of plain training), which is always measured;
- extra params: calibration / fusion / adaptor parameters (``distiller.extra_parameters()``);
- peak RSS (MiB): ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` of a fresh Python process that
  imports torch, builds the models and runs the steps of this one method only;
- step peak (MiB): the same maximum after the steps minus its value just before the first
  step, i.e. how far the training steps pushed the process's peak above what the interpreter,
  torch, the models and the batch already needed.
Why this way: torch allocates tensor memory in C++, outside Python's allocator, so
``tracemalloc`` does not see it; and the peak RSS of one process never goes down, so measuring
methods one after another in the same process would carry the largest peak into every later
row. Each method therefore runs in its own subprocess (this script with ``--worker``), which
reports its time and ``ru_maxrss`` as one JSON line. Timings depend on the machine and its load.

``--clock cpu`` times each step by the worker's CPU time (``time.process_time``: user + system,
page faults included) instead of the wall clock. On a machine shared with other jobs the wall
clock also counts the time the worker waited for a core; with ``--threads 1`` the CPU time is
what the step itself cost, so ratios measured on a busy machine stay comparable (with more
threads it also counts OpenMP's spinning, so use it with one thread).
``--profile METHOD`` prints, instead of the table, ``torch.profiler``'s operators of two steps of
that method, sorted by their own CPU time: where the step's time goes.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

import torch

from bench_models import median_seconds  # a sibling script: this folder is on sys.path
from tfckd_lite.distill import METHODS, build_distiller
from tfckd_lite.losses import compressed_spectral_loss
from tfckd_lite.models import build_model
from tfckd_lite.stft import SAMPLE_RATE, num_frames

BASELINE = "none"


def peak_rss_mib() -> float:
    """This process's peak resident set size so far (``ru_maxrss``: KiB on Linux, bytes on
    macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def step_seconds(fn, repeats: int, clock: str) -> float:
    """Median seconds of ``fn`` after a warm-up call, by the wall clock or this process's CPU."""
    if clock == "wall":
        return median_seconds(fn, repeats)
    fn()
    times = []
    for _ in range(repeats):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return statistics.median(times)


def build_step(method: str, batch: int, seconds: float):
    """``(distiller, step)``: one method on the benchmark's setting and its training step."""
    torch.manual_seed(0)
    student = build_model("lite-student")
    teacher = build_model("lite-teacher") if method != BASELINE else None
    frames = num_frames(round(seconds * SAMPLE_RATE))
    distiller = build_distiller(method, teacher, student, batch, frames,
                                se_loss=compressed_spectral_loss).train()
    optimiser = torch.optim.AdamW(distiller.trainable_parameters(), lr=1e-4)
    generator = torch.Generator().manual_seed(0)
    clean = 0.1 * torch.randn(batch, round(seconds * SAMPLE_RATE), generator=generator)
    noisy = clean + 0.05 * torch.randn(clean.shape, generator=generator)
    noisy_spec, clean_spec = student.stft(noisy), student.stft(clean)

    def step():
        optimiser.zero_grad(set_to_none=True)
        distiller(noisy_spec, clean_spec)["total"].backward()
        optimiser.step()

    return distiller, step


def measure(method: str, batch: int, seconds: float, repeats: int, clock: str = "wall") -> dict:
    """Time one method's training step and record the memory it needs (run in a fresh process)."""
    distiller, step = build_step(method, batch, seconds)
    before = peak_rss_mib()
    seconds_per_step = step_seconds(step, repeats, clock)
    after = peak_rss_mib()
    return {"method": method, "step_s": seconds_per_step,
            "frames": num_frames(round(seconds * SAMPLE_RATE)),
            "extra_params": sum(p.numel() for p in distiller.extra_parameters()),
            "peak_rss_mib": after, "step_peak_mib": after - before}


def run_worker(method: str, args) -> dict:
    """``measure`` in a fresh interpreter (this script with ``--worker``); its JSON result."""
    command = [sys.executable, __file__, "--worker", method, "--repeats", str(args.repeats),
               "--batch", str(args.batch), "--seconds", str(args.seconds), "--clock", args.clock]
    if args.threads:
        command += ["--threads", str(args.threads)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=1.0, help="length of a training item")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads in each worker (default: torch's own choice)")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="time steps by the wall clock or by the worker's CPU time (use "
                             "cpu with --threads 1 on a machine shared with other jobs)")
    parser.add_argument("--profile", default=None, choices=list(METHODS),
                        help="print torch.profiler's top operators of this method's step instead")
    parser.add_argument("--worker", default=None, choices=list(METHODS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.worker:
        print(json.dumps(measure(args.worker, args.batch, args.seconds, args.repeats,
                                 args.clock)))
        return
    if args.profile:
        profile(args.profile, args.batch, args.seconds)
        return

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; teacher lite-teacher, "
          f"student lite-student, batch {args.batch} x {args.seconds:g} s")
    print(f"{'method':<17} {'step (s)':>9} {'x plain':>8} {'extra params':>13} "
          f"{'peak RSS (MiB)':>15} {'step peak (MiB)':>16}")
    methods = [BASELINE] + [m for m in args.methods if m != BASELINE]
    plain = None
    for method in methods:
        row = run_worker(method, args)
        plain = plain if plain is not None else row["step_s"]
        print(f"{method:<17} {row['step_s']:>9.3f} {row['step_s'] / plain:>8.2f} "
              f"{row['extra_params']:>13,} {row['peak_rss_mib']:>15.0f} "
              f"{row['step_peak_mib']:>16.0f}", flush=True)
    clock = "wall clock" if args.clock == "wall" else "CPU time of the worker"
    print(f"(AdamW step, median of {args.repeats} after a warm-up, {clock}; one fresh process per "
          f"method; x plain: relative to '{BASELINE}', the student alone)")


def profile(method: str, batch: int, seconds: float, rows: int = 25) -> None:
    """Print the operators of two training steps of ``method`` by their own CPU time."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    _, step = build_step(method, batch, seconds)
    step()                                                  # warm-up
    with torch_profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        step()
        step()
    print(f"{method}: two steps, batch {batch} x {seconds:g} s, {torch.get_num_threads()} "
          "thread(s)")
    print(prof.key_averages(group_by_input_shape=True).table(sort_by="self_cpu_time_total",
                                                             row_limit=rows))


if __name__ == "__main__":
    main()
