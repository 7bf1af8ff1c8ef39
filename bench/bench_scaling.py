"""Data-parallel scaling: training throughput (seconds of audio per second) of ``none`` and
``tfckd`` for 1 and 2 torchrun processes, and the ratio of each to one process.

Notebook: 03_training.ipynb

Run:  .venv/bin/python bench/bench_scaling.py [--ranks 1 2] [--steps 4] [--device cpu]

Setting: the lite student (and the lite teacher for ``tfckd``) at a fixed random
initialisation, trained on **synthetic batches** (``bench_precision.synthetic_batch``: harmonics
under a syllable-rate envelope plus noise) of ``--batch`` items of ``--seconds`` s per process,
so that no dataset is needed and nothing but the step is timed. Each configuration is one
``torchrun --standalone --nproc_per_node R`` launch of this script; every rank runs the step of
``tfckd_lite.train`` (forward, backward, one all-reduce of the gradients through
``tfckd_lite.distributed.World.average``, AdamW), gloo on the CPU and NCCL on CUDA. Every rank
runs on one thread (``OMP_NUM_THREADS=1``, torchrun's own default for several ranks), so that
R ranks use R cores and the ratio says what a second core buys through data parallelism.

Throughput = ranks x batch x seconds x steps / wall time of the timed steps (after one warm-up
step, between two barriers). All figures come from one run, so the ratios compare like with
like; on a loaded machine the absolute numbers are only indicative.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

RESULT = "SCALING-RESULT "  # the line a worker's rank 0 prints, parsed by the launcher


def worker(args) -> None:
    """One rank: build the task, time ``--steps`` data-parallel steps, rank 0 prints JSON."""
    import torch

    from bench_precision import synthetic_batch
    from tfckd_lite import distributed
    from tfckd_lite.distill import build_distiller
    from tfckd_lite.losses import compressed_spectral_loss
    from tfckd_lite.models import build_model
    from tfckd_lite.precision import autocast
    from tfckd_lite.stft import num_frames

    with distributed.session(args.device) as world:
        device = world.device
        torch.manual_seed(0)
        noisy, clean = synthetic_batch(args.batch, args.seconds, device)
        teacher = build_model(args.teacher).to(device) if args.worker != "none" else None
        distiller = build_distiller(args.worker, teacher, build_model(args.student).to(device),
                                    args.batch, num_frames(noisy.shape[-1]),
                                    se_loss=compressed_spectral_loss).to(device).train()
        world.broadcast_state(distiller)
        params = list(distiller.trainable_parameters())
        optimizer = torch.optim.AdamW(params, lr=1e-5)
        spec, target = distiller.model.stft(noisy), distiller.model.stft(clean)

        def step():
            optimizer.zero_grad(set_to_none=True)
            with autocast(device, args.precision):
                losses = distiller(spec, target)
            losses["total"].backward()
            world.average(params, {"total": float(losses["total"].detach())})
            optimizer.step()

        def settle():
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            world.barrier()

        step()  # warm-up: allocator, oneDNN / cuDNN caches
        settle()
        start = time.perf_counter()
        for _ in range(args.steps):
            step()
        settle()
        elapsed = time.perf_counter() - start
        if world.is_main:
            audio = world.size * args.batch * args.seconds * args.steps
            print(RESULT + json.dumps({"method": args.worker, "ranks": world.size,
                                       "step_s": elapsed / args.steps,
                                       "audio_per_s": audio / elapsed}), flush=True)


def launch(method: str, ranks: int, args) -> dict:
    """One ``torchrun`` launch of the worker; its rank 0's result."""
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE")}
    root = Path(__file__).resolve().parent.parent
    env.update(OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")])))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node", str(ranks), str(Path(__file__).resolve()),
               "--worker", method, "--device", args.device, "--precision", args.precision,
               "--batch", str(args.batch), "--seconds", str(args.seconds),
               "--steps", str(args.steps), "--teacher", args.teacher, "--student", args.student]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=args.timeout)
    lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT)]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{method} with {ranks} ranks failed (exit {done.returncode}):\n"
                           f"{done.stderr[-3000:]}")
    return json.loads(lines[-1][len(RESULT):])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=["none", "tfckd"])
    parser.add_argument("--ranks", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--steps", type=int, default=4, help="timed steps after one warm-up")
    parser.add_argument("--batch", type=int, default=2, help="items per process and step")
    parser.add_argument("--seconds", type=float, default=1.0, help="length of an item")
    parser.add_argument("--device", default="cpu", help="cpu (gloo) or cuda (NCCL, one GPU "
                        "per rank)")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "fp16"))
    parser.add_argument("--teacher", default="lite-teacher")
    parser.add_argument("--student", default="lite-student")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per launch")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.steps < 1 or args.batch < 1 or min(args.ranks) < 1:
        parser.error("--steps, --batch and --ranks must be at least 1")
    if args.worker is not None:
        worker(args)
        return
    print(f"{args.student} (teacher {args.teacher}), batch {args.batch} x {args.seconds:g} s "
          f"per process, {args.steps} steps, {args.device} {args.precision}, 1 thread per rank")
    print(f"{'method':<7} {'ranks':>5} {'step (s)':>9} {'audio s/s':>10} {'x 1 rank':>9}")
    for method in args.methods:
        base = None
        for ranks in args.ranks:
            result = launch(method, ranks, args)
            base = base or result["audio_per_s"]
            print(f"{method:<7} {ranks:>5} {result['step_s']:>9.3f} "
                  f"{result['audio_per_s']:>10.2f} {result['audio_per_s'] / base:>9.2f}",
                  flush=True)


if __name__ == "__main__":
    main()
