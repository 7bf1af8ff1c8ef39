"""Running the plan: training runs side by side, resuming, stopping at a deadline.

Notebook: 05_distillation.ipynb

:func:`train_runs` trains runs in this process (``jobs == 1``, through
:func:`~tfckd_lite.train.run_training`) or as ``python -m tfckd_lite train`` subprocesses, asks
the plan again whenever a run finishes, and honours the two wall-clock budgets (``hours``: start
only runs that fit; ``stop_after``: stop the runs in progress at their last checkpoint).
:func:`reproduce` runs the whole experiment and writes its report.

Where the runs train (none of it changes the experiment folder, so a resume may change it):
``devices`` (``--devices cpu,cpu`` or ``cuda:0,cuda:1``; ``cuda:0,cuda:0`` = two runs at a
time on GPU 0) lists the slots, each training one run at a time as a subprocess with
``--device <its device>``; it replaces ``jobs`` (which must then be 1 or the slot count).
``nproc_per_run`` N makes each run a distributed run of N ranks (``python -m
torch.distributed.run --standalone --nproc_per_node N -m tfckd_lite train ...``; the
standalone rendezvous binds port 0, so launches side by side never collide): ``devices`` is
then cut into groups of N, one device per rank (a GPU group becomes the run's
``CUDA_VISIBLE_DEVICES`` with ``--device cuda``, each rank on its ``LOCAL_RANK``), and each
rank accumulates ``grad_accum / N`` micro-batches, so that the optimizer step (``batch_size
· grad_accum`` crops) is the budget's (:mod:`tfckd_lite.distributed`: W ranks of K
micro-batches step like one process of W·K); a ``grad_accum`` N does not divide is refused.
The runs' numbers then equal a single process's up to float summation order, and their
``history.json`` records ``grad_accum / N``; a run in progress resumes only with the
number of ranks it started with (``train`` refuses another). Every process gets
``OMP_NUM_THREADS = cores // processes``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

from dataclasses import replace

from ..devices import DeviceError, resolve_device
from ..train import run_training
from .config import ExperimentConfig, Run
from .folder import check_experiment_folder
from .plan import choose_kd_weights, epoch_times, final_runs, planned_runs, run_seconds
from .report import write_report
from .results import collect_results


def slot_commands(cfg: ExperimentConfig) -> list[tuple[list[str], dict[str, str]]]:
    """Per slot of ``cfg.slots()``: the command that trains a run there, up to the ``train``
    arguments (:func:`run_command`), and its environment changes; every device is checked
    first (:class:`~tfckd_lite.devices.DeviceError` when unusable).

    Notebook: 05_distillation.ipynb
    """
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone",
              "--nproc_per_node", str(cfg.nproc_per_run), "-m", "tfckd_lite"]
    if not cfg.devices:            # `jobs` slots on the budget's --device, checked by `train`
        resolve_device(cfg.train.device)
        plain = cfg.nproc_per_run == 1
        return [([sys.executable, "-m", "tfckd_lite"] if plain else launch, {})] * cfg.jobs
    commands = []
    for group in cfg.slots():
        devices = [resolve_device(name) for name in group]
        if len(group) == 1:
            commands.append(([sys.executable, "-m", "tfckd_lite"], {}))
            continue
        if len({d.type for d in devices}) > 1:
            raise DeviceError(f"the ranks of one run mix CPU and GPU: {','.join(group)}")
        if devices[0].type == "cpu":
            commands.append((launch, {}))
            continue
        indices = [d.index for d in devices]
        if len(set(indices)) < len(indices):
            raise DeviceError(f"the ranks of one run need distinct GPUs, got {','.join(group)}")
        # indices are PyTorch's, i.e. counted within this process's CUDA_VISIBLE_DEVICES
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        ids = [visible.split(",")[i] if visible else str(i) for i in indices]
        commands.append((launch, {"CUDA_VISIBLE_DEVICES": ",".join(ids)}))
    return commands


def run_command(run: Run, cfg: ExperimentConfig, slot: int) -> tuple[list[str], dict]:
    """The command line and environment changes that train ``run`` in slot ``slot``.

    Notebook: 05_distillation.ipynb
    """
    prefix, env = slot_commands(cfg)[slot]
    group = cfg.slots()[slot]
    if not cfg.devices:
        device = None                           # the budget's own --device
    elif len(group) == 1:
        device = group[0]
    else:                                       # each rank takes cuda:LOCAL_RANK / the CPU
        device = "cpu" if resolve_device(group[0]).type == "cpu" else "cuda"
    return [*prefix, *run.argv(cfg, device)], env


def train_runs(runs, cfg: ExperimentConfig, progress: bool = True,
               deadline: float | None = None, stop_at: float | None = None) -> bool:
    """Train the unfinished ``runs`` (one per slot of ``cfg.slots()`` at a time: ``cfg.jobs``,
    or ``cfg.devices``, see the module's docstring); a failing run raises. Returns
    ``True`` when every run has finished, ``False`` when ``deadline`` or ``stop_at`` stopped it
    first.

    ``runs``: a list, or a function returning one (e.g. ``lambda: planned_runs(cfg)``), asked
    again whenever a run finishes, so that runs a finished one makes possible (a λ-grid step,
    the seeds of a method whose λ is settled) start at once instead of a slot waiting idle for
    the slowest run of a stage. In this process when there is one slot of one rank (through
    :func:`~tfckd_lite.train.run_training` with the run's config), else as ``python -m
    tfckd_lite train`` subprocesses (:func:`run_command`) with ``OMP_NUM_THREADS = cores //
    processes`` whose output goes to ``train.log`` in each run folder; those processes are
    stopped with it (an exception, Ctrl-C, or SIGTERM to this process), and each resumes from
    its last checkpoint at the next call.

    ``deadline`` (a ``time.time()`` instant): a run is started only if its estimated time
    (:func:`run_seconds`; a run nothing has been timed for yet always starts) fits before it,
    the first such run in plan order, so short runs fill the end of the budget. The call
    returns once no run is running and none fits.

    ``stop_at`` (a ``time.time()`` instant): runs start whatever their estimate, and at that
    instant the training processes are stopped (SIGTERM) and the call returns; each run keeps
    its last checkpoint (at most ``cfg.train.checkpoint_every`` steps back), which :func:`stage`
    commits so that another machine continues it. Runs then always train in subprocesses,
    even with ``jobs == 1``, so that they can be stopped.

    Notebook: 05_distillation.ipynb
    """
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
                                   f"{cfg.train.epochs} epochs; see {run.folder(cfg)}")
            if run not in started and not run.finished(cfg) and fits(run, times):
                return run
        return None

    def todo() -> int:
        return sum(1 for run in plan() if not run.finished(cfg) and run not in started)

    slots = cfg.slots()
    slot_commands(cfg)                          # checks every device before any run starts
    bar = tqdm(total=todo(), desc="training runs", disable=not progress)
    if len(slots) == 1 and cfg.nproc_per_run == 1 and stop_at is None:
        device = slots[0][0]
        while (run := next_run()) is not None:
            started.append(run)
            bar.set_postfix_str(f"{run.method} λ={run.kd_weight} seed {run.seed}")
            run_training(replace(run.train_config(cfg), device=device),
                         **run.training_arguments(cfg), progress=False)
            ended.append(run)
            bar.update(1)
            bar.total = bar.n + todo()
        bar.close()
        return todo() == 0
    threads = str(max(1, (os.cpu_count() or 1) // sum(len(group) for group in slots)))
    env = dict(os.environ, OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads)
    active = []                     # (run, process, log, slot)
    # `kill <pid>` (SIGTERM) must stop the training processes too, not leave them running
    # unowned (a later call would start a second trainer on the same folder); a job started in
    # the background ignores Ctrl-C's SIGINT, so SIGTERM is how it is stopped
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _exit_on_signal) if in_main else None
    try:
        while True:
            free = [i for i in range(len(slots)) if i not in {item[3] for item in active}]
            while free and (run := next_run()) is not None:
                slot = free.pop(0)
                started.append(run)
                folder = run.run_folder(cfg)
                folder.path.mkdir(parents=True, exist_ok=True)
                log = open(folder.log, "ab")
                argv, changes = run_command(run, cfg, slot)
                proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                        env={**env, **changes})
                active.append((run, proc, log, slot))
            if not active or (stop_at is not None and time.time() >= stop_at):
                break               # (a stop: `finally` ends the runs still training)
            time.sleep(1.0)
            for item in list(active):
                run, proc, log, _ = item
                if proc.poll() is None:
                    continue
                log.close()
                active.remove(item)
                ended.append(run)
                if proc.returncode != 0:
                    raise RuntimeError(f"training run {run} failed (exit {proc.returncode}); "
                                       f"see {run.run_folder(cfg).log}")
                bar.update(1)
                bar.total = bar.n + len(active) + todo()
    finally:
        for _, proc, log, _ in active:
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


def reproduce(cfg: ExperimentConfig, progress: bool = True, hours: float | None = None,
              stop_after: float | None = None, accept_rebuilt_data: bool = False) -> dict | None:
    """Run (or resume) the whole experiment and write its report; returns the results.

    Notebook: 05_distillation.ipynb

    The steps are described in :mod:`tfckd_lite.experiment`. The teacher's and the student's
    microphone channels against the corpus's
    (:meth:`~tfckd_lite.experiment.config.ExperimentConfig.check_microphones`), then the folder's
    teacher, data and budget are checked first (:func:`check_experiment_folder`, which
    ``accept_rebuilt_data`` is passed to).
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
    cfg.check_microphones()             # before the folder is recorded or any run starts
    check_experiment_folder(cfg, accept_rebuilt_data)
    # the plan grows as runs finish (λ-grid steps, then each method's other seeds)
    if not train_runs(lambda: planned_runs(cfg), cfg, progress, deadline, stop_at):
        return None
    check_experiment_folder(cfg)        # records the grids that became known meanwhile
    chosen = choose_kd_weights(cfg)
    if not train_runs(final_runs(cfg, {m: c["kd_weight"] for m, c in chosen.items()}), cfg,
                      progress, deadline, stop_at):
        return None
    results = collect_results(cfg, chosen, progress)
    results["report"] = {k: str(v) for k, v in write_report(results, cfg.out).items()}
    return results
