import json
import math

import pytest
from safetensors import safe_open
from safetensors.torch import save_file
import torch

from tfckd_lite.checkpoint import load_model, read_model_description
from tfckd_lite.data import manifest_sha256
from tfckd_lite.models import DPDCRN, DPDCRNConfig
from tfckd_lite.run_folder import RunFolder
from tfckd_lite.train import SupervisedTask, TrainConfig, fit, gradient_summary, learning_rate

TINY = DPDCRNConfig(channels=8, dual_path_layers=1)


def _config(**kw):
    base = dict(epochs=2, batch_size=4, steps_per_epoch=3, warmup_steps=2, valid_clips=2,
                lr=3e-3, seed=7, device="cpu")
    base.update(kw)
    return TrainConfig(**base)


def _task(seed=0):
    torch.manual_seed(seed)
    return SupervisedTask(DPDCRN(TINY))


def test_learning_rate_schedule():
    cfg = TrainConfig(lr=1e-3, warmup_steps=10, final_lr_ratio=0.05)
    assert learning_rate(0, 100, cfg) == pytest.approx(1e-4)
    assert learning_rate(9, 100, cfg) == pytest.approx(1e-3)
    assert learning_rate(10, 100, cfg) == pytest.approx(1e-3)
    assert learning_rate(100, 100, cfg) == pytest.approx(5e-5)
    values = [learning_rate(s, 100, cfg) for s in range(10, 101)]
    assert all(a >= b for a, b in zip(values, values[1:]))


def test_fit_writes_best_model_history_and_state(tmp_path, splits):
    train_set, valid_set = splits
    result = fit(_task(), train_set, valid_set, tmp_path, _config(), progress=False,
                 description={"preset": "tiny"}, valid_workers=1)
    assert [h["epoch"] for h in result.history] == [1, 2]
    assert all(math.isfinite(h["train"]["total"]) for h in result.history)
    assert {"pesq_wb", "si_sdr", "input_pesq_wb"} <= set(result.history[0]["valid"])
    model = load_model(result.best_path)
    assert model.config == TINY
    description = read_model_description(result.best_path)
    assert description["preset"] == "tiny"
    assert description["metrics"]["epoch"] == result.best_metrics["epoch"]
    assert RunFolder(tmp_path).history() == result.history
    # every step's gradient norm before clipping is summarised per epoch
    for record in result.history:
        assert record["gradient"]["steps"] == 3
        assert 0.0 <= record["gradient"]["clipped_fraction"] <= 1.0
        assert 0.0 < record["gradient"]["median_norm"] <= record["gradient"]["p90_norm"]


def test_gradient_summary_counts_the_clipped_steps():
    summary = gradient_summary([1.0, 2.0, 6.0, 50.0, float("inf")], grad_clip=5.0)
    assert summary["steps"] == 5
    assert summary["clipped_fraction"] == pytest.approx(3 / 5)     # 6, 50 and the overflow
    assert summary["median_norm"] == pytest.approx(4.0)             # of the 4 finite norms
    assert summary["non_finite"] == 1
    assert gradient_summary([5.0], grad_clip=5.0)["clipped_fraction"] == 0.0  # at the clip: kept


def test_training_reduces_the_loss_on_a_fixed_batch(splits):
    torch.manual_seed(0)
    task = _task()
    from tfckd_lite.data import make_loader

    noisy, clean = next(iter(make_loader(splits[0], batch_size=4, segment_seconds=1.0, seed=0)))
    spec_noisy, spec_clean = task.model.stft(noisy), task.model.stft(clean)
    opt = torch.optim.AdamW(task.trainable_parameters(), lr=3e-3)
    losses = []
    for _ in range(15):
        loss = task(spec_noisy, spec_clean)["total"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]


@pytest.mark.parametrize("remix_snr", [None, (0.0, 20.0)], ids=["as-built", "remixed"])
def test_interrupted_run_resumes_to_the_same_weights(tmp_path, splits, kill_at_step, remix_snr):
    train_set, valid_set = splits
    config = _config(checkpoint_every=1, remix_snr=remix_snr)
    straight = fit(_task(), train_set, valid_set, tmp_path / "straight", config, progress=False,
                   valid_workers=1)

    task = _task()
    killed = kill_at_step(task, 5)       # second epoch, second step
    with pytest.raises(killed):
        fit(task, train_set, valid_set, tmp_path / "resumed", config, progress=False,
            valid_workers=1)
    fresh = _task(seed=123)              # a new process: different initial weights
    resumed = fit(fresh, train_set, valid_set, tmp_path / "resumed", config, progress=False,
                  valid_workers=1)
    for a, b in zip(straight_model_params(tmp_path / "straight"), fresh.model.parameters()):
        assert torch.equal(a, b)
    assert [h["train"] for h in resumed.history] == [h["train"] for h in straight.history]
    # the norms of the steps before the kill were saved with the resume state
    assert [h["gradient"] for h in resumed.history] == [h["gradient"] for h in straight.history]


def straight_model_params(run_dir):
    from tfckd_lite.checkpoint import STATE_FORMAT, _read

    tensors, _ = _read(RunFolder(run_dir).state, STATE_FORMAT)
    model = DPDCRN(TINY)
    model.load_state_dict({k[len("module.model."):]: v for k, v in tensors.items()
                           if k.startswith("module.model.")})
    return list(model.parameters())


def test_a_state_from_before_a_config_field_existed_still_resumes(tmp_path, splits,
                                                                  kill_at_step):
    """A run folder survives a library upgrade that adds a TrainConfig field (e.g. remix_snr):
    the missing field counts as its default, which is what the older run did."""
    train_set, valid_set = splits
    task = _task()
    with pytest.raises(kill_at_step(task, 5)):                  # killed in the second epoch
        fit(task, train_set, valid_set, tmp_path, _config(), progress=False, valid_workers=1)
    state = RunFolder(tmp_path).state
    with safe_open(state, "pt") as f:
        metadata, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    description = json.loads(metadata["description"])
    del description["counters"]["config"]["remix_snr"]           # as written before it existed
    save_file(tensors, state, metadata={**metadata, "description": json.dumps(description)})
    with pytest.raises(ValueError, match="remix_snr"):          # a real change is still refused
        fit(_task(), train_set, valid_set, tmp_path, _config(remix_snr=(0, 20)),
            progress=False, valid_workers=1)
    resumed = fit(_task(), train_set, valid_set, tmp_path, _config(), progress=False,
                  valid_workers=1)
    assert [h["epoch"] for h in resumed.history] == [1, 2]


def test_resume_with_another_config_is_refused(tmp_path, splits):
    train_set, valid_set = splits
    fit(_task(), train_set, valid_set, tmp_path, _config(epochs=1), progress=False, valid_workers=1)
    with pytest.raises(ValueError, match="another config"):
        fit(_task(), train_set, valid_set, tmp_path, _config(epochs=1, lr=1e-2), progress=False,
            valid_workers=1)


def test_a_fresh_start_never_mixes_with_an_earlier_run(tmp_path, splits):
    train_set, valid_set = splits
    first = fit(_task(), train_set, valid_set, tmp_path, _config(epochs=1), progress=False,
                valid_workers=1)
    run = RunFolder(tmp_path)
    run.state.unlink()                                        # e.g. deleted to save space
    run.best_extras.write_bytes(b"a distiller's leftovers")
    kept = first.best_path.read_bytes()
    with pytest.raises(ValueError, match="no training state to resume"):
        fit(_task(), train_set, valid_set, tmp_path, _config(epochs=2), progress=False,
            valid_workers=1)
    assert first.best_path.read_bytes() == kept               # the earlier model is untouched
    again = fit(_task(), train_set, valid_set, tmp_path, _config(epochs=2), progress=False,
                valid_workers=1, resume=False)
    assert len(again.history) == 2
    assert not run.best_extras.exists()
    assert run.history() == again.history


def test_a_second_trainer_in_the_same_folder_is_refused(tmp_path, splits):
    from tfckd_lite.files import FolderBusyError, folder_lock

    with folder_lock(tmp_path, RunFolder.LOCK):       # another process training here
        with pytest.raises(FolderBusyError, match="another process is working in"):
            fit(_task(), *splits, tmp_path, _config(epochs=1), progress=False, valid_workers=1)
    assert not RunFolder(tmp_path).state.exists()     # it touched nothing
    fit(_task(), *splits, tmp_path, _config(epochs=1), progress=False, valid_workers=1)
    assert RunFolder(tmp_path).state.exists()         # the lock is released after each fit


def test_non_finite_loss_stops_training(tmp_path, splits):
    task = _task()
    task.se_loss = lambda est, ref: (est - ref).square().mean() * float("nan")
    with pytest.raises(FloatingPointError, match="non-finite loss"):
        fit(task, *splits, tmp_path, _config(epochs=1), progress=False, valid_workers=1)


def test_manifest_hash(mini, tmp_path):
    assert len(manifest_sha256(mini)) == 64
    assert manifest_sha256(tmp_path) is None


def test_evaluate_cli_prints_and_stores_scores_per_group(mini, tmp_path, capsys):
    from tfckd_lite.cli import build_parser

    out = tmp_path / "scores.json"
    args = build_parser().parse_args(["evaluate", "--model", "noisy", "--data", str(mini),
                                      "--max-clips", "4", "--by", "noise", "--by", "snr",
                                      "--json", str(out)])
    assert args.func(args) == 0
    printed = capsys.readouterr().out
    assert "noise      clips" in printed and "snr        clips" in printed
    report = json.loads(out.read_text())
    for field in ("noise", "snr"):
        assert sum(s["clips"] for s in report["by"][field].values()) == 4


def test_training_curves_tick_whole_epochs():
    import matplotlib.pyplot as plt

    from tfckd_lite.plots import plot_training_curves

    history = [{"epoch": e, "train": {"total": 1.0 / e},
                "valid": {"pesq_wb": 1.5 + e / 10, "si_sdr": 5.0 + e}} for e in (1, 2, 3)]
    fig, axes, lines = plot_training_curves(history)
    fig.canvas.draw()
    for ax in axes:
        low, high = ax.get_xlim()
        ticks = [t for t in ax.get_xticks() if low <= t <= high]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks   # no "epoch 1.5"
    assert len(lines) == 3
    plt.close(fig)
