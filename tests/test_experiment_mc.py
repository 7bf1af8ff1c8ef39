"""The distillation experiment on the simulated multi-channel set (``reproduce --mics``)."""

import dataclasses
import json
import math
import re
import shlex
from pathlib import Path

import pytest
import torch

from tfckd_lite import experiment
from tfckd_lite.checkpoint import read_model_description, save_model
from tfckd_lite.cli import build_parser
from tfckd_lite.experiment import ExperimentConfig, MicrophoneMismatchError, Run
from tfckd_lite.experiment.cli import config_from_args
from tfckd_lite.models import DPDCRN
from tfckd_lite.run_folder import RunFolder
from tiny_models import TEACHER, TEACHER_SEED


def _tiny_teacher_file(folder: Path, in_channels: int) -> Path:
    """The tiny teacher of tests/tiny_models.py with ``in_channels`` microphones, as a file."""
    torch.manual_seed(TEACHER_SEED)
    model = DPDCRN(dataclasses.replace(TEACHER, in_channels=in_channels))
    return save_model(folder / f"tiny-teacher-{in_channels}ch.safetensors", model,
                      preset=f"tiny-teacher-{in_channels}ch")


def mc_config(root, out, teacher, **overrides) -> ExperimentConfig:
    """2 methods x 1 seed, one λ, microphone A, the tiniest budget."""
    settings = dict(data=str(root), out=str(out), teacher=str(teacher),
                    student="lite-student-mc4", mics="A", methods=("none", "frame-similarity"),
                    seeds=(0,), kd_weights=(1.0,), grid_extensions=0, test_clips=2)
    settings.update(overrides)
    return ExperimentConfig(**settings).with_training(
        epochs=1, steps_per_epoch=2, batch_size=2, segment_seconds=0.5, warmup_steps=1,
        valid_clips=2)


@pytest.fixture(scope="module")
def teachers(tmp_path_factory):
    folder = tmp_path_factory.mktemp("teachers")
    return {n: _tiny_teacher_file(folder, n) for n in (1, 4)}


@pytest.fixture(scope="module")
def mc_finished(mc_mini, teachers, tmp_path_factory):
    torch.set_num_threads(1)
    cfg = mc_config(mc_mini, tmp_path_factory.mktemp("mc-experiment"), teachers[4])
    return cfg, experiment.reproduce(cfg, progress=False)


def test_every_run_trains_and_is_scored_on_the_chosen_microphones(mc_finished):
    cfg, results = mc_finished
    assert sorted((r["method"], r["seed"]) for r in results["runs"]) == \
        [("frame-similarity", 0), ("none", 0)]
    for run in results["runs"]:
        folder = RunFolder(run["folder"])
        described = read_model_description(folder.best)
        assert described["config"]["in_channels"] == 4
        assert "--mics A" in described["command"]
        # the test scores were computed with these microphones (and cached under them)
        assert json.loads(folder.test_scores.read_text())["key"]["mics"] == "A"
    teacher_cache = json.loads((Path(cfg.out) / experiment.TEACHER_SCORES_FILE).read_text())
    assert teacher_cache["key"]["mics"] == "A"
    # the runs' command lines carry the microphones too
    for run in (Run("none", None, 0), Run("frame-similarity", 1.0, 0)):
        argv = run.argv(cfg)
        assert argv[argv.index("--mics") + 1] == "A"


def test_the_record_the_report_and_the_command_name_the_microphones(mc_finished):
    cfg, results = mc_finished
    record = json.loads((Path(cfg.out) / experiment.RECORD_FILE).read_text())
    assert record["config"]["mics"] == "A"
    assert results["config"]["mics"] == "A"
    assert "--mics A" in results["command"]
    for path in results["report"].values():
        assert Path(path).is_file()
    assert "| noisy input (W of mic A) |" in experiment.results_markdown(results)
    # the unprocessed row is W of microphone A, as evaluate scores the mixture's channel 0
    noisy = results["rows"]["noisy"]["pesq_wb"]["mean"]
    first = json.loads(RunFolder(results["runs"][0]["folder"]).test_scores.read_text())
    assert noisy == first["summary"]["input_pesq_wb"]


def test_a_multichannel_experiment_ships_beside_the_single_channel_one(mc_finished, tmp_path,
                                                                        monkeypatch):
    cfg, results = mc_finished
    monkeypatch.setattr(experiment.report, "RESULTS_DIR", tmp_path / "results")
    exported = []
    monkeypatch.setattr("tfckd_lite.pretrained.export",
                        lambda run, name, *a, **k: exported.append(name) or Path(run))
    shipped = experiment.ship(results)
    # students named after the 4-channel preset, never lite-student-<method>
    assert exported == ["lite-student-mc4-frame-similarity"] and set(shipped) == {
        "frame-similarity"}
    written = sorted(p.name for p in (tmp_path / "results").iterdir())
    assert written == ["distillation-mics-A.clips.json", "distillation-mics-A.json",
                       "distillation-mics-A.md", "distillation-mics-A.png"]
    assert experiment.shipped_name("A") == "distillation-mics-A"
    assert experiment.shipped_name(None) == experiment.SHIPPED_NAME
    # each experiment reads back its own report and clip scores
    assert experiment.shipped_results("A")["config"]["mics"] == "A"
    assert experiment.shipped_results() is None
    clips = experiment.shipped_clip_records("A")
    assert set(clips) == {"none", "frame-similarity"} and len(clips["none"][0]) == 2
    assert experiment.shipped_clip_records() is None


def test_a_resume_with_other_microphones_is_refused(mc_finished):
    cfg, _ = mc_finished
    # mic B has 4 channels too: the models would accept it, the folder must not
    with pytest.raises(experiment.ExperimentMismatchError, match=r"mics: 'A' -> 'B'"):
        experiment.reproduce(dataclasses.replace(cfg, mics="B"), progress=False)


def test_a_record_without_mics_compares_as_single_channel(mc_finished, tmp_path):
    cfg, _ = mc_finished
    record = json.loads((Path(cfg.out) / experiment.RECORD_FILE).read_text())
    del record["config"]["mics"]             # a folder recorded before the setting existed
    record["config"]["out"] = str(tmp_path)
    (tmp_path / experiment.RECORD_FILE).write_text(json.dumps(record))
    older = dataclasses.replace(cfg, out=str(tmp_path))
    with pytest.raises(experiment.ExperimentMismatchError, match=r"mics: None -> 'A'"):
        experiment.check_experiment_folder(older)
    experiment.check_experiment_folder(dataclasses.replace(older, mics=None))


@pytest.mark.parametrize("teacher_channels, change, message", [
    (4, dict(student="lite-student-mc8"), r"student preset lite-student-mc8 takes 8 .* gives 4"),
    (4, dict(mics="AB"), r"teacher .* takes 4 .* gives 8"),
    (1, {}, r"teacher .* takes 1 .* gives 4"),
])
def test_a_channel_mismatch_is_refused_before_any_training(mc_mini, teachers, tmp_path,
                                                          teacher_channels, change, message):
    cfg = mc_config(mc_mini, tmp_path / "out", teachers[teacher_channels], **change)
    with pytest.raises(MicrophoneMismatchError, match=message):
        experiment.reproduce(cfg, progress=False)
    assert not (tmp_path / "out").exists()           # nothing recorded, nothing trained


def test_mics_on_a_single_channel_corpus_is_refused(mini, teachers, tmp_path):
    cfg = mc_config(mini, tmp_path / "out", teachers[1], student="lite-student")
    with pytest.raises(MicrophoneMismatchError, match="leave mics out"):
        cfg.check_microphones()
    # a single-channel preset takes the corpus's channels, as `train` builds it
    assert dataclasses.replace(cfg, mics=None).check_microphones() == 1


def test_mics_are_a_known_selection():
    with pytest.raises(ValueError, match="mics must be one of"):
        ExperimentConfig(data="d", out="o", mics="C")


def test_reproduce_mics_parses_back_into_the_same_config(tmp_path):
    cfg = mc_config(tmp_path, tmp_path / "out", "t.safetensors", mics="AB")
    argv = shlex.split(experiment.reproduce_command(cfg))[3:]
    assert argv[:1] == ["reproduce"] and "--mics" in argv
    assert config_from_args(build_parser().parse_args(argv)) == dataclasses.replace(
        cfg, jobs=1)


def _makefile_mc_config() -> ExperimentConfig:
    makefile = (Path(__file__).resolve().parents[1] / "Makefile").read_text()
    makefile = makefile.replace("\\\n", " ")
    argv = shlex.split(re.search(r"REPRODUCE_MC_ARGS := (.*)", makefile).group(1))
    return config_from_args(build_parser().parse_args(["reproduce", *argv]))


def test_make_reproduce_mc_tunes_the_leading_methods_on_microphone_a():
    cfg = _makefile_mc_config()
    assert (cfg.data, cfg.out, cfg.mics) == ("data/generated/mc-small",
                                             "experiments/distillation-mc-small", "A")
    assert (cfg.teacher, cfg.student) == ("lite-teacher-mc4", "lite-student-mc4")
    assert cfg.methods == ("none", "frame-similarity", "tfckd") and cfg.seeds == (0, 1, 2)
    assert cfg.jobs == 2 and cfg.train == experiment.default_training()
    # the same protocol as the single-channel experiment: each KD method's own grid, tuned with
    # seed 0 on validation; no ablation among the methods, so every grid is known at once
    runs = experiment.planned_runs(cfg)
    assert [(r.method, r.seed) for r in runs if r.method == "none"] == [("none", s)
                                                                         for s in (0, 1, 2)]
    for method in ("frame-similarity", "tfckd"):
        grid = list(experiment.TUNING_GRIDS[method])
        tuned = sorted(r.kd_weight for r in runs if r.method == method and r.seed == 0)
        # the grid, grown by factor-10 steps past the end where the best λ lay (at most
        # grid_extensions of them; the committed folder has grown tfckd's to 0.01)
        beyond = [lam for lam in tuned if lam not in grid]
        assert set(grid) <= set(tuned) and len(beyond) <= cfg.grid_extensions
        assert all(math.isclose(b, grid[0] / 10 ** (k + 1)) for k, b in
                   enumerate(sorted((lam for lam in beyond if lam < grid[0]), reverse=True)))
        assert all(math.isclose(b, grid[-1] * 10 ** (k + 1)) for k, b in
                   enumerate(sorted(lam for lam in beyond if lam > grid[-1])))
        # seeds 1 and 2 are planned once seed 0 has chosen λ (in the committed folder), at it
        later = [r for r in runs if r.method == method and r.seed != 0]
        assert {r.seed for r in later} <= {1, 2}
        assert all(r.kd_weight in tuned for r in later)


def test_the_mc_experiment_folder_keeps_what_a_fresh_clone_resumes_from_and_its_report():
    """As for ``make reproduce``'s folder: the report is shipped (``distillation-mics-A.*``), not
    committed in the folder."""
    import subprocess

    from tfckd_lite.run_folder import RunFolder as R

    root = Path(__file__).resolve().parents[1]
    if not (root / ".git").exists():
        pytest.skip("not a git checkout")
    cfg = _makefile_mc_config()
    run = f"{cfg.out}/runs/{{}}/lam-1/seed-0/{{}}"
    paths = {run.format(m, f): (f in (R.BEST, R.HISTORY, R.TEST_SCORES)
                                or (f == R.BEST_EXTRAS and m in experiment.SHIPPED_EXTRAS))
             for m in cfg.methods for f in (R.BEST, R.HISTORY, R.TEST_SCORES, R.BEST_EXTRAS,
                                            R.STATE, R.LOG, R.LOCK)}
    paths.update({f"{cfg.out}/{name}": True for name in (
        experiment.TEACHER_SCORES_FILE, experiment.RECORD_FILE)})
    paths.update({f"{cfg.out}/results.{suffix}": False for suffix in ("json", "md", "png")})
    ignored = subprocess.run(["git", "check-ignore", "--no-index", *paths], cwd=root,
                             capture_output=True, text=True).stdout.split()
    assert {p for p, kept in paths.items() if not kept} == set(ignored)


def test_the_shipped_mc_experiment_ships_four_channel_students_of_its_runs():
    """``make reproduce-mc --ship``'s output: a 4-channel student per distillation method, each
    the best seed's run, scored on microphone A of mc-small, distilled from lite-teacher-mc4."""
    from tfckd_lite import pretrained

    shipped = experiment.shipped_results("A")
    if shipped is None:
        pytest.skip("the multi-channel experiment is not shipped yet (make reproduce-mc)")
    for method, entry in shipped["methods"].items():
        if method == "none":
            continue
        name = f"{shipped['config']['student']}-{method}"
        assert name == f"lite-student-mc4-{method}"
        info = pretrained.describe(name)
        assert f" --seed {entry['best_seed']} " in info["command"] + " "
        assert "--mics A" in info["command"]
        assert info["teacher"] == "lite-teacher-mc4" and info["test"]["corpus_options"] == {
            "mics": "A"}
        assert info["test"]["summary"]["clips"] == 200
        assert pretrained.load(name).config.in_channels == 4
