"""Training engine: one loop for plain training and for every distillation method.

Notebook: 03_training.ipynb

The loop trains a *task*: a module whose ``forward(noisy_spec, clean_spec)`` returns a dict of
named scalar losses including ``"total"``, with ``trainable_parameters()`` and the network being
trained as ``task.model``. :class:`SupervisedTask` wraps a DPDCRN and the SE loss; the
distillers of :mod:`tfckd_lite.distill` follow the same protocol, so one loop, one checkpoint
format and one resume logic serve every method.

Choices (the paper leaves them open, TFCKD.md section 7), and why:

- AdamW, peak learning rate 1e-3, no weight decay by default: the usual setting for CRN-type
  enhancers of this size; linear warm-up (200 steps) then cosine decay to 5 % of the peak over
  the run, a schedule that depends on the global step only, so a resumed run follows exactly
  the same curve.
- Gradient-norm clipping at 5: recurrent layers occasionally spike early in training.
- 1 s segments (63 frames), batch 8: the calibration blocks of I2S-TFCKD are built for a fixed
  batch size and frame count, and 8 is the released demo's batch size.
- Data: the pairs as built. On-the-fly remixing (``remix_snr``, ``--remix-snr LOW HIGH``)
  draws a new noise and a new SNR for every crop of every epoch instead
  (:mod:`tfckd_lite.data.loader`). Measured on ``small`` with 0–20 dB (README, "How the recipe
  got here"): it helps the 6-epoch student (+0.27 dB test SI-SDR) but not the 20-epoch
  teacher (−0.12 dB), so the shipped models and the distillation experiment do without it.
- Validation after every epoch on PESQ-WB and SI-SDR of whole utterances; the best epoch by
  validation PESQ-WB (the paper's headline metric) is kept as ``best.safetensors``.
- Resumability: a training state is written atomically at the end of every epoch (and every
  ``checkpoint_every`` steps); batches are a pure function of (seed, epoch, position), so a run
  that is killed and resumed ends with the same weights as one that never stopped.

Scaling out (Notebook: 03_training.ipynb): the same loop runs on a GPU (``device``,
:mod:`tfckd_lite.devices`), in mixed precision (``precision``, :mod:`tfckd_lite.precision`),
with batches loaded in ``workers`` processes, and as one rank of a ``torchrun`` launch
(:mod:`tfckd_lite.distributed`). ``batch_size`` is always the **per-process micro-batch**:
what one forward pass sees, and what the calibration blocks of I2S-TFCKD are built for (its
"frequency" relations are taken across those ``batch_size`` utterances, never across ranks).
``grad_accum`` K sums the gradients of K micro-batches (each loss divided by K) before one
optimizer step; with W ranks a step sees ``batch_size * K * W`` utterances, the micro-batches
``s*W*K ... (s+1)*W*K - 1`` of the epoch's one global sequence, so W ranks give the weights of
one process with ``grad_accum = W*K`` (tested to float tolerance). ``steps_per_epoch`` counts
optimizer steps, and the learning-rate schedule depends on the optimizer step only.
``device`` and ``workers`` do not change the numbers and may differ on resume; ``precision``,
``grad_accum`` and the number of ranks do, and a resume must match them.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import time
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from . import distributed
from .checkpoint import (load_training_state, save_distiller_extras, save_model,
                         save_training_state)
from .devices import resolve_device
from .losses import compressed_spectral_loss
from .precision import PRECISIONS, as_fp32, autocast, check_precision, full_precision, grad_scaler
from .run_folder import RunFolder


def _option(default, help: str, **argparse_options):
    """A TrainConfig field: its default, and the help (and any other argparse option, e.g.
    ``nargs``, ``metavar``, ``choices``) of the ``train`` flag derived from it."""
    return field(default=default, metadata={"help": help, **argparse_options})


@dataclass
class TrainConfig:
    """Hyper-parameters of a training run (stored in the checkpoint; a resume must match).

    Notebook: 03_training.ipynb

    Each field is also a flag of ``python -m tfckd_lite train`` (``batch_size`` ->
    ``--batch-size``), derived by :func:`add_config_arguments` from the field's type, default
    and ``help`` metadata; :func:`config_argv` writes a config back as those flags.
    """

    epochs: int = _option(30, "training epochs")
    batch_size: int = _option(8, "crops per forward pass of one process, in every mode (the "
                                 "micro-batch; the calibration blocks are built for it)")
    segment_seconds: float = _option(1.0, "length of a training crop in seconds")
    lr: float = _option(1e-3, "peak learning rate of AdamW")
    weight_decay: float = _option(0.0, "AdamW weight decay")
    warmup_steps: int = _option(200, "steps of linear warm-up before the cosine decay")
    final_lr_ratio: float = _option(0.05, "learning rate at the end, as a share of the peak")
    grad_clip: float = _option(5.0, "gradient-norm clipping threshold")
    seed: int = _option(0, "seed of the initial weights and of the batch order")
    steps_per_epoch: int | None = _option(None, "cap on optimizer steps per epoch (none: the "
                                                "whole training split)")
    valid_clips: int | None = _option(None, "cap on validation utterances per epoch (none: all)")
    checkpoint_every: int = _option(0, "also save the resume state every N steps (0: at the "
                                       "end of each epoch only)")
    device: str = _option("auto", "auto (CUDA when present, else CPU), cpu, cuda, cuda:N; under "
                                  "torchrun each process takes cuda:LOCAL_RANK")
    remix_snr: list[float] | None = _option(
        None, "remix every training crop on the fly with another pair's noise at an SNR drawn "
              "from [LOW, HIGH] dB (none: the pairs as built; 0 20 is the range measured in "
              "the README)", nargs=2, metavar=("LOW", "HIGH"))
    precision: str = _option("fp32", "fp32, or bf16 / fp16 autocast with fp32 islands "
                                     "(tfckd_lite/precision.py)", choices=list(PRECISIONS))
    grad_accum: int = _option(1, "micro-batches of --batch-size per optimizer step",
                              metavar="K")
    workers: int = _option(0, "processes loading training batches (0: this process); the "
                              "batches are the same")

    def __post_init__(self):
        if self.epochs < 1 or self.batch_size < 1 or self.segment_seconds <= 0 or self.lr <= 0:
            raise ValueError(f"invalid training config: {self}")
        check_precision(self.precision)
        if isinstance(self.grad_accum, bool) or not isinstance(self.grad_accum, int) \
                or self.grad_accum < 1:
            raise ValueError(f"grad_accum must be a positive int, got {self.grad_accum!r}")
        if isinstance(self.workers, bool) or not isinstance(self.workers, int) or self.workers < 0:
            raise ValueError(f"workers must be an int >= 0, got {self.workers!r}")
        from .data.loader import check_remix_snr

        checked = check_remix_snr(self.remix_snr)
        # a list, so that the config compares equal to itself after a JSON round trip (resume)
        self.remix_snr = None if checked is None else list(checked)

    @property
    def segment_frames(self) -> int:
        """STFT frames of a training crop (1 s -> 63): the fixed frame count of every batch,
        for which a distiller's calibration blocks are built."""
        from .stft import segment_frames

        return segment_frames(self.segment_seconds)


#: fields that do not change a run's numbers: a resume may change them
_NOT_COMPARED = ("device", "workers")
#: TrainConfig's field defaults, for comparing with states written before a field existed
_FIELD_DEFAULTS = {f.name: f.default for f in fields(TrainConfig)
                   if f.default is not MISSING and f.name not in _NOT_COMPARED}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _flag_kind(name: str) -> tuple[type, bool, bool]:
    """The element type of TrainConfig field ``name``, whether it holds a list of them and
    whether it may be ``None`` (``int | None`` -> ``(int, False, True)``)."""
    import types
    import typing

    hint = typing.get_type_hints(TrainConfig)[name]
    optional = False
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        optional = type(None) in typing.get_args(hint)
        hint = next(arg for arg in typing.get_args(hint) if arg is not type(None))
    if typing.get_origin(hint) is list:
        return typing.get_args(hint)[0], True, optional
    return hint, False, optional


def _none_or(kind: type):
    """An argparse type for an optional field: ``none`` gives None, anything else ``kind``."""
    def convert(text: str):
        return None if text.lower() == "none" else kind(text)
    convert.__name__ = kind.__name__          # argparse names it in "invalid int value"
    return convert


def add_config_arguments(parser, defaults: TrainConfig | None = None,
                         exclude: tuple[str, ...] = ()) -> None:
    """Add one flag per :class:`TrainConfig` field to an argparse ``parser`` (or group).

    Notebook: 03_training.ipynb

    ``--batch-size`` for ``batch_size``: the type comes from the field's annotation (a list
    field takes several values), the help and any other argparse option from its metadata, the
    default from ``defaults`` (the dataclass defaults when ``None``). ``exclude``: fields that
    the command sets otherwise (e.g. ``reproduce`` sets each run's ``seed``).
    """
    defaults = defaults or TrainConfig()
    for f in fields(TrainConfig):
        if f.name in exclude:
            continue
        kind, many, optional = _flag_kind(f.name)
        options = dict(f.metadata)
        if "help" in options:       # the default is the command's (e.g. reproduce's), not ours
            options["help"] += " (default: %(default)s)"
        if kind is bool:             # --flag / --no-flag
            options.setdefault("action", argparse.BooleanOptionalAction)
        else:
            options["type"] = _none_or(kind) if optional and not many else kind
        if many:
            options.setdefault("nargs", "+")
        parser.add_argument(_flag(f.name), default=getattr(defaults, f.name), **options)


def config_from_args(args, **fixed) -> TrainConfig:
    """The :class:`TrainConfig` of parsed flags (:func:`add_config_arguments`); ``fixed``
    gives the fields the command set otherwise.

    Notebook: 03_training.ipynb
    """
    values = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if f.name not in fixed}
    return TrainConfig(**values, **fixed)


def flag_text(value) -> str:
    """A flag's value as text: floats short (``1e-3`` -> ``0.001``) unless that would round.

    Notebook: 03_training.ipynb
    """
    if isinstance(value, float):
        short = f"{value:g}"
        return short if float(short) == value else repr(value)
    return str(value)


def config_argv(config: TrainConfig, defaults: TrainConfig | None = None,
                exclude: tuple[str, ...] = ()) -> list[str]:
    """The flags that set ``config`` (the inverse of :func:`config_from_args`).

    Notebook: 03_training.ipynb

    Every field but those in ``exclude``, in field order, for the flags' defaults of ``train``;
    with ``defaults`` (the flags' defaults of the command, e.g. ``reproduce``'s), only the
    fields that differ from them. A field at ``None`` is left out where ``None`` is its flag's
    default, else written ``none``.
    """
    parser_defaults = defaults or TrainConfig()
    argv: list[str] = []
    for f in fields(TrainConfig):
        value = getattr(config, f.name)
        if f.name in exclude or (defaults is not None and value == getattr(defaults, f.name)):
            continue
        if value is None:
            if getattr(parser_defaults, f.name) is not None:
                if _flag_kind(f.name)[1]:
                    raise ValueError(f"{f.name}=None cannot be written on a command line whose "
                                     f"flag defaults to {getattr(parser_defaults, f.name)!r}")
                argv += [_flag(f.name), "none"]
            continue
        if isinstance(value, bool):
            argv.append(_flag(f.name) if value else "--no-" + _flag(f.name)[2:])
            continue
        values = value if isinstance(value, (list, tuple)) else [value]
        argv += [_flag(f.name), *(flag_text(v) for v in values)]
    return argv


class SupervisedTask(nn.Module):
    """A DPDCRN trained on the SE loss alone (the student baseline and the teacher).

    Notebook: 03_training.ipynb
    """

    def __init__(self, model: nn.Module,
                 se_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = compressed_spectral_loss):
        super().__init__()
        self.model = model
        self.se_loss = se_loss

    def forward(self, noisy_spec: torch.Tensor, clean_spec: torch.Tensor) -> dict[str, torch.Tensor]:
        enhanced = self.model(noisy_spec)
        with full_precision():                          # the loss in fp32 (precision.py)
            loss = self.se_loss(*as_fp32((enhanced, clean_spec)))
        return {"se": loss, "total": loss}

    def trainable_parameters(self):
        return [p for p in self.model.parameters() if p.requires_grad]


def learning_rate(step: int, total_steps: int, config: TrainConfig) -> float:
    """Warm-up then cosine decay, as a pure function of the global step.

    Notebook: 03_training.ipynb
    """
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    progress = min(1.0, (step - config.warmup_steps) / max(1, total_steps - config.warmup_steps))
    floor = config.final_lr_ratio
    return config.lr * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))


@dataclass
class TrainResult:
    """What :func:`fit` returns: the run folder, the epoch records, the best model and its
    validation metrics.

    Notebook: 03_training.ipynb
    """

    run_dir: Path
    history: list[dict] = field(default_factory=list)
    best_path: Path | None = None
    best_metrics: dict | None = None


def validate(model: nn.Module, valid_set, max_clips: int | None = None,
             workers: int | None = None) -> dict[str, float]:
    """Mean PESQ-WB and SI-SDR (and their input values) of ``model`` on whole utterances.

    Notebook: 03_training.ipynb
    """
    from .metrics import evaluate

    model.eval()
    summary = evaluate(model.enhance, valid_set, metrics=("pesq_wb", "si_sdr"),
                       max_clips=max_clips, workers=workers, progress=False)["summary"]
    return {k: float(v) for k, v in summary.items() if isinstance(v, (int, float))}


def _optimisation_step(task: nn.Module, optimizer, params: list, micro_batches: list,
                       grad_clip: float, where: str, precision: str = "fp32",
                       scaler: torch.amp.GradScaler | None = None,
                       world: distributed.World | None = None,
                       grad_norms: list[float] | None = None) -> dict[str, float]:
    """One optimizer step of :func:`fit` and :func:`train_steps` over ``micro_batches``
    (``(noisy, clean)`` waveforms on the run's device): per micro-batch the losses (under
    autocast for bf16/fp16; the STFT outside it, in fp32), a finiteness check and the backward
    pass of ``total / K``; then the gradients averaged over the ranks (``world``), unscaled
    (fp16), clipped, and the update. Returns the step's losses as floats: the mean over the
    micro-batches (and over the ranks). The gradient norm before clipping is appended to
    ``grad_norms`` when given (:func:`fit` summarises it per epoch: :func:`gradient_summary`)."""
    optimizer.zero_grad(set_to_none=True)
    count = len(micro_batches)
    sums: dict[str, float] = {}
    for index, (noisy, clean) in enumerate(micro_batches):
        spec_noisy, spec_clean = task.model.stft(noisy), task.model.stft(clean)
        with autocast(noisy.device, precision):
            losses = task(spec_noisy, spec_clean)
        if not torch.isfinite(losses["total"]):
            micro = f", micro-batch {index}" if count > 1 else ""
            raise FloatingPointError(f"non-finite loss at {where}{micro}: "
                                     f"{ {k: float(v.detach()) for k, v in losses.items()} }")
        share = losses["total"] / count
        (share if scaler is None else scaler.scale(share)).backward()
        for key, value in losses.items():
            sums[key] = sums.get(key, 0.0) + float(value.detach())
    means = {key: value / count for key, value in sums.items()}
    if world is not None:
        means = world.average(params, means)
    if scaler is not None:
        scaler.unscale_(optimizer)
    norm = nn.utils.clip_grad_norm_(params, grad_clip)
    if grad_norms is not None:
        grad_norms.append(float(norm))
    if scaler is None:
        optimizer.step()
    else:
        scaler.step(optimizer)                          # skipped when a gradient overflowed
        scaler.update()
    return means


def fit(task: nn.Module, train_set, valid_set, run_dir: str | Path,
        config: TrainConfig | None = None, progress: bool = True, resume: bool = True,
        description: dict | None = None, valid_workers: int | None = None) -> TrainResult:
    """Train ``task`` on ``train_set``, validating on ``valid_set`` after every epoch.

    Notebook: 03_training.ipynb

    Writes into ``run_dir``: ``last.state.safetensors`` (resume state), ``best.safetensors`` (+
    ``.json``) with the best epoch's network and its validation metrics, and
    ``history.json``; a distiller with parameters of its own also gets
    ``best.extras.safetensors`` (its calibration / fusion / adaptors at the best epoch), and
    one with learned calibration (I2S-TFCKD) records the mean weights on a fixed batch in
    ``history.json`` (``calibration_summary``: before training and after every epoch). With
    ``resume=True`` an existing state in ``run_dir`` is continued; its
    config must equal ``config``; a folder with files of an earlier run but no state is refused
    (its model is not overwritten). ``resume=False`` starts over and first deletes these files
    of any earlier run in ``run_dir``. ``description`` (e.g. preset, data manifest hash, command) is
    stored with the best weights.

    Distillation (Notebook: 05_distillation.ipynb): a distiller of
    :func:`tfckd_lite.distill.build_distiller` is a task too; its ``model`` is the student, so
    the student is what is validated and saved, and the training state holds the student and the
    calibration / fusion / adaptor parameters but not the frozen teacher. The one hook for it: a
    task with a ``resume_signature()`` method (a distiller: method, λ, options, teacher hash)
    has that stored in the state, and a resume whose signature differs is refused like one with
    another config. Plain tasks have none, and their state is written exactly as before.

    Only one process trains in a folder at a time: a second one gets
    :class:`tfckd_lite.files.FolderBusyError` at once (two would overwrite each other's state).
    The file names are :class:`~tfckd_lite.run_folder.RunFolder`'s.

    Launched by ``torchrun`` (Notebook: 03_training.ipynb), every rank calls ``fit`` with the
    same arguments: each trains on its share of the batches, rank 0 alone takes the folder's
    lock, validates and writes; every rank returns rank 0's history and best metrics
    (:mod:`tfckd_lite.distributed`).
    """
    from .files import folder_lock

    config = config or TrainConfig()
    with distributed.session(config.device) as world:
        lock = folder_lock(run_dir, RunFolder.LOCK, wait=False) if world.is_main \
            else contextlib.nullcontext()
        with lock:
            return _fit(task, train_set, valid_set, Path(run_dir), config, progress, resume,
                        description, valid_workers, world)


def _fit(task, train_set, valid_set, run_dir: Path, config, progress, resume, description,
         valid_workers, world: distributed.World) -> TrainResult:
    from .data import make_loader
    from .files import atomic_write_bytes
    import json

    device = world.device
    main = world.is_main                       # validates, writes files, shows progress
    model = task.model
    task.to(device)
    if world.distributed:
        distributed.check_replicable(task)
    params = list(task.trainable_parameters())
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    scaler = grad_scaler(device, config.precision)

    def loader(workers: int):
        return make_loader(train_set, batch_size=config.batch_size,
                           segment_seconds=config.segment_seconds, train=True, seed=config.seed,
                           remix_snr=config.remix_snr, num_workers=workers,
                           pin_memory=workers > 0 and device.type == "cuda")

    batches = loader(config.workers)
    accumulation = config.grad_accum
    steps_per_epoch = len(batches) // (world.size * accumulation)
    if config.steps_per_epoch:
        steps_per_epoch = min(steps_per_epoch, config.steps_per_epoch)
    if steps_per_epoch < 1:
        raise ValueError(f"the training set yields {len(batches)} batches of "
                         f"{config.batch_size} per epoch, fewer than one optimizer step takes "
                         f"({world.size} process(es) x grad_accum {accumulation})")
    total_steps = config.epochs * steps_per_epoch
    comparable = {k: v for k, v in asdict(config).items() if k not in _NOT_COMPARED}
    signature = task.resume_signature() if hasattr(task, "resume_signature") else None

    counters = {"epoch": 0, "step_in_epoch": 0, "global_step": 0, "history": [],
                "running": {}, "best": None, "config": comparable}
    if signature is not None:
        counters["task"] = signature
    if world.distributed:                       # absent: one process (as every older state)
        counters["world_size"] = world.size
    folder = RunFolder(run_dir)
    state_path = folder.state
    if resume and state_path.exists():
        counters = load_training_state(state_path, task, optimizer, device)
        # a field added to TrainConfig after the state was written is absent from it: its
        # default is what that older run did, so a run folder survives a library upgrade
        saved_config = {**_FIELD_DEFAULTS, **counters["config"]}
        if saved_config != comparable:
            changed = {k: (saved_config.get(k), comparable.get(k))
                       for k in sorted({*saved_config, *comparable})
                       if saved_config.get(k) != comparable.get(k)}
            raise ValueError(f"{state_path} was written with another config (saved, now): "
                             f"{changed}; use a new run folder or resume=False")
        saved = counters.get("task")
        if saved != signature:
            theirs, ours = saved or {}, signature or {}
            changed = {k: (theirs.get(k), ours.get(k)) for k in sorted({*theirs, *ours})
                       if theirs.get(k) != ours.get(k)}
            raise ValueError(f"{state_path} was written for another task (saved, now): "
                             f"{changed}; use a new run folder or resume=False")
        if counters.get("world_size", 1) != world.size:
            raise ValueError(f"{state_path} was written by a run of "
                             f"{counters.get('world_size', 1)} process(es), this one has "
                             f"{world.size}: its steps cut the batches differently; resume "
                             "with the same torchrun --nproc_per_node (and nodes)")
        if scaler is not None and "grad_scaler" in counters:
            scaler.load_state_dict(counters["grad_scaler"])
        if progress and main:
            print(f"resuming {run_dir} at epoch {counters['epoch'] + 1}, "
                  f"step {counters['step_in_epoch']}")
    else:
        earlier = folder.earlier_run_files()
        if earlier and resume:     # e.g. a finished run whose state was deleted: keep its model
            raise ValueError(f"{run_dir} holds files of an earlier run ({earlier[0].name}, ...) "
                             "but no training state to resume; use resume=False (--no-resume) "
                             "to start over, or a new run folder")
        for stale in earlier if main else ():   # starting over: they must not pass for ours
            stale.unlink()
    world.broadcast_state(task)                 # every rank starts from rank 0's weights

    def save_state():
        if scaler is not None:
            counters["grad_scaler"] = scaler.state_dict()
        if main:
            save_training_state(state_path, task, optimizer, counters, device)

    # A distiller with learned calibration records its mean weights on one fixed batch (the
    # first of epoch 0) before training and after each epoch: the weights' course over the run.
    probe = None
    if main and hasattr(task, "calibration_summary"):
        probe = model.stft(next(loader(0).select([0]))[0].to(device))
        if counters["global_step"] == 0 and "calibration_initial" not in counters:
            summary = task.calibration_summary(probe)
            if summary is not None:
                counters["calibration_initial"] = summary

    for epoch in range(counters["epoch"], config.epochs):
        task.train()
        started = time.perf_counter()
        running = counters["running"]
        bar = tqdm(total=steps_per_epoch, initial=counters["step_in_epoch"],
                   disable=not (progress and main), desc=f"epoch {epoch + 1}/{config.epochs}",
                   leave=False)
        batches.set_epoch(epoch)
        steps = range(counters["step_in_epoch"], steps_per_epoch)
        # this rank's micro-batches of the remaining steps, in the epoch's global sequence
        stream = batches.select([p for step in steps
                                 for p in world.micro_batches(step, accumulation)])
        for step in steps:
            micro = [tuple(t.to(device, non_blocking=batches.pin_memory) for t in next(stream))
                     for _ in range(accumulation)]
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(counters["global_step"], total_steps, config)
            losses = _optimisation_step(task, optimizer, params, micro, config.grad_clip,
                                        f"epoch {epoch + 1}, step {step}", config.precision,
                                        scaler, world, counters.setdefault("grad_norms", []))
            for key, value in losses.items():
                running[key] = running.get(key, 0.0) + value
            counters["step_in_epoch"] += 1
            counters["global_step"] += 1
            bar.update(1)
            bar.set_postfix(loss=f"{running['total'] / counters['step_in_epoch']:.4f}")
            if config.checkpoint_every and counters["global_step"] % config.checkpoint_every == 0:
                save_state()
        bar.close()
        if main:
            _end_of_epoch(task, model, valid_set, folder, config, counters, comparable,
                          description, signature, probe, epoch, started, progress,
                          valid_workers, optimizer)
        counters.update(epoch=epoch + 1, step_in_epoch=0, running={}, grad_norms=[])
        save_state()
        if main:
            atomic_write_bytes(folder.history_file,
                               (json.dumps(counters["history"], indent=2) + "\n").encode())
        world.barrier()                         # the others wait while rank 0 validates

    history, best = world.share((counters["history"], counters["best"]))
    return TrainResult(run_dir=run_dir, history=history, best_path=folder.best,
                       best_metrics=best)


def gradient_summary(norms: list[float], grad_clip: float) -> dict[str, float]:
    """An epoch's gradient norms before clipping, as ``history.json`` records them: the number
    of steps, the fraction whose norm exceeded ``grad_clip`` (clipped: the step's direction is
    kept but its size is the clip's, so a loss term that dominates the gradient leaves the
    others little say), the median and the 90th percentile of the finite norms, and the count
    of non-finite ones (fp16 overflow: the gradient scaler skipped the step).

    Notebook: 03_training.ipynb
    """
    values = np.asarray(norms, dtype=np.float64)
    finite = values[np.isfinite(values)]
    return {"steps": int(values.size),
            "clipped_fraction": float(np.mean(~(values <= grad_clip))) if values.size else 0.0,
            "median_norm": float(np.median(finite)) if finite.size else float("nan"),
            "p90_norm": float(np.percentile(finite, 90)) if finite.size else float("nan"),
            "non_finite": int(values.size - finite.size)}


def _end_of_epoch(task, model, valid_set, folder, config, counters, comparable, description,
                  signature, probe, epoch, started, progress, valid_workers, optimizer) -> None:
    """Rank 0 after an epoch: validation, the history record, the best model if it improved."""
    train_means = {k: v / max(1, counters["step_in_epoch"])
                   for k, v in counters["running"].items()}
    metrics = validate(model, valid_set, config.valid_clips, valid_workers)
    record = {"epoch": epoch + 1, "train": train_means, "valid": metrics,
              "lr": optimizer.param_groups[0]["lr"]}
    if counters.get("grad_norms"):      # absent from a state saved before it was recorded
        record["gradient"] = gradient_summary(counters["grad_norms"], config.grad_clip)
    summary = task.calibration_summary(probe) if probe is not None else None
    if summary is not None:
        if epoch == 0 and "calibration_initial" in counters:
            record["calibration_initial"] = counters.pop("calibration_initial")
        record["calibration"] = summary
    record["seconds"] = round(time.perf_counter() - started, 2)
    counters["history"].append(record)
    score = metrics.get("pesq_wb", float("nan"))
    if counters["best"] is None or score > counters["best"]["pesq_wb"]:
        counters["best"] = {"epoch": epoch + 1, **metrics}
        save_model(folder.best, model, metrics=counters["best"], train_config=comparable,
                   **(description or {}))
        if signature is not None and any(not k.startswith("student.")
                                         for k in task.state_dict()):
            save_distiller_extras(folder.best_extras, task, epoch=epoch + 1)
    if progress:
        print(f"epoch {epoch + 1}/{config.epochs}: loss {train_means['total']:.4f}, valid "
              f"PESQ-WB {metrics.get('pesq_wb', float('nan')):.3f}, SI-SDR "
              f"{metrics.get('si_sdr', float('nan')):.2f} dB ({record['seconds']:.0f} s)")


def train_steps(task: nn.Module, batches, steps: int, lr: float = 1e-3, grad_clip: float = 5.0,
                progress: bool = True, callback: Callable[[int, dict], None] | None = None
                ) -> list[dict[str, float]]:
    """A short live run for the notebooks: ``steps`` AdamW steps, no checkpoints, no validation.

    Notebooks: 04_calibration_weights.ipynb, 05_distillation.ipynb

    ``task`` is a :class:`SupervisedTask` or a distiller (its ``model`` gives the STFT);
    ``batches`` yields ``(noisy, clean)`` waveform batches and is iterated again from the start
    when it runs out (a ``make_loader`` loader moves to its next epoch then). ``callback(step,
    losses)`` runs after each step (e.g. to snapshot calibration weights). Returns one dict of
    named losses (floats) per step. Real training, with resume and best-epoch selection, is
    :func:`fit`.
    """
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    params = list(task.trainable_parameters())
    optimizer = torch.optim.AdamW(params, lr=lr)

    def endless():
        while True:
            count = 0
            for item in batches:
                count += 1
                yield item
            if count == 0:
                raise ValueError("the batches are empty")

    history: list[dict[str, float]] = []
    task.train()
    stream = endless()
    for step in tqdm(range(1, steps + 1), desc="steps", disable=not progress, leave=False):
        noisy, clean = next(stream)
        history.append(_optimisation_step(task, optimizer, params, [(noisy, clean)], grad_clip,
                                          f"step {step}"))
        if callback is not None:
            callback(step, history[-1])
    task.eval()
    return history


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
                  mics: str | None = None) -> list[str]:
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
    if not resume:
        argv.append("--no-resume")
    return argv


def run_training(config: TrainConfig, *, preset: str, data, out, method: str = "none",
                 teacher: str | None = None, kd_weight: float | None = None,
                 method_options: dict | None = None, resume: bool = True,
                 progress: bool = True, command: str | None = None,
                 mics: str | None = None) -> TrainResult:
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
    reduced set, VoiceBank and DNS; 4 or 8 for L3DAS23 with ``mics`` ``"A"`` or ``"AB"``).
    :func:`fit` trains on the ``train`` split of ``data`` and validates on ``valid``; the best
    model's description records the preset, the method, ``command`` (by default the
    equivalent :func:`training_argv` command line), the data manifest's sha256 and, for a
    distillation, ``kd_weight`` (the value used), ``method_options``, ``teacher`` (as given),
    ``teacher_sha256`` and ``teacher_preset``. Returns :func:`fit`'s :class:`TrainResult`.
    """
    import shlex

    from .data import manifest_sha256, open_corpus
    from .distill import METHODS, build_distiller
    from .models import build_model

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
            kd_weight=kd_weight, method_options=options, resume=resume, mics=mics))
    corpus = {} if mics is None else {"mics": mics}
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
    description["data_manifest_sha256"] = manifest_sha256(data)
    return fit(task, train_set, valid_set, out, config, resume=resume, description=description,
               progress=progress)


def microphones(dataset) -> int:
    """How many microphone channels the noisy side of ``dataset`` has (its first pair's).

    Notebook: 03_training.ipynb
    """
    if len(dataset) == 0:
        raise ValueError("the training split is empty")
    noisy = dataset[0][0]
    return 1 if noisy.dim() == 1 else int(noisy.shape[0])


# ------------------------------------------------------------------------------------ CLI

def register(subparsers) -> None:
    """``train`` and ``evaluate`` subcommands of ``python -m tfckd_lite``.

    Notebooks: 03_training.ipynb (plain training), 05_distillation.ipynb (``--method``)

    ``train --method M --teacher T`` distils teacher ``T`` (a shipped model name or a model
    file) into the ``--preset`` student with any method of ``tfckd_lite.distill.METHODS``,
    through the same loop, checkpoints and resume logic as plain training (``--method none``,
    the default). ``--method-option KEY=VALUE`` (repeatable) sets the method's own options
    (``METHODS[M].options``); values are ``true``/``false``, integers or numbers.
    """
    from .distill import METHODS

    p = subparsers.add_parser(
        "train", help="train a DPDCRN preset on a paired corpus, alone or distilled from a "
                      "teacher (--method)")
    p.add_argument("--preset", default=None,
                   help="lite-teacher, lite-student, paper-... (required unless --recipe)")
    p.add_argument("--data", required=True, help="corpus root (reduced set, VoiceBank, DNS, ...)")
    p.add_argument("--out", required=True, help="run folder (resumed if it holds a state)")
    p.add_argument("--mics", default=None, choices=("A", "B", "AB"),
                   help="L3DAS23 only: microphone A (4 channels, the default), B, or both (8)")
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
    p.add_argument("--max-clips", type=int, default=None)
    p.add_argument("--json", default=None, help="write per-clip scores and summary here")
    p.add_argument("--by", action="append", default=[], metavar="FIELD",
                   help="also print the scores per group of clips: noise, snr or speaker "
                        "(repeatable; corpora that log them)")
    p.add_argument("--device", default="cpu", help="cpu (default), auto, cuda or cuda:N")
    p.set_defaults(func=_evaluate_command)


#: options that take a Python object, settable from Python (build_distiller) only
_PYTHON_ONLY_OPTIONS = {"output_loss"}


def _usage_error(message: str) -> Exception:
    """A command-line mistake: ``python -m tfckd_lite`` prints it as one line (exit status 2)."""
    from .cli import UsageError

    return UsageError(message)


def _method_options(method: str, items: list[str]) -> dict:
    """``--method-option KEY=VALUE`` strings -> ``build_distiller`` options, checked."""
    from .distill import METHODS

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


def _load_teacher(spec: str, student: nn.Module) -> tuple[nn.Module, dict]:
    """``--teacher``: the teacher and what the run description records about it.

    A shipped model name or a model file; refused (before loading the weights) when its sample
    rate or STFT differ from the student's, since both must see the same spectra.
    """
    from . import pretrained
    from .checkpoint import (CheckpointError, load_model, model_description,
                             read_model_description)
    from .files import sha256_file

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
                          command="python -m tfckd_lite " + shlex.join(getattr(args, "argv", sys.argv[1:])))
    if distributed.launched_rank() == 0:
        print(f"best epoch {result.best_metrics['epoch']}: {result.best_path}")
    return 0


def _recipe_arguments(args):
    """The flags of ``train`` parsed again with a recipe's values (``--recipe``) and the dry-run
    budget (``--dry-run``) as their defaults, so that a flag given on the command line wins."""
    from . import recipes

    defaults: dict = {}
    if args.recipe:
        defaults.update(recipes.load_stage(args.recipe).settings())
    if args.dry_run:
        defaults.update(recipes.DRY_RUN)
    args.parser.set_defaults(**defaults)
    parsed = args.parser.parse_args(args.argv[args.argv.index("train") + 1:])
    parsed.argv = args.argv
    return parsed


def _evaluate_command(args) -> int:
    import json

    from .checkpoint import load_model
    from .files import atomic_write_bytes
    from .data import open_corpus
    from .metrics import evaluate, format_breakdown, summary_by

    device = resolve_device(args.device)       # "cuda" without one: refused before any work
    dataset = open_corpus(args.data, args.split)
    if args.model == "noisy":
        enhance = None
    else:
        from . import pretrained
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
