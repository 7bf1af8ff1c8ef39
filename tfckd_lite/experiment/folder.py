"""The experiment folder: its record, how far it has got, and what is committed of it.

Notebook: 05_distillation.ipynb

``<out>/experiment.json`` records the teacher's and the data manifest's sha256 and the settings
at the first start; a resume with another teacher, data or budget is refused
(:func:`check_experiment_folder`). :func:`status` says how far the folder has got.
``make reproduce`` writes into ``experiments/distillation-small/``, which is part of the
repository: :func:`finished_files` lists what a finished run needs for the table and the
shipping, :func:`in_progress_files` the resume files of the runs in progress, and
:func:`stage` stages them with ``git add``, so that a fresh clone continues where the
committed runs stop.
"""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

from .. import __version__
from ..data import files_sha256, manifest_sha256, plan_sha256, software_versions
from ..files import atomic_write_bytes, sha256_file
from ..run_folder import RunFolder
from .config import SHIPPED_EXTRAS, ExperimentConfig
from .plan import (UNTIMED_FACTOR, _own_times, epoch_seconds, epoch_times, kd_grid, planned_runs,
                   validation_score)

#: the folder's record of its teacher, data and settings, and the teacher's cached test scores
RECORD_FILE = "experiment.json"
TEACHER_SCORES_FILE = "teacher.test.json"
class ExperimentMismatchError(RuntimeError):
    """An experiment folder was started with another teacher, other data or another budget.

    Notebook: 05_distillation.ipynb
    """


#: settings that may change between sessions of one experiment (they do not change results)
_FREE_SETTINGS = ("jobs", "devices", "nproc_per_run", "device", "workers")

#: settings a resume may extend (never shrink): each run is independent, so the finished ones
#: stay comparable with the runs an added method or seed brings
_GROWING_SETTINGS = ("methods", "extra_seeds", "extra_seed_methods")


def _check_data(cfg: ExperimentConfig, stored: dict, accept_rebuilt_data: bool,
                record: Path) -> dict:
    """The data half of :func:`check_experiment_folder`: the record, updated if need be."""
    data_digest, files_digest = manifest_sha256(cfg.data), files_sha256(cfg.data)
    plan_digest = plan_sha256(cfg.data)
    rebuilt = "rebuild the set with the same builder and profile, or use a new --out"
    known_files = stored.get("data_files_sha256")
    same_files = (known_files == files_digest if known_files is not None
                  else stored.get("data_manifest_sha256") == data_digest)
    if same_files:                                      # (rebuilt by newer software, maybe)
        if data_digest is None or (known_files is not None and "data_plan_sha256" in stored):
            return stored                               # a real corpus, or a full record
        return _record_data(stored, cfg, record)        # a record that predates a digest
    known_plan = stored.get("data_plan_sha256")
    if known_plan is not None and known_plan != plan_digest:
        raise ExperimentMismatchError(
            f"{cfg.out} was started on other data than {cfg.data} (another plan of scenes: "
            f"sha256 {known_plan[:12]}..., now "
            f"{plan_digest[:12] + '...' if plan_digest else 'none: no reduced-set manifest'}"
            f"{_software_change(stored, cfg)}); {rebuilt}")
    same_software = stored.get("data_software") == software_versions(cfg.data)
    if known_plan is not None and same_software:
        why = "the same plan and software, other bytes (another machine)"
    elif accept_rebuilt_data:
        why = "--accept-rebuilt-data"
    elif known_files is None:
        raise ExperimentMismatchError(
            f"{cfg.out} was started on other data than {cfg.data} (manifest sha256 "
            f"{str(stored.get('data_manifest_sha256'))[:12]}..., now {str(data_digest)[:12]}"
            f"...; the record predates the files' own digest, so a set rebuilt with the same "
            f"files by newer software cannot be told apart); {rebuilt}, or pass "
            "--accept-rebuilt-data once you have checked that the files are the same")
    else:
        unknown = "" if known_plan is not None else "; the record predates the plan's digest"
        raise ExperimentMismatchError(
            f"{cfg.out} was started on other data than {cfg.data} (its files differ: "
            f"sha256 {str(known_files)[:12]}..., now {str(files_digest)[:12]}..."
            f"{_software_change(stored, cfg)}{unknown}); {rebuilt}, or pass "
            "--accept-rebuilt-data once you have checked that the data is the same")
    rebuild = {"from_manifest_sha256": stored.get("data_manifest_sha256"),
               "to_manifest_sha256": data_digest, "from_files_sha256": known_files,
               "to_files_sha256": files_digest, "accepted": why, "library_version": __version__}
    earlier = stored.get("data_rebuilt") or []
    earlier = [earlier] if isinstance(earlier, dict) else list(earlier)   # one entry, formerly
    return _record_data({**stored, "data_manifest_sha256": data_digest,
                         "data_rebuilt": earlier + [rebuild]}, cfg, record)


def _record_data(stored: dict, cfg: ExperimentConfig, record: Path) -> dict:
    """``stored`` with the data's digests as compared from now on (its files and its plan) and
    the software versions of the set, written to ``record``."""
    updated = {**stored, "data_files_sha256": files_sha256(cfg.data),
               "data_plan_sha256": plan_sha256(cfg.data),
               "data_software": software_versions(cfg.data)}
    atomic_write_bytes(record, (json.dumps(updated, indent=1) + "\n").encode())
    return updated


def _software_change(stored: dict, cfg: ExperimentConfig) -> str:
    """``; built with scipy 1.17.0, now 1.17.1`` when the recorded versions differ."""
    before, now = stored.get("data_software") or {}, software_versions(cfg.data)
    changed = [f"{k} {before.get(k)}, now {now.get(k)}" for k in sorted({*before, *now})
               if before.get(k) != now.get(k)]
    return f"; built with {', '.join(changed)}" if changed else ""


def check_experiment_folder(cfg: ExperimentConfig, accept_rebuilt_data: bool = False) -> dict:
    """Record (first start) or check (resume) the teacher, data and budget of ``cfg.out``.

    Notebook: 05_distillation.ipynb

    ``<out>/experiment.json`` holds the configuration, the λ grid each tuned method starts from
    (:func:`kd_grid`) and the sha256 of the teacher file and of the data's manifest (which
    lists every file's sha256). A full experiment takes many hours on a CPU, so it is resumed
    across sessions and machines, with the data rebuilt on each;
    resuming with a retrained teacher, a differently built set or another budget would silently
    mix runs that are not comparable (finished runs are not retrained), so it raises
    :class:`ExperimentMismatchError` naming what differs. ``jobs``, ``devices``,
    ``nproc_per_run``, ``device`` and ``workers`` may change (a run in progress resumes only
    with the number of ranks it started with: ``train`` refuses another), and methods may be
    added (the record is updated); none may be removed; so may ``extra_seeds`` and
    ``extra_seed_methods`` (more seeds for some methods; none removed). The λ grid each method
    starts from is recorded when it is first known (an ablation's once the method it ablates
    has chosen its λ; a method added later, or one that had no grid before, e.g. the ablations
    of a folder started when they reused ``tfckd``'s λ, gets its grid recorded at its first
    start); a recorded grid that changes is refused like a changed setting.

    The data is compared by its files (:func:`~tfckd_lite.data.files_sha256`), not by the
    manifest's own sha256: the manifest also records the software versions that built the set,
    and a set rebuilt with the same files after, say, a scipy upgrade is the same data. Files
    that differ are accepted without a word in one case only: the record holds the set's plan
    (:func:`~tfckd_lite.data.plan_sha256`: every pair's speaker, noise, SNR, room, RT60 and
    positions), the set here has the same plan, and the same software built it. That is a
    multi-channel set rebuilt on another machine, whose bytes differ for a reason not found (the
    :mod:`tfckd_lite.data.manifest` docstring has what was measured). Another plan is always
    refused. In the remaining cases (a record that predates the files' or the plan's digest,
    or other software) whether the data is the same cannot be told from the record, so the
    resume is refused unless ``accept_rebuilt_data`` (``reproduce --accept-rebuilt-data``),
    which says the user has checked that it is (e.g. the inputs' scores of cached test clips
    are unchanged). Each accepted rebuild is appended to ``data_rebuilt`` (both manifests' and
    both file sets' sha256, and why it was accepted), and the record then holds the new digests.
    """
    digest = sha256_file(cfg.teacher_file())
    # the grids each tuned method starts from (TUNING_GRIDS lives in the code, not the config)
    grids = {m: list(grid) for m in cfg.methods if m != "none"
             and (grid := kd_grid(m, cfg)) is not None}
    settings = {k: v for k, v in cfg.to_dict().items() if k not in _FREE_SETTINGS}
    settings = json.loads(json.dumps(settings))        # tuples -> lists, as stored
    record = Path(cfg.out) / RECORD_FILE
    if record.is_file():
        stored = json.loads(record.read_text())
        if stored["teacher_sha256"] != digest:
            raise ExperimentMismatchError(
                f"{cfg.out} was started with another version of the teacher {cfg.teacher!r} "
                f"(sha256 {stored['teacher_sha256'][:12]}..., now {digest[:12]}...); its runs "
                "cannot be mixed with new ones: use a new --out")
        stored = _check_data(cfg, stored, accept_rebuilt_data, record)
        # a setting added to ExperimentConfig after the folder was started is absent from it:
        # it compares as its default (e.g. grid_extensions, added while phase 1 of the first
        # full experiment was running; no λ had been chosen yet)
        defaults = json.loads(json.dumps(ExperimentConfig.default_settings()))
        saved = {**defaults, **stored["config"]}
        changed = {k: (saved.get(k), v) for k, v in settings.items() if saved.get(k) != v}
        # methods and seeds may be added (e.g. an ablation added to the registry while the
        # experiment ran, seeds 3-5 of the leading methods): the finished runs stay comparable
        added = [k for k in _GROWING_SETTINGS
                 if k in changed and set(saved[k] or ()) <= set(settings[k] or ())]
        for key in added:
            del changed[key]
        # recorded since the first committed experiment (absent from a record: record it now)
        known = stored.get("tuning_grids", grids)
        changed.update({f"λ grid of {m}": (known[m], g) for m, g in grids.items()
                        if m in known and known[m] != g})
        if changed:
            detail = ", ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in changed.items())
            raise ExperimentMismatchError(f"{cfg.out} was started with other settings ({detail}); "
                                          "use the same settings or a new --out")
        if added or any(m not in known for m in grids) or "tuning_grids" not in stored:
            stored = {**stored, "config": {**stored["config"],
                                           **{k: settings[k] for k in added}},
                      "tuning_grids": {**known, **grids}}
            atomic_write_bytes(record, (json.dumps(stored, indent=1) + "\n").encode())
        return stored
    record.parent.mkdir(parents=True, exist_ok=True)
    return _record_data({"config": settings, "teacher_sha256": digest,
                         "data_manifest_sha256": manifest_sha256(cfg.data),
                         "tuning_grids": grids, "library_version": __version__}, cfg, record)


def status(cfg: ExperimentConfig) -> dict:
    """How far an experiment folder has got, and a rough estimate of the time left.

    Notebook: 05_distillation.ipynb

    Returns ``{"runs": [...], "done", "total", "seconds_left", "untimed", "jobs"}``. The runs
    are those of :func:`planned_runs` with ``undecided=True``, in the order they will train.
    Each has its ``method``, ``kd_weight`` (``None`` for a run that cannot be named yet: the
    final seeds of a KD method before λ is chosen, an ablation's tuning runs before its grid is
    known), ``seed``, ``epochs_done`` and ``valid_pesq_wb``, the best validation PESQ-WB so far
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
    planned = planned_runs(cfg, undecided=True)
    times = epoch_times(cfg)
    epochs = cfg.train.epochs
    rows, left, untimed = [], 0.0, []
    for run in planned:
        known = run.kd_weight is not None or run.method == "none"
        history = run.run_folder(cfg).history() if known else []
        done = min(len(history), epochs)
        rows.append({"method": run.method, "kd_weight": run.kd_weight if known else None,
                     "seed": run.seed, "epochs_done": done,
                     "valid_pesq_wb": validation_score(run, cfg) if history else None})
        if done < epochs:
            if not _own_times(run.method, times) and run.method not in untimed:
                untimed.append(run.method)
            per_epoch = epoch_seconds(run.method, times)
            left += (epochs - done) * (math.nan if per_epoch is None else per_epoch)
    measured = any(times.values())
    return {"runs": rows, "done": sum(r["epochs_done"] == epochs for r in rows),
            "total": len(rows), "seconds_left": left if measured else None,
            "untimed": untimed, "jobs": cfg.jobs}


def format_status(report: dict, epochs: int) -> str:
    """:func:`status` as text: one line per run and a summary line.

    Notebook: 05_distillation.ipynb
    """
    width = max([18] + [len(r["method"]) for r in report["runs"]])
    lines = [f"{'method':<{width}} {'λ':>6} {'seed':>4}  epochs  best valid PESQ-WB"]
    todo: dict[str, int] = {}
    unknown_lambda = False
    for r in report["runs"]:
        lam = "–" if r["method"] == "none" else ("?" if r["kd_weight"] is None
                                                 else f"{r['kd_weight']:g}")
        score = "" if r.get("valid_pesq_wb") is None else f"{r['valid_pesq_wb']:.3f}"
        lines.append(f"{r['method']:<{width}} {lam:>6} {r['seed']:>4}  "
                     f"{r['epochs_done']:>2}/{epochs:<3}  {score:>18}".rstrip())
        if r["epochs_done"] < epochs:
            todo[r["method"]] = todo.get(r["method"], 0) + 1
            unknown_lambda |= lam == "?"
    if todo:
        # the note on '?' only where a run still waits for its tuning to pick λ
        lines.append("still to train, in this order: "
                     + ", ".join(f"{method} x {count}" for method, count in todo.items())
                     + (" (λ '?': not known yet; such a run is skipped if the λ its tuning "
                        "picks has a finished run of that seed)" if unknown_lambda else ""))
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


def finished_files(cfg: ExperimentConfig) -> list[Path]:
    """What may be committed of ``cfg.out`` as it is: ``experiment.json``, the teacher's cached
    test scores (``teacher.test.json``) and the folder of every run that has trained all its
    epochs (the folder's ``.gitignore`` leaves out their resume state, logs and locks). A run in
    progress is not listed: its files are only of use with its resume state, which
    :func:`in_progress_files` lists. The report (``results.*``) is not listed: ``--ship`` copies
    it into the package, and a fresh clone rewrites it from the cached scores in seconds.

    Notebook: 05_distillation.ipynb
    """
    out = Path(cfg.out)
    listed = [out / name for name in (RECORD_FILE, TEACHER_SCORES_FILE)
              if (out / name).is_file()]
    for history in sorted(out.glob(f"runs/*/**/{RunFolder.HISTORY}")):
        if RunFolder(history.parent).finished(cfg.train.epochs):
            listed.append(history.parent)
    return listed


def in_progress_files(cfg: ExperimentConfig) -> list[Path]:
    """The files a fresh clone needs to continue each run in progress of ``cfg.out``: its resume
    state (``last.state.safetensors``, ignored by the folder's ``.gitignore``, so it is added with
    ``git add -f``) and the outputs of its epochs so far (best weights and their description,
    ``history.json``, and the distiller extras where the ``.gitignore`` keeps them). A finished
    run (:func:`finished_files`) or a folder without a state is not listed.

    Notebook: 05_distillation.ipynb
    """
    listed: list[Path] = []
    for state in sorted(Path(cfg.out).glob(f"runs/*/**/{RunFolder.STATE}")):
        folder = RunFolder(state.parent)
        if folder.finished(cfg.train.epochs):
            continue
        method = folder.path.relative_to(Path(cfg.out, "runs")).parts[0]
        outputs = folder.outputs(extras=method in SHIPPED_EXTRAS)
        listed += [state] + [path for path in outputs if path.is_file()]
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

    Notebook: 05_distillation.ipynb
    """

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
    tracked_states = git("ls-files", "--", str(out / "runs" / f"*{RunFolder.STATE}")).splitlines()
    resuming = [str(path) for path in in_progress_files(cfg)]
    kept = {Path(path).resolve() for path in resuming}      # states that stay tracked
    retired = [path for path in tracked_states if Path(path).resolve() not in kept]
    if retired:
        git("rm", "-q", "--cached", "--ignore-unmatch", "--", *retired)
    staged = resuming if in_progress else []
    if staged:
        git("add", "-f", "--", *staged)
    return {"added": added, "untracked": retired, "in_progress": staged}
