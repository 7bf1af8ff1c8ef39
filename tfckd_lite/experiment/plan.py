"""The plan: which runs the experiment trains, the λ each method gets, and how long it takes.

Notebook: 05_distillation.ipynb

Stage 1 tunes λ on the validation split: each tuned KD method is trained with seed
``seeds[0]`` for every λ of its grid (:func:`kd_grid`, :data:`TUNING_GRIDS`), extended past an
end where the best λ lies (:func:`tuned_grid`); the ablations reuse the λ of the method they
ablate (:func:`lambda_source`). Stage 2 trains the other seeds at the chosen λ
(:func:`choose_kd_weights`). :func:`planned_runs` lists every run that can be decided now, so a
method's seeds start as soon as its λ is settled. Time estimates (:func:`run_seconds`) come
from the epoch times measured in the folder.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..checkpoint import read_model_description
from ..run_folder import RunFolder
from .config import ExperimentConfig, Run
def lambda_source(method: str, cfg: ExperimentConfig) -> str:
    """The method whose tuning picks ``method``'s λ: the ablated method when the experiment
    includes it (see :mod:`tfckd_lite.experiment`), else ``method`` itself.

    Notebook: 05_distillation.ipynb
    """
    from ..distill import METHODS

    source = METHODS[method].ablation_of
    return source if source in cfg.methods else method


#: Factor between a grid end and the λ tried past it (the grids' own spacing).
GRID_STEP = 10.0


#: The λ grid each tuned method starts from: three factor-10 steps centred on the λ that a first
#: tuning pass chose. That pass (this protocol, seed 0, from {1, 10, 100} with two extensions
#: allowed; its run folders were lost with the machine they ran on, before the experiment folder
#: was committed) kept λ = 1000 for ``output`` (of 1 ... 10^4), 0.01 for ``fitnets`` (of 0.01
#: ... 100; a second extension was not allowed), 1 for ``frame-similarity`` (of 1, 10, 100),
#: 0.1 for ``tfckd-intra`` (of 0.01 ... 100) and, of the λ that had finished, 1 for ``tfckd``
#: (λ = 10 and 100 were far behind after one or two epochs). Starting there spares about seven
#: runs of the coarse search (a sixth of the CPU time) and gives every method the same
#: resolution around its optimum; the extensions still follow an optimum that moved to an end.
TUNING_GRIDS: dict[str, tuple[float, ...]] = {
    "output": (100.0, 1000.0, 10000.0),
    "fitnets": (0.001, 0.01, 0.1),
    "frame-similarity": (0.1, 1.0, 10.0),
    "tfckd-intra": (0.01, 0.1, 1.0),
    "tfckd": (0.1, 1.0, 10.0),
}


#: the grid of a tuned method that has none in TUNING_GRIDS (a method added to the registry)
DEFAULT_GRID = (1.0, 10.0, 100.0)


def kd_grid(method: str, cfg: ExperimentConfig) -> tuple[float, ...]:
    """The λ grid ``method``'s tuning starts from: ``cfg.kd_weights`` when set, else its entry
    of :data:`TUNING_GRIDS` (:data:`DEFAULT_GRID` for a method without one).

    Notebook: 05_distillation.ipynb
    """
    return cfg.kd_weights or TUNING_GRIDS.get(method, DEFAULT_GRID)


def tuned_grid(method: str, cfg: ExperimentConfig) -> list[float]:
    """The λ values tried for ``method`` so far: the grid, plus the steps past its ends that the
    finished tuning runs call for.

    Notebook: 05_distillation.ipynb

    Once every λ tried has finished (seed ``seeds[0]``), if the best validation PESQ-WB (ties:
    the smaller λ) is at the smallest λ, ``λ_min / GRID_STEP`` is added; at the largest,
    ``λ_max * GRID_STEP``; at most ``cfg.grid_extensions`` times. A grid of one λ has no ends to
    judge and is never extended. The result depends on which runs have finished, so the
    experiment asks again after each round of training.
    """
    grid = sorted(kd_grid(method, cfg))
    for _ in range(cfg.grid_extensions if len(grid) > 1 else 0):
        runs = [Run(method, w, cfg.seeds[0]) for w in grid]
        if not all(run.finished(cfg) for run in runs):
            break
        scores = {w: validation_score(Run(method, w, cfg.seeds[0]), cfg) for w in grid}
        best = _best_kd_weight(scores)
        if best == grid[0]:
            grid.insert(0, grid[0] / GRID_STEP)
        elif best == grid[-1]:
            grid.append(grid[-1] * GRID_STEP)
        else:
            break
    return grid


def tuning_runs(cfg: ExperimentConfig) -> list[Run]:
    """Stage 1: every seed of 'none', and seed ``seeds[0]`` of each tuned KD method for each λ
    of its grid as extended so far (:func:`tuned_grid`).

    Notebook: 05_distillation.ipynb
    """
    runs = [Run("none", None, s) for s in cfg.seeds]
    runs += [Run(m, w, cfg.seeds[0]) for m in cfg.methods
             if m != "none" and lambda_source(m, cfg) == m for w in tuned_grid(m, cfg)]
    return runs


def final_runs(cfg: ExperimentConfig, chosen: dict[str, float | None]) -> list[Run]:
    """The runs the table is made of: every seed of every method at its chosen λ.

    Notebook: 05_distillation.ipynb
    """
    return [Run(m, chosen[m], s) for m in cfg.methods for s in cfg.seeds]


def tuning_scores(method: str, cfg: ExperimentConfig) -> dict[float, float] | None:
    """Validation PESQ-WB per λ tried for ``method`` (seed ``seeds[0]``) once its tuning is
    over, i.e. every λ of :func:`tuned_grid` has finished (then the grid will not grow again);
    ``None`` before.

    Notebook: 05_distillation.ipynb
    """
    grid = tuned_grid(method, cfg)
    if not all(Run(method, w, cfg.seeds[0]).finished(cfg) for w in grid):
        return None
    return {w: validation_score(Run(method, w, cfg.seeds[0]), cfg) for w in grid}


def _best_kd_weight(scores: dict[float, float]) -> float:
    return max(sorted(scores), key=lambda w: scores[w])    # max keeps the first of ties


def settled_kd_weight(method: str, cfg: ExperimentConfig) -> float | None:
    """The λ that ``method`` will train its other seeds with, once the tuning that picks it (its
    own, or that of the method it ablates) is over; ``None`` until then (and for 'none').

    Notebook: 05_distillation.ipynb
    """
    source = lambda_source(method, cfg)
    scores = None if source == "none" else tuning_scores(source, cfg)
    return None if scores is None else _best_kd_weight(scores)


def planned_runs(cfg: ExperimentConfig) -> list[Run]:
    """Every run that can be decided now, tuning first: the tuning runs as the grids stand
    (:func:`tuning_runs`), then the remaining seeds of each method whose λ is settled
    (:func:`settled_kd_weight`), so those start while other methods are still tuning.

    Notebook: 05_distillation.ipynb
    """
    runs = tuning_runs(cfg)
    for method in cfg.methods:
        if method == "none":
            continue
        lam = settled_kd_weight(method, cfg)
        if lam is not None:
            runs += [r for r in (Run(method, lam, s) for s in cfg.seeds) if r not in runs]
    return runs


def validation_score(run: Run, cfg: ExperimentConfig) -> float:
    """The run's best validation PESQ-WB (what selects epochs, λ and shipped seeds).

    Notebook: 05_distillation.ipynb
    """
    return float(read_model_description(run.run_folder(cfg).best)["metrics"]["pesq_wb"])


def choose_kd_weights(cfg: ExperimentConfig) -> dict[str, dict]:
    """Per method the λ of the best validation PESQ-WB on seed ``seeds[0]`` (ties: smaller λ)
    over every λ tried (:func:`tuned_grid`).

    Returns ``{method: {"kd_weight": λ or None, "valid_pesq_wb": {λ: score}, "tuned_with":
    method}}``; an ablation gets the λ of the method it ablates, whose name is in
    ``tuned_with``, and no scores of its own.

    Notebook: 05_distillation.ipynb
    """
    chosen: dict[str, dict] = {"none": {"kd_weight": None, "valid_pesq_wb": {},
                                        "tuned_with": "none"}}
    for method in cfg.methods:
        if method == "none" or lambda_source(method, cfg) != method:
            continue
        scores = tuning_scores(method, cfg)
        if scores is None:
            raise RuntimeError(f"the λ tuning of {method} has not finished in {cfg.out}")
        chosen[method] = {"kd_weight": _best_kd_weight(scores),
                          "valid_pesq_wb": {f"{w:g}": v for w, v in scores.items()},
                          "tuned_with": method}
    for method in cfg.methods:
        source = lambda_source(method, cfg)
        if source != method:
            chosen[method] = {"kd_weight": chosen[source]["kd_weight"], "valid_pesq_wb": {},
                              "tuned_with": source}
    return {m: chosen[m] for m in cfg.methods}


#: An untimed method (no epoch measured in the folder yet) is estimated at the fastest measured
#: method's epoch time times this. The fastest is at most a plain student's epoch (``none`` is
#: the cheapest method), and the dearest method, full TFCKD, costs 4.4 plain steps on the idle
#: machine (``bench/bench_distill.py``) and somewhat more when two runs share its cores; the
#: margin makes estimates, and with them a ``--hours`` budget, err on the early side.
UNTIMED_FACTOR = 5.5


def epoch_times(cfg: ExperimentConfig) -> dict[str, list[float]]:
    """Every epoch time measured so far in ``cfg.out``, per method (from each run's
    ``history.json``; with ``jobs`` runs side by side these are the times of that setting).

    Notebook: 05_distillation.ipynb
    """
    times: dict[str, list[float]] = {}
    for history in sorted(Path(cfg.out, "runs").glob(f"*/**/{RunFolder.HISTORY}")):
        method = history.relative_to(Path(cfg.out, "runs")).parts[0]
        times.setdefault(method, []).extend(h["seconds"]
                                            for h in RunFolder(history.parent).history())
    return times


def _own_times(method: str, times: dict[str, list[float]]) -> list[float]:
    """The epoch times measured for ``method``, or for the method it ablates; [] if none."""
    from ..distill import METHODS

    return times.get(method) or times.get(METHODS[method].ablation_of or method) or []


def epoch_seconds(method: str, times: dict[str, list[float]]) -> float | None:
    """Estimated seconds per epoch of ``method``: the median measured time of the method (robust
    to an epoch slowed by a pause or a busy machine), else of the method it ablates, else
    (untimed) the fastest measured method's times :data:`UNTIMED_FACTOR`; ``None`` while nothing
    at all has been measured.

    Notebook: 05_distillation.ipynb
    """
    own = _own_times(method, times)
    if own:
        return float(np.median(own))
    measured = [float(np.median(t)) for t in times.values() if t]
    return min(measured) * UNTIMED_FACTOR if measured else None


def run_seconds(run: Run, cfg: ExperimentConfig, times: dict[str, list[float]]) -> float | None:
    """Estimated training seconds ``run`` still needs: its epochs left times
    :func:`epoch_seconds` (0 once finished; ``None`` when nothing has been timed yet).

    Notebook: 05_distillation.ipynb
    """
    left = max(cfg.train.epochs - run.run_folder(cfg).epochs_done(), 0)
    if not left:
        return 0.0
    per_epoch = epoch_seconds(run.method, times)
    return None if per_epoch is None else left * per_epoch
