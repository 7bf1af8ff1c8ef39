"""TrainConfig defines the training budget once: the CLI flags, a run's command line and the
in-process run (run_training) are all derived from it."""

import dataclasses
import json
import shlex
from pathlib import Path

import pytest

from tfckd_lite.checkpoint import read_model_description
from tfckd_lite.cli import build_parser
from tfckd_lite.data import files_sha256, manifest_sha256, plan_sha256
from tfckd_lite.run_folder import RunFolder
from tfckd_lite.stft import num_frames
from tfckd_lite.train import (TrainConfig, config_argv, config_from_args, run_training,
                              training_argv)

ROOT = Path(__file__).resolve().parents[1]
RUN = dict(preset="lite-student", data="d", out="o")


def _parse(argv):
    return build_parser().parse_args(argv)


def test_every_field_is_a_train_flag_with_its_default_and_help():
    args = _parse(["train", *training_argv(TrainConfig(), **RUN)[1:]])
    assert config_from_args(args) == TrainConfig()
    train = build_parser()._subparsers._group_actions[0].choices["train"]
    actions = {a.dest: a for a in train._actions}
    for f in dataclasses.fields(TrainConfig):
        assert actions[f.name].default == f.default
        assert actions[f.name].help.startswith(f.metadata["help"])
    assert actions["remix_snr"].nargs == 2 and actions["epochs"].type is int
    assert actions["lr"].type is float
    optional = actions["steps_per_epoch"].type
    assert optional("7") == 7 and optional("none") is None


@pytest.mark.parametrize("config", [
    TrainConfig(),
    TrainConfig(epochs=3, batch_size=2, segment_seconds=0.5, lr=1.2345678e-4, weight_decay=0.01,
                steps_per_epoch=7, valid_clips=5, checkpoint_every=10, device="cpu", seed=4,
                remix_snr=[0.0, 20.0], final_lr_ratio=0.1, grad_clip=1.5, warmup_steps=0),
])
def test_a_derived_command_line_parses_back_into_the_same_config(config):
    argv = training_argv(config, **RUN, method="tfckd", teacher="lite-teacher", kd_weight=0.1,
                         method_options={"released_normalisation": True, "eps": 1e-3},
                         resume=False)
    args = _parse(argv)
    assert config_from_args(args) == config
    assert (args.method, args.teacher, args.kd_weight, args.no_resume) == \
        ("tfckd", "lite-teacher", 0.1, True)
    assert args.method_option == ["released_normalisation=true", "eps=0.001"]
    # only what differs from the defaults, when asked
    short = config_argv(config, defaults=TrainConfig())
    assert config_from_args(_parse(["train", *training_argv(TrainConfig(), **RUN)[1:7],
                                    *short])) == config


def test_the_segment_frame_count_is_the_stft_s():
    assert TrainConfig().segment_frames == num_frames(16000) == 63
    assert TrainConfig(segment_seconds=0.5).segment_frames == num_frames(8000)


def test_the_committed_runs_commands_still_parse_into_their_training_config():
    """A run's stored command line (written before the flags were derived) sets the same
    config with today's derived flags: the committed experiment's descriptions stay valid."""
    descriptions = sorted((ROOT / "experiments").glob(f"*/runs/*/**/{RunFolder.BEST_DESCRIPTION}"))
    if not descriptions:
        pytest.skip("no committed experiment runs")
    for path in descriptions[:: max(1, len(descriptions) // 8)]:
        description = json.loads(path.read_text())
        args = _parse(shlex.split(description["command"])[3:])
        stored = description["train_config"]
        parsed = dataclasses.asdict(config_from_args(args))
        assert {k: parsed[k] for k in stored} == stored, path


def test_run_training_trains_in_process_and_records_its_command(mini, tmp_path):
    config = TrainConfig(epochs=1, batch_size=2, segment_seconds=0.5, steps_per_epoch=2,
                         valid_clips=1, warmup_steps=1, device="cpu", seed=3)
    result = run_training(config, preset="lite-student", data=mini, out=tmp_path,
                          progress=False)
    assert len(result.history) == 1 and result.best_path == RunFolder(tmp_path).best
    description = read_model_description(result.best_path)
    assert description["method"] == "none" and description["preset"] == "lite-student"
    assert (description["data_manifest_sha256"], description["data_files_sha256"],
            description["data_plan_sha256"]) == (
        manifest_sha256(mini), files_sha256(mini), plan_sha256(mini))
    expected = training_argv(config, preset="lite-student", data=mini, out=tmp_path)
    assert description["command"] == "python -m tfckd_lite " + shlex.join(expected)
    assert config_from_args(_parse(shlex.split(description["command"])[3:])) == config
    assert description["train_config"] == {k: v for k, v in dataclasses.asdict(config).items()
                                           if k not in ("device", "workers")}
    with pytest.raises(ValueError, match="trains the student alone"):
        run_training(config, preset="lite-student", data=mini, out=tmp_path / "x",
                     kd_weight=1.0)
    with pytest.raises(ValueError, match="distils from a teacher"):
        run_training(config, preset="lite-student", data=mini, out=tmp_path / "x",
                     method="tfckd")
    with pytest.raises(ValueError, match="cannot be written on a command line"):
        training_argv(config, **RUN, method="output", teacher="t", method_options={
            "output_loss": print})


def test_one_channel_of_a_multichannel_set_trains_and_scores_a_single_channel_model(
        mc_mini, tmp_path, capsys):
    from tfckd_lite import cli

    config = TrainConfig(epochs=1, steps_per_epoch=1, batch_size=2, segment_seconds=0.25,
                         warmup_steps=1, valid_clips=1, device="cpu")
    argv = training_argv(config, preset="lite-student", data=mc_mini, out=tmp_path / "w",
                         mics="A", channel=0)
    assert argv[-4:] == ["--mics", "A", "--channel", "0"]
    assert cli.main(argv) == 0
    best = tmp_path / "w" / RunFolder.BEST
    assert read_model_description(best)["config"]["in_channels"] == 1     # W alone: mono
    assert cli.main(["evaluate", "--model", str(best), "--data", str(mc_mini), "--mics", "A",
                     "--channel", "0", "--max-clips", "2"]) == 0
    assert "pesq_wb" in capsys.readouterr().out
    with pytest.raises(ValueError, match="channel must be 0 or more"):
        run_training(config, preset="lite-student", data=mc_mini, out=tmp_path / "x", mics="A",
                     channel=-1)
