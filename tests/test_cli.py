"""The command line reports library errors as one line (exit status 2) and bugs with a traceback."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tfckd_lite import cli, train
from tfckd_lite.files import folder_lock
from tfckd_lite.run_folder import RunFolder
from tfckd_lite.checkpoint import save_model
from tfckd_lite.cli import library_error_message
from tfckd_lite.models import build_model
from cli_errors import error_line

pytestmark = pytest.mark.usefixtures("one_torch_thread")
REPO = Path(__file__).resolve().parents[1]


def _train_argv(data, out, *extra):
    return ["train", "--preset", "lite-student", "--data", str(data), "--out", str(out),
            "--epochs", "1", "--steps-per-epoch", "1", "--batch-size", "2",
            "--segment-seconds", "0.5", "--valid-clips", "1", "--warmup-steps", "1",
            "--device", "cpu", *extra]


@pytest.fixture(scope="module")
def model_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    junk = folder / "junk.safetensors"
    junk.write_bytes(b"not a checkpoint at all")
    return {"junk": junk,
            "8k": save_model(folder / "8k.safetensors", build_model("lite-student"),
                             sample_rate=8000),
            "4mics": save_model(folder / "4mics.safetensors",
                                build_model("lite-student", in_channels=4))}


def test_missing_corpus(tmp_path, capsys):
    assert cli.main(["evaluate", "--model", "noisy", "--data", str(tmp_path / "none")]) == 2
    assert f"corpus folder {tmp_path / 'none'} does not exist" in error_line(capsys)


def test_unknown_model_and_missing_model_file(mini, tmp_path, capsys):
    assert cli.main(["evaluate", "--model", "no-such-model", "--data", str(mini)]) == 2
    line = error_line(capsys)
    assert "'no-such-model' is neither a model file nor a shipped model" in line
    assert not line.startswith("error: \"")          # the sentence, not a KeyError's repr
    missing = tmp_path / "gone.safetensors"
    assert cli.main(["evaluate", "--model", str(missing), "--data", str(mini)]) == 2
    assert f"{missing}: no such model file" in error_line(capsys)


def test_unknown_preset(mini, tmp_path, capsys):
    argv = _train_argv(mini, tmp_path / "run")
    argv[argv.index("lite-student")] = "lite-giant"
    assert cli.main(argv) == 2
    assert "unknown preset 'lite-giant'; choose one of" in error_line(capsys)


def test_refused_checkpoint(mini, model_files, capsys):
    assert cli.main(["evaluate", "--model", str(model_files["junk"]), "--data", str(mini)]) == 2
    assert "is not a readable safetensors checkpoint" in error_line(capsys)


def test_wrong_sample_rate(mini, model_files, capsys):
    assert cli.main(["evaluate", "--model", str(model_files["8k"]), "--data", str(mini)]) == 2
    assert "was trained with sample rate 8000" in error_line(capsys)


def test_wrong_channel_count(mini, model_files, capsys):
    assert cli.main(["evaluate", "--model", str(model_files["4mics"]), "--data", str(mini),
                     "--max-clips", "1"]) == 2
    assert "this model takes 4 microphones" in error_line(capsys)


def test_damaged_dataset_manifest(tmp_path, capsys):
    (tmp_path / "manifest.json").write_text('{"format": "tfckd_lite.reduced_dataset"}')
    assert cli.main(["evaluate", "--model", "noisy", "--data", str(tmp_path)]) == 2
    assert "manifest.json lists no files (damaged manifest)" in error_line(capsys)


def test_unreadable_audio_in_a_corpus(tmp_path, capsys):
    """A corpus lists its problems one per line under the error line."""
    for folder in ("clean_testset_wav", "noisy_testset_wav"):
        (tmp_path / folder).mkdir()
        sf.write(tmp_path / folder / "p1_001.wav", np.zeros(1600, np.float32), 16000)
    (tmp_path / "noisy_testset_wav" / "p1_001.wav").write_text("not audio")
    assert cli.main(["evaluate", "--model", "noisy", "--data", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    first, *rest = err.splitlines()
    assert first.startswith("error: 1 problem(s) in the voicebank test corpus")
    assert len(rest) == 1 and "p1_001.wav: cannot read audio" in rest[0]
    assert "Traceback" not in err


def test_unreadable_audio_file(tmp_path, capsys):
    bad = tmp_path / "notes.wav"
    bad.write_text("a text file with a .wav name")
    assert cli.main(["enhance", str(bad), "--model", "lite-student", "--out",
                     str(tmp_path / "out"), "--quiet"]) == 1      # enhance: 1 = a file failed
    assert f"{bad}: cannot read audio" in error_line(capsys)


def test_busy_run_folder(mini, tmp_path, capsys):
    run = tmp_path / "run"
    with folder_lock(run, RunFolder.LOCK, wait=False):        # "another process" trains here
        assert cli.main(_train_argv(mini, run)) == 2
    assert f"another process is working in {run}" in error_line(capsys)


def test_resume_with_another_config(mini, tmp_path, capsys):
    run = tmp_path / "run"
    assert cli.main(_train_argv(mini, run, "--lr", "0.001")) == 0
    capsys.readouterr()
    assert cli.main(_train_argv(mini, run, "--lr", "0.002")) == 2
    assert "was written with another config (saved, now): {'lr': (0.001, 0.002)}" in \
        error_line(capsys)


def test_usage_error_is_one_line_with_status_2(mini, tmp_path, capsys):
    assert cli.main(_train_argv(mini, tmp_path, "--method", "tfckd")) == 2
    assert error_line(capsys) == ("error: --method tfckd distils from a teacher: give --teacher "
                                   "(a shipped model name or a .safetensors model file)")


def test_debug_shows_the_error_itself(mini):
    with pytest.raises(KeyError, match="neither a model file nor a shipped model"):
        cli.main(["--debug", "evaluate", "--model", "no-such-model", "--data", str(mini)])


@pytest.mark.parametrize("bug", [
    lambda: None + 1,                                          # TypeError
    lambda: np.zeros(3) + np.zeros(4),                         # ValueError inside numpy
    lambda: train.cli._method_options("no-such-method", []),      # KeyError from a lookup
])
def test_a_bug_keeps_its_traceback(bug, mini, monkeypatch):
    def broken_command(args):
        bug()

    monkeypatch.setattr(train.cli, "_evaluate_command", broken_command)
    with pytest.raises((TypeError, ValueError, KeyError)):
        cli.main(["evaluate", "--model", "noisy", "--data", str(mini)])


def _raised(function):
    try:
        function()
    except Exception as error:        # noqa: BLE001 - the test inspects whatever was raised
        return error
    raise AssertionError("nothing was raised")


def test_which_errors_are_library_errors():
    from tfckd_lite.models import build_model as build

    assert library_error_message(_raised(lambda: build("lite-giant"))).startswith(
        "unknown preset 'lite-giant'")
    assert "invalid training config" in library_error_message(
        _raised(lambda: train.TrainConfig(epochs=0)))
    assert library_error_message(_raised(lambda: open("/no/such/file"))).endswith(
        "No such file or directory: '/no/such/file'")
    assert library_error_message(cli.UsageError("flags clash")) == "flags clash"
    for bug in (lambda: train.cli._method_options("nope", []), lambda: {}["key"],
                lambda: int("x"), lambda: np.ones(2) @ np.ones(3)):
        assert library_error_message(_raised(bug)) is None


@pytest.mark.parametrize("debug", [False, True])
def test_a_real_process(mini, debug):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    argv = [sys.executable, "-m", "tfckd_lite", *(["--debug"] if debug else []),
            "evaluate", "--model", "no-such-model", "--data", str(mini)]
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
    if debug:
        assert done.returncode == 1
        assert done.stderr.startswith("Traceback (most recent call last):")
        assert "KeyError" in done.stderr
    else:
        assert done.returncode == 2
        assert done.stderr.startswith("error: 'no-such-model' is neither a model file nor")
        assert done.stderr.count("\n") == 1
