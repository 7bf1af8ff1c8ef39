"""The results: test scores of every final run, their statistics and the paired comparisons.

Notebook: 05_distillation.ipynb

:func:`collect_results` scores each run's best epoch (chosen on validation PESQ-WB) and the
teacher on the test split (cached in each run's ``test.json``), and aggregates per method: mean
± sample std over seeds, the share of the teacher–student gap closed, the training time, and
how decisive the learnt calibration ended up (:func:`final_calibration_spread`,
:func:`run_calibration_agreement`). :func:`paired_comparison` compares ``tfckd`` with every
other method clip by clip, with a bootstrap interval over the test clips (what another draw of
test clips could do to *these trained students*), and seed by seed
(:mod:`~tfckd_lite.experiment.statistics`: what another training seed could do, i.e. whether the
*method* is better); :func:`paired_verdicts` sorts what the seed-level intervals support.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from .. import __version__
from ..files import atomic_write_bytes, sha256_file
from ..run_folder import RunFolder
from .config import SHIPPED_EXTRAS, ExperimentConfig, reproduce_command
from .folder import TEACHER_SCORES_FILE
from .plan import final_runs, validation_score
from .statistics import seed_level_comparison

#: the metrics of the table: key, label, decimals
METRICS = (("pesq_wb", "PESQ-WB", 2), ("stoi", "STOI", 3), ("estoi", "ESTOI", 3),
           ("si_sdr", "SI-SDR (dB)", 2))


#: the method compared clip by clip with every other one, and on which metrics
PAIRED_REFERENCE = "tfckd"
PAIRED_METRICS = ("pesq_wb", "si_sdr")


def _test_scores(model_file: Path, cache: Path, cfg: ExperimentConfig, progress: bool) -> dict:
    """Test-split scores of a model file, ``{"summary", "records"}`` of :func:`evaluate`,
    cached next to it (keyed by the file's hash)."""
    from ..checkpoint import load_model
    from ..metrics import evaluate

    digest = sha256_file(model_file)
    # (mics only when set: the caches of single-channel experiments stay valid)
    key = {"model_sha256": digest, "data": str(cfg.data), "test_clips": cfg.test_clips,
           **cfg.corpus_options()}
    if cache.is_file():
        stored = json.loads(cache.read_text())
        if stored.get("key") == key:
            return {"summary": stored["summary"], "records": stored["records"]}
    model = load_model(model_file)
    report = evaluate(model.enhance, cfg.open_split("test"), max_clips=cfg.test_clips,
                      progress=progress)
    atomic_write_bytes(cache, (json.dumps({"key": key, "summary": report["summary"],
                                           "records": report["records"]}, indent=1) + "\n"
                               ).encode())
    return {"summary": report["summary"], "records": report["records"]}


def _mean_std(values: list[float]) -> dict:
    arr = np.asarray(values, dtype=float)
    std = float(arr.std(ddof=1)) if len(arr) > 1 else 0.0
    return {"mean": float(arr.mean()), "std": std, "n": int(len(arr))}


def _without_tuning_seed(runs: list[dict]) -> dict | None:
    """Mean ± std per metric over a method's runs but those of the λ-tuning seed, or ``None``
    when no other seed ran. The tuning seed picked the λ on validation scores that share its
    initialisation and data order, so its test score may be a little lucky; the other seeds
    played no part in any choice. Every method drops the same seed (``none``'s runs too)."""
    others = [r for r in runs if not r["tuning_seed"]]
    if not others:
        return None
    return {k: _mean_std([r["test"][k] for r in others]) for k, _, _ in METRICS}


def _complexity(cfg: ExperimentConfig) -> dict:
    """Student/teacher parameters and GFLOP/s, and each method's extra training parameters."""
    from ..checkpoint import load_model
    from ..distill import build_distiller
    from ..losses import compressed_spectral_loss
    from ..models import build_model, count_flops

    teacher = load_model(cfg.teacher_file())
    student = build_model(cfg.student)
    extra = {}
    for method in cfg.methods:
        distiller = build_distiller(method, teacher if method != "none" else None, student,
                                    cfg.train.batch_size, cfg.train.segment_frames,
                                    se_loss=compressed_spectral_loss)
        extra[method] = sum(p.numel() for p in distiller.extra_parameters())
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    return {"student_params": count(student), "student_gflops": count_flops(student) / 1e9,
            "teacher_params": count(teacher), "teacher_gflops": count_flops(teacher) / 1e9,
            "extra_params": extra}


def paired_comparison(records: Mapping[str, Mapping[int, list[dict]]], reference: str,
                      metrics: tuple[str, ...] = PAIRED_METRICS, confidence: float = 0.95,
                      resamples: int = 10_000, groups: dict[str, str] | None = None,
                      power: float = 0.8) -> dict:
    """How ``reference`` compares with every other method on the test split, at two levels.

    Notebook: 05_distillation.ipynb

    ``records`` maps each method to ``{seed number: per-clip test records}``
    (:func:`metrics.evaluate`) of its runs. Why paired: every method enhances the same clips,
    and most of the spread of a test mean comes from the clips (how hard each is), which a
    per-clip difference cancels. Two questions, two summaries per method and metric:

    * **Clip level** (the entry's ``mean``, ``low``, ``high``, ``better``, ``n``, ``dropped``,
      ``seeds``): per clip each method's score is averaged over the seeds both methods have
      (methods may have different seed sets: ``extra_seed_methods``; a method with no seed in
      common with the reference is compared over all seeds of each), and the difference
      ``reference − method`` is summarised over clips by its mean, a bootstrap interval
      (:func:`metrics.bootstrap_mean_interval`) and the share of clips on which the reference
      scores higher. It answers "would another draw of test clips change the difference between
      *these trained students*?"; the seed-to-seed spread is not in it.
    * **Seed level** (``"seed_level"``, :func:`~.statistics.seed_level_comparison`): seed ``s``
      of the reference against seed ``s`` of the method (same initialisation and data order;
      the seeds both have), clip by clip: a paired t-test across seeds with its t interval, a
      two-level bootstrap (seeds, then clips), the variance between seeds against that within
      one, and the seeds a paired t-test would need to find the observed difference with
      ``power`` at the level ``1 − confidence``. It answers "would another training seed —
      i.e. the *method* — give the same difference?"; ``None`` with fewer than 2 shared seeds.

    A clip unscorable for either side (NaN) is left out. ``groups`` (clip name -> label, e.g.
    the noise type of each test clip) adds the clip-level summary per group under ``"by"``:
    where a method's gain comes from.

    Returns ``{"reference", "confidence", "resamples", "power", "methods": {method: {metric:
    {"mean", "low", "high", "better", "n", "dropped", "seeds", "seed_level"[, "by": {label:
    {...}}]}}}}``, ``seeds`` the seed numbers averaged at the clip level (``None``: no shared
    seed, every seed of each).
    """
    from ..metrics import bootstrap_mean_interval

    if reference not in records:
        raise KeyError(f"no records for the reference method {reference!r}")
    for method, seeds in records.items():
        if not isinstance(seeds, Mapping):
            raise TypeError(f"records[{method!r}] must map seed numbers to per-clip records "
                            f"(methods are paired by seed number), got {type(seeds).__name__}")

    def per_clip(method: str, metric: str, only=None) -> tuple[list[str], np.ndarray]:
        seeds = [r for s, r in records[method].items() if only is None or s in only]
        if not seeds or not seeds[0]:
            raise ValueError(f"no test records for {method!r}")
        names = [r["name"] for r in seeds[0]]
        for other in seeds[1:]:
            if [r["name"] for r in other] != names:
                raise ValueError(f"the seeds of {method!r} were scored on different clips")
        return names, np.array([[r[metric] for r in seed] for seed in seeds]).mean(axis=0)

    def summarise(diff: np.ndarray) -> dict:
        entry = bootstrap_mean_interval(diff, confidence, resamples)
        entry["better"] = float(np.mean(diff[np.isfinite(diff)] > 0))
        return entry

    for method in records:          # every seed of every method on the same clips, shared or not
        per_clip(method, metrics[0])
    compared = {}
    for method in records:
        if method == reference:
            continue
        compared[method] = {}
        shared = set(records[reference]) & set(records[method]) or None
        for metric in metrics:
            names, mine = per_clip(method, metric, shared)
            ref_names, ref = per_clip(reference, metric, shared)
            if names != ref_names:
                raise ValueError(f"{reference!r} and {method!r} were scored on different clips")
            diff = ref - mine
            entry = summarise(diff)
            entry["seeds"] = sorted(shared) if shared else None
            entry["seed_level"] = seed_level_comparison(records[reference], records[method],
                                                        metric, confidence, resamples, power)
            if groups is not None:
                missing = [n for n in names if n not in groups]
                if missing:
                    raise ValueError(f"{len(missing)} clips have no group (first {missing[0]!r})")
                labels = np.array([str(groups[n]) for n in names])
                entry["by"] = {label: summarise(diff[labels == label])
                               for label in sorted(set(labels))}
            compared[method][metric] = entry
    return {"reference": reference, "confidence": confidence, "resamples": resamples,
            "power": power, "methods": compared}


#: the levels :func:`paired_verdicts` can judge at, and the interval each reads
VERDICT_LEVELS = ("seed", "clip")


def verdict_interval(entry: dict, level: str = "seed") -> tuple[float, float] | None:
    """The interval of one :func:`paired_comparison` entry that a verdict at ``level`` reads:
    ``"seed"``, the t interval across seeds (``None`` without 2 shared seeds); ``"clip"``, the
    bootstrap interval over test clips.

    Notebook: 05_distillation.ipynb
    """
    if level not in VERDICT_LEVELS:
        raise ValueError(f"level must be one of {VERDICT_LEVELS}, got {level!r}")
    if level == "clip":
        return entry["low"], entry["high"]
    seeds = entry.get("seed_level")
    return None if seeds is None else (seeds["t_test"]["low"], seeds["t_test"]["high"])


def paired_verdicts(paired: dict, level: str = "seed") -> dict[str, dict[str, list[str]]]:
    """Sort the methods of a :func:`paired_comparison` per metric by what its intervals support:
    ``{metric: {"higher": [...], "lower": [...], "undecided": [...]}}``, where the reference
    scores higher than the methods whose interval lies above 0, lower than those whose interval
    lies below 0, and the rest are differences the data cannot tell from luck.

    Notebook: 05_distillation.ipynb

    ``level="seed"`` (the default) reads the t interval across training seeds: a verdict about
    the *methods*. Why not the two-level bootstrap: with 3 seeds it is about 0.4 times as wide
    as the t interval (it sees only 3 seed means and ignores the heavy tails of a t with 2
    degrees of freedom; :mod:`~tfckd_lite.experiment.statistics`), so it would call differences
    that another seed could undo. A method sharing fewer than 2 seeds with the reference is
    undecided at this level. ``level="clip"`` reads the clip bootstrap: a verdict about *these
    trained students* on another draw of test clips.
    """
    verdicts: dict[str, dict[str, list[str]]] = {}
    for method, entry in paired["methods"].items():
        for metric, e in entry.items():
            interval = verdict_interval(e, level)
            side = ("undecided" if interval is None else "higher" if interval[0] > 0
                    else "lower" if interval[1] < 0 else "undecided")
            verdicts.setdefault(metric, {"higher": [], "lower": [], "undecided": []})[side].append(
                method)
    return verdicts


def _test_clip_groups(cfg: ExperimentConfig, field: str) -> dict[str, str] | None:
    """``{clip name: label}`` of the test split for a field its corpus logs (e.g. ``noise``);
    ``None`` when the corpus does not log it."""
    test = cfg.open_split("test")
    labels = {}
    for i in range(len(test)):
        info = test.info(i)
        if info.get(field) is None:
            return None
        labels[info["name"]] = str(info[field])
    return labels


def final_calibration_spread(history: list[dict], epochs: int) -> dict | None:
    """How decisive a run's learnt calibration ended up: ``{stage: {stream: spread}}``.

    Notebook: 05_distillation.ipynb (the results table; notebook 04 explains the ceiling)

    :func:`~tfckd_lite.distill.calibration.stage_spreads` of the mean weights that ``train``
    recorded on its fixed batch after the last of ``epochs`` epochs: 0 is uniform, 2 the
    ceiling of the SemCKD normalisation. A run without learnt calibration (no
    ``"calibration"`` in its history) gives ``None``.
    """
    from ..distill import stage_spreads

    recorded = [h["calibration"] for h in history[:epochs] if "calibration" in h]
    return stage_spreads(recorded[-1]) if recorded else None


def run_clipped_fraction(history: list[dict], epochs: int) -> float | None:
    """The share of a run's optimizer steps whose gradient norm exceeded the clip (so the SE and
    KD terms' pull was rescaled, and a term that dominates the gradient sets the direction):
    over the first ``epochs`` epochs of ``history.json`` that recorded it (``"gradient"``,
    :func:`~tfckd_lite.train.gradient_summary`), weighted by their steps. ``None`` for a run
    trained before the counter existed: no number is made up for it.

    Notebook: 05_distillation.ipynb
    """
    recorded = [h["gradient"] for h in history[:epochs] if "gradient" in h]
    steps = sum(g["steps"] for g in recorded)
    if not steps:
        return None
    return float(sum(g["clipped_fraction"] * g["steps"] for g in recorded) / steps)


def _mean_clipped(runs: list[dict]) -> dict:
    """Per method: the mean over its runs of :func:`run_clipped_fraction` where recorded
    (``mean`` is ``None`` when no run recorded it), and how many of the runs did."""
    values = [r["clipped_fraction"] for r in runs if r["clipped_fraction"] is not None]
    return {"mean": float(np.mean(values)) if values else None, "recorded": len(values),
            "runs": len(runs)}


def _mean_spread(spreads: list[dict | None]) -> dict | None:
    """Per stage and stream, the mean over seeds of :func:`final_calibration_spread`."""
    spreads = [s for s in spreads if s is not None]
    if not spreads:
        return None
    return {stage: {stream: float(np.mean([s[stage][stream] for s in spreads]))
                    for stream in streams}
            for stage, streams in spreads[0].items()}


def _total_agreement(agreements: list[dict | None]) -> dict | None:
    """Rows that agree and rows in all, summed over the seeds of :func:`run_calibration_agreement`."""
    agreements = [a for a in agreements if a is not None]
    if not agreements:
        return None
    return {"agree": sum(a["agree"] for a in agreements),
            "rows": sum(a["rows"] for a in agreements), "runs": len(agreements)}


def calibration_probe(cfg: ExperimentConfig):
    """The batch on which :func:`run_calibration_agreement` reads the trained weights: the first
    training-shaped batch (``batch_size`` x ``segment_seconds``, loader seed 0) of the
    *validation* split, so that no training utterance and no test utterance is involved.

    Notebook: 05_distillation.ipynb
    """
    from ..data import make_loader

    loader = make_loader(cfg.open_split("valid"), batch_size=cfg.train.batch_size,
                         segment_seconds=cfg.train.segment_seconds, seed=0)
    return next(iter(loader))[0]


def run_calibration_agreement(folder: Path, teacher, probe) -> dict | None:
    """Does each student layer of a trained run weigh most the teacher layer it is closest to?

    Notebook: 04_calibration_weights.ipynb (the same check on the shipped distiller)

    Rebuilds the run's distiller (``best.safetensors`` + ``best.extras.safetensors``,
    :func:`~tfckd_lite.checkpoint.load_trained_distiller`) around ``teacher`` and compares, on
    ``probe`` (noisy waveforms, :func:`calibration_probe`), the calibration weights with the
    uncalibrated pair divergences (:func:`~tfckd_lite.distill.calibration_agreement`).
    Returns ``{"agree", "rows", "by_stage"}``: the rows (student layer x stream, over every
    stage) whose most-weighed teacher layer is the closest one, how many rows there are, and
    the per-stage detail; ``None`` for a run without learnt calibration or without its extras
    (only :data:`SHIPPED_EXTRAS` are committed, so a fresh clone has no others).
    """
    from ..checkpoint import load_trained_distiller
    from ..distill import calibration_agreement

    run = RunFolder(folder)
    if not run.best_extras.is_file():
        return None
    distiller = load_trained_distiller(run.best, run.best_extras, teacher)
    if getattr(distiller, "calibration", None) is None:
        return None
    spec = distiller.student.stft(probe)
    by_stage = calibration_agreement(distiller.calibration_weights(spec),
                                     distiller.pair_divergences(spec))
    rows = [f == c for streams in by_stage.values() for r in streams.values()
            for f, c in zip(r["favoured"], r["closest"])]
    return {"agree": sum(rows), "rows": len(rows), "by_stage": by_stage}


def collect_results(cfg: ExperimentConfig, chosen: dict[str, dict], progress: bool = True) -> dict:
    """Score every final run and the teacher on the test split and aggregate (``results.json``).

    With ``tfckd`` among the methods, the results also compare it with every other method, clip
    by clip and seed by seed, overall and (clip level) per noise type of the test clips where
    the corpus logs it (``"paired"``, :func:`paired_comparison`).

    Each method's scores are over all its seeds (``extra_seeds`` included for the methods of
    ``extra_seed_methods``); each run records the share of its steps whose gradient was clipped
    (:func:`run_clipped_fraction`), averaged per method (``"clipped_fraction"``: ``mean``,
    ``None`` where no run recorded it, and how many runs did).

    Seed ``seeds[0]`` tuned λ (:mod:`~tfckd_lite.experiment.plan`): its runs are marked
    (``"tuning_seed"`` of each run) and each method also gets its scores over the other seeds
    (``"without_tuning_seed"``: the seeds that played no part in any choice).

    Notebook: 05_distillation.ipynb
    """
    from ..checkpoint import load_model

    runs = final_runs(cfg, {m: c["kd_weight"] for m, c in chosen.items()})
    epochs = cfg.train.epochs
    per_run = []
    teacher = load_model(cfg.teacher_file())
    probe = calibration_probe(cfg)
    clip_records: dict[str, dict[int, list[dict]]] = {}
    for run in runs:
        folder = run.run_folder(cfg)
        scored = _test_scores(folder.best, folder.test_scores, cfg, progress)
        summary = scored["summary"]
        clip_records.setdefault(run.method, {})[run.seed] = scored["records"]
        history = folder.history()
        per_run.append({"method": run.method, "kd_weight": run.kd_weight, "seed": run.seed,
                        "tuning_seed": run.seed == cfg.seeds[0],
                        "folder": str(folder.path), "valid_pesq_wb": validation_score(run, cfg),
                        "train_seconds": epochs * float(np.median(
                            [h["seconds"] for h in history[:epochs]])),
                        "calibration_spread": final_calibration_spread(history, epochs),
                        "clipped_fraction": run_clipped_fraction(history, epochs),
                        "calibration_agreement": (
                            run_calibration_agreement(folder.path, teacher, probe)
                            if run.method in SHIPPED_EXTRAS else None),
                        "test": {k: summary[k] for k in summary if isinstance(summary[k], float)}})
    teacher_scores = _test_scores(cfg.teacher_file(), Path(cfg.out, TEACHER_SCORES_FILE), cfg,
                                  progress)["summary"]
    first = per_run[0]["test"]
    rows = {"noisy": {k: {"mean": first[f"input_{k}"], "std": 0.0, "n": 1} for k, _, _ in METRICS},
            "teacher": {k: {"mean": teacher_scores[k], "std": 0.0, "n": 1}
                        for k, _, _ in METRICS}}
    methods = {}
    for method in cfg.methods:
        mine = [r for r in per_run if r["method"] == method]
        methods[method] = {
            "kd_weight": chosen[method]["kd_weight"],
            "tuned_with": chosen[method]["tuned_with"],
            "tuning_valid_pesq_wb": chosen[method]["valid_pesq_wb"],
            "scores": {k: _mean_std([r["test"][k] for r in mine]) for k, _, _ in METRICS},
            "without_tuning_seed": _without_tuning_seed(mine),
            "train_seconds": _mean_std([r["train_seconds"] for r in mine]),
            "best_seed": max(mine, key=lambda r: r["valid_pesq_wb"])["seed"],
            "seeds": [r["seed"] for r in mine],
            "ablation_of": chosen[method].get("ablation_of"),
            "clipped_fraction": _mean_clipped(mine),
            "calibration_spread": _mean_spread([r["calibration_spread"] for r in mine]),
            "calibration_agreement": _total_agreement([r["calibration_agreement"]
                                                       for r in mine]),
        }
    base = methods["none"]["scores"]
    for method, entry in methods.items():
        entry["gap_closed"] = {}
        for key, _, _ in METRICS:
            gap = rows["teacher"][key]["mean"] - base[key]["mean"]
            gained = entry["scores"][key]["mean"] - base[key]["mean"]
            entry["gap_closed"][key] = gained / gap if gap > 0 else float("nan")
    paired = None
    if PAIRED_REFERENCE in clip_records and len(clip_records) > 1:
        paired = paired_comparison(clip_records, PAIRED_REFERENCE,
                                   groups=_test_clip_groups(cfg, "noise"))
    return {"config": cfg.to_dict(), "command": reproduce_command(cfg), "rows": rows,
            "tuning_seed": cfg.seeds[0],
            "methods": methods, "paired": paired, "runs": per_run,
            "complexity": _complexity(cfg), "teacher_test": teacher_scores,
            "library_version": __version__}
