"""The CUDA path: training on a GPU in bf16 and fp16 and resuming that run on the CPU, and a
one-rank torchrun run on NCCL. Marked ``cuda``: skipped (reason shown) where torch sees no GPU;
bench/gpu_check.sh runs them on a GPU machine."""

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

import tfckd_lite
from tfckd_lite.models import DPDCRN, DPDCRNConfig
from tfckd_lite.run_folder import RunFolder
from tfckd_lite.train import SupervisedTask, TrainConfig, fit

pytestmark = pytest.mark.cuda

ROOT = Path(tfckd_lite.__file__).resolve().parent.parent
TINY = DPDCRNConfig(channels=8, dual_path_layers=1)


def _task():
    torch.manual_seed(0)
    return SupervisedTask(DPDCRN(TINY))


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_a_gpu_run_in_low_precision_resumes_on_the_cpu(splits, tmp_path, kill_at_step,
                                                       precision):
    """Killed in its second epoch on the GPU, the run finishes on the CPU from its state
    (``device`` may change on resume, ``precision`` may not)."""
    base = dict(epochs=2, batch_size=2, segment_seconds=0.5, steps_per_epoch=3,
                warmup_steps=2, valid_clips=1, lr=3e-3, seed=7, checkpoint_every=1,
                precision=precision)
    run = tmp_path / "run"
    dying = _task()
    with pytest.raises(kill_at_step(dying, 5)):
        fit(dying, *splits, run, TrainConfig(**base, device="cuda"), progress=False,
            valid_workers=1)
    with safe_open(RunFolder(run).state, "pt") as f:
        assert "rng.cuda" in f.keys()                          # written on the GPU
    fit(_task(), *splits, run, TrainConfig(**base, device="cpu"), progress=False,
        valid_workers=1)
    history = RunFolder(run).history()
    assert len(history) == 2
    assert all(math.isfinite(value) for record in history for key, value in record.items()
               if isinstance(value, float))


def test_torchrun_one_rank_on_nccl(mini, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE")}
    env.update(PYTHONPATH=str(ROOT), MPLBACKEND="Agg")
    out = tmp_path / "run"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node", "1", "-m", "tfckd_lite", "train", "--preset", "lite-student",
               "--data", str(mini), "--out", str(out), "--epochs", "1", "--batch-size", "2",
               "--segment-seconds", "0.5", "--steps-per-epoch", "3", "--valid-clips", "1",
               "--device", "cuda", "--precision", "bf16"]
    done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert RunFolder(out).best.exists()
    assert len(RunFolder(out).history()) == 1
