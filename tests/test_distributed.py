"""Data parallelism under torchrun on the CPU (gloo): 2 ranks equal 1 process accumulating 2
micro-batches, a killed run resumes to the uninterrupted weights, rank 0 alone writes."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import tfckd_lite
from tfckd_lite import cli
from tfckd_lite.checkpoint import STATE_FORMAT, _read, save_model
from tfckd_lite.devices import DeviceError
from tfckd_lite.distill import METHODS
from tfckd_lite.distributed import World, rank_device, world_from_env
from tfckd_lite.models import DPDCRN, DPDCRNConfig
from tfckd_lite.run_folder import RunFolder

# One thread here as in every torchrun rank (OMP_NUM_THREADS=1): the same arithmetic in both.
# It matters: a convolution's bias just before an InstanceNorm has a true gradient of zero (the
# norm removes it), so its float gradient is rounding noise, which Adam scales up into
# learning-rate-sized steps; those biases match across runs only when the sums are taken in
# the same order, i.e. with the same thread count.
pytestmark = pytest.mark.usefixtures("one_torch_thread")

ROOT = Path(tfckd_lite.__file__).resolve().parent.parent
KILLED = Path(__file__).with_name("_killed_at_step.py")
EVERY_METHOD = Path(__file__).with_name("_every_method.py")
STEPS = 4


@pytest.fixture(scope="module")
def teacher_file(tmp_path_factory):
    torch.manual_seed(100)
    teacher = DPDCRN(DPDCRNConfig(channels=8, dual_path_layers=2))
    return save_model(tmp_path_factory.mktemp("teacher") / "teacher.safetensors", teacher,
                      preset="tiny-teacher")


def _train_args(mini, out, method, teacher_file, **extra):
    args = ["train", "--preset", "lite-student", "--data", str(mini), "--out", str(out),
            "--epochs", "1", "--batch-size", "2", "--segment-seconds", "0.5",
            "--steps-per-epoch", str(STEPS), "--warmup-steps", "2", "--lr", "3e-3",
            "--valid-clips", "1", "--checkpoint-every", "2", "--device", "cpu", "--seed", "3"]
    if method != "none":
        args += ["--method", method, "--teacher", str(teacher_file),
                 "--method-option", "fusion_mid_channels=16"]
    for flag, value in extra.items():
        args += [f"--{flag.replace('_', '-')}", str(value)]
    return args


def _torchrun(args, script=None, ranks=2):
    """``torchrun --standalone --nproc_per_node ranks -m tfckd_lite ARGS`` (or ``script``)."""
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE")}
    env.update(PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", MPLBACKEND="Agg")
    target = ["-m", "tfckd_lite"] if script is None else [str(script)]
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node", str(ranks), *target, *args]
    return subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=300)


def _state(run_dir):
    tensors, description = _read(RunFolder(run_dir).state, STATE_FORMAT)
    return tensors, description["counters"]


def _without_times(history):
    return [{k: v for k, v in record.items() if k != "seconds"} for record in history]


@pytest.fixture(scope="module")
def distributed_run(mini, teacher_file, tmp_path_factory):
    """``run(method)``: the folder and output of a finished 2-rank run, made once per method
    and shared by the tests below."""
    runs = {}

    def run(method):
        if method not in runs:
            out = tmp_path_factory.mktemp(f"ddp-{method}") / "run"
            done = _torchrun(_train_args(mini, out, method, teacher_file))
            assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
            runs[method] = out, done.stdout
        return runs[method]

    return run


@pytest.mark.parametrize("method", ["none", "tfckd"])
def test_two_ranks_equal_one_process_accumulating_two_micro_batches(
        method, distributed_run, mini, teacher_file, tmp_path):
    ddp_dir, stdout = distributed_run(method)
    single_dir = tmp_path / "single"
    assert cli.main(_train_args(mini, single_dir, method, teacher_file, grad_accum=2)) == 0

    (ddp, ddp_counters), (single, single_counters) = _state(ddp_dir), _state(single_dir)
    weights = sorted(k for k in single if k.startswith("module."))
    assert weights and weights == sorted(k for k in ddp if k.startswith("module."))
    for key in weights:
        torch.testing.assert_close(ddp[key], single[key], rtol=1e-5, atol=1e-6, msg=key)
    assert ddp_counters["global_step"] == single_counters["global_step"] == STEPS
    assert ddp_counters["world_size"] == 2 and "world_size" not in single_counters
    # the history's losses are the means over both ranks' micro-batches
    for ours, theirs in zip(ddp_counters["history"], single_counters["history"]):
        assert ours["train"] == pytest.approx(theirs["train"], rel=1e-5)

    # rank 0 alone validated, printed and wrote: one record, one summary line, no stray files
    assert len(json.loads((ddp_dir / "history.json").read_text())) == 1
    assert stdout.count("epoch 1/1: loss") == 1 and stdout.count("best epoch 1:") == 1
    assert sorted(p.name for p in ddp_dir.iterdir()) == \
        sorted(p.name for p in single_dir.iterdir())


def test_a_killed_distributed_run_resumes_to_the_uninterrupted_weights(
        distributed_run, mini, teacher_file, tmp_path):
    straight_dir, _ = distributed_run("none")
    resumed_dir = tmp_path / "resumed"
    args = _train_args(mini, resumed_dir, "none", teacher_file)
    killed = _torchrun(["3", *args], script=KILLED)          # dies at step 3 of 4
    assert killed.returncode != 0
    _, at_kill = _state(resumed_dir)
    assert at_kill["global_step"] == 2                       # the checkpoint of step 2
    assert not (resumed_dir / "history.json").exists()

    resumed = _torchrun(args)                                # the same command again
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "resuming" in resumed.stdout
    (straight, s_counters), (again, r_counters) = _state(straight_dir), _state(resumed_dir)
    for key in (k for k in straight if k.startswith(("module.", "optim."))):
        assert torch.equal(straight[key], again[key]), key
    assert _without_times(r_counters["history"]) == _without_times(s_counters["history"])


def test_a_state_of_another_number_of_ranks_is_refused(distributed_run, mini, teacher_file,
                                                       tmp_path, capsys):
    import shutil

    ddp_dir, _ = distributed_run("none")
    copy = tmp_path / "copy"
    shutil.copytree(ddp_dir, copy)
    assert cli.main(_train_args(mini, copy, "none", teacher_file)) == 2
    assert "written by a run of 2 process(es), this one has 1" in capsys.readouterr().err


def test_every_method_trains_under_torchrun_with_identical_replicas(mini, tmp_path):
    """Every method through ``fit`` on 2 ranks that start from different random weights: both
    end with rank 0's start trained on the same averaged gradients (equal checksums) and
    return the same history."""
    done = _torchrun([str(mini), str(tmp_path)], script=EVERY_METHOD)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    by_rank = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    assert set(by_rank[0]) == set(by_rank[1]) == set(METHODS)
    for method in METHODS:
        zero, one = by_rank[0][method], by_rank[1][method]
        assert zero["checksum"] == one["checksum"] and zero["loss"] == one["loss"], method
        assert (tmp_path / method / "best.safetensors").exists()


# ------------------------------------------------------------------ in-process, no launch

def test_accumulated_micro_batches_give_the_gradient_of_one_batch_of_their_union(mini):
    """For plain training (an SE loss averaged over every element) K micro-batches of b
    accumulate to the gradient of one batch of K*b: the loss of each is divided by K."""
    from tfckd_lite.data import make_loader, open_corpus
    from tfckd_lite.train import SupervisedTask
    from tfckd_lite.train.engine import _optimisation_step

    noisy, clean = next(iter(make_loader(open_corpus(mini, "train"), batch_size=4,
                                         segment_seconds=0.5, seed=2)))
    grads, losses = [], []
    for micro_batches in ([(noisy, clean)], [(noisy[:2], clean[:2]), (noisy[2:], clean[2:])]):
        torch.manual_seed(0)
        task = SupervisedTask(DPDCRN(DPDCRNConfig(channels=8, dual_path_layers=1)))
        params = task.trainable_parameters()
        frozen = torch.optim.SGD(params, lr=0.0)       # keep the weights: compare gradients
        losses.append(_optimisation_step(task, frozen, params, micro_batches, 1e9, "test"))
        grads.append([p.grad.clone() for p in params])
    assert losses[1]["total"] == pytest.approx(losses[0]["total"], rel=1e-6)
    for one, accumulated in zip(*grads):
        torch.testing.assert_close(accumulated, one, rtol=1e-4, atol=1e-7)


def test_steps_per_epoch_counts_optimizer_steps(mini, tmp_path):
    from tfckd_lite.data import open_corpus
    from tfckd_lite.train import SupervisedTask, TrainConfig, fit

    torch.manual_seed(0)
    config = TrainConfig(epochs=1, batch_size=8, segment_seconds=0.25, warmup_steps=1,
                         valid_clips=1, grad_accum=3, device="cpu")
    task = SupervisedTask(DPDCRN(DPDCRNConfig(channels=8, dual_path_layers=1)))
    fit(task, open_corpus(mini, "train"), open_corpus(mini, "valid"), tmp_path, config,
        progress=False, valid_workers=1)
    _, counters = _state(tmp_path)
    assert counters["global_step"] == (64 // 8) // 3           # 8 micro-batches: 2 steps of 3


def test_the_ranks_share_out_each_steps_micro_batches_in_order():
    for size, accumulation in ((1, 1), (1, 3), (2, 1), (2, 2), (4, 3)):
        for step in range(3):
            taken = [p for rank in range(size)
                     for p in World(rank, size).micro_batches(step, accumulation)]
            width = size * accumulation
            assert taken == list(range(step * width, (step + 1) * width))


def test_torchrun_variables_are_read_and_checked():
    assert world_from_env({}) is None
    assert world_from_env({"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1"}) is None
    assert world_from_env({"RANK": "3", "LOCAL_RANK": "1", "WORLD_SIZE": "4"}) == (3, 4, 1)
    with pytest.raises(RuntimeError, match="WORLD_SIZE"):
        world_from_env({"RANK": "0", "LOCAL_RANK": "0"})
    with pytest.raises(RuntimeError, match="inconsistent"):
        world_from_env({"RANK": "4", "LOCAL_RANK": "0", "WORLD_SIZE": "4"})


def test_a_rank_takes_the_cpu_or_its_local_gpu():
    assert rank_device("cpu", 1) == torch.device("cpu")
    if not torch.cuda.is_available():
        assert rank_device("auto", 1) == torch.device("cpu")
        with pytest.raises(DeviceError, match="CUDA"):
            rank_device("cuda", 0)
    elif torch.cuda.device_count() > 1:
        with pytest.raises(DeviceError, match="LOCAL_RANK"):
            rank_device("cuda:1", 0)
