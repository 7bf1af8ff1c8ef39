"""The ``reproduce`` command of ``python -m tfckd_lite``.

Notebook: 05_distillation.ipynb

Its training flags are those of ``train``, derived from :class:`~tfckd_lite.train.TrainConfig`
(with the experiment's defaults, :func:`~tfckd_lite.experiment.config.default_training`), but
``--seed``: the runs' seeds are ``--seeds``.
"""

from __future__ import annotations

from pathlib import Path

from ..train import TrainConfig, add_config_arguments
from ..train import config_from_args as train_config_from_args
from .config import MICS, PER_RUN_SETTINGS, ExperimentConfig
from .folder import finished_files, format_status, stage, status
from .report import results_markdown, ship
from .runner import reproduce
def register(subparsers) -> None:
    """``reproduce`` subcommand of ``python -m tfckd_lite``.

    Notebook: 05_distillation.ipynb
    """
    defaults = ExperimentConfig(data="", out="")
    p = subparsers.add_parser(
        "reproduce", help="train every distillation method x seeds under one budget and write "
                          "the results table and figure (Notebook 05)")
    p.add_argument("--data", required=True, help="reduced set root (e.g. data/generated/small)")
    p.add_argument("--out", required=True, help="experiment folder (resumed if it exists)")
    p.add_argument("--teacher", default=defaults.teacher)
    p.add_argument("--student", default=defaults.student)
    p.add_argument("--mics", default=defaults.mics, choices=[m for m in MICS if m],
                   help="L3DAS23-layout corpora (e.g. data/generated/mc-small) only: the "
                        "microphones every run trains on and is scored with (A: 4 channels, "
                        "AB: 8); the presets must take that many (Notebook 07)")
    p.add_argument("--methods", nargs="+", default=None, help="default: every method")
    p.add_argument("--seeds", nargs="+", type=int, default=list(defaults.seeds))
    p.add_argument("--extra-seeds", nargs="+", type=int, default=list(defaults.extra_seeds),
                   help="seeds trained besides --seeds for the methods of --extra-seed-methods "
                        "only (a resume may add seeds, not remove them)")
    p.add_argument("--extra-seed-methods", nargs="+", default=list(defaults.extra_seed_methods),
                   help="the methods that get --extra-seeds, in the order their runs train "
                        "(after none's)")
    p.add_argument("--kd-weights", nargs="+", type=float, default=None,
                   help="one λ grid, tuned on the validation split, for every method "
                        "(default: each method's grid of experiment.TUNING_GRIDS)")
    p.add_argument("--grid-extensions", type=int, default=defaults.grid_extensions,
                   help="factor-10 steps the λ grid may be extended past an end where the best "
                        "λ lies (0: the fixed grid)")
    p.add_argument("--test-clips", type=int, default=defaults.test_clips,
                   help="cap on test utterances scored (default: all)")
    p.add_argument("--jobs", type=int, default=defaults.jobs,
                   help="training runs side by side (as subprocesses when more than 1)")
    p.add_argument("--devices", default="",
                   help="comma-separated slots, each training one run at a time on its device "
                        "(cpu,cpu or cuda:0,cuda:1; cuda:0,cuda:0 = two runs on GPU 0); "
                        "replaces --jobs. Default: --jobs slots on --device")
    p.add_argument("--nproc-per-run", type=int, default=defaults.nproc_per_run,
                   help="processes (torchrun ranks) per run, each on one device of --devices "
                        "taken in groups of this many; each accumulates grad_accum / this many "
                        "micro-batches, so a step is unchanged")
    add_config_arguments(p.add_argument_group("training budget of every run (TrainConfig)"),
                         defaults=defaults.train, exclude=PER_RUN_SETTINGS)
    p.add_argument("--ship", action="store_true",
                   help="export the best seeds (<student>-<method>) and the report "
                        "(distillation.*, or distillation-mics-<mics>.* with --mics) into "
                        "tfckd_lite/pretrained")
    p.add_argument("--status", action="store_true",
                   help="print how far the experiment folder has got and exit")
    p.add_argument("--accept-rebuilt-data", action="store_true",
                   help="resume on a rebuilt set whose sameness the folder's record cannot "
                        "tell (the record predates the files' or the plan's sha256, or other "
                        "software built the set), once you have checked that it is the same "
                        "data; the rebuild is recorded, and another plan is still refused")
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


def config_from_args(args) -> ExperimentConfig:
    """The :class:`ExperimentConfig` of parsed ``reproduce`` flags.

    Notebook: 05_distillation.ipynb
    """
    per_run = {name: getattr(TrainConfig(), name) for name in PER_RUN_SETTINGS}
    return ExperimentConfig(
        data=args.data, out=args.out, teacher=args.teacher, student=args.student,
        methods=tuple(args.methods or ()), seeds=tuple(args.seeds),
        extra_seeds=tuple(args.extra_seeds), extra_seed_methods=tuple(args.extra_seed_methods),
        kd_weights=None if args.kd_weights is None else tuple(args.kd_weights),
        grid_extensions=args.grid_extensions, test_clips=args.test_clips, mics=args.mics,
        jobs=args.jobs,
        devices=tuple(args.devices.split(",")) if args.devices else (),
        nproc_per_run=args.nproc_per_run,
        train=train_config_from_args(args, **per_run))


def _reproduce_command(args) -> int:
    cfg = config_from_args(args)
    if args.status:
        print(format_status(status(cfg), cfg.train.epochs))
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
    results = reproduce(cfg, hours=args.hours, stop_after=args.stop_after,
                        accept_rebuilt_data=args.accept_rebuilt_data)
    if results is None:
        print(format_status(status(cfg), cfg.train.epochs))
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
