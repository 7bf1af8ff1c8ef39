"""One training run from its settings: :func:`run_training` (``python -m tfckd_lite train``
from Python) and :func:`training_argv` (the same run as a command line).

Notebooks: 03_training.ipynb (plain training), 05_distillation.ipynb (``method``)
"""

from __future__ import annotations

import torch
from torch import nn

from .. import distributed
from ..losses import compressed_spectral_loss
from .config import TrainConfig, config_argv, flag_text
from .engine import SupervisedTask, TrainResult, fit


def _method_option_text(key: str, value) -> str:
    if isinstance(value, bool):
        return f"{key}={'true' if value else 'false'}"
    if isinstance(value, (int, float)):
        return f"{key}={flag_text(value)}"
    raise ValueError(f"method option {key}={value!r} cannot be written on a command line "
                     "(values are true/false, integers or numbers)")


def training_argv(config: TrainConfig, *, preset: str, data, out, method: str = "none",
                  teacher: str | None = None, kd_weight: float | None = None,
                  method_options: dict | None = None, resume: bool = True,
                  mics: str | None = None, channel: int | None = None) -> list[str]:
    """Arguments of ``python -m tfckd_lite`` that train the same run as :func:`run_training`
    with the same arguments.

    Notebook: 03_training.ipynb

    The config's flags are :func:`config_argv`'s (every field, so that the command states
    the whole budget and does not depend on the defaults of the library that reads it).
    """
    argv = ["train", "--preset", preset, "--data", str(data), "--out", str(out),
            *config_argv(config), "--method", method]
    if teacher is not None:
        argv += ["--teacher", str(teacher)]
    if kd_weight is not None:
        argv += ["--kd-weight", flag_text(float(kd_weight))]
    for key, value in (method_options or {}).items():
        argv += ["--method-option", _method_option_text(key, value)]
    if mics is not None:
        argv += ["--mics", mics]
    if channel is not None:
        argv += ["--channel", str(channel)]
    if not resume:
        argv.append("--no-resume")
    return argv


def run_training(config: TrainConfig, *, preset: str, data, out, method: str = "none",
                 teacher: str | None = None, kd_weight: float | None = None,
                 method_options: dict | None = None, resume: bool = True,
                 progress: bool = True, command: str | None = None,
                 mics: str | None = None, channel: int | None = None) -> TrainResult:
    """Train (or resume) one run into the folder ``out``: ``python -m tfckd_lite train``
    from Python.

    Notebooks: 03_training.ipynb (plain training), 05_distillation.ipynb (``method``)

    ``preset`` is initialised from ``config.seed``. With ``method="none"`` it is trained
    alone (:class:`SupervisedTask`); with a method of :data:`tfckd_lite.distill.METHODS`, the
    ``teacher`` (a shipped model name or a model file, refused when its sample rate or STFT
    differ from the student's) is distilled into it through ``build_distiller`` with batch
    size ``config.batch_size`` and ``config.segment_frames`` frames (the calibration blocks'
    fixed shape), λ ``kd_weight`` (``None``: the method's default) and ``method_options``.
    The network takes as many microphones as the corpus has (``in_channels``: 1 for the
    reduced set, VoiceBank and DNS; 4 or 8 for L3DAS23 with ``mics`` ``"A"`` or ``"AB"``;
    1 with ``channel`` N, which keeps channel N of them: ``mics="A", channel=0`` is the W
    channel alone, the single-channel baseline of the multi-channel setting, notebook 07).
    :func:`fit` trains on the ``train`` split of ``data`` and validates on ``valid``; the best
    model's description records the preset, the method, ``command`` (by default the
    equivalent :func:`training_argv` command line), the data manifest's sha256, that of its
    files alone (:func:`~tfckd_lite.data.files_sha256`, unchanged by a rebuild with newer
    software) and that of its plan of scenes (:func:`~tfckd_lite.data.plan_sha256`, unchanged
    by a multi-channel rebuild on another machine) and, for a
    distillation, ``kd_weight`` (the value used), ``method_options``, ``teacher`` (as given),
    ``teacher_sha256`` and ``teacher_preset``. Returns :func:`fit`'s :class:`TrainResult`.
    """
    import shlex

    from ..data import files_sha256, manifest_sha256, open_corpus, plan_sha256
    from ..distill import METHODS, build_distiller
    from ..models import build_model

    options = dict(method_options or {})
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose from {list(METHODS)}")
    if method == "none" and (teacher is not None or kd_weight is not None or options):
        raise ValueError("a teacher, kd_weight or method options were given, but method "
                         "'none' trains the student alone")
    if method != "none" and teacher is None:
        raise ValueError(f"method {method!r} distils from a teacher: give teacher")
    distributed.process_device(config.device)  # "cuda" without one: refused before any work
    if command is None:
        command = "python -m tfckd_lite " + shlex.join(training_argv(
            config, preset=preset, data=data, out=out, method=method, teacher=teacher,
            kd_weight=kd_weight, method_options=options, resume=resume, mics=mics,
            channel=channel))
    corpus = corpus_options(mics, channel)
    train_set, valid_set = open_corpus(data, "train", **corpus), open_corpus(data, "valid", **corpus)
    torch.manual_seed(config.seed)
    model = build_model(preset, in_channels=microphones(train_set))
    description = {"preset": preset, "command": command, "method": method}
    if method == "none":
        task = SupervisedTask(model)
    else:
        teacher_model, teacher_info = _load_teacher(teacher, model)
        frames = config.segment_frames
        task = build_distiller(method, teacher_model, model, config.batch_size, frames,
                               se_loss=compressed_spectral_loss, kd_weight=kd_weight, **options)
        description.update(kd_weight=task.kd_weight, method_options=options, **teacher_info)
        if distributed.launched_rank() == 0:
            print(f"distilling {teacher} into {preset} with {method} "
                  f"(kd_weight {task.kd_weight:g}, batch {config.batch_size} x {frames} frames)")
    description.update(data_manifest_sha256=manifest_sha256(data),
                       data_files_sha256=files_sha256(data), data_plan_sha256=plan_sha256(data))
    return fit(task, train_set, valid_set, out, config, resume=resume, description=description,
               progress=progress)


def corpus_options(mics: str | None, channel: int | None) -> dict:
    """The :func:`~tfckd_lite.data.open_corpus` options of ``--mics`` and ``--channel``
    (L3DAS23 layout only; ``channel`` picks one channel of the microphones, a mono view).

    Notebook: 07_multichannel.ipynb
    """
    if channel is not None and channel < 0:
        raise ValueError(f"channel must be 0 or more, got {channel}")
    return {**({} if mics is None else {"mics": mics}),
            **({} if channel is None else {"channels": int(channel)})}


def microphones(dataset) -> int:
    """How many microphone channels the noisy side of ``dataset`` has (its first pair's).

    Notebook: 03_training.ipynb
    """
    if len(dataset) == 0:
        raise ValueError("the training split is empty")
    noisy = dataset[0][0]
    return 1 if noisy.dim() == 1 else int(noisy.shape[0])


# ------------------------------------------------------------------------------------ CLI


def _usage_error(message: str) -> Exception:
    """A command-line mistake: ``python -m tfckd_lite`` prints it as one line (exit status 2)."""
    from ..cli import UsageError

    return UsageError(message)


def _load_teacher(spec: str, student: nn.Module) -> tuple[nn.Module, dict]:
    """``--teacher``: the teacher and what the run description records about it.

    A shipped model name or a model file; refused (before loading the weights) when its sample
    rate or STFT differ from the student's, since both must see the same spectra.
    """
    from .. import pretrained
    from ..checkpoint import (CheckpointError, load_model, model_description,
                             read_model_description)
    from ..files import sha256_file

    try:
        file = pretrained.resolve(spec)
    except (FileNotFoundError, KeyError) as error:
        raise _usage_error(f"--teacher {error.args[0]}") from None
    try:
        theirs = read_model_description(file)
    except CheckpointError as exc:
        raise _usage_error(f"--teacher {spec}: {exc}") from exc
    ours = model_description(student)
    for key in ("sample_rate", "stft"):
        if theirs.get(key) != ours[key]:
            raise _usage_error(
                f"teacher {spec} works at sample rate {theirs.get('sample_rate')} with STFT "
                f"{theirs.get('stft')}, the student at {ours['sample_rate']} with STFT "
                f"{ours['stft']}: the two would not see the same spectra")
    teacher = load_model(file)
    info = {"teacher": spec, "teacher_sha256": sha256_file(file),
            "teacher_preset": theirs.get("preset")}
    return teacher, info
