"""Trained lite models shipped with the library (safetensors + JSON, no pickle).

Notebook: 03_training.ipynb

Each ``<name>.safetensors`` has a ``<name>.json`` next to it with its config, validation and
test metrics and the exact command that reproduces it (``make pretrained``). A distilled
student (``lite-student-<method>``, shipped by ``python -m tfckd_lite reproduce --ship``) may
also have ``<name>.extras.safetensors``: its distiller's trained calibration and fusion weights,
which :func:`load_distiller` puts back together with the teacher it was distilled from.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ..checkpoint import load_model

PRETRAINED_DIR = Path(__file__).resolve().parent
EXTRAS_SUFFIX = ".extras.safetensors"      # a distilled student's calibration / fusion weights
BREAKDOWN_FIELDS = ("noise", "snr")         # test scores are also stored per group of these


def available() -> list[str]:
    """Names of the shipped models.

    Notebook: 03_training.ipynb
    """
    return sorted(p.stem for p in PRETRAINED_DIR.glob("*.safetensors")
                  if not p.name.endswith(EXTRAS_SUFFIX))


def path(name: str) -> Path:
    """File of a shipped model; a clear error lists what exists.

    Notebook: 03_training.ipynb
    """
    file = PRETRAINED_DIR / f"{name}.safetensors"
    if not file.is_file():
        raise KeyError(f"no pretrained model {name!r}; available: {available()}")
    return file


def resolve(spec) -> Path:
    """The model file that ``spec`` names: a ``.safetensors`` path, or a shipped model's name.

    Notebook: 03_training.ipynb

    A path (a name ending in ``.safetensors``, or an existing file) wins over a shipped name,
    as on every command line (``--teacher``, ``evaluate --model``). Raises
    ``FileNotFoundError`` for a missing file and ``KeyError`` for an unknown name.
    """
    file = Path(spec)
    if file.suffix == ".safetensors" or file.exists():
        if not file.is_file():
            raise FileNotFoundError(f"{spec}: no such model file")
        return file
    if spec in available():
        return path(spec)
    raise KeyError(f"{str(spec)!r} is neither a model file nor a shipped model "
                   f"(shipped: {', '.join(available()) or 'none yet'})")


def describe(name: str) -> dict:
    """The JSON description of a shipped model (config, metrics, reproducing command).

    Notebook: 03_training.ipynb
    """
    return json.loads(path(name).with_suffix(".json").read_text())


def results_table_markdown(names: list[str] | None = None) -> str:
    """Test-split scores of shipped models (and of the noisy input) as a Markdown table.

    Notebook: 03_training.ipynb

    The README's table is this function's output, so it always shows the stored measurements.
    """
    names = names or available()
    metrics = [("pesq_wb", "PESQ-WB", 2), ("pesq_nb", "PESQ-NB", 2), ("stoi", "STOI", 3),
               ("estoi", "ESTOI", 3), ("si_sdr", "SI-SDR (dB)", 2)]
    summaries = {name: describe(name)["test"]["summary"] for name in names}
    lines = ["| model | params | " + " | ".join(label for _, label, _ in metrics) + " |",
             "|---|---|" + "---|" * len(metrics)]
    first = summaries[names[0]]
    lines.append("| noisy input | | " + " | ".join(f"{first['input_' + key]:.{digits}f}"
                                                   for key, _, digits in metrics) + " |")
    for name, summary in summaries.items():
        params = sum(t.numel() for t in load(name).parameters())
        cells = [f"{summary[key]:.{digits}f} ({summary['delta_' + key]:+.{digits}f})"
                 for key, _, digits in metrics]
        lines.append(f"| `{name}` | {params:,} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def test_breakdown(name: str, field: str = "noise") -> dict:
    """A shipped model's test summaries per group of clips: ``{group: summary}``, in order.

    Notebook: 03_training.ipynb

    ``field`` is ``"noise"`` or ``"snr"`` (``BREAKDOWN_FIELDS``), as stored at export. Groups
    are strings (JSON keys), ordered numerically when they are numbers (SNRs).
    """
    stored = describe(name)["test"].get("by", {})
    if field not in stored:
        raise KeyError(f"{name} has no test scores per {field!r}; stored: {sorted(stored)}")

    def order(label: str):
        try:
            return (0, float(label), "")
        except ValueError:
            return (1, 0.0, label)

    return {label: stored[field][label] for label in sorted(stored[field], key=order)}


def breakdown_table_markdown(field: str = "noise", names: list[str] | None = None,
                             metrics=(("pesq_wb", "PESQ-WB", 2), ("si_sdr", "SI-SDR", 2))) -> str:
    """Test-split improvements of shipped models per noise type (or per SNR), as Markdown.

    Notebook: 03_training.ipynb

    One row per group (``field``: ``"noise"`` or ``"snr"``) with the noisy input's score and
    each model's improvement over it (:func:`test_breakdown`). The README's table is this
    function's output.
    """
    names = names or [n for n in available() if "by" in describe(n)["test"]]
    by = {name: test_breakdown(name, field) for name in names}
    head = [field, "clips"] + [f"{label} noisy" for _, label, _ in metrics] + [
        f"Δ{label} `{name}`" for _, label, _ in metrics for name in names]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for group, first in by[names[0]].items():
        cells = [group, str(first["clips"])]
        cells += [f"{first['input_' + key]:.{digits}f}" for key, _, digits in metrics]
        cells += [f"{by[name][group]['delta_' + key]:+.{digits}f}"
                  for key, _, digits in metrics for name in names]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def load(name: str, map_location="cpu"):
    """A ready DPDCRN (eval mode) with the shipped weights of ``name``.

    Notebook: 03_training.ipynb
    """
    return load_model(path(name), map_location=map_location)


def load_distiller(name: str):
    """The trained distiller of a shipped distilled student (teacher, student and extras).

    Notebooks: 05_distillation.ipynb, 06_compare_spectrograms.ipynb

    Rebuilds ``build_distiller(method, teacher, student, ...)`` from the student's description
    (method, λ, options, batch size and segment length of its training run), with the shipped
    teacher it names, and loads ``<name>.extras.safetensors``. Raises ``KeyError`` for a model
    without extras, and ``CheckpointError`` when the shipped teacher is no longer the one the
    student was distilled from (e.g. after the teacher was retrained).
    """
    from ..checkpoint import CheckpointError, load_trained_distiller

    extras = PRETRAINED_DIR / f"{name}{EXTRAS_SUFFIX}"
    if not extras.is_file():
        with_extras = [n for n in available() if (PRETRAINED_DIR / f"{n}{EXTRAS_SUFFIX}").is_file()]
        raise KeyError(f"{name!r} has no distiller extras; shipped distillers: "
                       f"{with_extras or 'none yet (python -m tfckd_lite reproduce --ship)'}")
    info = describe(name)
    teacher_name = info.get("teacher")
    if teacher_name not in available():
        raise CheckpointError(f"{name} was distilled from {teacher_name!r}, which is not shipped")
    if hashlib.sha256(path(teacher_name).read_bytes()).hexdigest() != info.get("teacher_sha256"):
        raise CheckpointError(f"{name} was distilled from another version of {teacher_name} "
                              "(its sha256 differs); re-run the experiment to ship matching "
                              "students")
    return load_trained_distiller(path(name), extras, load(teacher_name))


def export(run_dir, name: str, data_root, split: str = "test", command: str | None = None,
           max_clips: int | None = None, progress: bool = True,
           report: dict | None = None, extras: bool = True,
           corpus: dict | None = None) -> Path:
    """Ship a run's best model as ``pretrained/<name>``, with its test-split scores.

    Notebooks: 03_training.ipynb, 07_multichannel.ipynb (``corpus``)

    Evaluates ``run_dir/best.safetensors`` on ``split`` of ``data_root`` with
    :func:`tfckd_lite.metrics.evaluate`, then writes the weights with a description holding the
    training description (preset, command, data manifest hash, validation metrics), the
    training history and the test summary (``report``: an ``evaluate`` result already computed
    for this model, to skip scoring it again), with the summary per noise type and per SNR
    (``test["by"]``, :func:`tfckd_lite.metrics.summary_by`) when the corpus logs them. A
    distillation run's ``best.extras.safetensors`` is shipped next to it (unless ``extras`` is
    false: the student alone). Returns the written path.

    The model is scored on the view of the corpus it was trained on: ``corpus`` (the
    :func:`~tfckd_lite.data.open_corpus` options of :func:`tfckd_lite.train.corpus_options`),
    by default those of the run's recorded training command
    (:func:`tfckd_lite.train.recorded_corpus_options`: ``--mics A --channel 0`` scores W of
    microphone A), stored as ``test["corpus_options"]``. A model and a view with different
    channel counts are refused before any scoring.
    """
    from ..checkpoint import load_model, save_model
    from ..data import open_corpus
    from ..files import atomic_write_bytes
    from ..metrics import evaluate, summary_by
    from ..run_folder import RunFolder
    from ..train import recorded_corpus_options

    run = RunFolder(run_dir)
    model = load_model(run.best)
    description = dict(model.description)
    for key in ("config", "sample_rate", "stft", "library_version"):
        description.pop(key, None)                 # save_model writes these afresh
    description["history"] = run.history()
    if corpus is None:
        corpus = recorded_corpus_options(description["command"]) if "command" in description \
            else {}
    dataset = open_corpus(data_root, split, **corpus)
    _check_channels(model, dataset, f"{run.best}", f"split {split!r} of {data_root}", corpus)
    if report is None:
        report = evaluate(model.enhance, dataset, max_clips=max_clips, progress=progress)
    description["test"] = {"split": split, "corpus_options": dict(corpus),
                           "summary": report["summary"]}
    logged = [field for field in BREAKDOWN_FIELDS if field in dataset.info(0)]
    if logged:           # JSON keys are strings: SNR 2.5 is stored as "2.5"
        description["test"]["by"] = {field: {str(label): summary for label, summary in
                                             summary_by(report, dataset, field).items()}
                                     for field in logged}
    if command:
        description["export_command"] = command
    written = save_model(PRETRAINED_DIR / f"{name}.safetensors", model, **description)
    extras_file = run.best_extras
    target = PRETRAINED_DIR / f"{name}{EXTRAS_SUFFIX}"
    if extras and extras_file.is_file():
        atomic_write_bytes(target, extras_file.read_bytes())
    elif target.exists():
        target.unlink()                 # a stale file from an earlier export of this name
    return written


def _check_channels(model, dataset, model_text: str, data_text: str, corpus: dict) -> None:
    """Refuse a model whose microphone count differs from the corpus view's, saying which."""
    wanted = model.config.in_channels
    heard = None
    if len(dataset):
        noisy = dataset[0][0]
        heard = 1 if noisy.dim() == 1 else int(noisy.shape[0])
    if heard is not None and heard != wanted:
        raise ValueError(f"{model_text} takes {wanted} channel(s) but {data_text} gives {heard} "
                         f"(corpus options {corpus or 'none'}): give --mics/--channel as the "
                         "run was trained with")


def register(subparsers) -> None:
    """``export`` subcommand of ``python -m tfckd_lite``."""
    p = subparsers.add_parser("export", help="ship a run's best model as a pretrained model")
    p.add_argument("--run", required=True, help="run folder with best.safetensors")
    p.add_argument("--name", required=True, help="name under tfckd_lite/pretrained/")
    p.add_argument("--data", required=True, help="corpus root to score the test split of")
    p.add_argument("--split", default="test")
    p.add_argument("--mics", default=None, choices=("A", "B", "AB"),
                   help="L3DAS23 only: score on these microphones (default: the run's own "
                        "--mics and --channel, read from its recorded training command)")
    p.add_argument("--channel", type=int, default=None,
                   help="L3DAS23 only: score on this one channel of --mics (0 = W of mic A)")
    p.add_argument("--max-clips", type=int, default=None,
                   help="score only the first N clips (a quick look; ship the whole split)")
    p.set_defaults(func=_export_command)


def _export_command(args) -> int:
    import shlex
    import sys

    from ..train import corpus_options

    given = args.mics is not None or args.channel is not None
    path = export(args.run, args.name, args.data, args.split,
                  command="python -m tfckd_lite " + shlex.join(getattr(args, "argv",
                                                                       sys.argv[1:])),
                  max_clips=args.max_clips,
                  corpus=corpus_options(args.mics, args.channel) if given else None)
    summary = describe(args.name)["test"]["summary"]
    print(f"wrote {path}")
    for key in ("pesq_wb", "input_pesq_wb", "stoi", "input_stoi", "si_sdr", "input_si_sdr"):
        if key in summary:
            print(f"  {key:<16} {summary[key]:.3f}")
    return 0
