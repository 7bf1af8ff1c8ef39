"""Benchmark every distillation method: training-step time relative to plain training, peak memory.

Notebook: 05_distillation.ipynb

Run:  .venv/bin/python bench/bench_distill.py [--methods none output tfckd] [--repeats 3]

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
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys

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


def measure(method: str, batch: int, seconds: float, repeats: int) -> dict:
    """Time one method's training step and record the memory it needs (run in a fresh process)."""
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

    before = peak_rss_mib()
    step_seconds = median_seconds(step, repeats)
    after = peak_rss_mib()
    return {"method": method, "step_s": step_seconds, "frames": frames,
            "extra_params": sum(p.numel() for p in distiller.extra_parameters()),
            "peak_rss_mib": after, "step_peak_mib": after - before}


def run_worker(method: str, args) -> dict:
    """``measure`` in a fresh interpreter (this script with ``--worker``); its JSON result."""
    command = [sys.executable, __file__, "--worker", method, "--repeats", str(args.repeats),
               "--batch", str(args.batch), "--seconds", str(args.seconds)]
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
    parser.add_argument("--worker", default=None, choices=list(METHODS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.worker:
        print(json.dumps(measure(args.worker, args.batch, args.seconds, args.repeats)))
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
    print(f"(AdamW step, median of {args.repeats} after a warm-up; one fresh process per method; "
          f"x plain: relative to '{BASELINE}', the student alone)")


if __name__ == "__main__":
    main()
