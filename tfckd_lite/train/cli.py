"""The ``train`` and ``evaluate`` commands of ``python -m tfckd_lite``.

Notebooks: 03_training.ipynb (plain training), 05_distillation.ipynb (``--method``)
"""

from __future__ import annotations

from .. import distributed
from ..devices import resolve_device
from .config import add_config_arguments, config_from_args
from .runs import _usage_error, corpus_options, run_training


def register(subparsers) -> None:
    """``train`` and ``evaluate`` subcommands of ``python -m tfckd_lite``.

    Notebooks: 03_training.ipynb (plain training), 05_distillation.ipynb (``--method``)

    ``train --method M --teacher T`` distils teacher ``T`` (a shipped model name or a model
    file) into the ``--preset`` student with any method of ``tfckd_lite.distill.METHODS``,
    through the same loop, checkpoints and resume logic as plain training (``--method none``,
    the default). ``--method-option KEY=VALUE`` (repeatable) sets the method's own options
    (``METHODS[M].options``); values are ``true``/``false``, integers or numbers.
    """
    from ..distill import METHODS

    p = subparsers.add_parser(
        "train", help="train a DPDCRN preset on a paired corpus, alone or distilled from a "
                      "teacher (--method)")
    p.add_argument("--preset", default=None,
                   help="lite-teacher, lite-student, paper-... (required unless --recipe)")
    p.add_argument("--data", required=True, help="corpus root (reduced set, VoiceBank, DNS, ...)")
    p.add_argument("--out", required=True, help="run folder (resumed if it holds a state)")
    p.add_argument("--mics", default=None, choices=("A", "B", "AB"),
                   help="L3DAS23 only: microphone A (4 channels, the default), B, or both (8)")
    p.add_argument("--channel", type=int, default=None,
                   help="L3DAS23 only: train on this one channel of --mics (0 = W of mic A: a "
                        "single-channel model of the multi-channel set)")
    recipe = p.add_argument_group("recipes (tfckd_lite/recipes; `python -m tfckd_lite recipes`)")
    recipe.add_argument("--recipe", default=None, metavar="SETTING:STAGE",
                        help="take every value of a paper-scale recipe, e.g. "
                             "voicebank-demand:teacher; flags given here override it")
    recipe.add_argument("--dry-run", action="store_true",
                        help="the same run in seconds (a few steps of a tiny batch on the CPU, "
                             "tfckd_lite.recipes.DRY_RUN); flags given here override it")
    add_config_arguments(p.add_argument_group("training (TrainConfig)"))
    p.add_argument("--no-resume", action="store_true", help="start over even if a state exists")
    kd = p.add_argument_group("distillation (Notebook: 05_distillation.ipynb)")
    kd.add_argument("--method", default="none", choices=list(METHODS),
                    help="distillation method; 'none' (default) trains the preset alone")
    kd.add_argument("--teacher", default=None,
                    help="teacher: a shipped model name (e.g. lite-teacher) or a .safetensors "
                         "model file; required by every method but 'none'")
    kd.add_argument("--kd-weight", type=float, default=None,
                    help="KD weight lambda (default: the method's, DEFAULT_KD_WEIGHTS)")
    kd.add_argument("--method-option", action="append", default=[], metavar="KEY=VALUE",
                    help="an option of the method, e.g. fusion_mid_channels=64 or "
                         "released_normalisation=true (repeatable)")
    p.set_defaults(func=_train_command, parser=p)

    p = subparsers.add_parser("evaluate", help="PESQ/STOI/ESTOI/SI-SDR of a model on a split")
    p.add_argument("--model", required=True,
                   help="a .safetensors model file, a shipped model name, or 'noisy'")
    p.add_argument("--data", required=True, help="corpus root")
    p.add_argument("--split", default="test")
    p.add_argument("--mics", default=None, choices=("A", "B", "AB"),
                   help="L3DAS23 only: microphone A (the default), B, or both")
    p.add_argument("--channel", type=int, default=None,
                   help="L3DAS23 only: score on this one channel of --mics (0 = W of mic A)")
    p.add_argument("--max-clips", type=int, default=None)
    p.add_argument("--json", default=None, help="write per-clip scores and summary here")
    p.add_argument("--by", action="append", default=[], metavar="FIELD",
                   help="also print the scores per group of clips: noise, snr or speaker "
                        "(repeatable; corpora that log them)")
    p.add_argument("--device", default="cpu", help="cpu (default), auto, cuda or cuda:N")
    p.set_defaults(func=_evaluate_command)


#: options that take a Python object, settable from Python (build_distiller) only
_PYTHON_ONLY_OPTIONS = {"output_loss"}


def _method_options(method: str, items: list[str]) -> dict:
    """``--method-option KEY=VALUE`` strings -> ``build_distiller`` options, checked."""
    from ..distill import METHODS

    valid = list(METHODS[method].options)
    options: dict = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key, raw = key.strip().replace("-", "_"), raw.strip()
        if not sep or not key or not raw:
            raise _usage_error(f"--method-option takes KEY=VALUE, got {item!r}")
        if key not in valid:
            raise _usage_error(f"method {method!r} does not accept option {key!r}; valid "
                               f"options: {', '.join(valid) or 'none'}")
        if key in _PYTHON_ONLY_OPTIONS:
            raise _usage_error(f"option {key!r} takes a Python callable; set it from Python "
                               "(tfckd_lite.distill.build_distiller), not the command line")
        if key in options:
            raise _usage_error(f"option {key!r} given twice")
        if raw.lower() in ("true", "false"):
            options[key] = raw.lower() == "true"
            continue
        for kind in (int, float):
            try:
                options[key] = kind(raw)
                break
            except ValueError:
                continue
        else:
            raise _usage_error(f"option {key}={raw!r}: values are true/false, integers or "
                               "numbers")
    return options


def _train_command(args) -> int:
    """``python -m tfckd_lite train``: plain training, or distillation with ``--method``.

    Notebook: 05_distillation.ipynb

    Checks the flags, then :func:`run_training` with the :class:`TrainConfig` they set; the
    command line as typed is stored in the best model's description.
    """
    import shlex
    import sys

    if args.recipe or args.dry_run:
        args = _recipe_arguments(args)
    if args.preset is None:
        raise _usage_error("give --preset (or --recipe SETTING:STAGE)")
    config = config_from_args(args)
    options: dict = {}
    if args.method == "none":
        given = [flag for flag, value in (("--teacher", args.teacher),
                                          ("--kd-weight", args.kd_weight),
                                          ("--method-option", args.method_option))
                 if value not in (None, [])]
        if given:
            raise _usage_error(f"{', '.join(given)} given, but --method none trains the "
                               "student alone; choose a distillation method with --method")
    else:
        options = _method_options(args.method, args.method_option)
        if args.teacher is None:
            raise _usage_error(f"--method {args.method} distils from a teacher: give --teacher "
                               "(a shipped model name or a .safetensors model file)")
        if args.kd_weight is not None and args.kd_weight < 0:
            raise _usage_error(f"--kd-weight must be non-negative, got {args.kd_weight}")
    result = run_training(config, preset=args.preset, data=args.data, out=args.out,
                          method=args.method, teacher=args.teacher, kd_weight=args.kd_weight,
                          method_options=options, resume=not args.no_resume, mics=args.mics,
                          channel=args.channel,
                          command="python -m tfckd_lite " + shlex.join(getattr(args, "argv", sys.argv[1:])))
    if distributed.launched_rank() == 0:
        print(f"best epoch {result.best_metrics['epoch']}: {result.best_path}")
    return 0


def _recipe_arguments(args):
    """The flags of ``train`` parsed again with a recipe's values (``--recipe``) and the dry-run
    budget (``--dry-run``) as their defaults, so that a flag given on the command line wins."""
    from .. import recipes

    defaults: dict = {}
    if args.recipe:
        defaults.update(recipes.load_stage(args.recipe).settings())
    if args.dry_run:
        defaults.update(recipes.DRY_RUN)
    args.parser.set_defaults(**defaults)
    parsed = args.parser.parse_args(args.argv[args.argv.index("train") + 1:])
    parsed.argv = args.argv
    return parsed


def recorded_corpus_options(command: str) -> dict:
    """The corpus options (:func:`corpus_options`) of a recorded ``train`` command line: the
    ``--mics`` and ``--channel`` it gave, or its recipe's.

    Notebook: 07_multichannel.ipynb

    ``command`` is what a run's best model records (``python -m tfckd_lite train ...``). It is
    read with ``train``'s own parser, recipe defaults included, so that ``export`` scores a
    model on the view of the corpus it was trained on (``--mics A --channel 0``: W alone)
    without a second list of the flags. ``ValueError`` when it is not such a command.
    """
    import contextlib
    import io
    import shlex

    from ..cli import build_parser

    words = shlex.split(command)
    if "train" not in words:
        raise ValueError(f"not a training command: {command!r}")
    argv = words[words.index("train"):]          # the first "train" is the subcommand
    refusal = io.StringIO()
    try:
        with contextlib.redirect_stderr(refusal):  # argparse prints its refusal, then exits
            args = build_parser().parse_args(argv)
            args.argv = argv
            if args.recipe or args.dry_run:
                args = _recipe_arguments(args)
    except SystemExit:
        reason = (refusal.getvalue().strip().splitlines() or ["unreadable"])[-1]
        raise ValueError(f"the recorded training command cannot be read ({reason}): "
                         f"{command!r}") from None
    return corpus_options(args.mics, args.channel)


def _evaluate_command(args) -> int:
    import json

    from ..checkpoint import load_model
    from ..files import atomic_write_bytes
    from ..data import open_corpus
    from ..metrics import evaluate, format_breakdown, summary_by

    device = resolve_device(args.device)       # "cuda" without one: refused before any work
    dataset = open_corpus(args.data, args.split, **corpus_options(args.mics, args.channel))
    if args.model == "noisy":
        enhance = None
    else:
        from .. import pretrained
        enhance = load_model(pretrained.resolve(args.model), map_location=device).enhance
    report = evaluate(enhance, dataset, max_clips=args.max_clips)
    for key, value in report["summary"].items():
        print(f"{key:<28} {value:.3f}" if isinstance(value, float) else f"{key:<28} {value}")
    for field in args.by:
        report.setdefault("by", {})[field] = breakdown = summary_by(report, dataset, field)
        print("\n" + format_breakdown(breakdown, field))
    if args.json:
        atomic_write_bytes(args.json, (json.dumps(report, indent=2, default=str) + "\n").encode())
    return 0
