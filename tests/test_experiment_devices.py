"""``reproduce --devices`` / ``--nproc-per-run``: where the experiment's runs train."""

import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import pytest
import torch

from tfckd_lite import experiment
from tfckd_lite.cli import build_parser
from tfckd_lite.devices import DeviceError
from tfckd_lite.experiment import ExperimentConfig, Run
from tfckd_lite.experiment.cli import config_from_args
from tfckd_lite.experiment.config import default_training
from tfckd_lite.run_folder import RunFolder


def tiny(root, out, **settings) -> ExperimentConfig:
    training = {k: settings.pop(k) for k in ("grad_accum", "workers") if k in settings}
    train = dataclasses.replace(default_training(), epochs=1, steps_per_epoch=2, batch_size=2,
                                segment_seconds=0.5, warmup_steps=1, valid_clips=1, **training)
    return ExperimentConfig(data=str(root), out=str(out), methods=("none",), seeds=(0, 1),
                            test_clips=2, train=train, **settings)


class _FakeTraining:
    """Stands in for ``subprocess.Popen``: each run takes two polls, then writes a finished
    history and exits 0. Records every command, its environment and, per slot key (the
    command's ``--device`` and ``CUDA_VISIBLE_DEVICES``), the most runs at a time."""

    def __init__(self, cfg):
        self.cfg, self.calls, self.running, self.peak = cfg, [], {}, {}

    def __call__(self, argv, env=None, **kwargs):
        fake, out = self, Path(argv[argv.index("--out") + 1])
        key = (argv[argv.index("--device") + 1], env.get("CUDA_VISIBLE_DEVICES"))
        fake.calls.append((argv, env))
        fake.running[key] = fake.running.get(key, 0) + 1
        fake.peak[key] = max(fake.peak.get(key, 0), fake.running[key])

        class Proc:
            returncode, left = None, 2

            def poll(self):
                self.left -= 1
                if self.left <= 0 and self.returncode is None:
                    fake.running[key] -= 1
                    (out / RunFolder.HISTORY).write_text(
                        json.dumps([{"seconds": 1.0}] * fake.cfg.train.epochs))
                    self.returncode = 0
                return self.returncode

            def terminate(self):
                pass

            def wait(self):
                return self.returncode
        return Proc()


@pytest.fixture
def fake_gpus(monkeypatch):
    """Four GPUs as far as the runner's device check goes (the runs themselves are faked)."""
    def resolve(name):
        device = torch.device(str(name))
        if device.type == "cuda" and (device.index or 0) >= 4:
            raise DeviceError(f"no GPU {name}")
        return device
    monkeypatch.setattr(experiment.runner, "resolve_device", resolve)
    monkeypatch.setattr(experiment.runner.time, "sleep", lambda seconds: None)


def _train(cfg, monkeypatch, seeds=(0, 1, 2, 3, 4)):
    fake = _FakeTraining(cfg)
    monkeypatch.setattr(experiment.runner.subprocess, "Popen", fake)
    assert experiment.train_runs([Run("none", None, s) for s in seeds], cfg, progress=False)
    return fake


def test_runs_are_spread_over_the_listed_devices(fake_gpus, monkeypatch, tmp_path):
    cfg = tiny(tmp_path, tmp_path, devices=("cuda:0", "cuda:1", "cuda:0"))
    fake = _train(cfg, monkeypatch)
    assert len(fake.calls) == 5
    for argv, env in fake.calls:
        assert argv[1:3] == ["-m", "tfckd_lite"] and argv[3] == "train"
        assert env["OMP_NUM_THREADS"] == str(max(1, (os.cpu_count() or 1) // 3))
    # two slots on GPU 0, one on GPU 1, each one run at a time; every slot was used
    assert fake.peak == {("cuda:0", None): 2, ("cuda:1", None): 1}
    # the device is the only thing of a command that depends on its slot
    for seed, (argv, _) in enumerate(fake.calls):
        device = argv[argv.index("--device") + 1]
        assert argv == [sys.executable, "-m", "tfckd_lite",
                        *Run("none", None, seed).argv(cfg, device)]

def test_a_distributed_run_keeps_the_optimizer_step(fake_gpus, monkeypatch, tmp_path):
    cfg = tiny(tmp_path, tmp_path, devices=("cuda:0", "cuda:1", "cuda:2", "cuda:3"),
               nproc_per_run=2, grad_accum=4)
    assert cfg.slots() == [("cuda:0", "cuda:1"), ("cuda:2", "cuda:3")]
    fake = _train(cfg, monkeypatch)
    for argv, env in fake.calls:
        assert argv[1:8] == ["-m", "torch.distributed.run", "--standalone",
                             "--nproc_per_node", "2", "-m", "tfckd_lite"]
        # 2 ranks x 2 micro-batches = one process of grad_accum 4
        assert argv[argv.index("--grad-accum") + 1] == "2"
    assert fake.peak == {("cuda", "0,1"): 1, ("cuda", "2,3"): 1}
    # CPU ranks: --device cpu, no GPU chosen
    cpu = tiny(tmp_path, tmp_path / "cpu", devices=("cpu", "cpu"), nproc_per_run=2,
               grad_accum=2)
    fake = _train(cpu, monkeypatch, seeds=(0,))
    (argv, env), = fake.calls
    assert argv[argv.index("--device") + 1] == "cpu" and "CUDA_VISIBLE_DEVICES" not in env
    assert argv[argv.index("--grad-accum") + 1] == "1"


@pytest.mark.parametrize("settings, error, message", [
    ({"devices": ("cpu", "")}, ValueError, "empty entry"),
    ({"devices": ("cpu", "cpu"), "jobs": 3}, ValueError, "jobs=3 but devices give 2"),
    ({"devices": ("cpu",) * 3, "nproc_per_run": 2, "grad_accum": 2}, ValueError, "split"),
    ({"devices": ("cpu", "cpu"), "nproc_per_run": 2}, ValueError, "must divide grad_accum"),
    ({"nproc_per_run": 0}, ValueError, "nproc_per_run"),
])
def test_invalid_slots_are_refused(settings, error, message, tmp_path):
    with pytest.raises(error, match=message):
        tiny(tmp_path, tmp_path, **settings)


@pytest.mark.parametrize("devices, message", [
    (("cpu", "cuda:0"), "mix CPU and GPU"),
    (("cuda:1", "cuda:1"), "distinct GPUs"),
    (("cuda:4", "cuda:5"), "no GPU"),
])
def test_unusable_rank_groups_are_refused_before_any_run(devices, message, fake_gpus,
                                                         monkeypatch, tmp_path):
    cfg = tiny(tmp_path, tmp_path, devices=devices, nproc_per_run=2, grad_accum=2)
    monkeypatch.setattr(experiment.runner.subprocess, "Popen", None)    # must not be called
    with pytest.raises(DeviceError, match=message):
        experiment.train_runs([Run("none", None, 0)], cfg, progress=False)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error without CUDA")
def test_a_gpu_slot_without_cuda_gets_the_devices_error(monkeypatch, tmp_path):
    args = build_parser().parse_args(["reproduce", "--data", str(tmp_path), "--out",
                                      str(tmp_path), "--devices", "cpu,cuda:0"])
    cfg = config_from_args(args)
    assert cfg.devices == ("cpu", "cuda:0") and cfg.slots() == [("cpu",), ("cuda:0",)]
    monkeypatch.setattr(experiment.runner.subprocess, "Popen", None)    # must not be called
    with pytest.raises(DeviceError, match="'cuda:0' asked for, but .*CUDA"):
        experiment.train_runs([Run("none", None, 0)], cfg, progress=False)
    with pytest.raises(ValueError, match="empty entry"):
        config_from_args(build_parser().parse_args(
            ["reproduce", "--data", "d", "--out", "o", "--devices", "cpu,,cpu"]))


def _flat(record, prefix="") -> dict:
    if isinstance(record, dict):
        return {k: v for key, value in record.items() for k, v in _flat(value, f"{prefix}{key}.")
                .items()}
    if isinstance(record, list):
        return _flat(dict(enumerate(record)), prefix)
    return {prefix[:-1]: record}


def _recorded(cfg) -> dict:
    """What the runs recorded (train config, epochs of the history, best model's scores), but
    wall-clock times and the command line (its --out and --device are the run's own)."""
    recorded = {}
    for run in experiment.planned_runs(cfg):
        folder = run.run_folder(cfg)
        best = json.loads(Path(folder.path, RunFolder.BEST_DESCRIPTION).read_text())
        del best["command"]
        recorded.update(_flat({"history": folder.history(), "best": best}, f"{run}."))
    return {k: v for k, v in recorded.items() if not k.endswith(".seconds")}


def test_two_cpu_slots_write_the_same_folder_as_one_process(mini, tmp_path):
    one = tiny(mini, tmp_path / "one", grad_accum=2)
    two = tiny(mini, tmp_path / "two", grad_accum=2, devices=("cpu", "cpu"))
    threads = torch.get_num_threads()
    # the in-process run on as many threads as each subprocess gets, for the same float sums
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // 2))
    try:
        for cfg in (one, two):
            experiment.check_experiment_folder(cfg)
            started = time.time()
            assert experiment.train_runs(lambda cfg=cfg: experiment.planned_runs(cfg), cfg,
                                         progress=False)
            print(f"slots {cfg.slots()}: {time.time() - started:.1f} s")
    finally:
        torch.set_num_threads(threads)
    first, second = _recorded(one), _recorded(two)
    assert first.keys() == second.keys()
    assert [v for k, v in first.items() if k.endswith(".train_config.grad_accum")] == [2, 2]
    assert first == second
    assert (Path(one.out) / "experiment.json").read_text() == \
        (Path(two.out) / "experiment.json").read_text().replace(str(two.out), str(one.out))
    # where the runs trained is free: a resume on other slots, workers or ranks is accepted
    for other in (dataclasses.replace(one, devices=("cpu",) * 4, nproc_per_run=2),
                  dataclasses.replace(one, jobs=2).with_training(workers=1)):
        experiment.check_experiment_folder(other)


def test_two_distributed_runs_at_once_match_one_process(mini, tmp_path):
    """Two torchrun launches side by side (their standalone rendezvous must not collide), each
    of 2 CPU ranks x 1 micro-batch, train as one process accumulating 2 micro-batches."""
    one = tiny(mini, tmp_path / "one", grad_accum=2)
    ranks = tiny(mini, tmp_path / "ranks", grad_accum=2, devices=("cpu",) * 4, nproc_per_run=2)
    for cfg in (one, ranks):
        started = time.time()
        assert experiment.train_runs(experiment.planned_runs(cfg), cfg, progress=False)
        print(f"slots {cfg.slots()}: {time.time() - started:.1f} s")
    first, second = _recorded(one), _recorded(ranks)
    assert first.keys() == second.keys()
    # each rank records its own grad_accum (the step is 2 ranks x 1 micro-batch)
    per_rank = {k: v for k, v in second.items() if k.endswith(".train_config.grad_accum")}
    assert list(per_rank.values()) == [1, 1]
    losses = {k: v for k, v in first.items() if k.endswith("train.total")}
    assert len(losses) == 2
    assert {k: second[k] for k in losses} == pytest.approx(losses, rel=1e-5)
