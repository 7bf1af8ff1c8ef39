"""The end-to-end experiment: every distillation method x seeds under one budget, one table.

Notebook: 05_distillation.ipynb

``python -m tfckd_lite reproduce`` (``make reproduce``) runs, with a shipped teacher:

1. **λ tuning on the validation split.** Each KD method is trained with seed ``seeds[0]`` for
   every λ of its grid (:func:`kd_grid`); the λ whose best epoch has the highest *validation*
   PESQ-WB is kept (ties: the smaller λ). The test split plays no part in any choice. The
   grid is log-spaced because the KD terms differ from the SE loss by orders of magnitude
   at initialisation (about 1e-3 to 5e-2 against 0.04 to 1) and from one method to another.
   When the best λ lies at an end of the grid, the optimum may lie beyond it, and a baseline
   tuned only up to its edge would be compared unfairly: the grid is then extended by one
   factor-10 step past that end (e.g. 0.1 after {1, 10, 100}), again if the new value wins,
   at most ``grid_extensions`` times per method (:func:`tuned_grid`); the choice is still made
   on validation PESQ-WB over every λ tried. Each method starts from three factor-10 steps
   centred on the λ a first tuning pass chose (:data:`TUNING_GRIDS`, where the pass is
   described); ``kd_weights`` sets one grid for every method instead.
   The ablations of I2S-TFCKD (``tfckd-time-only``, ``tfckd-freq-only``, ``tfckd-uniform``,
   ``tfckd-released``: ``METHODS[m].ablation_of``) are not tuned: they reuse the λ chosen for
   ``tfckd``, so that each differs from the full method in the one component it removes (or,
   for ``tfckd-released``, swaps), as ablations in the paper do. This also spares the 8 most
   expensive tuning runs (about a fifth of the CPU time).
2. **The remaining seeds** with the chosen λ (the tuning run of ``seeds[0]`` is reused, so
   every method has the same number of seeds and the same budget). ``none`` (the student
   alone) is trained for every seed too. A method's seeds may start as soon as its λ is
   settled, while others still tune (:func:`planned_runs`): with ``jobs`` runs side by side, no
   slot then waits idle for the slowest run of a stage.
3. **Test-split scores** of each run's best epoch (chosen, as everywhere, on validation
   PESQ-WB), and of the teacher; the noisy input's scores come with them.
4. **The report**: ``results.json`` (everything, per run and aggregated), ``results.md`` (the
   table) and ``results.png`` (the figure) in the output folder. Per method: mean ± sample
   std over seeds of PESQ-WB, STOI, ESTOI and SI-SDR; the student's parameters and GFLOP per
   second of audio, the extra parameters trained only during distillation, the training wall
   time (epochs × the run's median epoch time, validation included: an epoch stretched by a
   paused process or a busy machine does not count), and the share of the teacher–student gap
   each method closes, ``(method − none) / (teacher − none)`` on the means. Then ``tfckd`` against
   every other method clip by clip (:func:`paired_comparison`): the mean per-clip difference
   of PESQ-WB and SI-SDR with a bootstrap interval over the test clips, so that a difference
   of a few hundredths can be told from the luck of the clips; and, against ``none``, the same
   per noise type of the test clips (where the distilled student gains or loses). Last, for
   the methods with learnt calibration, how decisive their weights ended up
   (:func:`final_calibration_spread`, against the ceiling of the SemCKD normalisation), and,
   for those whose distiller is kept (:data:`SHIPPED_EXTRAS`), whether each student layer
   weighs most the teacher layer it is closest to (:func:`run_calibration_agreement`).

Every run is an ordinary ``python -m tfckd_lite train`` run in its own folder
(``runs/<method>/lam-<λ>/seed-<s>``), so each can be re-run alone, and the experiment resumes:
finished runs and cached test scores are kept, an interrupted run continues from its last
checkpoint. ``jobs > 1`` runs that many training processes side by side (on a CPU, two
single-threaded runs finish sooner than two two-threaded runs in a row). A full run takes many
hours on a CPU and is resumed across sessions, so ``<out>/experiment.json`` records the teacher's
and the data manifest's sha256 and the settings at the first start, and a resume with another
teacher, data or budget is refused (:func:`check_experiment_folder`); ``--status``
(:func:`status`) prints how far it got.

Across machines. ``make reproduce`` writes into ``experiments/distillation-small/``, which is
part of the repository: what a finished run needs for the table and the shipping (its best
weights, ``history.json``, cached test scores, and the distiller extras of the methods in
:data:`SHIPPED_EXTRAS`) is committed; logs and locks are ignored
(``experiments/distillation-small/.gitignore``). A fresh clone (with ``make data``, which
rebuilds the set bit for bit: the manifest's sha256 is checked) therefore resumes where the
committed runs stop. For a machine lent for a while there are two budgets:

* ``stop_after`` (``--stop-after``, ``make reproduce STOP_AFTER=2.6``): train for that long,
  then stop the runs in progress, each at its last checkpoint. ``make reproduce-stage``
  (:func:`stage`) commits the finished runs and, force-added past the ``.gitignore``, the
  resume state and outputs of each run in progress (:func:`in_progress_files`; a TFCKD state is
  about 7 MB with its optimiser moments), so the next machine continues those runs where they
  stopped; the state is untracked again once its run has finished. This is what the lent
  2-core sessions use: a TFCKD run takes about 85 min there beside another, so two do not fit
  in a session and waiting for runs to fit leaves a slot idle for a third to a half of it.
* ``hours`` (``--hours``): start a run only when its estimated time (:func:`run_seconds`) fits
  in what is left, and return once no remaining run fits and none is running. Nothing is cut
  off and no resume state needs committing, at the price of idle slots.

An unfinished run whose files were committed without their resume state starts over
(:meth:`Run.orphaned`). Either way the same command resumes later.

``--ship`` then exports the best seed (by validation PESQ-WB) of every KD method as
``tfckd_lite/pretrained/lite-student-<method>`` (with the distiller extras of the methods in
:data:`SHIPPED_EXTRAS`) and the report as
``tfckd_lite/pretrained/results/distillation.{json,md,png}``, which notebook 05 and the README
show.
"""

from __future__ import annotations

import json
import math
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path

import numpy as np

from . import __version__
from .audio import atomic_write_bytes

METRICS = (("pesq_wb", "PESQ-WB", 2), ("stoi", "STOI", 3), ("estoi", "ESTOI", 3),
           ("si_sdr", "SI-SDR (dB)", 2))
#: the method compared clip by clip with every other one, and on which metrics
PAIRED_REFERENCE = "tfckd"
PAIRED_METRICS = ("pesq_wb", "si_sdr")
RESULTS_DIR = Path(__file__).resolve().parent / "pretrained" / "results"
SHIPPED_NAME = "distillation"
#: methods whose trained distiller (calibration, fusion) ships with the student: those notebook 04
#: draws. The others ship the student only; their extras (up to 2.2 MB each) stay in the run
#: folders and are not committed (experiments/distillation-small/.gitignore).
SHIPPED_EXTRAS = ("tfckd", "tfckd-released")


@dataclass
class ExperimentConfig:
    """What the experiment trains and how (every method gets exactly this budget).

    Notebook: 05_distillation.ipynb

    The defaults are the full experiment: the schedule of the shipped lite student baseline
    (6 epochs of the ``small`` training split as built, batch 8 x 1 s, AdamW 1e-3 with 200
    warm-up steps and cosine decay, 100 validation clips per epoch), three seeds, each method's
    λ grid of :data:`TUNING_GRIDS` (``kd_weights``: one grid for all) extended by up to
    ``grid_extensions`` factor-10 steps past an end where the best λ lies (:func:`tuned_grid`).
    ``remix_snr=(low, high)`` remixes every crop on the fly instead (off by default, like the
    shipped models: README, "How the recipe got here").
    """

    data: str
    out: str
    teacher: str = "lite-teacher"
    student: str = "lite-student"
    methods: tuple[str, ...] = ()          # () = every method of distill.METHODS
    seeds: tuple[int, ...] = (0, 1, 2)
    kd_weights: tuple[float, ...] | None = None   # None: per-method grids (TUNING_GRIDS)
    grid_extensions: int = 2
    epochs: int = 6
    steps_per_epoch: int | None = None
    batch_size: int = 8
    segment_seconds: float = 1.0
    lr: float = 1e-3
    warmup_steps: int = 200
    valid_clips: int | None = 100
    test_clips: int | None = None
    checkpoint_every: int = 50
    remix_snr: tuple[float, float] | None = None
    jobs: int = 1
    device: str = "auto"

    def __post_init__(self):
        from .data.loader import check_remix_snr
        from .distill import METHODS

        self.remix_snr = check_remix_snr(self.remix_snr)
        self.methods = tuple(self.methods) or tuple(METHODS)
        self.seeds = tuple(int(s) for s in self.seeds)
        if self.kd_weights is not None:
            self.kd_weights = tuple(float(w) for w in self.kd_weights)
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown:
            raise ValueError(f"unknown method(s) {unknown}; choose from {list(METHODS)}")
        if "none" not in self.methods:
            raise ValueError("the experiment needs method 'none' (the student alone): it is "
                             "the baseline every gap is measured from")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be distinct and non-empty, got {self.seeds}")
        if self.kd_weights is not None and (not self.kd_weights
                                            or any(w <= 0 for w in self.kd_weights)):
            raise ValueError(f"the λ grid must hold positive values, got {self.kd_weights}")
        if self.jobs < 1:
            raise ValueError(f"jobs must be at least 1, got {self.jobs}")
        if self.grid_extensions < 0:
            raise ValueError(f"grid_extensions must be 0 or more, got {self.grid_extensions}")


@dataclass(frozen=True)
class Run:
    """One training run of the experiment: a method, its λ (None for 'none') and a seed."""

    method: str
    kd_weight: float | None
    seed: int

    def folder(self, cfg: ExperimentConfig) -> Path:
        lam = "" if self.kd_weight is None else f"lam-{self.kd_weight:g}"
        return Path(cfg.out, "runs", self.method, lam, f"seed-{self.seed}")

    def argv(self, cfg: ExperimentConfig) -> list[str]:
        """Arguments of ``python -m tfckd_lite`` that train this run."""
        args = ["train", "--preset", cfg.student, "--data", str(cfg.data),
                "--out", str(self.folder(cfg)), "--epochs", str(cfg.epochs),
                "--batch-size", str(cfg.batch_size), "--segment-seconds", f"{cfg.segment_seconds:g}",
                "--lr", f"{cfg.lr:g}", "--warmup-steps", str(cfg.warmup_steps),
                "--checkpoint-every", str(cfg.checkpoint_every), "--seed", str(self.seed),
                "--device", cfg.device, "--method", self.method]
        if cfg.steps_per_epoch:
            args += ["--steps-per-epoch", str(cfg.steps_per_epoch)]
        if cfg.valid_clips:
            args += ["--valid-clips", str(cfg.valid_clips)]
        if cfg.remix_snr is not None:
            args += ["--remix-snr", *(f"{v:g}" for v in cfg.remix_snr)]
        if self.kd_weight is not None:
            args += ["--teacher", cfg.teacher, "--kd-weight", f"{self.kd_weight:g}"]
        if self.orphaned(cfg):
            args.append("--no-resume")
        return args

    def orphaned(self, cfg: ExperimentConfig) -> bool:
        """The folder holds files of an unfinished run but not its resume state (e.g. they were
        committed from another machine, where the state is not kept): nothing can be resumed, so
        the run starts over (``train`` would otherwise refuse the folder)."""
        from .train import BEST_DESCRIPTION_FILE, BEST_EXTRAS_FILE, BEST_FILE, STATE_FILE

        folder = self.folder(cfg)
        outputs = (BEST_FILE, BEST_DESCRIPTION_FILE, BEST_EXTRAS_FILE, "history.json")
        return (not (folder / STATE_FILE).is_file() and not self.finished(cfg)
                and any((folder / name).is_file() for name in outputs))

    def finished(self, cfg: ExperimentConfig) -> bool:
        return _trained_all_epochs(self.folder(cfg), cfg.epochs)


def _trained_all_epochs(folder: Path, epochs: int) -> bool:
    """Whether the run folder's ``history.json`` records all ``epochs`` epochs."""
    history = folder / "history.json"
    return history.is_file() and len(json.loads(history.read_text())) >= epochs


def lambda_source(method: str, cfg: ExperimentConfig) -> str:
    """The method whose tuning picks ``method``'s λ: the ablated method when the experiment
    includes it (see the module docstring), else ``method`` itself."""
    from .distill import METHODS

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
    of :data:`TUNING_GRIDS` (:data:`DEFAULT_GRID` for a method without one)."""
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
    of its grid as extended so far (:func:`tuned_grid`)."""
    runs = [Run("none", None, s) for s in cfg.seeds]
    runs += [Run(m, w, cfg.seeds[0]) for m in cfg.methods
             if m != "none" and lambda_source(m, cfg) == m for w in tuned_grid(m, cfg)]
    return runs


def final_runs(cfg: ExperimentConfig, chosen: dict[str, float | None]) -> list[Run]:
    """The runs the table is made of: every seed of every method at its chosen λ."""
    return [Run(m, chosen[m], s) for m in cfg.methods for s in cfg.seeds]


def tuning_scores(method: str, cfg: ExperimentConfig) -> dict[float, float] | None:
    """Validation PESQ-WB per λ tried for ``method`` (seed ``seeds[0]``) once its tuning is
    over, i.e. every λ of :func:`tuned_grid` has finished (then the grid will not grow again);
    ``None`` before."""
    grid = tuned_grid(method, cfg)
    if not all(Run(method, w, cfg.seeds[0]).finished(cfg) for w in grid):
        return None
    return {w: validation_score(Run(method, w, cfg.seeds[0]), cfg) for w in grid}


def _best_kd_weight(scores: dict[float, float]) -> float:
    return max(sorted(scores), key=lambda w: scores[w])    # max keeps the first of ties


def settled_kd_weight(method: str, cfg: ExperimentConfig) -> float | None:
    """The λ that ``method`` will train its other seeds with, once the tuning that picks it (its
    own, or that of the method it ablates) is over; ``None`` until then (and for 'none')."""
    source = lambda_source(method, cfg)
    scores = None if source == "none" else tuning_scores(source, cfg)
    return None if scores is None else _best_kd_weight(scores)


def planned_runs(cfg: ExperimentConfig) -> list[Run]:
    """Every run that can be decided now, tuning first: the tuning runs as the grids stand
    (:func:`tuning_runs`), then the remaining seeds of each method whose λ is settled
    (:func:`settled_kd_weight`), so those start while other methods are still tuning."""
    runs = tuning_runs(cfg)
    for method in cfg.methods:
        if method == "none":
            continue
        lam = settled_kd_weight(method, cfg)
        if lam is not None:
            runs += [r for r in (Run(method, lam, s) for s in cfg.seeds) if r not in runs]
    return runs


#: An untimed method (no epoch measured in the folder yet) is estimated at the fastest measured
#: method's epoch time times this. The fastest is at most a plain student's epoch (``none`` is
#: the cheapest method), and the dearest method, full TFCKD, costs 4.4 plain steps on the idle
#: machine (``bench/bench_distill.py``) and somewhat more when two runs share its cores; the
#: margin makes estimates, and with them a ``--hours`` budget, err on the early side.
UNTIMED_FACTOR = 5.5


def epoch_times(cfg: ExperimentConfig) -> dict[str, list[float]]:
    """Every epoch time measured so far in ``cfg.out``, per method (from each run's
    ``history.json``; with ``jobs`` runs side by side these are the times of that setting)."""
    times: dict[str, list[float]] = {}
    for history in sorted(Path(cfg.out, "runs").glob("*/**/history.json")):
        method = history.relative_to(Path(cfg.out, "runs")).parts[0]
        times.setdefault(method, []).extend(h["seconds"]
                                            for h in json.loads(history.read_text()))
    return times


def _own_times(method: str, times: dict[str, list[float]]) -> list[float]:
    """The epoch times measured for ``method``, or for the method it ablates; [] if none."""
    from .distill import METHODS

    return times.get(method) or times.get(METHODS[method].ablation_of or method) or []


def epoch_seconds(method: str, times: dict[str, list[float]]) -> float | None:
    """Estimated seconds per epoch of ``method``: the median measured time of the method (robust
    to an epoch slowed by a pause or a busy machine), else of the method it ablates, else
    (untimed) the fastest measured method's times :data:`UNTIMED_FACTOR`; ``None`` while nothing
    at all has been measured."""
    own = _own_times(method, times)
    if own:
        return float(np.median(own))
    measured = [float(np.median(t)) for t in times.values() if t]
    return min(measured) * UNTIMED_FACTOR if measured else None


def run_seconds(run: Run, cfg: ExperimentConfig, times: dict[str, list[float]]) -> float | None:
    """Estimated training seconds ``run`` still needs: its epochs left times
    :func:`epoch_seconds` (0 once finished; ``None`` when nothing has been timed yet)."""
    history = run.folder(cfg) / "history.json"
    done = len(json.loads(history.read_text())) if history.is_file() else 0
    left = max(cfg.epochs - done, 0)
    if not left:
        return 0.0
    per_epoch = epoch_seconds(run.method, times)
    return None if per_epoch is None else left * per_epoch


def train_runs(runs, cfg: ExperimentConfig, progress: bool = True,
               deadline: float | None = None, stop_at: float | None = None) -> bool:
    """Train the unfinished ``runs`` (``cfg.jobs`` at a time); a failing run raises. Returns
    ``True`` when every run has finished, ``False`` when ``deadline`` or ``stop_at`` stopped it
    first.

    ``runs``: a list, or a function returning one (e.g. ``lambda: planned_runs(cfg)``), asked
    again whenever a run finishes, so that runs a finished one makes possible (a λ-grid step,
    the seeds of a method whose λ is settled) start at once instead of a slot waiting idle for
    the slowest run of a stage. In this process when ``jobs == 1`` (through the same CLI
    function), else as ``python -m tfckd_lite train`` subprocesses with ``OMP_NUM_THREADS =
    cores // jobs`` whose output goes to ``train.log`` in each run folder; those processes are
    stopped with it (an exception, Ctrl-C, or SIGTERM to this process), and each resumes from
    its last checkpoint at the next call.

    ``deadline`` (a ``time.time()`` instant): a run is started only if its estimated time
    (:func:`run_seconds`; a run nothing has been timed for yet always starts) fits before it,
    the first such run in plan order, so short runs fill the end of the budget. The call
    returns once no run is running and none fits.

    ``stop_at`` (a ``time.time()`` instant): runs start whatever their estimate, and at that
    instant the training processes are stopped (SIGTERM) and the call returns; each run keeps
    its last checkpoint (at most ``cfg.checkpoint_every`` steps back), which :func:`stage`
    commits so that another machine continues it. Runs then always train in subprocesses,
    even with ``jobs == 1``, so that they can be stopped.
    """
    from .cli import build_parser
    from tqdm.auto import tqdm

    plan = runs if callable(runs) else (lambda: runs)
    started: list[Run] = []       # by this call; each run is started at most once
    ended: list[Run] = []

    def fits(run: Run, times: dict[str, list[float]] | None) -> bool:
        if stop_at is not None and time.time() >= stop_at:
            return False
        if deadline is None:
            return True
        needed = run_seconds(run, cfg, times)
        return needed is None or time.time() + needed <= deadline

    def next_run() -> Run | None:
        # the measured epoch times, read once per look at the plan, not once per candidate
        times = None if deadline is None else epoch_times(cfg)
        for run in plan():
            if run in ended and not run.finished(cfg):
                raise RuntimeError(f"training run {run} ended without finishing its "
                                   f"{cfg.epochs} epochs; see {run.folder(cfg)}")
            if run not in started and not run.finished(cfg) and fits(run, times):
                return run
        return None

    def todo() -> int:
        return sum(1 for run in plan() if not run.finished(cfg) and run not in started)

    bar = tqdm(total=todo(), desc="training runs", disable=not progress)
    if cfg.jobs == 1 and stop_at is None:
        parser = build_parser()
        while (run := next_run()) is not None:
            started.append(run)
            bar.set_postfix_str(f"{run.method} λ={run.kd_weight} seed {run.seed}")
            args = parser.parse_args(run.argv(cfg))
            args.command_line = "python -m tfckd_lite " + shlex.join(run.argv(cfg))
            args.progress = False
            args.func(args)
            ended.append(run)
            bar.update(1)
            bar.total = bar.n + todo()
        bar.close()
        return todo() == 0
    threads = str(max(1, (os.cpu_count() or 1) // cfg.jobs))
    env = dict(os.environ, OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads)
    active = []
    # `kill <pid>` (SIGTERM) must stop the training processes too, not leave them running
    # unowned (a later call would start a second trainer on the same folder); a job started in
    # the background ignores Ctrl-C's SIGINT, so SIGTERM is how it is stopped
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _exit_on_signal) if in_main else None
    try:
        while True:
            while len(active) < cfg.jobs and (run := next_run()) is not None:
                started.append(run)
                folder = run.folder(cfg)
                folder.mkdir(parents=True, exist_ok=True)
                log = open(folder / "train.log", "ab")
                proc = subprocess.Popen([sys.executable, "-m", "tfckd_lite", *run.argv(cfg)],
                                        stdout=log, stderr=subprocess.STDOUT, env=env)
                active.append((run, proc, log))
            if not active or (stop_at is not None and time.time() >= stop_at):
                break               # (a stop: `finally` ends the runs still training)
            time.sleep(1.0)
            for item in list(active):
                run, proc, log = item
                if proc.poll() is None:
                    continue
                log.close()
                active.remove(item)
                ended.append(run)
                if proc.returncode != 0:
                    raise RuntimeError(f"training run {run} failed (exit {proc.returncode}); "
                                       f"see {run.folder(cfg) / 'train.log'}")
                bar.update(1)
                bar.total = bar.n + len(active) + todo()
    finally:
        for _, proc, log in active:
            proc.terminate()
            proc.wait()
            log.close()
        bar.close()
        if in_main:
            signal.signal(signal.SIGTERM, previous)
    # (not `todo() == 0`: a run stopped at `stop_at` was started but has not finished)
    return all(run.finished(cfg) for run in plan())


def _exit_on_signal(signum, frame):
    raise SystemExit(f"stopped by signal {signum}; run the same command again to resume")


def validation_score(run: Run, cfg: ExperimentConfig) -> float:
    """The run's best validation PESQ-WB (what selects epochs, λ and shipped seeds)."""
    from .checkpoint import read_model_description

    return float(read_model_description(run.folder(cfg) / "best.safetensors")
                 ["metrics"]["pesq_wb"])


def choose_kd_weights(cfg: ExperimentConfig) -> dict[str, dict]:
    """Per method the λ of the best validation PESQ-WB on seed ``seeds[0]`` (ties: smaller λ)
    over every λ tried (:func:`tuned_grid`).

    Returns ``{method: {"kd_weight": λ or None, "valid_pesq_wb": {λ: score}, "tuned_with":
    method}}``; an ablation gets the λ of the method it ablates, whose name is in
    ``tuned_with``, and no scores of its own.
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


def _test_scores(model_file: Path, cache: Path, cfg: ExperimentConfig, progress: bool) -> dict:
    """Test-split scores of a model file, ``{"summary", "records"}`` of :func:`evaluate`,
    cached next to it (keyed by the file's hash)."""
    import hashlib

    from .checkpoint import load_model
    from .data import open_corpus
    from .metrics import evaluate

    digest = hashlib.sha256(model_file.read_bytes()).hexdigest()
    key = {"model_sha256": digest, "data": str(cfg.data), "test_clips": cfg.test_clips}
    if cache.is_file():
        stored = json.loads(cache.read_text())
        if stored.get("key") == key:
            return {"summary": stored["summary"], "records": stored["records"]}
    model = load_model(model_file)
    report = evaluate(model.enhance, open_corpus(cfg.data, "test"), max_clips=cfg.test_clips,
                      progress=progress)
    atomic_write_bytes(cache, (json.dumps({"key": key, "summary": report["summary"],
                                           "records": report["records"]}, indent=1) + "\n"
                               ).encode())
    return {"summary": report["summary"], "records": report["records"]}


def _mean_std(values: list[float]) -> dict:
    arr = np.asarray(values, dtype=float)
    std = float(arr.std(ddof=1)) if len(arr) > 1 else 0.0
    return {"mean": float(arr.mean()), "std": std, "n": int(len(arr))}


def _complexity(cfg: ExperimentConfig) -> dict:
    """Student/teacher parameters and GFLOP/s, and each method's extra training parameters."""
    from .checkpoint import load_model
    from .distill import build_distiller
    from .losses import compressed_spectral_loss
    from .models import build_model, count_flops
    from .stft import SAMPLE_RATE, num_frames

    teacher = load_model(_teacher_file(cfg))
    student = build_model(cfg.student)
    frames = num_frames(round(cfg.segment_seconds * SAMPLE_RATE))
    extra = {}
    for method in cfg.methods:
        distiller = build_distiller(method, teacher if method != "none" else None, student,
                                    cfg.batch_size, frames, se_loss=compressed_spectral_loss)
        extra[method] = sum(p.numel() for p in distiller.extra_parameters())
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    return {"student_params": count(student), "student_gflops": count_flops(student) / 1e9,
            "teacher_params": count(teacher), "teacher_gflops": count_flops(teacher) / 1e9,
            "extra_params": extra}


def paired_comparison(records: dict[str, list[list[dict]]], reference: str,
                      metrics: tuple[str, ...] = PAIRED_METRICS, confidence: float = 0.95,
                      resamples: int = 10_000, groups: dict[str, str] | None = None) -> dict:
    """How ``reference`` compares with every other method clip by clip on the test split.

    Notebook: 05_distillation.ipynb

    ``records`` maps each method to the per-clip test records (:func:`metrics.evaluate`) of
    each of its seeds. Per clip, each method's score is averaged over its seeds; the
    difference ``reference − method`` is then summarised over clips by its mean, a bootstrap
    interval (:func:`metrics.bootstrap_mean_interval`) and the share of clips on which the
    reference scores higher. Why paired: every method enhances the same clips, and most of the
    spread of a test mean comes from the clips (how hard each is), which a per-clip difference
    cancels; the table's ± over seeds cannot show whether a small difference holds up. The
    interval covers the draw of test clips only; the seed-to-seed spread stays in the ± column.
    A clip unscorable for either side (NaN) is left out.

    ``groups`` (clip name -> label, e.g. the noise type of each test clip) adds the same
    summary per group under ``"by"``: where a method's gain comes from.

    Returns ``{"reference", "confidence", "resamples", "methods": {method: {metric: {"mean",
    "low", "high", "better", "n", "dropped"[, "by": {label: {...}}]}}}}``.
    """
    from .metrics import bootstrap_mean_interval

    if reference not in records:
        raise KeyError(f"no records for the reference method {reference!r}")

    def per_clip(method: str, metric: str) -> tuple[list[str], np.ndarray]:
        seeds = records[method]
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

    references = {metric: per_clip(reference, metric) for metric in metrics}
    compared = {}
    for method in records:
        if method == reference:
            continue
        compared[method] = {}
        for metric in metrics:
            names, mine = per_clip(method, metric)
            ref_names, ref = references[metric]
            if names != ref_names:
                raise ValueError(f"{reference!r} and {method!r} were scored on different clips")
            diff = ref - mine
            entry = summarise(diff)
            if groups is not None:
                missing = [n for n in names if n not in groups]
                if missing:
                    raise ValueError(f"{len(missing)} clips have no group (first {missing[0]!r})")
                labels = np.array([str(groups[n]) for n in names])
                entry["by"] = {label: summarise(diff[labels == label])
                               for label in sorted(set(labels))}
            compared[method][metric] = entry
    return {"reference": reference, "confidence": confidence, "resamples": resamples,
            "methods": compared}


def _test_clip_groups(cfg: ExperimentConfig, field: str) -> dict[str, str] | None:
    """``{clip name: label}`` of the test split for a field its corpus logs (e.g. ``noise``);
    ``None`` when the corpus does not log it."""
    from .data import open_corpus

    test = open_corpus(cfg.data, "test")
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
    from .distill import stage_spreads

    recorded = [h["calibration"] for h in history[:epochs] if "calibration" in h]
    return stage_spreads(recorded[-1]) if recorded else None


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
    *validation* split, so that no training utterance and no test utterance is involved."""
    from .data import make_loader, open_corpus

    loader = make_loader(open_corpus(cfg.data, "valid"), batch_size=cfg.batch_size,
                         segment_seconds=cfg.segment_seconds, seed=0)
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
    from .checkpoint import load_trained_distiller
    from .distill import calibration_agreement

    extras = folder / "best.extras.safetensors"
    if not extras.is_file():
        return None
    distiller = load_trained_distiller(folder / "best.safetensors", extras, teacher)
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

    With ``tfckd`` among the methods, the results also compare it clip by clip with every
    other method, overall and per noise type of the test clips where the corpus logs it
    (``"paired"``, :func:`paired_comparison`)."""
    from .checkpoint import load_model

    runs = final_runs(cfg, {m: c["kd_weight"] for m, c in chosen.items()})
    per_run = []
    teacher = load_model(_teacher_file(cfg))
    probe = calibration_probe(cfg)
    clip_records: dict[str, list[list[dict]]] = {}
    for run in runs:
        folder = run.folder(cfg)
        scored = _test_scores(folder / "best.safetensors", folder / "test.json", cfg, progress)
        summary = scored["summary"]
        clip_records.setdefault(run.method, []).append(scored["records"])
        history = json.loads((folder / "history.json").read_text())
        per_run.append({"method": run.method, "kd_weight": run.kd_weight, "seed": run.seed,
                        "folder": str(folder), "valid_pesq_wb": validation_score(run, cfg),
                        "train_seconds": cfg.epochs * float(np.median(
                            [h["seconds"] for h in history[:cfg.epochs]])),
                        "calibration_spread": final_calibration_spread(history, cfg.epochs),
                        "calibration_agreement": (
                            run_calibration_agreement(folder, teacher, probe)
                            if run.method in SHIPPED_EXTRAS else None),
                        "test": {k: summary[k] for k in summary if isinstance(summary[k], float)}})
    teacher_scores = _test_scores(_teacher_file(cfg), Path(cfg.out, "teacher.test.json"), cfg,
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
            "train_seconds": _mean_std([r["train_seconds"] for r in mine]),
            "best_seed": max(mine, key=lambda r: r["valid_pesq_wb"])["seed"],
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
    return {"config": asdict(cfg), "command": reproduce_command(cfg), "rows": rows,
            "methods": methods, "paired": paired, "runs": per_run,
            "complexity": _complexity(cfg), "teacher_test": teacher_scores,
            "library_version": __version__}


def reproduce_command(cfg: ExperimentConfig) -> str:
    """The command line that reproduces ``cfg`` (stored in the results)."""
    default = ExperimentConfig(data=cfg.data, out=cfg.out)
    args = ["reproduce", "--data", str(cfg.data), "--out", str(cfg.out)]
    flags = {"teacher": "--teacher", "student": "--student", "epochs": "--epochs",
             "steps_per_epoch": "--steps-per-epoch", "batch_size": "--batch-size",
             "segment_seconds": "--segment-seconds", "lr": "--lr",
             "warmup_steps": "--warmup-steps", "valid_clips": "--valid-clips",
             "test_clips": "--test-clips", "grid_extensions": "--grid-extensions"}
    for key, flag in flags.items():
        if getattr(cfg, key) != getattr(default, key):
            args += [flag, f"{getattr(cfg, key):g}" if isinstance(getattr(cfg, key), float)
                     else str(getattr(cfg, key))]
    if cfg.remix_snr is not None:
        args += ["--remix-snr", *(f"{v:g}" for v in cfg.remix_snr)]
    for key, flag in (("methods", "--methods"), ("seeds", "--seeds"),
                      ("kd_weights", "--kd-weights")):
        if getattr(cfg, key) not in (None, getattr(default, key)):
            args += [flag, *(f"{v:g}" if isinstance(v, float) else str(v)
                             for v in getattr(cfg, key))]
    return "python -m tfckd_lite " + shlex.join(args)


def results_markdown(results: dict) -> str:
    """The results table (Markdown), one row per method plus the noisy input and the teacher.

    Notebook: 05_distillation.ipynb
    """
    cx = results["complexity"]
    head = ["method", "λ", "seeds"] + [label for _, label, _ in METRICS] + [
        "gap closed PESQ-WB / SI-SDR", "params (+ extra in training)", "GFLOP/s",
        "train time (min)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    fmt = lambda s, d: f"{s['mean']:.{d}f}"  # noqa: E731
    for name, label, params, gflops in (("noisy", "noisy input", "", ""),
                                        ("teacher", "teacher", f"{cx['teacher_params']:,}",
                                         f"{cx['teacher_gflops']:.2f}")):
        row = results["rows"][name]
        lines.append(f"| {label} | | | " + " | ".join(fmt(row[k], d) for k, _, d in METRICS)
                     + f" | | {params} | {gflops} | |")
    for method, entry in results["methods"].items():
        s = entry["scores"]
        cells = [f"{s[k]['mean']:.{d}f} ± {s[k]['std']:.{d}f}" for k, _, d in METRICS]
        gap = entry["gap_closed"]
        gap_text = ("–" if method == "none" else
                    " / ".join("n/a" if math.isnan(gap[k]) else f"{100 * gap[k]:+.0f} %"
                               for k in ("pesq_wb", "si_sdr")))
        lam = "–" if entry["kd_weight"] is None else f"{entry['kd_weight']:g}"
        if entry.get("tuned_with", method) != method:
            lam += f" ({entry['tuned_with']}'s)"
        extra = cx["extra_params"].get(method, 0)
        params = f"{cx['student_params']:,}" + (f" (+{extra:,})" if extra else "")
        minutes = entry["train_seconds"]["mean"] / 60
        lines.append(f"| `{method}` | {lam} | {s['pesq_wb']['n']} | " + " | ".join(cells)
                     + f" | {gap_text} | {params} | {cx['student_gflops']:.2f} | {minutes:.1f} |")
    jobs = results.get("config", {}).get("jobs")
    side_by_side = f", {jobs} runs side by side" if jobs and jobs > 1 else ""
    lines += ["", "Train time: wall-clock minutes per run (epochs × the run's median epoch, "
              f"validation included; mean over seeds){side_by_side} on the machine that ran them, "
              "so it also carries that machine's load; the controlled cost of one step per "
              "method is `bench/bench_distill.py`'s."]
    if results.get("paired"):
        lines += ["", paired_markdown(results["paired"])]
    calibration = calibration_markdown(results)
    if calibration:
        lines += ["", calibration]
    return "\n".join(lines)


def calibration_markdown(results: dict) -> str:
    """How decisive each calibrated method's learnt weights ended up, and whether they favour
    the closest teacher layers (Markdown), or ``""`` when no method learnt calibration weights.

    Notebook: 05_distillation.ipynb
    """
    from .distill import STREAMS
    from .distill.plots import STAGE_ORDER

    spreads = {m: e["calibration_spread"] for m, e in results["methods"].items()
               if e.get("calibration_spread")}
    if not spreads:
        return ""
    # network order; only the stages and streams some method has
    columns = [(stage, stream) for stage in STAGE_ORDER for stream in STREAMS
               if any(stream in s.get(stage, {}) for s in spreads.values())]
    names = {"time": "time", "freq": "\"freq\""}
    head = (["method"] + [f"{stage} {names.get(stream, stream)}" for stage, stream in columns]
            + ["weighs most its closest layer"])
    lines = ["The learnt calibration weights after training: log(largest / smallest weight) of "
             "each row of the mean weights that `train` recorded on its fixed batch after the "
             "last epoch, averaged over rows and seeds. 0 is uniform; with the SemCKD "
             "normalisation no row can pass 2 (`distill.calibration.weight_ceiling`), so 2 "
             "means a fixed assignment of student to teacher layers, as decisive as the block "
             "allows. `tfckd-released` normalises over frames instead and has no such ceiling "
             "per frame; averaged over frames its weights can look less decisive than they are "
             "frame by frame. The last column: in how many rows (student layer x stream, all "
             "sets, summed over the seeds whose distiller is kept) the teacher layer weighed "
             "most is the one the student layer's relations are closest to, on a fixed "
             "validation batch (`experiment.run_calibration_agreement`; notebook 04 explains "
             "why a block trained on the loss it weighs goes there).", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for method, spread in spreads.items():
        cells = [f"{spread[stage][stream]:.2f}" if stream in spread.get(stage, {}) else "–"
                 for stage, stream in columns]
        agreement = results["methods"][method].get("calibration_agreement")
        cells.append(f"{agreement['agree']} of {agreement['rows']}" if agreement else "–")
        lines.append(f"| `{method}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def paired_verdicts(paired: dict) -> dict[str, dict[str, list[str]]]:
    """Sort the methods of a :func:`paired_comparison` per metric by what its clips support:
    ``{metric: {"higher": [...], "lower": [...], "undecided": [...]}}``, where the reference
    scores higher than the methods whose interval lies above 0, lower than those whose interval
    lies below 0, and the rest are differences the test clips cannot tell from luck.

    Notebook: 05_distillation.ipynb
    """
    verdicts: dict[str, dict[str, list[str]]] = {}
    for method, entry in paired["methods"].items():
        for metric, e in entry.items():
            side = "higher" if e["low"] > 0 else "lower" if e["high"] < 0 else "undecided"
            verdicts.setdefault(metric, {"higher": [], "lower": [], "undecided": []})[side].append(
                method)
    return verdicts


def paired_markdown(paired: dict) -> str:
    """The clip-by-clip comparison of :func:`paired_comparison` as a Markdown table.

    Notebook: 05_distillation.ipynb
    """
    ref, share = paired["reference"], f"{100 * paired['confidence']:g} %"
    metrics = list(next(iter(paired["methods"].values())))
    labels = dict((key, label) for key, label, _ in METRICS)
    digits = dict((key, d) for key, _, d in METRICS)
    head = [f"`{ref}` − method"]
    for key in metrics:
        head += [f"Δ {labels[key]}", f"{share} interval", f"clips where `{ref}` is higher"]
    lines = [f"`{ref}` against each method, clip by clip on the test split: per clip each "
             f"method's score is averaged over its seeds, and the mean difference is shown with "
             f"its {share} bootstrap interval over clips ({paired['resamples']:,} resamples). "
             "The interval says how much another draw of test clips could move that mean; the "
             "spread between seeds is the ± above. An interval that excludes 0 is a difference "
             "these clips support.", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for method, entry in paired["methods"].items():
        cells = []
        for key in metrics:
            e, d = entry[key], digits[key] + 1
            cells += [f"{e['mean']:+.{d}f}", f"[{e['low']:+.{d}f}, {e['high']:+.{d}f}]",
                      f"{100 * e['better']:.0f} % of {e['n']}"]
        lines.append(f"| `{method}` | " + " | ".join(cells) + " |")
    baseline = paired["methods"].get("none", {})
    by = {key: baseline[key]["by"] for key in metrics if "by" in baseline.get(key, {})}
    if by:
        head = ["test noise", "clips"]
        for key in by:
            head += [f"Δ {labels[key]}", f"{share} interval"]
        lines += ["", f"The same comparison of `{ref}` with `none` (the student alone) per noise "
                  "type of the test clips: where distillation changes the student.", "",
                  "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for group in next(iter(by.values())):
            cells = [group, str(next(iter(by.values()))[group]["n"])]
            for key, groups in by.items():
                e, d = groups[group], digits[key] + 1
                cells += [f"{e['mean']:+.{d}f}", f"[{e['low']:+.{d}f}, {e['high']:+.{d}f}]"]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_results(results: dict, axes=None):
    """Mean ± std per method for each metric, with the noisy input and teacher as lines.

    Notebook: 05_distillation.ipynb

    ``axes``: four axes, or ``None`` for a new 1 x 4 figure. Returns ``(fig, axes)``.
    """
    import matplotlib.pyplot as plt

    if axes is None:
        fig, axes = plt.subplots(1, len(METRICS), figsize=(4 * len(METRICS), 3.6),
                                 layout="constrained")
    fig = axes[0].figure
    names = list(results["methods"])
    x = np.arange(len(names))
    for ax, (key, label, _) in zip(axes, METRICS):
        means = [results["methods"][m]["scores"][key]["mean"] for m in names]
        stds = [results["methods"][m]["scores"][key]["std"] for m in names]
        colours = ["0.6" if m == "none" else ("C3" if m == "tfckd" else "C0") for m in names]
        ax.bar(x, means, yerr=stds, color=colours, capsize=3)
        for row, style in (("noisy", ":"), ("teacher", "--")):
            ax.axhline(results["rows"][row][key]["mean"], color="k", ls=style, lw=1, label=row)
        low = min(min(means) - max(stds, default=0), results["rows"]["noisy"][key]["mean"])
        high = max(max(means) + max(stds, default=0), results["rows"]["teacher"][key]["mean"])
        pad = 0.08 * (high - low or 1.0)
        ax.set_ylim(low - pad, high + pad)
        ax.set_xticks(x, names, rotation=60, ha="right", fontsize=8)
        ax.set_title(label)
    # one legend beside the panels: inside any panel it would cover bars
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside right upper", fontsize=8)
    return fig, axes


def plot_paired(paired: dict, axes=None):
    """The clip-by-clip comparison of :func:`paired_comparison`: one panel per metric, the mean
    difference ``reference − method`` per method with its bootstrap interval, and a line at 0.

    Notebook: 05_distillation.ipynb

    Green: the interval lies above 0 (the reference scores higher on these clips); red: below
    0; grey: it includes 0. ``axes``: one axis per metric, or ``None`` for a new figure.
    Returns ``(fig, axes)``.
    """
    import matplotlib.pyplot as plt

    methods = list(paired["methods"])
    metrics = list(paired["methods"][methods[0]])
    if axes is None:
        fig, axes = plt.subplots(1, len(metrics), figsize=(4.5 * len(metrics),
                                                           0.45 * len(methods) + 1.4),
                                 layout="constrained", squeeze=False)
        axes = axes[0]
    fig = axes[0].figure
    labels = dict((key, label) for key, label, _ in METRICS)
    y = np.arange(len(methods))[::-1]
    for ax, key in zip(axes, metrics):
        entries = [paired["methods"][m][key] for m in methods]
        means = np.array([e["mean"] for e in entries])
        errors = np.array([[e["mean"] - e["low"] for e in entries],
                           [e["high"] - e["mean"] for e in entries]])
        colours = ["C2" if e["low"] > 0 else ("C3" if e["high"] < 0 else "0.5") for e in entries]
        for yi, mean, low, high, colour in zip(y, means, errors[0], errors[1], colours):
            ax.errorbar(mean, yi, xerr=[[low], [high]], fmt="o", color=colour, capsize=3)
        ax.axvline(0.0, color="k", lw=1)
        ax.set_yticks(y, methods, fontsize=8)
        ax.set_xlabel(f"Δ {labels[key]}, {paired['reference']} − method")
    axes[0].set_title(f"{paired['reference']} against each method "
                      f"({100 * paired['confidence']:g} % intervals over test clips)",
                      fontsize=9, loc="left")
    return fig, axes


def write_report(results: dict, folder: str | Path, stem: str = "results") -> dict[str, Path]:
    """Write ``<stem>.json``, ``<stem>.md`` and ``<stem>.png`` atomically into ``folder``.

    The figure is :func:`plot_results`, with :func:`plot_paired` below it when the results
    hold the clip-by-clip comparison."""
    import io

    import matplotlib.pyplot as plt

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {suffix: folder / f"{stem}.{suffix}" for suffix in ("json", "md", "png")}
    atomic_write_bytes(paths["json"], (json.dumps(results, indent=1) + "\n").encode())
    atomic_write_bytes(paths["md"], (results_markdown(results) + "\n").encode())
    paired = results.get("paired")
    if paired:
        rows = len(paired["methods"])
        fig = plt.figure(figsize=(4 * len(METRICS), 3.6 + 0.35 * rows + 1.6), layout="constrained")
        top, bottom = fig.subfigures(2, 1, height_ratios=[3.6, 0.35 * rows + 1.6])
        plot_results(results, axes=top.subplots(1, len(METRICS)))
        plot_paired(paired, axes=bottom.subplots(1, len(next(iter(paired["methods"].values())))))
    else:
        fig, _ = plot_results(results)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(paths["png"], buffer.getvalue())
    return paths


class ExperimentMismatchError(RuntimeError):
    """An experiment folder was started with another teacher, other data or another budget."""


#: settings that may change between sessions of one experiment (they do not change results)
_FREE_SETTINGS = ("jobs", "device")


def _teacher_file(cfg: ExperimentConfig) -> Path:
    """The teacher's model file, resolved as ``train --teacher`` resolves it."""
    from . import pretrained

    return pretrained.resolve(cfg.teacher)


def check_experiment_folder(cfg: ExperimentConfig) -> dict:
    """Record (first start) or check (resume) the teacher, data and budget of ``cfg.out``.

    Notebook: 05_distillation.ipynb

    ``<out>/experiment.json`` holds the configuration, the λ grid each tuned method starts from
    (:func:`kd_grid`) and the sha256 of the teacher file and of the data's manifest (which
    lists every file's sha256). A full experiment takes many hours on a CPU, so it is resumed
    across sessions and machines, with the data rebuilt on each;
    resuming with a retrained teacher, a differently built set or another budget would silently
    mix runs that are not comparable (finished runs are not retrained), so it raises
    :class:`ExperimentMismatchError` naming what differs. ``jobs`` and ``device`` may change,
    and methods may be added (the record is updated); none may be removed.
    """
    import hashlib

    from .train import manifest_sha256

    digest = hashlib.sha256(_teacher_file(cfg).read_bytes()).hexdigest()
    data_digest = manifest_sha256(cfg.data)
    # the grids each tuned method starts from (TUNING_GRIDS lives in the code, not the config)
    grids = {m: list(kd_grid(m, cfg)) for m in cfg.methods
             if m != "none" and lambda_source(m, cfg) == m}
    settings = {k: v for k, v in asdict(cfg).items() if k not in _FREE_SETTINGS}
    settings = json.loads(json.dumps(settings))        # tuples -> lists, as stored
    record = Path(cfg.out) / "experiment.json"
    if record.is_file():
        stored = json.loads(record.read_text())
        if stored["teacher_sha256"] != digest:
            raise ExperimentMismatchError(
                f"{cfg.out} was started with another version of the teacher {cfg.teacher!r} "
                f"(sha256 {stored['teacher_sha256'][:12]}..., now {digest[:12]}...); its runs "
                "cannot be mixed with new ones: use a new --out")
        if stored.get("data_manifest_sha256") != data_digest:
            raise ExperimentMismatchError(
                f"{cfg.out} was started on other data than {cfg.data} (manifest sha256 "
                f"{str(stored.get('data_manifest_sha256'))[:12]}..., now {str(data_digest)[:12]}"
                "...); rebuild the set with the same builder and profile, or use a new --out")
        # a setting added to ExperimentConfig after the folder was started is absent from it:
        # it compares as its default (e.g. grid_extensions, added while phase 1 of the first
        # full experiment was running; no λ had been chosen yet)
        defaults = json.loads(json.dumps({f.name: f.default for f in fields(ExperimentConfig)
                                          if f.default is not MISSING}))
        saved = {**defaults, **stored["config"]}
        changed = {k: (saved.get(k), v) for k, v in settings.items() if saved.get(k) != v}
        # methods may be added (e.g. an ablation added to the registry while the experiment
        # ran): each run is independent, so the finished ones stay comparable
        added = "methods" in changed and set(saved["methods"]) <= set(settings["methods"])
        if added:
            del changed["methods"]
        # recorded since the first committed experiment (absent from a record: record it now)
        known = stored.get("tuning_grids", grids)
        changed.update({f"λ grid of {m}": (known[m], g) for m, g in grids.items()
                        if m in known and known[m] != g})
        if changed:
            detail = ", ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in changed.items())
            raise ExperimentMismatchError(f"{cfg.out} was started with other settings ({detail}); "
                                          "use the same settings or a new --out")
        if added or any(m not in known for m in grids) or "tuning_grids" not in stored:
            stored = {**stored, "config": {**stored["config"], "methods": settings["methods"]},
                      "tuning_grids": {**known, **grids}}
            atomic_write_bytes(record, (json.dumps(stored, indent=1) + "\n").encode())
        return stored
    record.parent.mkdir(parents=True, exist_ok=True)
    stored = {"config": settings, "teacher_sha256": digest, "data_manifest_sha256": data_digest,
              "tuning_grids": grids, "library_version": __version__}
    atomic_write_bytes(record, (json.dumps(stored, indent=1) + "\n").encode())
    return stored


def status(cfg: ExperimentConfig) -> dict:
    """How far an experiment folder has got, and a rough estimate of the time left.

    Notebook: 05_distillation.ipynb

    Returns ``{"runs": [...], "done", "total", "seconds_left", "untimed", "jobs"}``. Each run
    has its ``method``, ``kd_weight`` (``None`` for the final seeds of a KD method before λ is
    chosen), ``seed``, ``epochs_done`` and ``valid_pesq_wb``, the best validation PESQ-WB so far
    (what tunes λ; ``None`` before the first epoch). The total counts the tuning runs and the
    final seeds still to come; the estimate sums over them the epochs left times
    :func:`epoch_seconds` (the method's median measured epoch time, or that of the method it
    ablates; for a method with no epoch measured yet, listed in ``untimed``, the fastest
    measured method's times :data:`UNTIMED_FACTOR`, which errs high).
    ``seconds_left`` is run time summed over runs, ``None`` only while no epoch at all has been
    measured; with ``jobs`` runs side by side (whose epoch times were measured that way) the
    wall clock left is roughly ``seconds_left / jobs``, which :func:`format_status` prints too.
    A λ-grid extension (:func:`tuned_grid`) is planned only once the runs that call for it
    have finished.
    """
    runs = tuning_runs(cfg)
    # a method's λ is known as soon as its own tuning is over, as in the scheduler
    chosen = {m: settled_kd_weight(m, cfg) for m in cfg.methods}
    planned = runs + [r for r in final_runs(cfg, chosen) if r not in runs and
                      (r.method == "none" or r.kd_weight is not None or r.seed != cfg.seeds[0]
                       or lambda_source(r.method, cfg) != r.method)]
    times = epoch_times(cfg)
    rows, left, untimed = [], 0.0, []
    for run in planned:
        history_file = run.folder(cfg) / "history.json"
        known = run.kd_weight is not None or run.method == "none"
        history = (json.loads(history_file.read_text())
                   if known and history_file.is_file() else [])
        done = min(len(history), cfg.epochs)
        rows.append({"method": run.method, "kd_weight": run.kd_weight if known else None,
                     "seed": run.seed, "epochs_done": done,
                     "valid_pesq_wb": validation_score(run, cfg) if history else None})
        if done < cfg.epochs:
            if not _own_times(run.method, times) and run.method not in untimed:
                untimed.append(run.method)
            per_epoch = epoch_seconds(run.method, times)
            left += (cfg.epochs - done) * (math.nan if per_epoch is None else per_epoch)
    measured = any(times.values())
    return {"runs": rows, "done": sum(r["epochs_done"] == cfg.epochs for r in rows),
            "total": len(rows), "seconds_left": left if measured else None,
            "untimed": untimed, "jobs": cfg.jobs}


def finished_files(cfg: ExperimentConfig) -> list[Path]:
    """What may be committed of ``cfg.out`` as it is: ``experiment.json``, the teacher's cached
    test scores (``teacher.test.json``) and the folder of every run that has trained all its
    epochs (the folder's ``.gitignore`` leaves out their resume state, logs and locks). A run in
    progress is not listed: its files are only of use with its resume state, which
    :func:`in_progress_files` lists. The report (``results.*``) is not listed: ``--ship`` copies
    it into the package, and a fresh clone rewrites it from the cached scores in seconds."""
    out = Path(cfg.out)
    listed = [out / name for name in ("experiment.json", "teacher.test.json")
              if (out / name).is_file()]
    for history in sorted(out.glob("runs/*/**/history.json")):
        if _trained_all_epochs(history.parent, cfg.epochs):
            listed.append(history.parent)
    return listed


def in_progress_files(cfg: ExperimentConfig) -> list[Path]:
    """The files a fresh clone needs to continue each run in progress of ``cfg.out``: its resume
    state (``last.state.safetensors``, ignored by the folder's ``.gitignore``, so it is added with
    ``git add -f``) and the outputs of its epochs so far (best weights and their description,
    ``history.json``, and the distiller extras where the ``.gitignore`` keeps them). A finished
    run (:func:`finished_files`) or a folder without a state is not listed."""
    from .train import BEST_DESCRIPTION_FILE, BEST_EXTRAS_FILE, BEST_FILE, STATE_FILE

    listed: list[Path] = []
    for state in sorted(Path(cfg.out).glob(f"runs/*/**/{STATE_FILE}")):
        folder = state.parent
        if _trained_all_epochs(folder, cfg.epochs):
            continue
        method = folder.relative_to(Path(cfg.out, "runs")).parts[0]
        outputs = [BEST_FILE, BEST_DESCRIPTION_FILE, "history.json"]
        if method in SHIPPED_EXTRAS:
            outputs.append(BEST_EXTRAS_FILE)
        listed += [state] + [folder / name for name in outputs if (folder / name).is_file()]
    return listed


def stage(cfg: ExperimentConfig, in_progress: bool = True) -> dict[str, list[str]]:
    """``git add`` what another machine needs to resume ``cfg.out`` (``make reproduce-stage``).

    Run from inside the git checkout that holds ``cfg.out``. Stages ``experiment.json`` and every
    finished run (:func:`finished_files`), stops tracking the resume state of runs that have
    finished since it was committed (``git rm --cached``: the run no longer needs it, and a TFCKD
    state is about 7 MB), and force-adds the resume files of the runs in progress
    (:func:`in_progress_files`), so that a fresh clone continues them from their last
    checkpoint. ``in_progress=False`` leaves the runs in progress out (``make reproduce-stage
    STAGE=finished``): for a commit in the middle of a session, whose resume states would only
    be superseded by the next. Returns ``{"added": [...], "untracked": [...],
    "in_progress": [...]}``.

    Why commit resume states at all: without them a run cut off by the end of a lent session
    starts over on the next machine, so ``--hours`` must leave a slot idle rather than start a
    run that will not fit (see the module docstring: a third to a half of a 2-core session
    once only TFCKD runs remain). Only the runs in progress at a commit carry a state, and it
    leaves the index as soon as its run has finished.
    """
    from .train import STATE_FILE

    def git(*args: str) -> str:
        try:
            done = subprocess.run(["git", *args], capture_output=True, text=True, check=True)
        except FileNotFoundError:
            raise RuntimeError("stage needs git on the PATH") from None
        except subprocess.CalledProcessError as error:
            raise RuntimeError(f"git {' '.join(args[:2])} failed: {error.stderr.strip()}") from None
        return done.stdout

    out = Path(cfg.out)
    git("rev-parse", "--show-toplevel")          # a clear error outside a checkout
    added = [str(path) for path in finished_files(cfg)]
    if added:
        git("add", "--", *added)
    # (git prints paths relative to the working directory: compare resolved paths)
    tracked_states = git("ls-files", "--", str(out / "runs" / f"*{STATE_FILE}")).splitlines()
    resuming = [str(path) for path in in_progress_files(cfg)]
    kept = {Path(path).resolve() for path in resuming}      # states that stay tracked
    retired = [path for path in tracked_states if Path(path).resolve() not in kept]
    if retired:
        git("rm", "-q", "--cached", "--ignore-unmatch", "--", *retired)
    staged = resuming if in_progress else []
    if staged:
        git("add", "-f", "--", *staged)
    return {"added": added, "untracked": retired, "in_progress": staged}


def format_status(report: dict, epochs: int) -> str:
    """:func:`status` as text: one line per run and a summary line."""
    lines = [f"{'method':<18} {'λ':>6} {'seed':>4}  epochs  best valid PESQ-WB"]
    for r in report["runs"]:
        lam = "–" if r["method"] == "none" else ("?" if r["kd_weight"] is None
                                                 else f"{r['kd_weight']:g}")
        score = "" if r.get("valid_pesq_wb") is None else f"{r['valid_pesq_wb']:.3f}"
        lines.append(f"{r['method']:<18} {lam:>6} {r['seed']:>4}  "
                     f"{r['epochs_done']:>2}/{epochs:<3}  {score:>18}".rstrip())
    left = report["seconds_left"]
    eta = "unknown until a run has trained an epoch" if left is None else \
        f"about {left / 3600:.1f} h of training left at the measured epoch times"
    jobs = report.get("jobs", 1)
    if left and jobs > 1:
        eta += f" (roughly {left / jobs / 3600:.1f} h of wall clock with {jobs} runs side by side)"
    lines.append(f"{report['done']} of {report['total']} runs finished; {eta}")
    if left is not None and report.get("untimed"):
        lines.append(f"not yet timed, counted at {UNTIMED_FACTOR:g} x the fastest measured "
                     "method's epoch time: " + ", ".join(report["untimed"]))
    return "\n".join(lines)


def reproduce(cfg: ExperimentConfig, progress: bool = True, hours: float | None = None,
              stop_after: float | None = None) -> dict | None:
    """Run (or resume) the whole experiment and write its report; returns the results.

    Notebook: 05_distillation.ipynb

    The folder's teacher, data and budget are checked first (:func:`check_experiment_folder`).
    Two ways to give it a wall-clock budget (:func:`train_runs`), after which it returns
    ``None`` if runs remain (call again to resume):

    * ``hours``: runs are started only while they are estimated to finish within that many
      hours, and the call waits for them (nothing is cut, but a slot may idle at the end);
    * ``stop_after``: runs start whatever their estimate and are stopped after that many hours,
      each keeping its last checkpoint; :func:`stage` commits it with the run's files so that a
      fresh clone continues the run (no slot idles, at the price of a resume state in git).
    """
    for name, value in (("hours", hours), ("stop_after", stop_after)):
        if value is not None and not value > 0:
            raise ValueError(f"{name} must be positive, got {value}")
    if hours is not None and stop_after is not None:
        raise ValueError("give hours (start only runs that fit) or stop_after (stop the runs "
                         "then), not both")
    deadline = None if hours is None else time.time() + hours * 3600
    stop_at = None if stop_after is None else time.time() + stop_after * 3600
    check_experiment_folder(cfg)
    # the plan grows as runs finish (λ-grid steps, then each method's other seeds)
    if not train_runs(lambda: planned_runs(cfg), cfg, progress, deadline, stop_at):
        return None
    chosen = choose_kd_weights(cfg)
    if not train_runs(final_runs(cfg, {m: c["kd_weight"] for m, c in chosen.items()}), cfg,
                      progress, deadline, stop_at):
        return None
    results = collect_results(cfg, chosen, progress)
    results["report"] = {k: str(v) for k, v in write_report(results, cfg.out).items()}
    return results


def ship(results: dict, progress: bool = True) -> dict[str, Path]:
    """Export the best seed of each KD method and the report into the package.

    Notebook: 05_distillation.ipynb

    ``lite-student-<method>`` (best seed by validation PESQ-WB; with its distiller extras for
    the methods of :data:`SHIPPED_EXTRAS`) for every method but ``none``, and
    ``pretrained/results/distillation.{json,md,png}``.
    """
    from . import pretrained

    cfg = ExperimentConfig(**results["config"])
    shipped = {}
    for method, entry in results["methods"].items():
        if method == "none":
            continue
        run = Run(method, entry["kd_weight"], entry["best_seed"])
        folder = run.folder(cfg)
        cached = json.loads((folder / "test.json").read_text())
        shipped[method] = pretrained.export(
            folder, f"{cfg.student}-{method}", cfg.data, report=cached, progress=progress,
            command=results["command"] + " --ship", extras=method in SHIPPED_EXTRAS)
    write_report(results, RESULTS_DIR, stem=SHIPPED_NAME)
    return shipped


def shipped_results() -> dict | None:
    """The experiment results shipped with the package, or ``None`` when none are shipped.

    Notebook: 05_distillation.ipynb
    """
    file = RESULTS_DIR / f"{SHIPPED_NAME}.json"
    return json.loads(file.read_text()) if file.is_file() else None


# ------------------------------------------------------------------------------------ CLI

def register(subparsers) -> None:
    """``reproduce`` subcommand of ``python -m tfckd_lite``."""
    defaults = ExperimentConfig(data="", out="")
    p = subparsers.add_parser(
        "reproduce", help="train every distillation method x seeds under one budget and write "
                          "the results table and figure (Notebook 05)")
    p.add_argument("--data", required=True, help="reduced set root (e.g. data/generated/small)")
    p.add_argument("--out", required=True, help="experiment folder (resumed if it exists)")
    p.add_argument("--teacher", default=defaults.teacher)
    p.add_argument("--student", default=defaults.student)
    p.add_argument("--methods", nargs="+", default=None, help="default: every method")
    p.add_argument("--seeds", nargs="+", type=int, default=list(defaults.seeds))
    p.add_argument("--kd-weights", nargs="+", type=float, default=None,
                   help="one λ grid, tuned on the validation split, for every method "
                        "(default: each method's grid of experiment.TUNING_GRIDS)")
    p.add_argument("--grid-extensions", type=int, default=defaults.grid_extensions,
                   help="factor-10 steps the λ grid may be extended past an end where the best "
                        "λ lies (0: the fixed grid)")
    for name in ("epochs", "batch_size", "warmup_steps", "checkpoint_every", "jobs"):
        p.add_argument("--" + name.replace("_", "-"), type=int, default=getattr(defaults, name))
    for name in ("steps_per_epoch", "valid_clips", "test_clips"):
        p.add_argument("--" + name.replace("_", "-"), type=int, default=getattr(defaults, name))
    p.add_argument("--segment-seconds", type=float, default=defaults.segment_seconds)
    p.add_argument("--lr", type=float, default=defaults.lr)
    p.add_argument("--remix-snr", type=float, nargs=2, default=None, metavar=("LOW", "HIGH"),
                   help="remix every training crop on the fly at an SNR in [LOW, HIGH] dB "
                        "(default: the pairs as built)")
    p.add_argument("--device", default=defaults.device)
    p.add_argument("--ship", action="store_true",
                   help="export the best seeds and the report into tfckd_lite/pretrained")
    p.add_argument("--status", action="store_true",
                   help="print how far the experiment folder has got and exit")
    p.add_argument("--finished", action="store_true",
                   help="list experiment.json and the folders of the finished runs and exit")
    p.add_argument("--stage", nargs="?", const="all", choices=("all", "finished"),
                   default=None,
                   help="git add experiment.json, the finished runs and (unless 'finished' is "
                        "given) the resume files of the runs in progress, so that a fresh clone "
                        "continues them; then exit")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--hours", type=float, default=None,
                        help="wall-clock budget: start a run only if it is estimated to finish "
                             "within this many hours; stop (resumable) when none fits")
    budget.add_argument("--stop-after", type=float, default=None, metavar="HOURS",
                        help="wall-clock budget: train for this many hours, then stop the runs "
                             "in progress (each keeps its last checkpoint; --stage commits it)")
    p.set_defaults(func=_reproduce_command)


def _reproduce_command(args) -> int:
    cfg = ExperimentConfig(
        data=args.data, out=args.out, teacher=args.teacher, student=args.student,
        methods=tuple(args.methods or ()), seeds=tuple(args.seeds),
        kd_weights=None if args.kd_weights is None else tuple(args.kd_weights),
        grid_extensions=args.grid_extensions,
        epochs=args.epochs,
        steps_per_epoch=args.steps_per_epoch, batch_size=args.batch_size,
        segment_seconds=args.segment_seconds, lr=args.lr, warmup_steps=args.warmup_steps,
        valid_clips=args.valid_clips, test_clips=args.test_clips,
        checkpoint_every=args.checkpoint_every, jobs=args.jobs, device=args.device,
        remix_snr=args.remix_snr)
    if args.status:
        print(format_status(status(cfg), cfg.epochs))
        return 0
    if args.finished:
        print("\n".join(str(path) for path in finished_files(cfg)))
        return 0
    if args.stage:
        staged = stage(cfg, in_progress=args.stage == "all")
        runs = sum(1 for path in staged["added"] if Path(path).name != "experiment.json")
        print(f"staged experiment.json and {runs} finished run(s); "
              f"{len(staged['in_progress'])} resume file(s) of runs in progress; "
              f"{len(staged['untracked'])} resume state(s) of finished runs no longer tracked")
        return 0
    results = reproduce(cfg, hours=args.hours, stop_after=args.stop_after)
    if results is None:
        print(format_status(status(cfg), cfg.epochs))
        why = (f"no run left is estimated to finish within --hours {args.hours:g}"
               if args.hours is not None else
               f"--stop-after {args.stop_after:g} h is over; the runs in progress keep their "
               "last checkpoint (make reproduce-stage commits it)")
        print(f"stopped: {why}; run the same command again to resume")
        return 0
    print(results_markdown(results))
    print("report:", ", ".join(results["report"].values()))
    if args.ship:
        for method, path in ship(results).items():
            print(f"shipped {method}: {path}")
    return 0
