"""``export`` scores a run on the view of the corpus it was trained on (``--mics``/``--channel``,
read from the run's recorded training command), and the shipped-model listings stay correct
when the multi-channel teachers are shipped."""

import dataclasses
import shutil

import pytest
import torch

from tfckd_lite import cli, pretrained
from tfckd_lite.checkpoint import load_model, save_model
from tfckd_lite.compare import default_systems
from tfckd_lite.data import open_corpus
from tfckd_lite.metrics import evaluate
from tfckd_lite.models import DPDCRN
from tfckd_lite.run_folder import RunFolder
from tfckd_lite.train import recorded_corpus_options
from tiny_models import STUDENT
from cli_errors import error_line

pytestmark = pytest.mark.usefixtures("one_torch_thread")
CLIPS = 2


@pytest.fixture
def shipping_into(tmp_path, monkeypatch):
    """The package's pretrained folder pointed at an empty temporary one."""
    folder = tmp_path / "pretrained"
    folder.mkdir()
    monkeypatch.setattr(pretrained, "PRETRAINED_DIR", folder)
    return folder


def test_the_corpus_options_come_from_the_recorded_training_command():
    train = "python -m tfckd_lite train --preset lite-teacher --out runs/x --data d"
    assert recorded_corpus_options(train) == {}
    assert recorded_corpus_options(train + " --mics A") == {"mics": "A"}
    assert recorded_corpus_options(
        "python -m tfckd_lite train --preset lite-teacher --out runs/lite-teacher-w --epochs 20 "
        "--data data/generated/mc-small --mics A --channel 0 --valid-clips 100") == \
        {"mics": "A", "channels": 0}
    # a recipe's microphones count as given (train reads them the same way)
    assert recorded_corpus_options("python -m tfckd_lite train --recipe l3das23-4ch:teacher "
                                   "--data d --out o") == {"mics": "A"}
    with pytest.raises(ValueError, match="not a training command"):
        recorded_corpus_options("python -m tfckd_lite evaluate --model m --data d")
    with pytest.raises(ValueError, match="cannot be read .*--no-such-flag"):
        recorded_corpus_options(train + " --no-such-flag 3")


@pytest.fixture(scope="module")
def w_run(mc_mini, tmp_path_factory):
    """A real one-step run of the single-channel lite student on W of mc-mini's microphone A."""
    out = tmp_path_factory.mktemp("w-run") / "run"
    argv = ["train", "--preset", "lite-student", "--data", str(mc_mini), "--out", str(out),
            "--mics", "A", "--channel", "0", "--epochs", "1", "--steps-per-epoch", "1",
            "--batch-size", "2", "--segment-seconds", "0.5", "--valid-clips", "1",
            "--warmup-steps", "1"]
    assert cli.main(argv) == 0
    return out


def test_export_scores_a_w_run_on_w_and_records_both_commands(mc_mini, w_run, shipping_into):
    argv = ["export", "--run", str(w_run), "--name", "tiny-w", "--data", str(mc_mini),
            "--max-clips", str(CLIPS)]
    assert cli.main(argv) == 0
    info = pretrained.describe("tiny-w")
    assert "--mics A --channel 0" in info["command"]                  # how it was trained
    assert info["export_command"] == "python -m tfckd_lite " + " ".join(argv)
    assert info["test"]["corpus_options"] == {"mics": "A", "channels": 0}
    assert info["test"]["summary"]["clips"] == CLIPS
    # the stored scores are those of the model on W, channel 0 of microphone A
    model = load_model(RunFolder(w_run).best)
    w_only = open_corpus(mc_mini, "test", mics="A", channels=0)
    again = evaluate(model.enhance, w_only, metrics=("si_sdr",), max_clips=CLIPS,
                     progress=False)["summary"]
    assert info["test"]["summary"]["si_sdr"] == pytest.approx(again["si_sdr"])
    assert info["test"]["summary"]["input_si_sdr"] == pytest.approx(again["input_si_sdr"])


def test_export_refuses_a_view_with_other_channels_in_one_line(mc_mini, w_run, shipping_into,
                                                               capsys):
    # explicit --mics without --channel: all four channels of mic A, for a one-channel model
    argv = ["export", "--run", str(w_run), "--name", "tiny-w", "--data", str(mc_mini),
            "--mics", "A", "--max-clips", "1"]
    assert cli.main(argv) == 2
    line = error_line(capsys)
    assert "takes 1 channel(s) but split 'test'" in line and "gives 4" in line
    assert "--mics/--channel" in line
    assert pretrained.available() == []                      # nothing was written


def test_export_reads_the_microphones_of_a_multichannel_run(mc_mini, tmp_path, shipping_into):
    torch.manual_seed(0)
    run = RunFolder(tmp_path / "mc-run")
    run.path.mkdir()
    save_model(run.best, DPDCRN(dataclasses.replace(STUDENT, in_channels=4)), preset="tiny-mc4",
               command=f"python -m tfckd_lite train --preset tiny-mc4 --data {mc_mini} "
                       f"--out {run.path} --mics A")
    pretrained.export(run.path, "tiny-mc4", mc_mini, max_clips=1, progress=False)
    test = pretrained.describe("tiny-mc4")["test"]
    assert test["corpus_options"] == {"mics": "A"} and test["summary"]["clips"] == 1
    # and a single-channel corpus view is refused before any scoring
    with pytest.raises(ValueError, match="takes 4 channel.* gives 1"):
        pretrained.export(run.path, "tiny-mc4", mc_mini, max_clips=1, progress=False,
                          corpus={"mics": "A", "channels": 0})


def test_shipped_listings_leave_the_multichannel_teachers_out(tmp_path, monkeypatch):
    """With lite-teacher-mc4, lite-teacher-w and a distilled lite-student-mc4-<method> shipped
    next to the single-channel models (here copies of other models under their names), the
    comparison widget's default systems are still the single-channel models trained on the
    reduced set."""
    folder = tmp_path / "pretrained"
    folder.mkdir()
    copies = {"lite-teacher": "lite-teacher", "lite-student": "lite-student",
              "lite-student-tfckd": "lite-student-tfckd", "lite-student-mc4": "lite-student-mc4",
              "lite-teacher-w": "lite-teacher", "lite-teacher-mc4": "lite-student-mc4",
              "lite-student-mc4-tfckd": "lite-student-mc4"}
    for name, source in copies.items():
        for suffix in (".safetensors", ".json"):
            shutil.copy(pretrained.PRETRAINED_DIR / f"{source}{suffix}", folder / f"{name}{suffix}")
    monkeypatch.setattr(pretrained, "PRETRAINED_DIR", folder)
    assert pretrained.available() == sorted(copies)
    assert default_systems() == ["lite-teacher", "lite-student", "lite-student-tfckd"]
    assert pretrained.resolve("lite-teacher-w") == folder / "lite-teacher-w.safetensors"
