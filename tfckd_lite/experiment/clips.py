"""The per-clip test scores of the experiment's final runs, shipped beside the report.

Notebook: 08_judging_methods.ipynb

The report (``distillation.json``) keeps per-run summaries and the statistics computed from the
per-clip scores, not the scores themselves: those live in each run's ``test.json`` inside the
experiment folder, which a clone of the repository has and an installed wheel does not. So that
the seed-level analysis can be redone anywhere (notebook 08, assignment a5),
:func:`~.report.ship` also writes ``distillation.clips.json`` (:func:`write_clip_scores`,
:func:`clips_file`): the clip names once, then per method and seed the scores of
:data:`~.results.PAIRED_METRICS` in clip order, exactly as ``test.json`` holds them. :func:`shipped_clip_records` turns it back into the
``{method: {seed: per-clip records}}`` that :func:`~.results.paired_comparison` and
:func:`~.statistics.difference_matrix` take.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from ..files import atomic_write_bytes
from . import report
from .config import ExperimentConfig
from .plan import final_runs
from .results import PAIRED_METRICS

#: what the shipped file's name adds to the report's stem (``distillation.clips.json``)
CLIPS_SUFFIX = ".clips.json"


def clips_file(mics: str | None = None) -> Path:
    """Where :func:`~.report.ship` writes the per-clip scores of the experiment on microphones
    ``mics``: beside its shipped report (:func:`~.report.shipped_name`).

    Notebook: 08_judging_methods.ipynb
    """
    return report.RESULTS_DIR / f"{report.shipped_name(mics)}{CLIPS_SUFFIX}"


def run_clip_records(results: dict, out: str | Path | None = None
                     ) -> dict[str, dict[int, list[dict]]]:
    """``{method: {seed: per-clip test records}}`` of the final runs of ``results``, read from
    each run's cached ``test.json`` in the experiment folder (``out``, default the folder the
    results name).

    Notebook: 08_judging_methods.ipynb

    A final run without its cached test scores is an error: the results were made from them.
    """
    cfg = ExperimentConfig.from_dict(results["config"])
    if out is not None:
        cfg = replace(cfg, out=str(out))
    chosen = {method: entry["kd_weight"] for method, entry in results["methods"].items()}
    records: dict[str, dict[int, list[dict]]] = {}
    for run in final_runs(cfg, chosen):
        cache = run.run_folder(cfg).test_scores
        if not cache.is_file():
            raise FileNotFoundError(f"{cache}: the test scores of {run.method} seed {run.seed} "
                                    f"are missing from the experiment folder {cfg.out}")
        records.setdefault(run.method, {})[run.seed] = json.loads(cache.read_text())["records"]
    return records


def clip_scores(records: dict[str, dict[int, list[dict]]],
                metrics: tuple[str, ...] = PAIRED_METRICS) -> dict:
    """The compact form of ``records`` that is shipped: ``{"clips": [names], "metrics":
    [...], "scores": {method: {seed (str): {metric: [value per clip]}}}}``.

    Notebook: 08_judging_methods.ipynb

    Every run must be scored on the same clips in the same order (as the experiment scores
    them); an unscorable clip keeps its NaN (written as JSON ``NaN``).
    """
    names = None
    scores: dict[str, dict[str, dict[str, list[float]]]] = {}
    for method, seeds in records.items():
        for seed, rows in seeds.items():
            these = [r["name"] for r in rows]
            if names is None:
                names = these
            elif these != names:
                raise ValueError(f"{method} seed {seed} was scored on other clips than the "
                                 "first run")
            scores.setdefault(method, {})[str(seed)] = {
                metric: [float(r[metric]) for r in rows] for metric in metrics}
    if names is None:
        raise ValueError("no runs to take clip scores from")
    return {"clips": names, "metrics": list(metrics), "scores": scores}


def write_clip_scores(results: dict, out: str | Path | None = None,
                      file: str | Path | None = None) -> Path:
    """Write :func:`clip_scores` of the final runs of ``results`` (:func:`run_clip_records`)
    atomically to ``file`` (default :func:`clips_file` of the results' microphones, beside the
    shipped report).

    Notebook: 08_judging_methods.ipynb
    """
    table = clip_scores(run_clip_records(results, out))
    file = Path(file) if file is not None else clips_file(results["config"].get("mics"))
    atomic_write_bytes(file, (json.dumps(table, separators=(",", ":")) + "\n").encode())
    return file


def clip_records_from_scores(table: dict) -> dict[str, dict[int, list[dict]]]:
    """The inverse of :func:`clip_scores`: ``{method: {seed: [{"name", metric: value}]}}``.

    Notebook: 08_judging_methods.ipynb
    """
    names, metrics = table["clips"], table["metrics"]
    records: dict[str, dict[int, list[dict]]] = {}
    for method, seeds in table["scores"].items():
        for seed, values in seeds.items():
            if any(len(values[m]) != len(names) for m in metrics):
                raise ValueError(f"{method} seed {seed}: not one score per clip")
            records.setdefault(method, {})[int(seed)] = [
                {"name": name, **{m: values[m][i] for m in metrics}}
                for i, name in enumerate(names)]
    return records


def shipped_clip_records(mics: str | None = None) -> dict[str, dict[int, list[dict]]] | None:
    """The per-clip test records of the final runs of the shipped experiment on microphones
    ``mics`` (``{method: {seed: records}}``), or ``None`` when none are shipped.

    Notebook: 08_judging_methods.ipynb
    """
    file = clips_file(mics)
    return clip_records_from_scores(json.loads(file.read_text())) if file.is_file() else None
