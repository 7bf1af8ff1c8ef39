"""Distillation through the training engine (fit) and the CLI, on tiny models and the mini set."""

import hashlib
import math

import pytest
import torch

from tfckd_lite import cli
from tfckd_lite.checkpoint import (STATE_FORMAT, _read, load_model, read_model_description,
                                   save_model)
from tfckd_lite.distill import METHODS, build_distiller
from tfckd_lite.distill.distiller import weights_sha256
from tfckd_lite.losses import compressed_spectral_loss
from tfckd_lite.models import PRESETS, DPDCRN, DPDCRNConfig
from tfckd_lite.run_folder import RunFolder
from tfckd_lite.stft import HOP_LENGTH
from tfckd_lite.train import TrainConfig, fit

from tiny_models import BATCH, FRAMES, SEGMENT, STUDENT, TEACHER

pytestmark = pytest.mark.usefixtures("one_torch_thread")



@pytest.fixture(scope="module")
def teacher(tiny_teacher):
    return tiny_teacher


@pytest.fixture(scope="module")
def teacher_file(teacher, tmp_path_factory):
    return save_model(tmp_path_factory.mktemp("teacher") / "teacher.safetensors", teacher,
                      preset="tiny-teacher")


def _config(**kw):
    base = dict(epochs=1, batch_size=BATCH, segment_seconds=SEGMENT, steps_per_epoch=2,
                warmup_steps=2, valid_clips=1, lr=3e-3, seed=7, device="cpu")
    base.update(kw)
    return TrainConfig(**base)


def _distiller(method, teacher, seed=0, **options):
    torch.manual_seed(seed)
    student = DPDCRN(STUDENT)
    if method.startswith("tfckd"):
        options.setdefault("fusion_mid_channels", 16)      # small chains for fast tests
    return build_distiller(method, teacher, student, BATCH, FRAMES,
                           se_loss=compressed_spectral_loss, **options)


def _fit(task, splits, run_dir, config):
    return fit(task, *splits, run_dir, config, progress=False, valid_workers=1)


# ------------------------------------------------------------------------ through fit()

@pytest.mark.parametrize("method", ["output", "fitnets", "frame-similarity", "tfckd"])
def test_distillation_trains_through_fit(method, teacher, splits, tmp_path):
    teacher_hash = weights_sha256(teacher)
    distiller = _distiller(method, teacher)
    student_before = [p.detach().clone() for p in distiller.student.parameters()]
    result = fit(distiller, *splits, tmp_path, _config(), progress=False, valid_workers=1,
                 description={"method": method})

    train = result.history[0]["train"]
    kd_terms = [k for k in train if k.startswith("kd_")]
    assert kd_terms and "kd" in train
    for key in kd_terms + ["kd", "se", "total"]:
        assert math.isfinite(train[key]) and train[key] > 0, (key, train[key])
    assert train["total"] == pytest.approx(train["se"] + distiller.kd_weight * train["kd"],
                                           rel=1e-5)
    # the best model is the student, with the weights it ended with (one epoch)
    best = load_model(result.best_path)
    assert best.config == STUDENT
    assert read_model_description(result.best_path)["method"] == method
    for saved, trained in zip(best.parameters(), distiller.student.parameters()):
        assert torch.equal(saved, trained)
    assert any(not torch.equal(a, b) for a, b in zip(student_before, best.parameters()))
    # the teacher is untouched, frozen, in eval mode, and not in the training state
    assert weights_sha256(teacher) == teacher_hash
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
    tensors, state = _read(RunFolder(tmp_path).state, STATE_FORMAT)
    assert not any(k.startswith("module.teacher.") for k in tensors)
    extra = {f"module.{name}" for name, _ in distiller.named_parameters()
             if not name.startswith(("student.", "teacher."))}
    assert extra <= set(tensors)
    assert (len(extra) > 0) == (method in ("fitnets", "tfckd"))
    assert state["counters"]["task"] == distiller.resume_signature()
    assert state["counters"]["task"]["teacher_sha256"] == teacher_hash
    # learned calibration: mean weights on a fixed batch before training and after the epoch
    record = result.history[0]
    if method == "tfckd":
        before, after = record["calibration_initial"], record["calibration"]
        assert set(after) == {"encoder", "dual_path", "decoder", "inter"}
        n_s, n_t = distiller.set_sizes["dual_path"]
        assert torch.tensor(after["dual_path"]["time"]).shape == (n_s, n_t)
        for summary in (before, after):
            for by_stream in summary.values():
                for w in by_stream.values():
                    torch.testing.assert_close(torch.tensor(w).sum(-1),
                                               torch.ones(len(w)), atol=1e-5, rtol=0)
        assert before != after            # one epoch of training moved them
    else:
        assert "calibration" not in record and "calibration_initial" not in record


@pytest.mark.parametrize("method", ["tfckd-uniform", "tfckd-uniform-trained-fusion"])
def test_uniform_calibration_records_no_weights(teacher, splits, tmp_path, method):
    result = _fit(_distiller(method, teacher), splits, tmp_path, _config())
    assert "calibration" not in result.history[0]


def test_interrupted_tfckd_run_resumes_to_the_same_weights(teacher, splits, tmp_path,
                                                           kill_at_step):
    config = _config(epochs=2, checkpoint_every=1)
    straight = _distiller("tfckd", teacher)
    straight_result = _fit(straight, splits, tmp_path / "straight", config)

    dying = _distiller("tfckd", teacher)
    killed = kill_at_step(dying, 4)       # second epoch, second step
    with pytest.raises(killed):
        _fit(dying, splits, tmp_path / "resumed", config)
    fresh = _distiller("tfckd", teacher, seed=123)      # a new process: other initial weights
    initial = _distiller("tfckd", teacher).state_dict()
    assert any(not torch.equal(value, initial[key]) for key, value in fresh.state_dict().items()
               if key.startswith("calibration."))
    resumed_result = _fit(fresh, splits, tmp_path / "resumed", config)
    ours, theirs = fresh.state_dict(), straight.state_dict()
    assert ours.keys() == theirs.keys() and any(k.startswith("calibration.") for k in ours)
    for key in ours:
        assert torch.equal(ours[key], theirs[key]), key
    assert [h["train"] for h in resumed_result.history] == \
        [h["train"] for h in straight_result.history]
    # the weights' course too, including the snapshot taken before the interrupted run began
    for key in ("calibration_initial", "calibration"):
        assert resumed_result.history[0][key] == straight_result.history[0][key]
    assert resumed_result.history[1]["calibration"] == straight_result.history[1]["calibration"]


def test_resume_refuses_another_kd_weight_or_teacher(teacher, splits, tmp_path):
    _fit(_distiller("output", teacher), splits, tmp_path, _config())
    with pytest.raises(ValueError, match="another task.*kd_weight"):
        _fit(_distiller("output", teacher, kd_weight=0.5), splits, tmp_path, _config())
    torch.manual_seed(5)
    other_teacher = DPDCRN(TEACHER)
    with pytest.raises(ValueError, match="another task.*teacher_sha256"):
        _fit(_distiller("output", other_teacher), splits, tmp_path, _config())


def test_distiller_state_dict_leaves_the_teacher_out(teacher):
    distiller, fresh = _distiller("fitnets", teacher), _distiller("fitnets", teacher, seed=1)
    assert distiller.model is distiller.student
    state = distiller.state_dict()
    assert any(k.startswith("adaptors.") for k in state)
    assert not any(k.startswith("teacher.") for k in state)
    fresh.load_state_dict(state)          # strict: the teacher entries are fresh's own teacher
    for key, value in fresh.state_dict().items():
        assert torch.equal(value, state[key]), key


# ------------------------------------------------------------------------------- the CLI

def _train(mini, out, *extra):
    return cli.main(["train", "--preset", "lite-student", "--data", str(mini), "--out", str(out),
                     "--epochs", "1", "--steps-per-epoch", "1", "--batch-size", str(BATCH),
                     "--segment-seconds", str(SEGMENT), "--valid-clips", "1",
                     "--warmup-steps", "1", "--device", "cpu", *extra])


def test_cli_trains_a_student_from_a_teacher_file(mini, teacher_file, tmp_path):
    assert _train(mini, tmp_path, "--method", "tfckd", "--teacher", str(teacher_file),
                  "--kd-weight", "0.5", "--method-option", "fusion_mid_channels=16",
                  "--method-option", "released_normalisation=true") == 0
    description = read_model_description(RunFolder(tmp_path).best)
    assert DPDCRNConfig(**description["config"]) == PRESETS["lite-student"]
    assert description["method"] == "tfckd" and description["kd_weight"] == 0.5
    assert description["method_options"] == {"fusion_mid_channels": 16,
                                             "released_normalisation": True}
    assert description["teacher"] == str(teacher_file)
    assert description["teacher_sha256"] == hashlib.sha256(teacher_file.read_bytes()).hexdigest()
    assert description["teacher_preset"] == "tiny-teacher"
    _, state = _read(RunFolder(tmp_path).state, STATE_FORMAT)
    assert state["counters"]["task"]["options"] == description["method_options"]


def test_cli_without_method_trains_plainly_as_before(mini, tmp_path):
    assert _train(mini, tmp_path) == 0
    description = read_model_description(RunFolder(tmp_path).best)
    assert description["method"] == "none" and "teacher" not in description
    tensors, state = _read(RunFolder(tmp_path).state, STATE_FORMAT)
    assert all(k.startswith("module.model.") for k in tensors if k.startswith("module."))
    assert "task" not in state["counters"]


def test_cli_rejects_an_unknown_method_listing_the_valid_ones(mini, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        _train(mini, tmp_path, "--method", "crd")
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'crd'" in err
    assert all(name in err for name in METHODS)


@pytest.mark.parametrize("extra, message", [
    (["--method", "tfckd"], "--method tfckd distils from a teacher: give --teacher"),
    (["--method", "none", "--teacher", "lite-teacher"],
     "--teacher given, but --method none trains the student alone"),
    (["--kd-weight", "0.5"], "--kd-weight given, but --method none"),
    (["--method", "output", "--teacher", "no-such-teacher"],
     "'no-such-teacher' is neither a model file nor a shipped model"),
    (["--method", "output", "--teacher", "missing.safetensors"], "no such model file"),
    (["--method", "fitnets", "--teacher", "T", "--method-option", "fusion_mid_channels=8"],
     "method 'fitnets' does not accept option 'fusion_mid_channels'; valid options: eps"),
    (["--method", "output", "--teacher", "T", "--method-option", "eps=1e-3"],
     "method 'output' does not accept option 'eps'; valid options: output_loss"),
    (["--method", "output", "--teacher", "T", "--method-option", "output_loss=mse"],
     "takes a Python callable"),
    (["--method", "tfckd", "--teacher", "T", "--method-option", "eps"], "takes KEY=VALUE"),
    (["--method", "tfckd", "--teacher", "T", "--method-option", "released_normalisation=maybe"],
     "values are true/false, integers or numbers"),
])
def test_cli_rejects_bad_combinations(mini, teacher_file, tmp_path, extra, message, capsys):
    extra = [str(teacher_file) if value == "T" else value for value in extra]
    assert _train(mini, tmp_path, *extra) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err
    assert not RunFolder(tmp_path).state.exists()


@pytest.mark.parametrize("override", [
    {"sample_rate": 8000},
    {"stft": {"n_fft": 512, "hop_length": HOP_LENGTH // 2, "win_length": 512,
              "window": "hann (periodic)", "center": True}},
])
def test_cli_rejects_a_teacher_with_another_stft(mini, teacher, tmp_path, override, capsys):
    path = save_model(tmp_path / "other.safetensors", teacher, **override)
    assert _train(mini, tmp_path / "run", "--method", "output", "--teacher", str(path)) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "would not see the same spectra" in err
