"""Mixed precision on the CPU: bf16 training of every method, the fp32 islands, fp16 with its
gradient scaler, and fp32 left exactly as it was."""

import math

import pytest
import torch

from tfckd_lite.data import make_loader
from tfckd_lite.distill import METHODS, build_distiller
from tfckd_lite.losses import compressed_spectral_loss
from tfckd_lite.models import DPDCRN
from tfckd_lite.precision import as_fp32, autocast, full_precision, grad_scaler
from tfckd_lite.run_folder import RunFolder
from tfckd_lite.train import SupervisedTask, TrainConfig, fit
from tfckd_lite.train.engine import _optimisation_step

from tiny_models import BATCH, FRAMES, SEGMENT, STUDENT

pytestmark = pytest.mark.usefixtures("one_torch_thread")



@pytest.fixture(scope="module")
def batch(splits):
    return next(iter(make_loader(splits[0], batch_size=BATCH, segment_seconds=SEGMENT, seed=1)))


@pytest.fixture(scope="module")
def teacher(tiny_teacher):
    return tiny_teacher


def _distiller(method, teacher):
    torch.manual_seed(0)
    options = {"fusion_mid_channels": 16} if "fusion_mid_channels" in METHODS[method].options \
        else {}
    return build_distiller(method, teacher, DPDCRN(STUDENT), BATCH, FRAMES,
                           se_loss=compressed_spectral_loss, **options)


@pytest.mark.parametrize("method", list(METHODS))
def test_bf16_training_lowers_the_loss_with_finite_non_zero_kd_terms(method, teacher, batch):
    task = _distiller(method, teacher).train()
    params = task.trainable_parameters()
    optimizer = torch.optim.AdamW(params, lr=3e-3)
    history = [_optimisation_step(task, optimizer, params, [batch], 5.0, f"step {step}",
                                  precision="bf16") for step in range(8)]
    assert history[-1]["total"] < history[0]["total"]
    kd_terms = [key for key in history[0] if key.startswith("kd")]
    assert bool(kd_terms) == (method != "none")
    for losses in history:
        for key in kd_terms:
            assert math.isfinite(losses[key]) and losses[key] != 0, (key, losses)


@pytest.mark.parametrize("method", [m for m in METHODS if m != "none"])
def test_the_kd_machinery_runs_in_fp32_under_autocast(method, teacher, batch):
    """The fp32 island holds for every method: every module of the distiller that is not one
    of the two networks (calibration, fusion, adaptors) sees and returns fp32, and so do the
    networks' outputs, the losses and the polar mask's output."""
    task = _distiller(method, teacher).train()
    seen = []

    def record(module, inputs, output):
        for value in (*inputs, *(output if isinstance(output, (tuple, list)) else [output])):
            if isinstance(value, torch.Tensor) and value.is_floating_point():
                seen.append((type(module).__name__, value.dtype))

    hooks = [module.register_forward_hook(record) for name, module in task.named_modules()
             if name and not name.startswith(("student", "teacher"))]
    noisy, clean = (task.model.stft(x) for x in batch)
    with autocast(torch.device("cpu"), "bf16"):
        s_out, s_taps, t_out, t_taps = task.run_models(noisy)
        losses = task(noisy, clean)
    for hook in hooks:
        hook.remove()
    assert all(dtype == torch.float32 for _, dtype in seen), sorted(set(seen))
    tensors = [s_out, t_out, *(t for taps in (s_taps, t_taps) if taps for s in taps.values()
                                 for t in s)]
    assert all(t.dtype == torch.float32 for t in tensors)
    assert all(v.dtype == torch.float32 for v in losses.values())


def test_the_networks_do_run_in_bf16_under_autocast(batch):
    torch.manual_seed(0)
    model = DPDCRN(STUDENT)
    noisy = model.stft(batch[0])
    with autocast(torch.device("cpu"), "bf16"):
        enhanced, taps = model(noisy, return_features=True)
    assert taps["encoder"][0].dtype == torch.bfloat16      # convolutions in low precision
    assert taps["decoder"][-1].dtype == torch.bfloat16     # the raw mask, too
    assert enhanced.dtype == torch.float32                  # the polar mask's output: fp32


def test_bf16_losses_stay_close_to_fp32(teacher, batch):
    task = _distiller("tfckd", teacher).eval()
    noisy, clean = (task.model.stft(x) for x in batch)
    with torch.no_grad():
        full = task(noisy, clean)
        with autocast(torch.device("cpu"), "bf16"):
            low = task(noisy, clean)
    for key in full:
        assert low[key].item() == pytest.approx(full[key].item(), rel=0.1), key


def test_fp32_and_the_islands_change_nothing_outside_autocast():
    x = torch.randn(3, 4)
    assert as_fp32(x) is x and as_fp32({"a": [x]})["a"][0] is x
    assert as_fp32(x.bfloat16()).dtype == torch.float32
    with full_precision():                   # no autocast on: a no-op
        assert not torch.is_autocast_enabled("cpu")
    with autocast(torch.device("cpu"), "bf16"):
        assert torch.is_autocast_enabled("cpu")
        with full_precision():
            assert not torch.is_autocast_enabled("cpu")
        assert torch.is_autocast_enabled("cpu")
    with autocast(torch.device("cpu"), "fp32"):
        assert not torch.is_autocast_enabled("cpu")
    assert grad_scaler(torch.device("cpu"), "bf16") is None
    with pytest.raises(ValueError, match="fp32, bf16, fp16"):
        TrainConfig(precision="fp8")


def test_an_fp16_run_scales_its_gradients_and_resumes_exactly(splits, tmp_path, kill_at_step):
    config = TrainConfig(epochs=1, batch_size=BATCH, segment_seconds=SEGMENT, steps_per_epoch=3,
                         warmup_steps=2, valid_clips=1, lr=3e-3, seed=7, device="cpu",
                         checkpoint_every=1, precision="fp16")

    def task():
        torch.manual_seed(0)
        return SupervisedTask(DPDCRN(STUDENT))

    straight = fit(task(), *splits, tmp_path / "straight", config, progress=False,
                   valid_workers=1)
    assert math.isfinite(straight.history[0]["train"]["total"])
    from tfckd_lite.checkpoint import STATE_FORMAT, _read

    tensors, description = _read(RunFolder(tmp_path / "straight").state, STATE_FORMAT)
    assert description["counters"]["grad_scaler"]["scale"] > 1     # the scaler was used

    dying = task()
    with pytest.raises(kill_at_step(dying, 3)):
        fit(dying, *splits, tmp_path / "resumed", config, progress=False, valid_workers=1)
    resumed = task()
    fit(resumed, *splits, tmp_path / "resumed", config, progress=False, valid_workers=1)
    again, _ = _read(RunFolder(tmp_path / "resumed").state, STATE_FORMAT)
    for key in (k for k in tensors if k.startswith("module.")):
        assert torch.equal(tensors[key], again[key]), key
