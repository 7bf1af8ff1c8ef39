"""Devices: --device values, CUDA asked for where there is none, checkpoints that cross
devices (map_location, CUDA generator state), and worker processes in a training run."""

import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from tfckd_lite import cli
from tfckd_lite.checkpoint import load_model, load_training_state, save_model
from tfckd_lite.devices import DeviceError, resolve_device
from tfckd_lite.models import DPDCRN, DPDCRNConfig
from tfckd_lite.run_folder import RunFolder
from tfckd_lite.train import SupervisedTask, TrainConfig, fit

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = DPDCRNConfig(channels=8, dual_path_layers=1)
NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="checks a machine without CUDA")


def _config(**kw):
    base = dict(epochs=1, batch_size=2, segment_seconds=0.5, steps_per_epoch=3, warmup_steps=2,
                valid_clips=1, lr=3e-3, seed=7, device="cpu")
    return TrainConfig(**{**base, **kw})


def _task():
    torch.manual_seed(0)
    return SupervisedTask(DPDCRN(TINY))


def test_device_names():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    for bad in ("gpu", "cuda:x", "mps", "cuda:-1"):
        with pytest.raises(DeviceError, match="unknown device"):
            resolve_device(bad)


@NO_CUDA
@pytest.mark.parametrize("name", ["cuda", "cuda:0", "cuda:3"])
def test_cuda_asked_for_and_absent_is_a_clear_error(name):
    with pytest.raises(DeviceError, match="no CUDA|sees no CUDA GPU"):
        resolve_device(name)


@NO_CUDA
def test_the_commands_refuse_cuda_in_one_line(mini, tmp_path, capsys):
    assert cli.main(["train", "--preset", "lite-student", "--data", str(mini), "--out",
                     str(tmp_path / "run"), "--device", "cuda"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: device 'cuda' asked for") and error.count("\n") == 1
    assert not (tmp_path / "run").exists()                     # refused before any work
    assert cli.main(["evaluate", "--model", "noisy", "--data", str(mini),
                     "--device", "cuda:1"]) == 2
    assert capsys.readouterr().err.startswith("error: device 'cuda:1' asked for")
    path = save_model(tmp_path / "m.safetensors", DPDCRN(TINY))
    with pytest.raises(DeviceError):
        load_model(path, map_location="cuda")
    assert load_model(path, map_location="auto").stft.window.device.type == "cpu"


def test_a_state_written_on_a_gpu_resumes_on_the_cpu(splits, tmp_path, kill_at_step):
    """A GPU run's state holds the CUDA generator's state too (``rng.cuda``); on a CPU it is
    left aside and the run resumes to the weights of an uninterrupted one."""
    config = _config(epochs=2, checkpoint_every=1)
    straight = tmp_path / "straight"
    fit(_task(), *splits, straight, config, progress=False, valid_workers=1)

    dying = _task()
    with pytest.raises(kill_at_step(dying, 4)):
        fit(dying, *splits, tmp_path / "resumed", config, progress=False, valid_workers=1)
    state = RunFolder(tmp_path / "resumed").state
    with safe_open(state, "pt") as f:
        metadata, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    assert "rng.cuda" not in tensors                           # written on the CPU: none
    tensors["rng.cuda"] = torch.zeros(16, dtype=torch.uint8)   # as a GPU run writes it
    save_file(tensors, state, metadata=metadata)
    resumed = _task()
    fit(resumed, *splits, tmp_path / "resumed", config, progress=False, valid_workers=1)
    with safe_open(RunFolder(straight).state, "pt") as a, safe_open(state, "pt") as b:
        for key in (k for k in a.keys() if k.startswith("module.")):
            assert torch.equal(a.get_tensor(key), b.get_tensor(key)), key

    task = _task()
    optimizer = torch.optim.AdamW(task.trainable_parameters())
    counters = load_training_state(state, task, optimizer, torch.device("cpu"))
    assert counters["epoch"] == 2
    assert all(p.device.type == "cpu" for p in task.parameters())


def test_worker_processes_train_to_the_same_weights(splits, tmp_path):
    runs = {}
    for workers in (0, 2):
        runs[workers] = fit(_task(), *splits, tmp_path / f"w{workers}",
                            _config(workers=workers), progress=False, valid_workers=1)
    with safe_open(RunFolder(tmp_path / "w0").state, "pt") as a, \
            safe_open(RunFolder(tmp_path / "w2").state, "pt") as b:
        assert sorted(a.keys()) == sorted(b.keys())
        for key in a.keys():
            assert torch.equal(a.get_tensor(key), b.get_tensor(key)), key
        config = json.loads(b.metadata()["description"])["counters"]["config"]
    assert "workers" not in config and "device" not in config  # neither changes the numbers
    assert [h["train"] for h in runs[0].history] == [h["train"] for h in runs[2].history]
