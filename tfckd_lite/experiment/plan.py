"""The plan: which runs the experiment trains, the λ each method gets, and how long it takes.

Notebook: 05_distillation.ipynb

Stage 1 tunes λ on the validation split: each KD method is trained with seed ``seeds[0]`` for
every λ of its grid (:func:`kd_grid`), extended past an end where the best λ lies
(:func:`tuned_grid`). Stage 2 trains the method's other seeds at the chosen λ
(:func:`choose_kd_weights`); the methods of ``extra_seed_methods`` get ``extra_seeds`` too
(:meth:`~tfckd_lite.experiment.config.ExperimentConfig.seeds_of`). :func:`planned_runs` lists
every run that can be decided now, in the order they should train. Time estimates
(:func:`run_seconds`) come from the epoch times measured in the folder.

Which grid each method starts from (:func:`kd_grid`):

* a method of :data:`TUNING_GRIDS`: its entry (three factor-10 steps centred on the λ of a first
  tuning pass, described there); another method: :data:`DEFAULT_GRID`;
* **an ablation** (``METHODS[m].ablation_of``, with that method in the experiment): three
  factor-10 steps centred on the λ its ablated method chose (:func:`centred_grid`), known once
  that method's tuning is over. Until issue 27 the ablations were not tuned at all: they reused
  the ablated method's λ, so "learnt beats uniform" or "time-only loses" could have been the λ
  rather than the component removed (``frame-similarity``, close to a uniform, one-to-one,
  time-only TFCKD, was tuned to λ = 1 and led). Now each ablation differs from the method it
  ablates in its component alone, each at its own best λ on validation. Centring on the ablated
  method's λ keeps the search where the terms are of the same scale, and, in the committed
  experiment (``tfckd`` chose 0.1), makes the finished λ = 0.1 runs of the ablations their
  tuning runs (seed 0) and final runs (seeds 1, 2) wherever 0.1 wins. ``ablation_of`` keeps
  its other meanings: the report names the method ablated, and an untimed ablation's time is
  estimated from that method's epochs;
* **a capped method** (``METHODS[m].kd_gradient_cap``, ``output-balanced``): the three factor-10
  steps ending at :func:`kd_weight_cap` rounded down to one significant digit, the λ at which
  the KD term's gradient is the cap times the SE term's (:mod:`~tfckd_lite.experiment.balance`);
  its grid never grows past that top.

``kd_weights`` replaces every grid by one (tests and quick runs).

The order (:func:`planned_runs`): with hours of CPU per run and sessions that end, the runs
that the leading comparison rests on come first: ``none``'s seeds (the cheapest, and the
baseline of every gap), then each method of ``extra_seed_methods`` in the order given (its
tuning, then its seeds, extra ones included), then the other tuned methods (tuning, then
seeds), then the ablations (every ablation's tuning, then their seeds). A run is listed only
once it can be decided, so the plan is asked again whenever a run finishes.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..checkpoint import read_model_description
from ..run_folder import RunFolder
from .config import ExperimentConfig, Run


def ablated_method(method: str, cfg: ExperimentConfig) -> str | None:
    """The method ``method`` ablates when the experiment includes it (its grid is centred on
    that method's λ), else ``None`` (an ablation run alone is tuned like any method).

    Notebook: 05_distillation.ipynb
    """
    from ..distill import METHODS

    source = METHODS[method].ablation_of
    return source if source in cfg.methods else None


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


def _tidy(value: float) -> float:
    """``value`` rounded to 12 significant digits, so that a grid computed by multiplying and
    dividing by 10 names the same runs (and folders) as one typed in."""
    return float(f"{value:.12g}")


def centred_grid(kd_weight: float) -> tuple[float, ...]:
    """Three factor-10 steps centred on ``kd_weight``: an ablation's grid around the λ of the
    method it ablates.

    Notebook: 05_distillation.ipynb
    """
    return tuple(_tidy(kd_weight * GRID_STEP ** k) for k in (-1, 0, 1))


def kd_weight_cap(method: str, cfg: ExperimentConfig) -> float | None:
    """The largest λ ``method`` is tuned with: ``METHODS[method].kd_gradient_cap`` divided by
    :func:`~tfckd_lite.experiment.balance.kd_gradient_ratio` (the λ at which the KD term's
    gradient is the cap times the SE term's, at the student's initialisation); ``None`` for a
    method without a cap.

    Notebook: 05_distillation.ipynb
    """
    from ..distill import METHODS
    from .balance import kd_gradient_ratio

    cap = METHODS[method].kd_gradient_cap
    return None if cap is None else cap / kd_gradient_ratio(method, cfg)


def kd_grid(method: str, cfg: ExperimentConfig) -> tuple[float, ...] | None:
    """The λ grid ``method``'s tuning starts from (the rules are in the module docstring):
    ``cfg.kd_weights`` when set; an ablation's :func:`centred_grid` around its ablated method's
    λ, ``None`` until that method's tuning is over; a capped method's three factor-10 steps
    whose top is :func:`kd_weight_cap` rounded down to one significant digit (measured once:
    the grid recorded in the folder's ``experiment.json``, when there is one, is kept, so that
    a machine whose float rounding moves the measurement a little still resumes); else its
    entry of :data:`TUNING_GRIDS` (:data:`DEFAULT_GRID`).

    Notebook: 05_distillation.ipynb
    """
    from ..distill import METHODS

    if cfg.kd_weights:
        return cfg.kd_weights
    source = ablated_method(method, cfg)
    if source is not None:
        lam = settled_kd_weight(source, cfg)
        return None if lam is None else centred_grid(lam)
    if METHODS[method].kd_gradient_cap is not None:
        recorded = _recorded_grid(method, cfg)
        if recorded is not None:
            return recorded
        cap = kd_weight_cap(method, cfg)
        digits = math.floor(math.log10(cap))
        top = math.floor(cap / 10.0 ** digits) * 10.0 ** digits     # one digit, rounded down
        return tuple(_tidy(top * GRID_STEP ** k) for k in (-2, -1, 0))
    return TUNING_GRIDS.get(method, DEFAULT_GRID)


def _recorded_grid(method: str, cfg: ExperimentConfig) -> tuple[float, ...] | None:
    """The grid ``experiment.json`` of ``cfg.out`` recorded for ``method``, if any."""
    import json

    from .folder import RECORD_FILE

    record = Path(cfg.out) / RECORD_FILE
    if not record.is_file():
        return None
    grid = json.loads(record.read_text()).get("tuning_grids", {}).get(method)
    return None if grid is None else tuple(float(w) for w in grid)


def tuned_grid(method: str, cfg: ExperimentConfig) -> list[float] | None:
    """The λ values tried for ``method`` so far: the grid, plus the steps past its ends that the
    finished tuning runs call for; ``None`` while the grid is not known (:func:`kd_grid`).

    Notebook: 05_distillation.ipynb

    Once every λ tried has finished (seed ``seeds[0]``), if the best validation PESQ-WB (ties:
    the smaller λ) is at the smallest λ, ``λ_min / GRID_STEP`` is added; at the largest,
    ``λ_max * GRID_STEP`` (but for a capped method, whose grid's top is its cap); at most
    ``cfg.grid_extensions`` times. A grid of one λ has no ends to judge and is never extended.
    The result depends on which runs have finished, so the experiment asks again after each
    round of training.
    """
    start = kd_grid(method, cfg)
    if start is None:
        return None
    from ..distill import METHODS

    grid = sorted(start)
    capped = METHODS[method].kd_gradient_cap is not None and not cfg.kd_weights
    for _ in range(cfg.grid_extensions if len(grid) > 1 else 0):
        runs = [Run(method, w, cfg.seeds[0]) for w in grid]
        if not all(run.finished(cfg) for run in runs):
            break
        scores = {w: validation_score(Run(method, w, cfg.seeds[0]), cfg) for w in grid}
        best = _best_kd_weight(scores)
        if best == grid[0]:
            grid.insert(0, _tidy(grid[0] / GRID_STEP))
        elif best == grid[-1] and not capped:
            grid.append(_tidy(grid[-1] * GRID_STEP))
        else:
            break
    return grid


def method_tuning_runs(method: str, cfg: ExperimentConfig) -> list[Run]:
    """The tuning runs of one method as its grid stands (none for ``none`` or before its grid
    is known): seed ``seeds[0]`` at every λ of :func:`tuned_grid`.

    Notebook: 05_distillation.ipynb
    """
    grid = None if method == "none" else tuned_grid(method, cfg)
    return [Run(method, w, cfg.seeds[0]) for w in grid or ()]


def tuning_runs(cfg: ExperimentConfig) -> list[Run]:
    """Stage 1: every seed of 'none' (``seeds``), and seed ``seeds[0]`` of each KD method for
    each λ of its grid as extended so far (:func:`tuned_grid`; an ablation's once its grid is
    known).

    Notebook: 05_distillation.ipynb
    """
    runs = [Run("none", None, s) for s in cfg.seeds]
    return runs + [r for m in cfg.methods for r in method_tuning_runs(m, cfg)]


def final_runs(cfg: ExperimentConfig, chosen: dict[str, float | None]) -> list[Run]:
    """The runs the table is made of: every seed of every method at its chosen λ (its
    ``extra_seeds`` too for the methods of ``extra_seed_methods``).

    Notebook: 05_distillation.ipynb
    """
    return [Run(m, chosen[m], s) for m in cfg.methods for s in cfg.seeds_of(m)]


def tuning_scores(method: str, cfg: ExperimentConfig) -> dict[float, float] | None:
    """Validation PESQ-WB per λ tried for ``method`` (seed ``seeds[0]``) once its tuning is
    over, i.e. every λ of :func:`tuned_grid` has finished (then the grid will not grow again);
    ``None`` before.

    Notebook: 05_distillation.ipynb
    """
    grid = tuned_grid(method, cfg)
    if grid is None or not all(Run(method, w, cfg.seeds[0]).finished(cfg) for w in grid):
        return None
    return {w: validation_score(Run(method, w, cfg.seeds[0]), cfg) for w in grid}


def _best_kd_weight(scores: dict[float, float]) -> float:
    return max(sorted(scores), key=lambda w: scores[w])    # max keeps the first of ties


def settled_kd_weight(method: str, cfg: ExperimentConfig) -> float | None:
    """The λ that ``method`` will train its other seeds with, once its tuning is over; ``None``
    until then (and for 'none').

    Notebook: 05_distillation.ipynb
    """
    scores = None if method == "none" else tuning_scores(method, cfg)
    return None if scores is None else _best_kd_weight(scores)


def method_groups(cfg: ExperimentConfig) -> list[list[str]]:
    """The methods in the order their runs train (module docstring): ``[["none"], *one group per
    method of extra_seed_methods*, other tuned methods, ablations]`` (empty groups left out).

    Notebook: 05_distillation.ipynb
    """
    leading = [m for m in cfg.extra_seed_methods if m != "none"]
    ablations = [m for m in cfg.methods if ablated_method(m, cfg) is not None
                 and m not in leading]
    others = [m for m in cfg.methods if m != "none" and m not in leading + ablations]
    return [g for g in [["none"], *([m] for m in leading), others, ablations] if g]


def planned_runs(cfg: ExperimentConfig, undecided: bool = False) -> list[Run]:
    """Every run that can be decided now, in the order they should train: group by group of
    :func:`method_groups`, the tuning runs of the group's methods as their grids stand, then
    the seeds (:meth:`~ExperimentConfig.seeds_of`) of each whose λ is settled
    (:func:`settled_kd_weight`).

    Notebook: 05_distillation.ipynb

    ``undecided=True`` (for :func:`~tfckd_lite.experiment.folder.status`) also lists, in their
    place, the runs that will come but cannot be named yet, with ``kd_weight=None``: the tuning
    runs of an ablation whose grid is not known (as many as :func:`centred_grid` gives) and the
    seeds of a method whose λ is not settled. λ-grid extensions are not foreseen.
    """
    runs: list[Run] = []

    def add(candidates):
        runs.extend(r for r in candidates if r.kd_weight is None and r.method != "none"
                    or r not in runs)

    for group in method_groups(cfg):
        for method in group:
            if method == "none":
                add(Run("none", None, s) for s in cfg.seeds_of("none"))
            elif tuned_grid(method, cfg) is None:
                if undecided:
                    add([Run(method, None, cfg.seeds[0])] * len(centred_grid(1.0)))
            else:
                add(method_tuning_runs(method, cfg))
        for method in group:
            if method == "none":
                continue
            lam = settled_kd_weight(method, cfg)
            if lam is not None:
                add(Run(method, lam, s) for s in cfg.seeds_of(method))
            elif undecided:
                add(Run(method, None, s) for s in cfg.seeds_of(method) if s != cfg.seeds[0])
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
    method, "ablation_of": the method it ablates or None}}``. Every method is tuned on its own
    grid (``tuned_with`` is the method itself; results written before the ablations were
    tuned named the ablated method there).

    Notebook: 05_distillation.ipynb
    """
    chosen: dict[str, dict] = {}
    for method in cfg.methods:
        entry = {"kd_weight": None, "valid_pesq_wb": {}, "tuned_with": method,
                 "ablation_of": ablated_method(method, cfg)}
        if method != "none":
            scores = tuning_scores(method, cfg)
            if scores is None:
                raise RuntimeError(f"the λ tuning of {method} has not finished in {cfg.out}")
            entry.update(kd_weight=_best_kd_weight(scores),
                         valid_pesq_wb={f"{w:g}": v for w, v in scores.items()})
        chosen[method] = entry
    return chosen


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
    """The epoch times measured for ``method``, else for the method it ablates, else for a
    method built the same way (same distiller class and fixed options: ``output-balanced`` is
    ``output`` at other λ); [] if none."""
    from ..distill import METHODS

    spec = METHODS[method]
    twins = [m for m, other in METHODS.items()
             if other.factory is spec.factory and dict(other.fixed) == dict(spec.fixed)]
    for name in (method, spec.ablation_of, *twins):
        if name and times.get(name):
            return times[name]
    return []


def epoch_seconds(method: str, times: dict[str, list[float]]) -> float | None:
    """Estimated seconds per epoch of ``method``: the median measured time of the method (robust
    to an epoch slowed by a pause or a busy machine), else of the method it ablates or of one
    built the same way, else (untimed) the fastest measured method's times
    :data:`UNTIMED_FACTOR`; ``None`` while nothing at all has been measured.

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
