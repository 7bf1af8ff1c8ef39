"""The per-clip scores shipped beside the experiment's report (tfckd_lite.experiment.clips)."""

import json
import math
from pathlib import Path

import numpy as np
import pytest

from tfckd_lite import experiment
from tfckd_lite.experiment.clips import clip_records_from_scores, clip_scores
from tfckd_lite.experiment.config import ExperimentConfig, Run

ROOT = Path(__file__).resolve().parents[1]


def _records(offset, names=("a", "b", "c")):
    return [{"name": n, "pesq_wb": offset + i, "si_sdr": 10.0 * (offset + i), "stoi": 0.5}
            for i, n in enumerate(names)]


def test_clip_scores_round_trip_keeps_every_value_and_nan():
    records = {"none": {0: _records(1.0), 1: _records(2.0)}, "tfckd": {0: _records(3.0)}}
    records["none"][1][1]["pesq_wb"] = float("nan")             # an unscorable clip
    table = clip_scores(records)
    assert table["clips"] == ["a", "b", "c"] and table["metrics"] == ["pesq_wb", "si_sdr"]
    back = clip_records_from_scores(json.loads(json.dumps(table)))
    assert sorted(back) == ["none", "tfckd"] and sorted(back["none"]) == [0, 1]
    assert math.isnan(back["none"][1][1]["pesq_wb"])
    for method, seeds in records.items():
        for seed, rows in seeds.items():
            for mine, theirs in zip(back[method][seed], rows):
                assert mine["name"] == theirs["name"] and "stoi" not in mine
                np.testing.assert_equal([mine["pesq_wb"], mine["si_sdr"]],
                                        [theirs["pesq_wb"], theirs["si_sdr"]])


def test_clip_scores_refuse_runs_scored_on_other_clips():
    records = {"none": {0: _records(1.0)}, "tfckd": {0: _records(1.0, names=("a", "c", "b"))}}
    with pytest.raises(ValueError, match="tfckd seed 0 was scored on other clips"):
        clip_scores(records)
    with pytest.raises(ValueError, match="no runs"):
        clip_scores({})
    table = clip_scores({"none": {0: _records(1.0)}})
    table["scores"]["none"]["0"]["pesq_wb"].pop()
    with pytest.raises(ValueError, match="none seed 0: not one score per clip"):
        clip_records_from_scores(table)


def _fake_experiment(folder: Path) -> dict:
    """results.json's config and chosen λ, and a test.json in each final run's folder."""
    cfg = ExperimentConfig(data="unused", out=str(folder), methods=("none", "tfckd"),
                           seeds=(0, 1))
    chosen = {"none": None, "tfckd": 0.1}
    for method, weight in chosen.items():
        for seed in cfg.seeds:
            cache = Run(method, weight, seed).run_folder(cfg).test_scores
            cache.parent.mkdir(parents=True)
            cache.write_text(json.dumps({"key": {}, "summary": {},
                                         "records": _records(seed + (weight or 0.0))}))
    return {"config": cfg.to_dict(),
            "methods": {m: {"kd_weight": w} for m, w in chosen.items()}}


def test_write_clip_scores_reads_each_final_run_and_ship_puts_it_beside_the_report(
        tmp_path, monkeypatch):
    results = _fake_experiment(tmp_path / "exp")
    monkeypatch.setattr(experiment.report, "RESULTS_DIR", tmp_path / "shipped")
    assert experiment.shipped_clip_records() is None
    written = experiment.write_clip_scores(results)
    assert written == tmp_path / "shipped" / f"{experiment.report.SHIPPED_NAME}.clips.json"
    shipped = experiment.shipped_clip_records()
    assert shipped == clip_records_from_scores(clip_scores(experiment.run_clip_records(results)))
    assert shipped["tfckd"][1][2]["pesq_wb"] == 1.1 + 2
    # another folder than the one the results name (e.g. a moved checkout)
    moved = tmp_path / "moved"
    (tmp_path / "exp").rename(moved)
    assert experiment.run_clip_records(results, out=moved) == experiment.run_clip_records(
        {**results, "config": {**results["config"], "out": str(moved)}})
    (Run("tfckd", 0.1, 1).folder(ExperimentConfig(data="", out=str(moved)))
     / "test.json").unlink()
    with pytest.raises(FileNotFoundError, match="tfckd seed 1 are missing"):
        experiment.run_clip_records(results, out=moved)


@pytest.mark.parametrize("mics", [None, "A"], ids=["single-channel", "mics-A"])
def test_the_shipped_clip_scores_are_the_committed_runs_and_give_the_shipped_statistics(mics):
    """The file notebook 08 reads (and its multi-channel twin) is the committed runs' test.json,
    and the report's seed-level statistics are recomputed from it exactly."""
    shipped = experiment.shipped_results(mics)
    records = experiment.shipped_clip_records(mics)
    if shipped is None or records is None:
        pytest.skip("no experiment results are shipped")
    folder = ROOT / shipped["config"]["out"]
    if folder.is_dir():
        assert records == clip_records_from_scores(
            clip_scores(experiment.run_clip_records(shipped, out=folder)))
    paired = shipped["paired"]
    reference = records[paired["reference"]]
    for method, entry in paired["methods"].items():
        for metric, e in entry.items():
            again = experiment.seed_level_comparison(reference, records[method], metric,
                                                     paired["confidence"], paired["resamples"],
                                                     paired["power"])
            for key in ("t_test", "variance", "bootstrap"):
                assert again[key] == pytest.approx(e["seed_level"][key], rel=1e-12), \
                    (method, metric, key)
            assert again["seeds_needed"] == e["seed_level"]["seeds_needed"]
