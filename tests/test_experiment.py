"""The end-to-end experiment (``reproduce``), distiller extras and shipped distillers."""

import copy
import dataclasses
import json
import math
import shlex
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from tfckd_lite import experiment, pretrained
from tfckd_lite.checkpoint import (CheckpointError, load_distiller_extras, load_model,
                                   load_trained_distiller, save_distiller_extras, save_model)
from tfckd_lite.cli import build_parser
from tfckd_lite.data import (files_sha256, manifest_sha256, open_corpus, plan_sha256,
                             software_versions)
from tfckd_lite.distill import build_distiller
from tfckd_lite.experiment import ExperimentConfig, Run
from tfckd_lite.experiment.cli import config_from_args
from tfckd_lite.losses import compressed_spectral_loss
from tfckd_lite.models import build_model
from tfckd_lite.run_folder import RunFolder
from tfckd_lite.train import TrainConfig
from tfckd_lite.train import config_from_args as train_config_from_args

TRAINING_FIELDS = {f.name for f in dataclasses.fields(TrainConfig)}


def tiny_config(root, out, **overrides) -> ExperimentConfig:
    """A tiny experiment; ``overrides`` may name its settings and its training fields alike."""
    settings = dict(data=str(root), out=str(out), methods=("none", "tfckd"), seeds=(0, 1),
                    kd_weights=(1.0, 10.0), grid_extensions=1, test_clips=2)
    training = dict(epochs=1, steps_per_epoch=2, batch_size=2, segment_seconds=0.5,
                    warmup_steps=1, valid_clips=2)
    for key, value in overrides.items():
        (training if key in TRAINING_FIELDS else settings)[key] = value
    return ExperimentConfig(**settings).with_training(**training)


@pytest.fixture(scope="module")
def finished(mini, tmp_path_factory):
    """One tiny experiment (2 methods x 2 seeds, λ grid of 2 extended once), run once for the
    module. With two λ the best one is always at an end, so the grid always grows to three."""
    torch.set_num_threads(1)
    cfg = tiny_config(mini, tmp_path_factory.mktemp("experiment"), remix_snr=(0.0, 20.0))
    return cfg, experiment.reproduce(cfg, progress=False)


def test_every_run_trains_with_the_same_budget(finished):
    cfg, results = finished
    # tuning: every λ of the grid, and one step past the end where the best was, on seed 0;
    # final: every seed at the chosen λ
    grid = experiment.tuned_grid("tfckd", cfg)
    assert len(grid) == 3 and set(cfg.kd_weights) < set(grid) and ({0.1, 100.0} & set(grid))
    for w in grid:
        assert Run("tfckd", w, 0).finished(cfg)
    chosen = results["methods"]["tfckd"]["kd_weight"]
    assert chosen in grid
    for run in results["runs"]:
        history = json.loads((Run(run["method"], run["kd_weight"], run["seed"]).folder(cfg)
                              / RunFolder.HISTORY).read_text())
        assert len(history) == cfg.train.epochs
    assert sorted((r["method"], r["seed"]) for r in results["runs"]) == \
        [("none", 0), ("none", 1), ("tfckd", 0), ("tfckd", 1)]
    for run in results["runs"]:         # the experiment's data settings reach every run
        trained = json.loads((Path(run["folder"]) / RunFolder.BEST_DESCRIPTION).read_text())
        assert trained["train_config"]["remix_snr"] == list(cfg.train.remix_snr)


def test_lambda_is_chosen_on_validation_only(finished):
    cfg, results = finished
    tuning = results["methods"]["tfckd"]["tuning_valid_pesq_wb"]
    grid = experiment.tuned_grid("tfckd", cfg)
    assert set(tuning) == {f"{w:g}" for w in grid}
    best = max(grid, key=lambda w: (tuning[f"{w:g}"], -w))
    assert results["methods"]["tfckd"]["kd_weight"] == best
    for w in grid:             # the scores are the runs' own best validation PESQ-WB
        assert tuning[f"{w:g}"] == experiment.validation_score(Run("tfckd", w, 0), cfg)


def test_an_ablation_is_timed_like_the_method_it_ablates_until_it_has_epochs(finished):
    cfg, results = finished
    wider = dataclasses.replace(cfg, methods=("none", "tfckd", "tfckd-uniform"))
    # one grid for every method (kd_weights): the ablation's tuning runs are known at once
    assert {r.kd_weight for r in experiment.tuning_runs(wider)
            if r.method == "tfckd-uniform"} == set(cfg.kd_weights)
    uniform = [r for r in experiment.status(wider)["runs"] if r["method"] == "tfckd-uniform"]
    assert [(r["kd_weight"], r["seed"], r["epochs_done"]) for r in uniform] == \
        [(1.0, 0, 0), (10.0, 0, 0), (None, 1, 0)]
    # its time left is estimated from tfckd's measured epochs until it has its own
    lam = results["methods"]["tfckd"]["kd_weight"]
    tfckd_runs = [Run("tfckd", w, 0) for w in experiment.tuned_grid("tfckd", cfg)] + \
        [Run("tfckd", lam, 1)]
    seconds = [h["seconds"] for run in tfckd_runs
               for h in json.loads((run.folder(cfg) / RunFolder.HISTORY).read_text())]
    assert experiment.status(wider)["seconds_left"] == pytest.approx(
        3 * cfg.train.epochs * float(np.median(seconds)))
    # with two runs side by side, the wall clock left is about half of that
    two = experiment.status(dataclasses.replace(wider, jobs=2))
    assert f"roughly {two['seconds_left'] / 2 / 3600:.1f} h of wall clock with 2 runs" in \
        experiment.format_status(two, cfg.train.epochs)


def _fake_scores(monkeypatch, scores: dict[str, dict[float, float]], finished: set):
    """Validation PESQ-WB per method and λ; the runs in ``finished`` ((method, λ, seed)) are
    done."""
    monkeypatch.setattr(experiment.plan, "validation_score",
                        lambda run, cfg: scores[run.method][run.kd_weight])
    monkeypatch.setattr(Run, "finished",
                        lambda run, cfg: (run.method, run.kd_weight, run.seed) in finished)


def test_ablations_are_tuned_around_the_lambda_of_the_method_they_ablate(monkeypatch, tmp_path):
    cfg = tiny_config(tmp_path, tmp_path, methods=("none", "tfckd", "tfckd-uniform"),
                      seeds=(0, 1, 2), kd_weights=None, grid_extensions=1)
    scores = {"tfckd": {0.1: 0.0, 1.0: 2.0, 10.0: 1.0},
              "tfckd-uniform": {0.01: 2.0, 0.1: 3.0, 1.0: 1.0, 10.0: 0.0}}
    _fake_scores(monkeypatch, scores, finished={("tfckd", 0.1, 0), ("tfckd", 1.0, 0)})
    # while tfckd tunes, the ablation's grid is unknown: its runs are planned with λ unknown
    assert experiment.kd_grid("tfckd-uniform", cfg) is None
    assert not [r for r in experiment.tuning_runs(cfg) if r.method == "tfckd-uniform"]
    assert [(r["kd_weight"], r["seed"]) for r in experiment.status(cfg)["runs"]
            if r["method"] == "tfckd-uniform"] == [(None, 0)] * 3 + [(None, 1), (None, 2)]
    # tfckd chose λ = 1: the ablation's grid is centred there, and grows past its best end
    done = {("tfckd", w, 0) for w in (0.1, 1.0, 10.0)}
    _fake_scores(monkeypatch, scores, finished=done)
    assert experiment.kd_grid("tfckd-uniform", cfg) == experiment.centred_grid(1.0) == \
        (0.1, 1.0, 10.0)
    assert [r.kd_weight for r in experiment.tuning_runs(cfg) if r.method == "tfckd-uniform"] \
        == [0.1, 1.0, 10.0]
    done |= {("tfckd-uniform", w, 0) for w in (0.1, 1.0, 10.0)}
    _fake_scores(monkeypatch, scores, finished=done)
    assert experiment.tuned_grid("tfckd-uniform", cfg) == [0.01, 0.1, 1.0, 10.0]
    assert experiment.settled_kd_weight("tfckd-uniform", cfg) is None    # 0.01 still training
    done |= {("tfckd-uniform", 0.01, 0)}
    _fake_scores(monkeypatch, scores, finished=done)
    assert experiment.settled_kd_weight("tfckd-uniform", cfg) == 0.1    # its own, not tfckd's
    chosen = experiment.choose_kd_weights(cfg)
    assert chosen["tfckd-uniform"] == {"kd_weight": 0.1, "tuned_with": "tfckd-uniform",
                                       "ablation_of": "tfckd",
                                       "valid_pesq_wb": {"0.01": 2.0, "0.1": 3.0, "1": 1.0,
                                                         "10": 0.0}}
    assert chosen["tfckd"]["kd_weight"] == 1.0 and chosen["tfckd"]["ablation_of"] is None
    assert Run("tfckd-uniform", 0.1, 2) in experiment.planned_runs(cfg)
    # without the full method in the experiment, an ablation is tuned like any other method
    alone = dataclasses.replace(cfg, methods=("none", "tfckd-uniform"))
    assert experiment.kd_grid("tfckd-uniform", alone) == experiment.DEFAULT_GRID
    assert experiment.ablated_method("tfckd-uniform", alone) is None


def test_table_rows_are_the_measured_means(finished):
    cfg, results = finished
    # the train-time column says how it was measured
    two = copy.deepcopy(results)
    two["config"]["jobs"] = 2
    assert "2 runs side by side" in experiment.results_markdown(two)
    one = copy.deepcopy(results)
    one["config"]["jobs"] = 1
    assert "side by side" not in experiment.results_markdown(one)
    assert "bench_distill" in experiment.results_markdown(one)
    for method, entry in results["methods"].items():
        mine = [r for r in results["runs"] if r["method"] == method]
        for key, _, _ in experiment.METRICS:
            values = torch.tensor([r["test"][key] for r in mine], dtype=torch.float64)
            assert entry["scores"][key]["mean"] == pytest.approx(float(values.mean()))
            assert entry["scores"][key]["std"] == pytest.approx(float(values.std()))
            assert entry["scores"][key]["n"] == len(cfg.seeds)
    none, tfckd = results["methods"]["none"], results["methods"]["tfckd"]
    teacher = results["rows"]["teacher"]["pesq_wb"]["mean"]
    gap = teacher - none["scores"]["pesq_wb"]["mean"]
    expected = (tfckd["scores"]["pesq_wb"]["mean"] - none["scores"]["pesq_wb"]["mean"]) / gap
    closed = tfckd["gap_closed"]["pesq_wb"]
    assert (math.isnan(closed) and gap <= 0) or closed == pytest.approx(expected)
    noisy = results["rows"]["noisy"]["si_sdr"]["mean"]
    assert noisy == pytest.approx(results["runs"][0]["test"]["input_si_sdr"])
    assert results["complexity"]["extra_params"]["none"] == 0
    assert results["complexity"]["extra_params"]["tfckd"] > 0


def test_results_report_how_decisive_the_learnt_calibration_ended_up(finished):
    cfg, results = finished
    assert results["methods"]["none"]["calibration_spread"] is None
    spread = results["methods"]["tfckd"]["calibration_spread"]
    assert set(spread) == {"encoder", "dual_path", "decoder", "inter"}
    # the mean over seeds of what each run's last recorded weights give
    runs = [r for r in results["runs"] if r["method"] == "tfckd"]
    for stage, streams in spread.items():
        for stream, value in streams.items():
            per_run = []
            for r in runs:
                history = json.loads((Path(r["folder"]) / RunFolder.HISTORY).read_text())
                w = torch.tensor(history[cfg.train.epochs - 1]["calibration"][stage][stream])
                per_run.append(float((w.max(-1).values.log() - w.min(-1).values.log()).mean()))
            assert value == pytest.approx(float(np.mean(per_run)), abs=1e-6)
            assert 0 <= value <= 2 + 1e-5                       # the SemCKD ceiling
    table = experiment.calibration_markdown(results)
    assert table in experiment.results_markdown(results)
    # whether each student layer weighs most its closest teacher layer, per kept distiller
    assert results["methods"]["none"]["calibration_agreement"] is None
    per_run = [r["calibration_agreement"] for r in runs]
    rows_per_run = 2 * (3 + 1 + 3 + 3)           # 2 streams x (E1-E3, M1, D1-D3, O_E-O_D)
    assert all(a["rows"] == rows_per_run and 0 <= a["agree"] <= rows_per_run for a in per_run)
    total = results["methods"]["tfckd"]["calibration_agreement"]
    assert total == {"agree": sum(a["agree"] for a in per_run),
                     "rows": rows_per_run * len(runs), "runs": len(runs)}
    assert f"| {total['agree']} of {total['rows']} |" in table
    folder = Path(runs[0]["folder"])
    distiller = load_trained_distiller(folder / RunFolder.BEST,
                                       folder / RunFolder.BEST_EXTRAS,
                                       load_model(pretrained.resolve(cfg.teacher)))
    spec = distiller.student.stft(experiment.calibration_probe(cfg))
    assert spec.shape[0] == cfg.train.batch_size
    weights, divergences = distiller.calibration_weights(spec), distiller.pair_divergences(spec)
    for stage, streams in per_run[0]["by_stage"].items():
        for stream, rows in streams.items():
            mean = weights[stage][stream].mean(dim=(0, 1))
            assert rows["favoured"] == mean.argmax(-1).tolist()
            assert rows["closest"] == divergences[stage][stream].argmin(-1).tolist()
    header = [line for line in table.splitlines() if line.startswith("| method")][0]
    assert header.startswith("| method | encoder time | encoder \"freq\" | dual_path time")
    assert "| `tfckd` |" in table and "`none`" not in table
    # a time-only method leaves its "frequency" cells empty; no calibrated method, no table
    shown = copy.deepcopy(results)
    only_time = {stage: {"time": v["time"]} for stage, v in spread.items()}
    shown["methods"]["tfckd-time-only"] = dict(shown["methods"]["tfckd"],
                                               calibration_spread=only_time)
    row = [line for line in experiment.calibration_markdown(shown).splitlines()
           if line.startswith("| `tfckd-time-only`")][0]
    assert row.count("–") == 4
    for entry in shown["methods"].values():
        entry["calibration_spread"] = None
    assert experiment.calibration_markdown(shown) == ""


def test_report_files_and_command(finished):
    cfg, results = finished
    for path in results["report"].values():
        assert Path(path).stat().st_size > 0
    assert json.loads(Path(results["report"]["json"]).read_text())["methods"].keys() == \
        results["methods"].keys()
    table = Path(results["report"]["md"]).read_text()
    assert "`none`" in table and "`tfckd`" in table and "teacher" in table
    assert results["command"].startswith("python -m tfckd_lite reproduce --data ")
    # the stored command parses back into the same configuration
    args = build_parser().parse_args(shlex.split(results["command"])[3:])
    assert (args.epochs, tuple(args.seeds), tuple(args.kd_weights), tuple(args.methods),
            tuple(args.remix_snr), args.grid_extensions) == \
        (cfg.train.epochs, cfg.seeds, cfg.kd_weights, cfg.methods, tuple(cfg.train.remix_snr),
         cfg.grid_extensions)


def test_a_second_call_resumes_without_retraining(finished):
    cfg, results = finished
    stamps = {r["folder"]: (Path(r["folder"]) / RunFolder.BEST).stat().st_mtime_ns
              for r in results["runs"]}
    again = experiment.reproduce(cfg, progress=False)
    assert again["methods"] == results["methods"]
    for folder, stamp in stamps.items():
        assert (Path(folder) / RunFolder.BEST).stat().st_mtime_ns == stamp


def test_extra_seeds_are_added_on_resume_and_paired_over_the_seeds_both_have(mini, tmp_path,
                                                                              monkeypatch):
    torch.set_num_threads(1)
    cfg = tiny_config(mini, tmp_path / "experiment", kd_weights=(1.0,), grid_extensions=0)
    trained = []
    real = experiment.runner.run_training

    def counting(config, **kwargs):
        trained.append((kwargs["method"], config.seed))
        return real(config, **kwargs)
    monkeypatch.setattr(experiment.runner, "run_training", counting)
    experiment.reproduce(cfg, progress=False)
    assert sorted(trained) == [("none", 0), ("none", 1), ("tfckd", 0), ("tfckd", 1)]
    stamps = {p: p.stat().st_mtime_ns for p in Path(cfg.out, "runs").rglob("*") if p.is_file()}
    # a resume adds seed 2 of tfckd: that run alone trains, and the record grows
    more = dataclasses.replace(cfg, extra_seeds=(2,), extra_seed_methods=("tfckd",))
    trained.clear()
    results = experiment.reproduce(more, progress=False)
    assert trained == [("tfckd", 2)]
    assert all(p.stat().st_mtime_ns == stamp for p, stamp in stamps.items())
    assert json.loads((Path(cfg.out) / experiment.RECORD_FILE).read_text())["config"][
        "extra_seeds"] == [2]
    with pytest.raises(experiment.ExperimentMismatchError, match="extra_seeds"):
        experiment.check_experiment_folder(cfg)                 # never removed again
    # a method's mean uses all its seeds; the comparison only those both methods have
    assert results["methods"]["tfckd"]["seeds"] == [0, 1, 2]
    assert results["methods"]["none"]["seeds"] == [0, 1]
    assert results["methods"]["tfckd"]["scores"]["pesq_wb"]["n"] == 3
    entry = results["paired"]["methods"]["none"]["pesq_wb"]
    assert entry["seeds"] == entry["seed_level"]["seeds"] == [0, 1]
    records = {m: {r["seed"]: json.loads((Path(r["folder"]) / RunFolder.TEST_SCORES)
                                         .read_text())["records"]
                   for r in results["runs"] if r["method"] == m and r["seed"] in (0, 1)}
               for m in ("tfckd", "none")}
    assert entry["mean"] == pytest.approx(
        experiment.paired_comparison(records, "tfckd")["methods"]["none"]["pesq_wb"]["mean"])
    table = experiment.results_markdown(results)
    assert "seeds 0, 1 for `none`; seeds 0, 1, 2 for `tfckd`" in table
    assert "averaged over the seeds both methods have" in table
    # every run trained here counted its clipped steps: the report gives their share
    for method in ("none", "tfckd"):
        clipped = results["methods"][method]["clipped_fraction"]
        assert clipped["recorded"] == clipped["runs"] == len(results["methods"][method]["seeds"])
        assert 0.0 <= clipped["mean"] <= 1.0
        assert f"| `{method}` | {100 * clipped['mean']:.1f} % |" in table


def test_the_clip_count_is_never_made_up_for_runs_trained_before_it():
    from tfckd_lite.experiment.results import run_clipped_fraction
    counted = {"steps": 10, "clipped_fraction": 0.3, "median_norm": 1.0, "p90_norm": 2.0,
               "non_finite": 0}
    assert run_clipped_fraction([{"seconds": 1.0}] * 2, 2) is None
    assert run_clipped_fraction([{"gradient": counted}, {"gradient": {**counted, "steps": 30,
                                                                     "clipped_fraction": 0.1}}],
                                2) == pytest.approx((3 + 3) / 40)
    assert run_clipped_fraction([{"seconds": 1.0}, {"gradient": counted}], 2) == 0.3
    results = {"config": {"grad_clip": 5.0}, "methods": {
        "output": {"clipped_fraction": {"mean": None, "recorded": 0, "runs": 3}},
        "tfckd": {"clipped_fraction": {"mean": 0.25, "recorded": 1, "runs": 3}}}}
    table = experiment.clipping_markdown(results)
    assert "| `output` | not recorded | 0 of 3 |" in table
    assert "| `tfckd` | 25.0 % | 1 of 3 |" in table
    assert experiment.clipping_markdown({"methods": {"none": {}}}) == ""     # older results


def shipping_into(folder, monkeypatch):
    """Point the package's pretrained folder at ``folder``, holding a copy of the teacher."""
    for suffix in (".safetensors", ".json"):       # the teacher the students name
        shutil.copy(pretrained.PRETRAINED_DIR / f"lite-teacher{suffix}", folder)
    monkeypatch.setattr(pretrained, "PRETRAINED_DIR", folder)
    monkeypatch.setattr(experiment.report, "RESULTS_DIR", folder / "results")


def test_ship_exports_students_with_a_loadable_distiller(finished, tmp_path, monkeypatch):
    cfg, results = finished
    shipping_into(tmp_path, monkeypatch)
    shipped = experiment.ship(results, progress=False)
    assert set(shipped) == {"tfckd"}
    assert pretrained.available() == ["lite-student-tfckd", "lite-teacher"]
    by_noise = pretrained.describe("lite-student-tfckd")["test"]["by"]["noise"]
    assert sum(s["clips"] for s in by_noise.values()) == cfg.test_clips
    assert experiment.shipped_results()["methods"] == json.loads(json.dumps(results["methods"]))
    clips = experiment.shipped_clip_records()          # every final run's per-clip scores
    assert {m: sorted(seeds) for m, seeds in clips.items()} == \
        {m: sorted(cfg.seeds) for m in results["methods"]}
    distiller = pretrained.load_distiller("lite-student-tfckd")
    assert distiller.name == "tfckd" and distiller.kd_weight == results["methods"]["tfckd"]["kd_weight"]
    best_run = Run("tfckd", distiller.kd_weight, results["methods"]["tfckd"]["best_seed"])
    trained = load_model(best_run.folder(cfg) / RunFolder.BEST)
    for a, b in zip(distiller.student.parameters(), trained.parameters()):
        assert torch.equal(a, b)
    noisy = torch.randn(cfg.train.batch_size, 2, distiller.frames, 257)
    weights = distiller.calibration_weights(noisy)
    row_sums = weights["encoder"]["time"].sum(-1)
    torch.testing.assert_close(row_sums, torch.ones_like(row_sums))
    with pytest.raises(KeyError, match="no distiller extras"):
        pretrained.load_distiller("lite-teacher")
    # a method outside SHIPPED_EXTRAS ships its student alone
    monkeypatch.setattr(experiment.report, "SHIPPED_EXTRAS", ())
    experiment.ship(results, progress=False)
    load_model(pretrained.resolve("lite-student-tfckd"))
    with pytest.raises(KeyError, match="no distiller extras"):
        pretrained.load_distiller("lite-student-tfckd")


def test_load_distiller_refuses_a_retrained_teacher(finished, tmp_path, monkeypatch):
    cfg, results = finished
    shipping_into(tmp_path, monkeypatch)
    experiment.ship(results, progress=False)
    torch.manual_seed(5)
    save_model(tmp_path / "lite-teacher.safetensors", build_model("lite-teacher"),
               preset="lite-teacher")
    with pytest.raises(CheckpointError, match="another version of lite-teacher"):
        pretrained.load_distiller("lite-student-tfckd")


def _tiny_distiller(kd_weight=1.0):
    torch.manual_seed(0)
    teacher, student = build_model("lite-teacher"), build_model("lite-student")
    return build_distiller("tfckd", teacher, student, 2, 16, se_loss=compressed_spectral_loss,
                           kd_weight=kd_weight)


def test_distiller_extras_round_trip_and_refusals(tmp_path):
    source = _tiny_distiller()
    with torch.no_grad():
        for p in source.extra_parameters():
            p.add_(0.5)
    path = save_distiller_extras(tmp_path / "x.extras.safetensors", source, epoch=3)
    target = _tiny_distiller()
    student_before = [p.clone() for p in target.student.parameters()]
    description = load_distiller_extras(path, target)
    assert description["epoch"] == 3
    for a, b in zip(source.extra_parameters(), target.extra_parameters()):
        assert torch.equal(a, b)
    for a, b in zip(student_before, target.student.parameters()):
        assert torch.equal(a, b)                   # the student is not part of the extras
    with pytest.raises(CheckpointError, match="another distiller"):
        load_distiller_extras(path, _tiny_distiller(kd_weight=2.0))
    save_model(tmp_path / "model.safetensors", build_model("lite-student"))
    with pytest.raises(CheckpointError, match="not a tfckd_lite.distiller_extras file"):
        load_distiller_extras(tmp_path / "model.safetensors", target)
    # a model file that is no distilled student cannot rebuild a distiller
    with pytest.raises(CheckpointError, match="not a distilled student"):
        load_trained_distiller(tmp_path / "model.safetensors", path, target.teacher)


def _fake_tuning(monkeypatch, scores: dict, finished: set):
    """Validation PESQ-WB per λ from ``scores``; runs of the λ in ``finished`` count as done."""
    monkeypatch.setattr(experiment.plan, "validation_score", lambda run, cfg: scores[run.kd_weight])
    monkeypatch.setattr(Run, "finished", lambda run, cfg: run.kd_weight in finished)


@pytest.mark.parametrize("grid, scores, expected", [
    ((0.1, 1, 10, 100), {0.1: 0, 1: 1, 10: 2, 100: 1}, [0.1, 1, 10, 100]),   # best inside
    ((1, 10, 100), {1: 2, 10: 1, 100: 0, 0.1: 3, 0.01: 1}, [0.01, 0.1, 1, 10, 100]),  # low, 2x
    ((1, 10, 100), {1: 0, 10: 1, 100: 2, 1000: 1}, [1, 10, 100, 1000]),   # high, then inside
    ((1, 10, 100), {1: 1, 10: 1, 100: 1, 0.1: 1, 0.01: 1}, [0.01, 0.1, 1, 10, 100]),  # ties
    ((1, 10, 100), {1: 0, 10: 1, 100: 2, 1000: 3, 10000: 4}, [1, 10, 100, 1000, 10000]),  # cap
])
def test_the_lambda_grid_grows_past_an_end_where_the_best_lies(monkeypatch, tmp_path, grid,
                                                              scores, expected):
    cfg = tiny_config(tmp_path, tmp_path, kd_weights=grid, grid_extensions=2)
    _fake_tuning(monkeypatch, scores, finished=set(scores))
    assert experiment.tuned_grid("tfckd", cfg) == pytest.approx(expected)
    best = max(expected, key=lambda w: (scores[w], -w))      # ties: the smaller λ
    assert experiment.choose_kd_weights(cfg)["tfckd"]["kd_weight"] == pytest.approx(best)


def test_the_lambda_grid_waits_for_its_runs_and_can_be_fixed(monkeypatch, tmp_path):
    cfg = tiny_config(tmp_path, tmp_path, kd_weights=(1.0, 10.0, 100.0), grid_extensions=2)
    scores = {1: 0, 10: 1, 100: 2, 1000: 3}
    _fake_tuning(monkeypatch, scores, finished={1, 10})            # λ = 100 still training
    assert experiment.tuned_grid("tfckd", cfg) == [1, 10, 100]
    _fake_tuning(monkeypatch, scores, finished={1, 10, 100})       # 1000 is planned, not done
    assert experiment.tuned_grid("tfckd", cfg) == [1, 10, 100, 1000]
    assert Run("tfckd", 1000.0, 0) in experiment.tuning_runs(cfg)
    fixed = dataclasses.replace(cfg, grid_extensions=0)
    assert experiment.tuned_grid("tfckd", fixed) == [1, 10, 100]
    single = dataclasses.replace(cfg, kd_weights=(10.0,))          # no ends to judge
    assert experiment.tuned_grid("tfckd", single) == [10]


def test_the_plan_adds_the_seeds_of_each_method_whose_lambda_is_settled(monkeypatch, tmp_path):
    cfg = tiny_config(tmp_path, tmp_path, methods=("none", "output", "tfckd", "tfckd-uniform"),
                      seeds=(0, 1, 2), kd_weights=(1.0, 10.0, 100.0), grid_extensions=2)
    scores = {1: 0, 10: 2, 100: 1}
    _fake_tuning(monkeypatch, scores, finished={1, 10, 100})       # every grid λ has finished
    monkeypatch.setattr(experiment.plan, "tuning_scores",              # ... but tfckd is still tuning
                        lambda m, c: None if m == "tfckd" else scores)
    plan = experiment.planned_runs(cfg)
    assert set(experiment.tuning_runs(cfg)) <= set(plan)
    assert [r for r in plan if r.seed != 0 and r.method != "none"] == [
        Run("output", 10.0, 1), Run("output", 10.0, 2),               # seed 0 ran in tuning
        Run("tfckd-uniform", 10.0, 1), Run("tfckd-uniform", 10.0, 2)]  # tuned on its own grid
    # --status plans the same, and names the runs still to come without their λ
    rows = experiment.status(cfg)["runs"]
    assert [(r["kd_weight"], r["seed"]) for r in rows if r["method"] == "output"] == \
        [(1.0, 0), (10.0, 0), (100.0, 0), (10.0, 1), (10.0, 2)]
    assert [(r["kd_weight"], r["seed"]) for r in rows if r["method"] == "tfckd"] == \
        [(1.0, 0), (10.0, 0), (100.0, 0), (None, 1), (None, 2)]
    monkeypatch.setattr(experiment.plan, "tuning_scores", lambda m, c: scores)
    assert Run("tfckd", 10.0, 1) in experiment.planned_runs(cfg)
    assert experiment.settled_kd_weight("none", cfg) is None


def test_the_plan_trains_the_leading_comparison_first(monkeypatch, tmp_path):
    cfg = tiny_config(tmp_path, tmp_path, seeds=(0, 1, 2), kd_weights=(1.0, 10.0, 100.0),
                      methods=("none", "output", "frame-similarity", "tfckd", "tfckd-uniform"),
                      extra_seeds=(3, 4), extra_seed_methods=("tfckd", "none"))
    scores = {1: 0, 10: 2, 100: 1}
    _fake_tuning(monkeypatch, scores, finished=set())
    monkeypatch.setattr(experiment.plan, "tuning_scores", lambda m, c: scores)
    assert experiment.method_groups(cfg) == [["none"], ["tfckd"], ["output", "frame-similarity"],
                                             ["tfckd-uniform"]]
    tuning = lambda m: [Run(m, w, 0) for w in cfg.kd_weights]  # noqa: E731
    seeds = lambda m, more=(): [Run(m, 10.0, s) for s in (1, 2, *more)]  # noqa: E731
    assert experiment.planned_runs(cfg) == (
        [Run("none", None, s) for s in (0, 1, 2, 3, 4)]             # the baseline, cheapest
        + tuning("tfckd") + seeds("tfckd", (3, 4))                   # the leading comparison
        + tuning("output") + tuning("frame-similarity")              # the other tuned methods
        + seeds("output") + seeds("frame-similarity")
        + tuning("tfckd-uniform") + seeds("tfckd-uniform"))          # the ablations last
    assert cfg.seeds_of("tfckd") == (0, 1, 2, 3, 4) and cfg.seeds_of("output") == (0, 1, 2)


class _FakeTraining:
    """Stands in for ``subprocess.Popen`` of ``train``: each run takes ``polls`` polls, then
    writes a finished history (or none, for the runs in ``unfinished``) and exits 0. The run
    folders it started and those it was asked to terminate are recorded, in order."""

    def __init__(self, cfg, polls=2, unfinished=(), seconds=100.0):
        self.cfg, self.polls, self.unfinished, self.seconds = cfg, polls, set(unfinished), seconds
        self.started, self.terminated, self.running, self.peak = [], [], 0, 0

    def __call__(self, argv, **kwargs):
        fake, out = self, Path(argv[argv.index("--out") + 1])
        fake.started.append(out)
        fake.running += 1
        fake.peak = max(fake.peak, fake.running)

        class Proc:
            returncode = None
            left = fake.polls

            def poll(self):
                self.left -= 1
                if self.left > 0:
                    return None
                if self.returncode is None:
                    fake.running -= 1
                    if out.name not in fake.unfinished:
                        (out / RunFolder.HISTORY).write_text(
                            json.dumps([{"seconds": fake.seconds}] * fake.cfg.train.epochs))
                    self.returncode = 0
                return 0

            def terminate(self):
                if self.returncode is None:
                    fake.terminated.append(out)

            def wait(self):
                return self.returncode
        return Proc()


def test_parallel_training_starts_runs_as_the_plan_grows(monkeypatch, tmp_path):
    cfg = tiny_config(tmp_path, tmp_path, methods=("none",), seeds=(0, 1, 2), jobs=2)
    fake = _FakeTraining(cfg)
    monkeypatch.setattr(experiment.runner.subprocess, "Popen", fake)
    monkeypatch.setattr(experiment.runner.time, "sleep", lambda seconds: None)
    first, second, third = (Run("none", None, s) for s in cfg.seeds)
    # the third run only becomes possible once the first has finished
    experiment.train_runs(lambda: [first, second] + ([third] if first.finished(cfg) else []),
                          cfg, progress=False)
    assert fake.started == [r.folder(cfg) for r in (first, second, third)]
    assert fake.peak == 2 and all(r.finished(cfg) for r in (first, second, third))
    # a run that exits without finishing its epochs is an error, not a run to start again
    again = tiny_config(tmp_path, tmp_path / "again", methods=("none",), jobs=2)
    stuck = _FakeTraining(again, unfinished={"seed-0"})
    monkeypatch.setattr(experiment.runner.subprocess, "Popen", stuck)
    with pytest.raises(RuntimeError, match="without finishing"):
        experiment.train_runs([Run("none", None, 0)], again, progress=False)
    assert len(stuck.started) == 1


def test_a_deadline_starts_only_runs_that_fit_and_the_rest_resumes(monkeypatch, tmp_path):
    cfg = tiny_config(tmp_path, tmp_path, methods=("none", "tfckd"), seeds=(0, 1, 2), jobs=2)
    fake = _FakeTraining(cfg, seconds=100.0)
    monkeypatch.setattr(experiment.runner.subprocess, "Popen", fake)
    monkeypatch.setattr(experiment.runner.time, "sleep", lambda seconds: None)
    none = [Run("none", None, s) for s in cfg.seeds]
    tfckd = Run("tfckd", 1.0, 0)
    # nothing timed yet: the first run starts whatever the deadline
    assert experiment.run_seconds(none[0], cfg, experiment.epoch_times(cfg)) is None
    assert experiment.train_runs([none[0]], cfg, progress=False,
                                 deadline=experiment.runner.time.time() + 1)
    assert fake.started == [none[0].folder(cfg)]
    # none is timed at 100 s an epoch; untimed tfckd at 5.5 x that: 550 s do not fit in 300 s,
    # so it is skipped and the 'none' seeds after it in the plan fill the budget instead
    times = experiment.epoch_times(cfg)
    assert times == {"none": [100.0] * cfg.train.epochs}
    assert experiment.run_seconds(tfckd, cfg, times) == pytest.approx(550.0 * cfg.train.epochs)
    assert experiment.run_seconds(none[0], cfg, times) == 0.0          # finished
    plan = [tfckd, none[1], none[2]]
    assert not experiment.train_runs(plan, cfg, progress=False,
                                     deadline=experiment.runner.time.time() + 300)
    assert fake.started[1:] == [none[1].folder(cfg), none[2].folder(cfg)]
    assert not tfckd.finished(cfg)
    # only finished runs may be committed (a history without its resume state is refused)
    tfckd.folder(cfg).mkdir(parents=True)
    (tfckd.folder(cfg) / RunFolder.HISTORY).write_text("[]")
    assert experiment.finished_files(cfg) == [r.folder(cfg) for r in none]
    (Path(cfg.out) / "teacher.test.json").write_text("{}")     # the teacher's cached scores
    assert experiment.finished_files(cfg) == [Path(cfg.out, "teacher.test.json")] + [
        r.folder(cfg) for r in none]
    # an unfinished run's files without their resume state (say, committed by mistake from
    # another machine) cannot be resumed: the run starts over instead of being refused
    assert tfckd.orphaned(cfg) and tfckd.argv(cfg)[-1] == "--no-resume"
    assert not none[0].orphaned(cfg) and "--no-resume" not in none[0].argv(cfg)   # finished
    # without a deadline (or with room for it) the same call resumes and finishes
    assert experiment.train_runs(plan, cfg, progress=False)
    assert fake.started[-1] == tfckd.folder(cfg) and tfckd.finished(cfg)


def test_a_stopped_experiment_returns_no_results_and_says_how_to_resume(mini, tmp_path, capsys):
    cfg = tiny_config(mini, tmp_path / "stopped", methods=("none",), seeds=(0, 1))
    with pytest.raises(ValueError, match="hours must be positive"):
        experiment.reproduce(cfg, progress=False, hours=0)
    first = Run("none", None, 0).folder(cfg)
    first.mkdir(parents=True)          # one epoch timed at an hour: seed 1 cannot fit
    (first / RunFolder.HISTORY).write_text(json.dumps([{"seconds": 3600.0}]))
    save_model(first / RunFolder.BEST, build_model("lite-student"), metrics={"pesq_wb": 1.5})
    args = build_parser().parse_args(["reproduce", "--data", str(mini), "--out", cfg.out,
                                      "--methods", "none", "--seeds", "0", "1", "--epochs", "2",
                                      "--kd-weights", "1", "--hours", "0.5"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "0 of 2 runs finished" in out and "stopped: no run left" in out
    assert not (Path(cfg.out) / "results.json").exists()


class _FakeClock:
    """Stands in for the ``time`` module in ``experiment``: each ``sleep`` advances the clock."""

    def __init__(self):
        self.now = 1_000.0

    def time(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


@pytest.mark.parametrize("jobs", [1, 2])
def test_stop_after_stops_the_runs_in_progress_and_the_same_call_resumes(monkeypatch, tmp_path,
                                                                          jobs):
    cfg = tiny_config(tmp_path, tmp_path, methods=("none",), seeds=(0, 1), jobs=jobs)
    fake = _FakeTraining(cfg, polls=10)
    monkeypatch.setattr(experiment.runner.subprocess, "Popen", fake)
    clock = _FakeClock()
    monkeypatch.setattr(experiment.runner, "time", clock)
    runs = [Run("none", None, s) for s in cfg.seeds]
    # runs start whatever their estimate (even with jobs=1, as processes that can be stopped)
    # and are stopped at the instant, unfinished; the call says so
    assert not experiment.train_runs(runs, cfg, progress=False, stop_at=clock.now + 3)
    assert fake.started == [r.folder(cfg) for r in runs[:jobs]]
    assert fake.terminated == [r.folder(cfg) for r in runs[:jobs]]
    assert not any(r.finished(cfg) for r in runs)
    # nothing starts once the instant has passed
    assert not experiment.train_runs(runs, cfg, progress=False, stop_at=clock.now - 1)
    assert len(fake.started) == jobs
    # a later call (with room) continues the stopped runs and finishes them all
    assert experiment.train_runs(runs, cfg, progress=False, stop_at=clock.now + 3600)
    assert fake.started[-2:] == [r.folder(cfg) for r in runs]
    assert all(r.finished(cfg) for r in runs)


def test_reproduce_budget_errors(mini, tmp_path):
    cfg = tiny_config(mini, tmp_path / "budget", methods=("none",), seeds=(0,))
    with pytest.raises(ValueError, match="stop_after must be positive"):
        experiment.reproduce(cfg, progress=False, stop_after=0)
    with pytest.raises(ValueError, match="not both"):
        experiment.reproduce(cfg, progress=False, hours=1, stop_after=1)
    base = ["reproduce", "--data", "d", "--out", "o"]
    with pytest.raises(SystemExit):       # argparse: --hours and --stop-after exclude each other
        build_parser().parse_args(base + ["--hours", "1", "--stop-after", "1"])
    assert build_parser().parse_args(base + ["--stage"]).stage == "all"
    assert build_parser().parse_args(base + ["--stage", "finished"]).stage == "finished"
    assert build_parser().parse_args(base).stage is None


def _git(cwd, *args) -> str:
    import subprocess

    return subprocess.run(["git", "-c", "user.name=test", "-c", "user.email=test@example.org",
                           *args], cwd=cwd, capture_output=True, text=True, check=True).stdout


def test_stage_commits_finished_runs_and_the_resume_files_of_runs_in_progress(monkeypatch,
                                                                                tmp_path):
    """``make reproduce-stage`` in a checkout: a fresh clone gets every finished run and can
    continue every run in progress; a resume state leaves git once its run has finished."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    repo = tmp_path / "repo"
    (repo / "exp").mkdir(parents=True)
    _git(repo, "init", "-q")
    shutil.copy(Path(__file__).resolve().parents[1] / "experiments" / "distillation-small" /
                ".gitignore", repo / "exp" / ".gitignore")
    monkeypatch.chdir(repo)
    cfg = tiny_config(tmp_path, "exp", epochs=2)
    (repo / "exp" / "experiment.json").write_text("{}")

    def make_run(method, lam, epochs, state=True):
        folder = Run(method, lam, 0).folder(cfg)
        folder.mkdir(parents=True)
        for name in (RunFolder.BEST, RunFolder.BEST_DESCRIPTION, RunFolder.BEST_EXTRAS,
                     RunFolder.LOG, RunFolder.LOCK):
            (folder / name).write_text(name)
        (folder / RunFolder.HISTORY).write_text(json.dumps([{"seconds": 1.0}] * epochs))
        if state:
            (folder / RunFolder.STATE).write_text("state")
        return folder

    done = make_run("none", None, 2)
    tfckd = make_run("tfckd", 1.0, 1)               # its distiller ships: extras kept
    intra = make_run("tfckd-intra", 1.0, 1)          # its extras are never committed
    orphan = make_run("output", 1.0, 1, state=False)  # nothing to resume it from
    progress = [str(tfckd / name) for name in (RunFolder.STATE, RunFolder.BEST,
                                               RunFolder.BEST_DESCRIPTION, RunFolder.HISTORY,
                                               RunFolder.BEST_EXTRAS)]
    progress += [str(intra / name) for name in (RunFolder.STATE, RunFolder.BEST,
                                                RunFolder.BEST_DESCRIPTION, RunFolder.HISTORY)]
    assert sorted(map(str, experiment.in_progress_files(cfg))) == sorted(progress)

    # in the middle of a session: the finished runs only
    staged = experiment.stage(cfg, in_progress=False)
    assert staged["in_progress"] == [] and staged["untracked"] == []
    assert set(_git(repo, "diff", "--cached", "--name-only").split()) == \
        {"exp/experiment.json", *(str(done / n) for n in
                                  (RunFolder.BEST, RunFolder.BEST_DESCRIPTION, RunFolder.HISTORY))}
    staged = experiment.stage(cfg)
    assert staged["untracked"] == [] and sorted(staged["in_progress"]) == sorted(progress)
    index = set(_git(repo, "diff", "--cached", "--name-only").split())
    assert index == {"exp/experiment.json", *(str(done / n) for n in (
        RunFolder.BEST, RunFolder.BEST_DESCRIPTION, RunFolder.HISTORY))} | set(progress)
    assert not any(str(orphan) in path for path in index)
    _git(repo, "commit", "-q", "-m", "session 1")

    # next session: the tfckd run finishes; its state leaves git, its outputs are updated
    (tfckd / RunFolder.HISTORY).write_text(json.dumps([{"seconds": 1.0}] * 2))
    (tfckd / RunFolder.STATE).write_text("state after the last epoch")
    staged = experiment.stage(cfg)
    assert staged["untracked"] == [str(tfckd / RunFolder.STATE)]
    tracked = set(_git(repo, "ls-files").split())
    assert str(tfckd / RunFolder.STATE) not in tracked
    assert str(intra / RunFolder.STATE) in tracked
    assert {str(tfckd / RunFolder.HISTORY), str(tfckd / RunFolder.BEST_EXTRAS)} <= tracked
    assert (tfckd / RunFolder.STATE).is_file()       # only untracked, not deleted
    status = _git(repo, "status", "--porcelain", "--", str(tfckd)).splitlines()
    assert sorted(status) == [f"D  {tfckd / RunFolder.STATE}",
                              f"M  {tfckd / RunFolder.HISTORY}"]

    monkeypatch.chdir(tmp_path)                 # outside a checkout: a clear error
    with pytest.raises(RuntimeError, match="git rev-parse"):
        experiment.stage(tiny_config(tmp_path, tmp_path / "nowhere"))


def test_output_balanced_is_tuned_only_where_the_se_term_still_counts(mini, monkeypatch,
                                                                      tmp_path):
    torch.set_num_threads(1)
    cfg = tiny_config(mini, tmp_path, methods=("none", "output", "output-balanced"),
                      kd_weights=None, grid_extensions=2)
    # the measurement: both terms' gradients on the student at its initialisation
    ratio = experiment.kd_gradient_ratio("output-balanced", cfg)
    assert 0 < ratio < math.inf
    assert experiment.kd_weight_cap("output-balanced", cfg) == pytest.approx(1.0 / ratio)
    assert experiment.kd_weight_cap("output", cfg) is None
    # a cap of 0.86 (the small set's): one digit, rounded down, is the grid's top
    monkeypatch.setattr(experiment.balance, "kd_gradient_ratio", lambda method, cfg: 1 / 0.864)
    assert experiment.kd_grid("output-balanced", cfg) == (0.008, 0.08, 0.8)
    assert experiment.kd_grid("output", cfg) == experiment.TUNING_GRIDS["output"]
    # the best λ at the top end does not extend the grid past the cap; at the bottom it does
    _fake_tuning(monkeypatch, {0.0008: 0, 0.008: 0, 0.08: 1, 0.8: 2}, {0.0008, 0.008, 0.08, 0.8})
    assert experiment.tuned_grid("output-balanced", cfg) == [0.008, 0.08, 0.8]
    _fake_tuning(monkeypatch, {0.0008: 0, 0.008: 2, 0.08: 1, 0.8: 0}, {0.0008, 0.008, 0.08, 0.8})
    assert experiment.tuned_grid("output-balanced", cfg) == [0.0008, 0.008, 0.08, 0.8]
    # measured once: the grid the folder recorded is kept, whatever a new measurement says
    monkeypatch.undo()                                   # real runs again: none has trained
    monkeypatch.setattr(experiment.balance, "kd_gradient_ratio", lambda method, cfg: 1 / 0.864)
    experiment.check_experiment_folder(cfg)
    monkeypatch.setattr(experiment.balance, "kd_gradient_ratio", lambda method, cfg: 1 / 0.5)
    assert experiment.kd_grid("output-balanced", cfg) == (0.008, 0.08, 0.8)
    experiment.check_experiment_folder(cfg)


def test_default_grids_are_centred_per_method_and_one_grid_overrides_them(tmp_path):
    from tfckd_lite.distill import METHODS
    measured = [m for m in METHODS if METHODS[m].kd_gradient_cap is not None]
    cfg = ExperimentConfig(data=str(tmp_path), out=str(tmp_path),
                           methods=[m for m in METHODS if m not in measured])
    assert cfg.kd_weights is None
    for method, grid in experiment.TUNING_GRIDS.items():
        assert experiment.kd_grid(method, cfg) == grid
        assert len(grid) == 3 and grid[1] / grid[0] == grid[2] / grid[1] == experiment.GRID_STEP
        assert {r.kd_weight for r in experiment.tuning_runs(cfg) if r.method == method} == \
            set(grid)
    # an ablation's grid is centred on its ablated method's λ (known once that one is tuned),
    # a capped method's measured; every other tuned method has a grid of its own
    tuned = {m for m in METHODS if m != "none" and not METHODS[m].ablation_of} - set(measured)
    assert tuned == set(experiment.TUNING_GRIDS)
    assert all(experiment.kd_grid(m, cfg) is None for m in METHODS if METHODS[m].ablation_of)
    assert "--kd-weights" not in experiment.reproduce_command(cfg)
    one = dataclasses.replace(cfg, kd_weights=(2.0, 20.0))
    assert all(experiment.kd_grid(m, one) == (2.0, 20.0) for m in experiment.TUNING_GRIDS)
    assert experiment.reproduce_command(one).endswith("--kd-weights 2 20")
    args = build_parser().parse_args(["reproduce", "--data", "d", "--out", "o"])
    assert args.kd_weights is None


def test_sigterm_stops_the_training_processes_too(monkeypatch, tmp_path):
    import os
    import signal

    cfg = tiny_config(tmp_path, tmp_path, methods=("none",), seeds=(0, 1), jobs=2)
    fake = _FakeTraining(cfg, polls=10)
    monkeypatch.setattr(experiment.runner.subprocess, "Popen", fake)
    ticks = []

    def sleep(seconds):                 # `kill <pid>` arrives while both runs train
        ticks.append(seconds)
        if len(ticks) == 2:
            os.kill(os.getpid(), signal.SIGTERM)
    monkeypatch.setattr(experiment.runner.time, "sleep", sleep)
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(SystemExit, match="run the same command again"):
        experiment.train_runs([Run("none", None, s) for s in cfg.seeds], cfg, progress=False)
    assert sorted(fake.terminated) == sorted(Run("none", None, s).folder(cfg) for s in cfg.seeds)
    assert signal.getsignal(signal.SIGTERM) == before              # the handler is restored


@pytest.mark.parametrize("overrides, message", [
    ({"methods": ("tfckd", "nonsense")}, "unknown method"),
    ({"methods": ("tfckd",)}, "needs method 'none'"),
    ({"seeds": (1, 1)}, "distinct"),
    ({"extra_seeds": (1,), "extra_seed_methods": ("none",)}, "not among seeds"),
    ({"extra_seeds": (3,), "extra_seed_methods": ("fitnets",)}, "methods of the experiment"),
    ({"extra_seeds": (3,)}, "go together"),
    ({"kd_weights": (0.0,)}, "positive"),
    ({"jobs": 0}, "jobs"),
    ({"grid_extensions": -1}, "grid_extensions"),
    ({"remix_snr": (5.0, 5.0)}, "low < high"),
])
def test_config_errors(overrides, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        tiny_config(tmp_path, tmp_path, **overrides)


def test_a_resumed_experiment_must_keep_its_teacher_and_budget(finished, monkeypatch, tmp_path):
    cfg, _ = finished
    stored = json.loads((Path(cfg.out) / "experiment.json").read_text())
    assert stored["config"]["epochs"] == cfg.train.epochs and len(stored["teacher_sha256"]) == 64
    experiment.check_experiment_folder(dataclasses.replace(cfg, jobs=2))   # free setting
    # a folder started before a setting existed: the missing setting compares as its default
    record = Path(cfg.out) / "experiment.json"
    older = copy.deepcopy(stored)
    del older["config"]["grid_extensions"]
    record.write_text(json.dumps(older))
    try:
        experiment.check_experiment_folder(dataclasses.replace(cfg, grid_extensions=2))
        with pytest.raises(experiment.ExperimentMismatchError, match="grid_extensions: 2 -> 0"):
            experiment.check_experiment_folder(dataclasses.replace(cfg, grid_extensions=0))
    finally:
        record.write_text(json.dumps(stored))
    # methods may be added to a started experiment (and are recorded), not removed
    try:
        grown = dataclasses.replace(cfg, methods=cfg.methods + ("tfckd-released",))
        experiment.check_experiment_folder(grown)
        assert json.loads(record.read_text())["config"]["methods"] == list(grown.methods)
        experiment.check_experiment_folder(grown)                       # and then it matches
        with pytest.raises(experiment.ExperimentMismatchError, match="methods"):
            experiment.check_experiment_folder(cfg)                      # one removed again
    finally:
        record.write_text(json.dumps(stored))
    with pytest.raises(experiment.ExperimentMismatchError, match="epochs: 1 -> 2"):
        experiment.reproduce(cfg.with_training(epochs=2), progress=False)
    # the data is rebuilt on each machine: a set built differently is refused
    assert stored["data_manifest_sha256"] == manifest_sha256(cfg.data)
    assert stored["data_files_sha256"] == files_sha256(cfg.data)
    record.write_text(json.dumps({**stored, "data_manifest_sha256": "0" * 64,
                                  "data_files_sha256": "0" * 64, "data_plan_sha256": "0" * 64}))
    try:
        with pytest.raises(experiment.ExperimentMismatchError, match="on other data"):
            experiment.check_experiment_folder(cfg)
    finally:
        record.write_text(json.dumps(stored))
    other = tmp_path / "other-teacher.safetensors"
    torch.manual_seed(3)
    save_model(other, build_model("lite-teacher"), preset="lite-teacher")
    monkeypatch.setattr(ExperimentConfig, "teacher_file", lambda cfg: other)
    with pytest.raises(experiment.ExperimentMismatchError, match="another version of the teacher"):
        experiment.check_experiment_folder(cfg)


def test_a_set_rebuilt_with_the_same_files_or_plan_resumes_and_other_data_is_refused(
        mini, monkeypatch, tmp_path):
    """The folder compares the data's files, not the manifest, which also records the software
    versions that built the set (a scipy upgrade changes it, not the data); other bytes from
    the same plan and software are a rebuild on another machine (data/manifest.py)."""
    from tfckd_lite.experiment import folder

    cfg = ExperimentConfig(data=str(mini), out=str(tmp_path), methods=("none",))
    stored = experiment.check_experiment_folder(cfg)
    assert stored["data_files_sha256"] == files_sha256(mini) != manifest_sha256(mini)
    assert stored["data_plan_sha256"] == plan_sha256(mini) is not None
    assert stored["data_software"] == software_versions(mini) and "numpy" in stored["data_software"]
    record = tmp_path / experiment.RECORD_FILE
    newer = {**stored["data_software"], "numpy": "99.0"}
    # rebuilt by newer software, the same files: the manifest differs, the resume goes on
    monkeypatch.setattr(folder, "manifest_sha256", lambda root: "1" * 64)
    monkeypatch.setattr(folder, "software_versions", lambda root: newer)
    assert experiment.check_experiment_folder(cfg) == stored
    # other files: refused, naming the software that changed
    monkeypatch.setattr(folder, "files_sha256", lambda root: "2" * 64)
    with pytest.raises(experiment.ExperimentMismatchError,
                       match=r"its files differ.*built with numpy .*, now 99\.0"):
        experiment.check_experiment_folder(cfg)
    # ... and with the flag, since the software changed: accepted, and the rebuild recorded
    accepted = experiment.check_experiment_folder(cfg, accept_rebuilt_data=True)
    assert accepted["data_files_sha256"] == "2" * 64 and accepted["data_software"] == newer
    assert accepted["data_rebuilt"] == [{
        "from_manifest_sha256": manifest_sha256(mini), "to_manifest_sha256": "1" * 64,
        "from_files_sha256": files_sha256(mini), "to_files_sha256": "2" * 64,
        "accepted": "--accept-rebuilt-data", "library_version": experiment.folder.__version__}]
    monkeypatch.undo()
    record.write_text(json.dumps(stored))
    # other bytes from the same plan and software (mc-small on another machine): accepted
    # without the flag, and recorded
    monkeypatch.setattr(folder, "files_sha256", lambda root: "4" * 64)
    moved = experiment.check_experiment_folder(cfg)
    assert moved["data_files_sha256"] == "4" * 64
    assert moved["data_rebuilt"][-1]["accepted"].startswith("the same plan and software")
    assert experiment.check_experiment_folder(cfg) == moved             # and then it matches
    # another plan is other data, flag or not
    monkeypatch.setattr(folder, "files_sha256", lambda root: "5" * 64)
    monkeypatch.setattr(folder, "plan_sha256", lambda root: "6" * 64)
    for flag in (False, True):
        with pytest.raises(experiment.ExperimentMismatchError, match="another plan of scenes"):
            experiment.check_experiment_folder(cfg, accept_rebuilt_data=flag)
    monkeypatch.undo()
    # a record from before the plan's digest, other files: refused unless the user accepts
    record.write_text(json.dumps({k: v for k, v in stored.items() if k != "data_plan_sha256"}
                                 | {"data_files_sha256": "7" * 64}))
    with pytest.raises(experiment.ExperimentMismatchError,
                       match="predates the plan's digest.*--accept-rebuilt-data"):
        experiment.check_experiment_folder(cfg)
    assert experiment.check_experiment_folder(cfg, accept_rebuilt_data=True)[
        "data_plan_sha256"] == plan_sha256(mini)
    # a record from before the files' digest: the same manifest gains it
    legacy = {k: v for k, v in stored.items()
              if k not in ("data_files_sha256", "data_plan_sha256", "data_software")}
    record.write_text(json.dumps(legacy))
    assert experiment.check_experiment_folder(cfg) == stored
    # ... another manifest cannot be told from other files: refused, unless the user accepts it
    record.write_text(json.dumps({**legacy, "data_manifest_sha256": "3" * 64}))
    with pytest.raises(experiment.ExperimentMismatchError, match="--accept-rebuilt-data"):
        experiment.check_experiment_folder(cfg)
    accepted = experiment.check_experiment_folder(cfg, accept_rebuilt_data=True)
    assert accepted["data_files_sha256"] == files_sha256(mini)
    assert accepted["data_manifest_sha256"] == manifest_sha256(mini)
    assert accepted["data_rebuilt"][-1]["from_manifest_sha256"] == "3" * 64
    assert json.loads(record.read_text()) == accepted
    assert experiment.check_experiment_folder(cfg) == accepted        # and then it matches
    # the command line passes the flag through
    args = build_parser().parse_args(["reproduce", "--data", str(mini), "--out", str(tmp_path),
                                      "--accept-rebuilt-data"])
    seen = {}
    monkeypatch.setattr(experiment.cli, "reproduce",
                        lambda cfg, **kw: seen.update(kw) or {"report": {}})
    monkeypatch.setattr(experiment.cli, "results_markdown", lambda results: "")
    assert args.func(args) == 0 and seen["accept_rebuilt_data"] is True


def test_the_lambda_grids_a_folder_started_with_are_kept(mini, monkeypatch, tmp_path):
    cfg = ExperimentConfig(data=str(mini), out=str(tmp_path), methods=("none", "tfckd"))
    stored = experiment.check_experiment_folder(cfg)
    assert stored["tuning_grids"] == {"tfckd": list(experiment.TUNING_GRIDS["tfckd"])}
    # TUNING_GRIDS is code, not configuration: a change to it is caught like a changed setting
    monkeypatch.setitem(experiment.TUNING_GRIDS, "tfckd", (1.0, 10.0, 100.0))
    with pytest.raises(experiment.ExperimentMismatchError, match="λ grid of tfckd"):
        experiment.check_experiment_folder(cfg)
    # a record from before the grids were recorded gets them at its next start
    record = tmp_path / "experiment.json"
    record.write_text(json.dumps({k: v for k, v in stored.items() if k != "tuning_grids"}))
    assert experiment.check_experiment_folder(cfg)["tuning_grids"] == {"tfckd": [1.0, 10.0, 100.0]}
    assert json.loads(record.read_text())["tuning_grids"] == {"tfckd": [1.0, 10.0, 100.0]}


def test_status_counts_runs_and_estimates_the_time_left(finished, tmp_path, capsys):
    cfg, _ = finished
    done = experiment.status(cfg)
    assert done["done"] == done["total"] == 2 + 3 + 1     # none x 2, tfckd: 3 λ + 1 more seed
    assert done["seconds_left"] == 0
    # each run's best validation PESQ-WB so far, the score that tunes λ
    for row in done["runs"]:
        run = Run(row["method"], row["kd_weight"], row["seed"])
        assert row["valid_pesq_wb"] == experiment.validation_score(run, cfg)
        assert f"{row['valid_pesq_wb']:.3f}" in experiment.format_status(done, cfg.train.epochs)
    fresh = tiny_config(cfg.data, tmp_path / "fresh")
    empty = experiment.status(fresh)
    assert (empty["done"], empty["total"], empty["seconds_left"]) == (0, 5, None)
    assert empty["untimed"] == ["none", "tfckd"]
    assert all(r["valid_pesq_wb"] is None for r in empty["runs"])
    assert [r["kd_weight"] for r in empty["runs"] if r["method"] == "tfckd"] == [1.0, 10.0, None]
    text = experiment.format_status(empty, fresh.train.epochs)
    assert "0 of 5 runs finished" in text and "unknown" in text
    assert "λ '?': not known yet" in text        # tfckd's seed 1 waits for its tuning
    tuned = dict(empty, runs=[dict(r, kd_weight=r["kd_weight"] or 1.0) for r in empty["runs"]])
    assert "λ '?'" not in experiment.format_status(tuned, fresh.train.epochs)
    args = build_parser().parse_args(["reproduce", "--data", str(cfg.data), "--out", str(cfg.out),
                                      "--methods", "none", "tfckd", "--seeds", "0", "1",
                                      "--kd-weights", "1", "10", "--grid-extensions", "1",
                                      "--epochs", "1", "--status"])
    assert args.func(args) == 0
    assert "6 of 6 runs finished; about 0.0 h" in capsys.readouterr().out
    # a method not yet timed is counted at UNTIMED_FACTOR x the fastest measured epoch time
    wider = dataclasses.replace(cfg, methods=("none", "tfckd", "output"))
    report = experiment.status(wider)
    # (tfckd is tuned, so its later seed is planned with its λ, and finished)
    def median_epoch_seconds(method):                     # over every run of the method
        return float(np.median([h["seconds"] for file in
                                Path(cfg.out, "runs", method).rglob(RunFolder.HISTORY)
                                for h in json.loads(file.read_text())]))
    fastest = min(median_epoch_seconds("none"), median_epoch_seconds("tfckd"))
    assert report["untimed"] == ["output"]
    output_runs = [r for r in report["runs"] if r["method"] == "output"]
    assert len(output_runs) == 3                          # λ 1 and 10 on seed 0, seed 1
    assert report["seconds_left"] == pytest.approx(
        cfg.train.epochs * 3 * fastest * experiment.UNTIMED_FACTOR)
    assert report["done"] == 2 + 3 + 1 and report["total"] == 2 + 3 + 1 + 3
    assert "counted at 5.5 x the fastest measured method's epoch time: output" in \
        experiment.format_status(report, cfg.train.epochs)


def _clip_records(scores: dict[str, list[float]]) -> list[dict]:
    """Per-clip test records (as ``metrics.evaluate`` writes them) from per-metric lists."""
    count = len(next(iter(scores.values())))
    return [{"name": f"clip{i}", **{k: v[i] for k, v in scores.items()}} for i in range(count)]


def test_paired_comparison_averages_seeds_and_pairs_clips():
    rng = torch.Generator().manual_seed(0)
    hardness = torch.randn(200, generator=rng).tolist()    # large between-clip spread
    base = {"pesq_wb": [2 + h for h in hardness], "si_sdr": [10 + 5 * h for h in hardness]}

    def shifted(pesq, sdr):
        return _clip_records({"pesq_wb": [v + pesq for v in base["pesq_wb"]],
                              "si_sdr": [v + sdr for v in base["si_sdr"]]})

    # the reference's two seeds differ by ± 0.1 and average to +0.05 / +1.0 over 'none'; 'output'
    # ties with it up to a little per-clip noise (a tie exact to the last bit would be decided by
    # float rounding)
    wobble = torch.randn(200, generator=rng).mul(0.01).tolist()
    tied = [{**r, "pesq_wb": r["pesq_wb"] + e, "si_sdr": r["si_sdr"] + e}
            for r, e in zip(shifted(0.05, 1.0), wobble)]
    records = {"tfckd": {0: shifted(0.15, 1.5), 1: shifted(-0.05, 0.5)},
               "none": dict.fromkeys((0, 1, 2), shifted(0, 0)),
               "output": dict.fromkeys((0, 1, 2), tied)}
    result = experiment.paired_comparison(records, "tfckd")
    assert result["reference"] == "tfckd" and set(result["methods"]) == {"none", "output"}
    none = result["methods"]["none"]
    # the methods are paired over the seeds both have (none's seed 2 is not in the comparison)
    assert none["pesq_wb"]["seeds"] == none["pesq_wb"]["seed_level"]["seeds"] == [0, 1]
    # the clips' spread cancels in the pairs: the difference is exact, the interval has no width
    assert none["pesq_wb"]["mean"] == pytest.approx(0.05)
    assert none["pesq_wb"]["low"] == pytest.approx(0.05) == none["pesq_wb"]["high"]
    assert none["si_sdr"]["mean"] == pytest.approx(1.0) and none["si_sdr"]["better"] == 1.0
    tie = result["methods"]["output"]["si_sdr"]
    assert tie["mean"] == pytest.approx(0.0, abs=0.003)
    # an interval above 0 is a difference the clips support; one around 0 is not
    assert experiment.paired_verdicts(result, level="clip") == {
        "pesq_wb": {"higher": ["none"], "lower": [], "undecided": ["output"]},
        "si_sdr": {"higher": ["none"], "lower": [], "undecided": ["output"]}}
    assert experiment.paired_verdicts(experiment.paired_comparison(
        {"none": records["none"], "tfckd": records["tfckd"]}, "none"),
        level="clip")["pesq_wb"]["lower"] == ["tfckd"]
    # across the two seeds the reference's gain over 'none' is +0.15 then -0.05: the clips
    # cannot see that, the seed level can, and the default verdicts are the seed level's
    seeds = none["pesq_wb"]["seed_level"]
    assert seeds["seeds"] == [0, 1] and seeds["per_seed"] == pytest.approx([0.15, -0.05])
    assert seeds["t_test"]["low"] < 0 < seeds["t_test"]["high"]
    assert experiment.paired_verdicts(result)["pesq_wb"]["undecided"] == ["none", "output"]
    with pytest.raises(ValueError, match="level"):
        experiment.paired_verdicts(result, level="seeds")
    # noisy differences: an interval around the mean; a clip unscorable for one side is dropped
    noisy = [dict(r) for r in shifted(0, 0)]
    for r, e in zip(noisy, torch.randn(200, generator=rng).tolist()):
        r["pesq_wb"] += 0.2 * e
    noisy[3]["pesq_wb"] = float("nan")
    entry = experiment.paired_comparison({"tfckd": {0: noisy}, "none": {0: shifted(0, 0)}},
                                         "tfckd")["methods"]["none"]["pesq_wb"]
    assert entry["n"] == 199 and entry["dropped"] == 1
    # one seed: no seed-level comparison, and no seed-level verdict either way
    assert entry["seed_level"] is None
    assert entry["low"] < entry["mean"] < entry["high"] and entry["high"] - entry["low"] < 0.08
    # per group of clips (e.g. noise type): the reference gains +0.2 on the first 50 clips only
    gained = [dict(r) for r in shifted(0, 0)]
    for r in gained[:50]:
        r["pesq_wb"] += 0.2
    groups = {f"clip{i}": "babble" if i < 50 else "pink" for i in range(200)}
    by = experiment.paired_comparison({"tfckd": {0: gained}, "none": {0: shifted(0, 0)}}, "tfckd",
                                      groups=groups)["methods"]["none"]["pesq_wb"]
    assert by["mean"] == pytest.approx(0.05)
    assert by["by"]["babble"]["mean"] == pytest.approx(0.2) and by["by"]["babble"]["n"] == 50
    assert by["by"]["pink"]["mean"] == pytest.approx(0.0, abs=1e-12)
    assert by["by"]["pink"]["better"] == 0.0 and by["by"]["babble"]["better"] == 1.0
    with pytest.raises(ValueError, match="no group"):
        experiment.paired_comparison({"tfckd": {0: gained}, "none": {0: shifted(0, 0)}}, "tfckd",
                                     groups={"clip0": "babble"})
    # clips must match, between seeds and between methods
    with pytest.raises(ValueError, match="different clips"):
        experiment.paired_comparison({"tfckd": {0: shifted(0, 0)},
                                      "none": {0: shifted(0, 0)[::-1]}}, "tfckd")
    with pytest.raises(ValueError, match="seeds of 'none'"):
        experiment.paired_comparison(
            {"tfckd": {0: shifted(0, 0)}, "none": {0: shifted(0, 0), 1: shifted(0, 0)[1:]}},
            "tfckd")
    with pytest.raises(KeyError, match="reference"):
        experiment.paired_comparison({"none": {0: shifted(0, 0)}}, "tfckd")
    # seeds are paired by number, so a list (seed order unknown) is refused
    with pytest.raises(TypeError, match="seed numbers"):
        experiment.paired_comparison({"tfckd": [shifted(0, 0)], "none": [shifted(0, 0)]}, "tfckd")


def test_results_compare_tfckd_clip_by_clip(finished):
    import matplotlib.pyplot as plt

    cfg, results = finished
    paired = results["paired"]
    assert paired["reference"] == "tfckd" and list(paired["methods"]) == ["none"]
    # recomputed from the runs' cached per-clip test scores
    records = {m: {r["seed"]: json.loads((Path(r["folder"]) / RunFolder.TEST_SCORES).read_text()
                                         )["records"]
                   for r in results["runs"] if r["method"] == m} for m in ("tfckd", "none")}
    test = open_corpus(cfg.data, "test")
    noise = {test.info(i)["name"]: test.info(i)["noise"] for i in range(len(test))}
    assert paired == json.loads(json.dumps(experiment.paired_comparison(records, "tfckd",
                                                                        groups=noise)))
    by_noise = paired["methods"]["none"]["si_sdr"]["by"]
    assert set(by_noise) == {noise[r["name"]] for r in records["none"][0]}
    assert sum(e["n"] for e in by_noise.values()) == cfg.test_clips
    entry = paired["methods"]["none"]["si_sdr"]
    expected = sum(sum(r["si_sdr"] for r in seed) for seed in records["tfckd"].values()) / \
        (len(records["tfckd"]) * cfg.test_clips) - \
        sum(sum(r["si_sdr"] for r in seed) for seed in records["none"].values()) / \
        (len(records["none"]) * cfg.test_clips)
    assert entry["mean"] == pytest.approx(expected) and entry["n"] == cfg.test_clips
    table = experiment.results_markdown(results)
    row = [line for line in table.splitlines() if line.startswith("| `none` | 0, 1 | +")
           or line.startswith("| `none` | 0, 1 | -")]      # paired over the seeds both have
    assert len(row) == 1 and f"{entry['mean']:+.3f}" in row[0]
    assert "per noise type" in table
    for label, e in by_noise.items():
        assert any(line.startswith(f"| {label} | {e['n']} |") and f"{e['mean']:+.3f}" in line
                   for line in table.splitlines())
    fig, axes = experiment.plot_paired(paired)
    assert len(axes) == 2 and [t.get_text() for t in axes[0].get_yticklabels()] == ["none"]
    plt.close(fig)


def test_results_compare_tfckd_seed_by_seed_and_mark_the_tuning_seed(finished):
    from tfckd_lite.experiment.statistics import seed_level_comparison

    cfg, results = finished
    paired = results["paired"]
    records = {m: {r["seed"]: json.loads((Path(r["folder"]) / RunFolder.TEST_SCORES).read_text()
                                         )["records"]
                   for r in results["runs"] if r["method"] == m} for m in ("tfckd", "none")}
    for metric in experiment.PAIRED_METRICS:
        seeds = paired["methods"]["none"][metric]["seed_level"]
        assert seeds["seeds"] == list(cfg.seeds)
        assert seeds == json.loads(json.dumps(seed_level_comparison(
            records["tfckd"], records["none"], metric, paired["confidence"],
            paired["resamples"], paired["power"])))
    # the verdicts read the seed-level t interval
    t = paired["methods"]["none"]["pesq_wb"]["seed_level"]["t_test"]
    side = "higher" if t["low"] > 0 else "lower" if t["high"] < 0 else "undecided"
    assert experiment.paired_verdicts(paired)["pesq_wb"][side] == ["none"]
    # the report carries the seed-level table and the power table after the clip-level one
    table = experiment.results_markdown(results)
    clip, seed, power = (table.index(experiment.paired_markdown(paired)),
                         table.index(experiment.seed_level_markdown(paired)),
                         table.index(experiment.power_markdown(paired)))
    assert clip < seed < power
    assert "seeds for 80 % power" in table and "another training seed" in table
    # seed 0 chose λ: its runs are marked, and the table gives the means without it
    tuning = cfg.seeds[0]
    assert results["tuning_seed"] == tuning
    assert all(r["tuning_seed"] == (r["seed"] == tuning) for r in results["runs"])
    for method, entry in results["methods"].items():
        others = [r["test"] for r in results["runs"] if r["method"] == method
                  and r["seed"] != tuning]
        for key, _, _ in experiment.METRICS:
            assert entry["without_tuning_seed"][key]["n"] == len(cfg.seeds) - 1
            assert entry["without_tuning_seed"][key]["mean"] == pytest.approx(
                float(np.mean([o[key] for o in others])))
        row = [line for line in table.splitlines() if line.startswith(f"| `{method}` | ")][0]
        without = entry["without_tuning_seed"]
        assert f"| {without['pesq_wb']['mean']:.2f} / {without['si_sdr']['mean']:.2f} |" in row
    assert f"without seed {tuning} (λ-tuning seed)" in table


def test_the_seed_level_and_power_tables_say_what_the_seeds_support():
    """A synthetic case: 'none' trails on every seed by a steady +0.10 ± 0.01 (decided across
    seeds), 'output' by +0.15 then -0.05 (decided on the clips, not across seeds)."""
    base = [2.0 + 0.3 * np.sin(i) for i in range(120)]
    shifted = lambda d: _clip_records({"pesq_wb": [b + d for b in base],  # noqa: E731
                                       "si_sdr": [10 + 5 * b for b in base]})
    records = {"tfckd": {s: shifted(0.0) for s in (0, 1, 2)},
               "none": {0: shifted(-0.11), 1: shifted(-0.10), 2: shifted(-0.09)},
               "output": {0: shifted(-0.15), 1: shifted(0.05), 2: shifted(-0.05)}}
    paired = experiment.paired_comparison(records, "tfckd", resamples=2000)
    assert experiment.paired_verdicts(paired)["pesq_wb"] == {
        "higher": ["none"], "lower": [], "undecided": ["output"]}
    assert experiment.paired_verdicts(paired, level="clip")["pesq_wb"]["higher"] == [
        "none", "output"]
    output = paired["methods"]["output"]["pesq_wb"]
    # the seed-level interval of a comparison is at least as wide as the clip-level one
    for method in ("none", "output"):
        e = paired["methods"][method]["pesq_wb"]
        t = e["seed_level"]["t_test"]
        assert t["high"] - t["low"] >= e["high"] - e["low"]
    seeds = experiment.seed_level_markdown(paired)
    t = output["seed_level"]["t_test"]
    assert (f"| `output` | PESQ-WB | 0, 1, 2 | +0.150, -0.050, +0.050 | +0.050 | "
            f"[{t['low']:+.3f}, {t['high']:+.3f}] | {t['p']:.3f} |") in seeds
    assert "- PESQ-WB: across training seeds (the methods), `tfckd` scores higher than `none`, " \
        "undecided against `output`;" in seeds
    # SI-SDR is identical everywhere: nothing decided, and no seeds can find a zero difference
    assert "SI-SDR (dB): across training seeds (the methods), no difference is decided" in seeds
    power = experiment.power_markdown(paired)
    needed = output["seed_level"]["seeds_needed"]
    assert needed > 3
    assert f"| `output` | PESQ-WB | +0.050 | 0.100 | 0.000 | {needed} |" in power
    assert f"| `none` | SI-SDR (dB) | +0.000 | 0.000 | 0.000 | > {experiment.SEEDS_NEEDED_LIMIT} |" \
        in power


def _makefile_reproduce_config() -> ExperimentConfig:
    """The configuration of ``make reproduce`` (its REPRODUCE_ARGS, parsed by the CLI)."""
    import re

    makefile = (Path(__file__).resolve().parents[1] / "Makefile").read_text()
    makefile = makefile.replace("\\\n", " ")                   # continued lines
    argv = shlex.split(re.search(r"REPRODUCE_ARGS := (.*)", makefile).group(1))
    return config_from_args(build_parser().parse_args(["reproduce", *argv]))


def test_the_committed_experiment_folder_is_resumed_by_make_reproduce(monkeypatch, tmp_path):
    """``experiments/distillation-small/experiment.json`` was written when the experiment
    config restated the training fields and the ablations reused ``tfckd``'s λ; ``make
    reproduce`` resumes it: it adds the new methods, seeds 3-5 of the leading methods and the
    ablations' grids to the record, retrains no finished run, and still refuses another
    budget."""
    committed = Path(__file__).resolve().parents[1] / "experiments" / "distillation-small"
    if not (committed / experiment.RECORD_FILE).is_file():
        pytest.skip("no committed experiment folder")
    cfg = _makefile_reproduce_config()
    assert cfg.train == experiment.default_training() and cfg.jobs == 2
    assert cfg.extra_seeds == (3, 4, 5)
    leading = ("none", "tfckd", "frame-similarity", "tfckd-intra")
    assert cfg.extra_seed_methods == leading
    stored = json.loads((committed / experiment.RECORD_FILE).read_text())
    # the record is the Makefile's config as far as the folder has got (seeds and methods are
    # added to it when `make reproduce` first runs with them)
    assert ExperimentConfig.from_dict(stored["config"]) == dataclasses.replace(
        cfg, jobs=1, methods=tuple(stored["config"]["methods"]),
        extra_seeds=tuple(stored["config"].get("extra_seeds", ())),
        extra_seed_methods=tuple(stored["config"].get("extra_seed_methods", ())))
    # the same relative folder, outside the repository; the data set is not built here, so its
    # digests are the recorded ones (what `make data` rebuilds bit for bit), and the
    # gradient ratio that caps output-balanced's grid is the one measured on it (1.157)
    monkeypatch.chdir(tmp_path)
    shutil.copytree(committed, cfg.out)
    record = Path(cfg.out) / experiment.RECORD_FILE
    for name, key in (("manifest_sha256", "data_manifest_sha256"),
                      ("files_sha256", "data_files_sha256"), ("plan_sha256", "data_plan_sha256"),
                      ("software_versions", "data_software")):
        monkeypatch.setattr(experiment.folder, name, lambda root, key=key: stored.get(key))
    monkeypatch.setattr(experiment.balance, "kd_gradient_ratio", lambda method, cfg: 1.157)
    finished = sorted(p.parent for p in Path(cfg.out).glob(f"runs/**/{RunFolder.HISTORY}")
                      if RunFolder(p.parent).finished(cfg.train.epochs))
    stamps = {p: p.stat().st_mtime_ns for p in Path(cfg.out, "runs").rglob("*") if p.is_file()}
    updated = experiment.check_experiment_folder(cfg)
    ablations = ("tfckd-time-only", "tfckd-freq-only", "tfckd-uniform",
                 "tfckd-uniform-trained-fusion", "tfckd-released")
    assert updated["config"]["methods"] == list(cfg.methods)
    assert (updated["config"]["extra_seeds"], updated["config"]["extra_seed_methods"]) == \
        ([3, 4, 5], list(leading))
    assert {k: v for k, v in updated["tuning_grids"].items() if k in stored["tuning_grids"]} \
        == stored["tuning_grids"]                          # the recorded grids are kept
    assert {m: updated["tuning_grids"][m] for m in ablations} == \
        dict.fromkeys(ablations, [0.01, 0.1, 1.0])         # centred on tfckd's λ = 0.1
    assert updated["tuning_grids"]["output-balanced"] == [0.008, 0.08, 0.8]
    assert json.loads(record.read_text()) == updated
    assert experiment.check_experiment_folder(cfg) == updated          # and then it matches
    # every finished run stays so; what is left is exactly the new work not finished yet (the
    # committed folder gains finished extra seeds session by session), in the plan's order
    assert all(RunFolder(f).finished(cfg.train.epochs) for f in finished)
    left = [r for r in experiment.planned_runs(cfg) if not r.finished(cfg)]
    more = lambda m, lam: [Run(m, lam, s) for s in (3, 4, 5)]  # noqa: E731
    new_work = (more("none", None) + more("tfckd", 0.1) + more("frame-similarity", 1.0)
                + more("tfckd-intra", 0.1)
                + [Run("output-balanced", w, 0) for w in (0.008, 0.08, 0.8)]
                + [Run(m, w, 0) for m in ablations
                   for w in ((0.01, 0.1, 1.0) if m == "tfckd-uniform-trained-fusion"
                             else (0.01, 1.0))])
    assert left == [r for r in new_work if not r.finished(cfg)]
    planned = set(experiment.planned_runs(cfg))
    for m in ("tfckd-time-only", "tfckd-uniform"):       # the λ = 0.1 runs are its tuning run
        assert Run(m, 0.1, 0) in planned and Run(m, 0.1, 0).finished(cfg)
    assert stamps == {p: p.stat().st_mtime_ns for p in Path(cfg.out, "runs").rglob("*")
                      if p.is_file()}                    # planning wrote nothing into the runs
    # seeds and methods may be added, not removed; the budget may not change
    with pytest.raises(experiment.ExperimentMismatchError, match="extra_seeds"):
        experiment.check_experiment_folder(dataclasses.replace(cfg, extra_seeds=(3, 4)))
    with pytest.raises(experiment.ExperimentMismatchError, match="extra_seed_methods"):
        experiment.check_experiment_folder(dataclasses.replace(
            cfg, extra_seed_methods=("none", "tfckd")))
    with pytest.raises(experiment.ExperimentMismatchError, match="weight_decay: 0.0 -> 0.1"):
        experiment.check_experiment_folder(cfg.with_training(weight_decay=0.1))
    with pytest.raises(experiment.ExperimentMismatchError, match="epochs: 6 -> 7"):
        experiment.check_experiment_folder(cfg.with_training(epochs=7))


def test_the_reproduce_command_parses_back_into_the_same_config(tmp_path):
    cfg = tiny_config(tmp_path, tmp_path / "out", remix_snr=(0.0, 20.0), checkpoint_every=7,
                      grad_clip=2.0, methods=("none", "output"), teacher="t.safetensors",
                      extra_seeds=(5, 7), extra_seed_methods=("output", "none"))
    argv = shlex.split(experiment.reproduce_command(cfg))[3:]
    assert config_from_args(build_parser().parse_args(argv)) == cfg
    # every validation clip: None, where the experiment's default is 100
    every = cfg.with_training(valid_clips=None)
    argv = shlex.split(experiment.reproduce_command(every))[3:]
    assert "--valid-clips none" in shlex.join(argv)
    assert config_from_args(build_parser().parse_args(argv)) == every
    # each run trains with the experiment's budget and its own seed, in process or not
    run = Run("output", 10.0, 1)
    args = build_parser().parse_args(run.argv(cfg))
    assert train_config_from_args(args) == run.train_config(cfg) == TrainConfig(
        **{**dataclasses.asdict(cfg.train), "seed": 1})
    assert (args.teacher, args.kd_weight, args.out) == ("t.safetensors", 10.0,
                                                        str(run.folder(cfg)))
    with pytest.raises(ValueError, match="set per run"):
        cfg.with_training(seed=3)
    with pytest.raises(ValueError, match="unknown experiment setting"):
        ExperimentConfig.from_dict({**cfg.to_dict(), "epochz": 1})


@pytest.mark.parametrize("mics", [None, "A"], ids=["single-channel", "mics-A"])
def test_tuning_curves_are_each_tuned_methods_grid_and_the_plot_marks_the_choice(mics):
    import matplotlib.pyplot as plt

    shipped = experiment.shipped_results(mics)
    if shipped is None:
        pytest.skip("no experiment results are shipped")
    curves = experiment.tuning_curves(shipped)
    assert curves and "none" not in curves
    seed = shipped["tuning_seed"]
    for method, curve in curves.items():
        chosen = shipped["methods"][method]["kd_weight"]
        # the experiment's rule: the highest validation score, the smaller λ on a tie
        assert chosen == max(curve, key=lambda lam: (curve[lam], -lam))
        # the chosen λ's tuning run is that method's final run on the tuning seed
        final = [r for r in shipped["runs"] if r["method"] == method and r["seed"] == seed]
        assert len(final) == 1 and curve[chosen] == pytest.approx(final[0]["valid_pesq_wb"])
    fig, ax = experiment.plot_tuning(shipped, baseline="none")
    labels = ax.get_legend_handles_labels()[1]
    assert set(curves) <= set(labels) and f"none, seed {seed}" in labels
    assert ax.get_xscale() == "log"
    plt.close(fig)
    with pytest.raises(KeyError, match="no runs of 'nope'"):
        experiment.plot_tuning(shipped, baseline="nope")
    plt.close("all")
