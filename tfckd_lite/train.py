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

import contextlib
import math
import time
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Callable

import torch
from torch import nn
from tqdm.auto import tqdm

from . import distributed
from .checkpoint import (load_training_state, save_distiller_extras, save_model,
                         save_training_state)
from .devices import DeviceError, resolve_device
from .losses import compressed_spectral_loss
from .precision import as_fp32, autocast, check_precision, full_precision, grad_scaler

STATE_FILE = "last.state.safetensors"
BEST_FILE = "best.safetensors"
BEST_DESCRIPTION_FILE = "best.json"              # written by save_model next to BEST_FILE
BEST_EXTRAS_FILE = "best.extras.safetensors"     # a distiller's calibration/fusion/adaptors


@dataclass
class TrainConfig:
    """Hyper-parameters of a training run (stored in the checkpoint; a resume must match).

    Notebook: 03_training.ipynb
    """

    epochs: int = 30
    batch_size: int = 8
    segment_seconds: float = 1.0
    lr: float = 1e-3
    weight_decay: float = 0.0
    warmup_steps: int = 200
    final_lr_ratio: float = 0.05
    grad_clip: float = 5.0
    seed: int = 0
    steps_per_epoch: int | None = None      # cap on optimizer steps per epoch (None: all)
    valid_clips: int | None = None          # cap on validation utterances (None: all)
    checkpoint_every: int = 0               # also save the state every N steps (0: epochs only)
    device: str = "auto"                    # auto | cpu | cuda | cuda:N (devices.py)
    remix_snr: list[float] | None = None    # [low, high] dB: remix every crop (None: as built)
    precision: str = "fp32"                 # fp32 | bf16 | fp16 (precision.py)
    grad_accum: int = 1                     # micro-batches of batch_size per optimizer step
    workers: int = 0                        # batch-loading processes (0: this process)

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


#: fields that do not change a run's numbers: a resume may change them
_NOT_COMPARED = ("device", "workers")
#: TrainConfig's field defaults, for comparing with states written before a field existed
_FIELD_DEFAULTS = {f.name: f.default for f in fields(TrainConfig)
                   if f.default is not MISSING and f.name not in _NOT_COMPARED}


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
    run_dir: Path
    history: list[dict] = field(default_factory=list)
    best_path: Path | None = None
    best_metrics: dict | None = None


def manifest_sha256(data_root: str | Path) -> str | None:
    """sha256 of a reduced dataset's manifest (None for a real corpus, which has none).

    Notebook: 03_training.ipynb

    The manifest lists every file with its own sha256, so this one hash pins the exact data a
    model was trained on.
    """
    import hashlib

    from .data import load_manifest

    try:
        load_manifest(data_root)                   # validates that it is ours
    except (FileNotFoundError, ValueError):
        return None
    from .data.builder import MANIFEST
    return hashlib.sha256((Path(data_root) / MANIFEST).read_bytes()).hexdigest()


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
                       world: distributed.World | None = None) -> dict[str, float]:
    """One optimizer step of :func:`fit` and :func:`train_steps` over ``micro_batches``
    (``(noisy, clean)`` waveforms on the run's device): per micro-batch the losses (under
    autocast for bf16/fp16; the STFT outside it, in fp32), a finiteness check and the backward
    pass of ``total / K``; then the gradients averaged over the ranks (``world``), unscaled
    (fp16), clipped, and the update. Returns the step's losses as floats: the mean over the
    micro-batches (and over the ranks)."""
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
    nn.utils.clip_grad_norm_(params, grad_clip)
    if scaler is None:
        optimizer.step()
    else:
        scaler.step(optimizer)                          # skipped when a gradient overflowed
        scaler.update()
    return means


#: held by the process training in a run folder (a second trainer there is refused)
LOCK_FILE = ".train.lock"


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
    :class:`tfckd_lite.audio.FolderBusyError` at once (two would overwrite each other's state).

    Launched by ``torchrun`` (Notebook: 03_training.ipynb), every rank calls ``fit`` with the
    same arguments: each trains on its share of the batches, rank 0 alone takes the folder's
    lock, validates and writes; every rank returns rank 0's history and best metrics
    (:mod:`tfckd_lite.distributed`).
    """
    from .audio import folder_lock

    config = config or TrainConfig()
    with distributed.session(config.device) as world:
        lock = folder_lock(run_dir, LOCK_FILE, wait=False) if world.is_main \
            else contextlib.nullcontext()
        with lock:
            return _fit(task, train_set, valid_set, Path(run_dir), config, progress, resume,
                        description, valid_workers, world)


def _fit(task, train_set, valid_set, run_dir: Path, config, progress, resume, description,
         valid_workers, world: distributed.World) -> TrainResult:
    from .audio import atomic_write_bytes
    from .data import make_loader
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
    state_path = run_dir / STATE_FILE
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
        earlier = [run_dir / name for name in (STATE_FILE, BEST_FILE, BEST_DESCRIPTION_FILE,
                                               BEST_EXTRAS_FILE, "history.json")
                   if (run_dir / name).exists()]
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
                                        scaler, world)
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
            _end_of_epoch(task, model, valid_set, run_dir, config, counters, comparable,
                          description, signature, probe, epoch, started, progress,
                          valid_workers, optimizer)
        counters.update(epoch=epoch + 1, step_in_epoch=0, running={})
        save_state()
        if main:
            atomic_write_bytes(run_dir / "history.json",
                               (json.dumps(counters["history"], indent=2) + "\n").encode())
        world.barrier()                         # the others wait while rank 0 validates

    history, best = world.share((counters["history"], counters["best"]))
    return TrainResult(run_dir=run_dir, history=history, best_path=run_dir / BEST_FILE,
                       best_metrics=best)


def _end_of_epoch(task, model, valid_set, run_dir, config, counters, comparable, description,
                  signature, probe, epoch, started, progress, valid_workers, optimizer) -> None:
    """Rank 0 after an epoch: validation, the history record, the best model if it improved."""
    train_means = {k: v / max(1, counters["step_in_epoch"])
                   for k, v in counters["running"].items()}
    metrics = validate(model, valid_set, config.valid_clips, valid_workers)
    record = {"epoch": epoch + 1, "train": train_means, "valid": metrics,
              "lr": optimizer.param_groups[0]["lr"]}
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
        save_model(run_dir / BEST_FILE, model, metrics=counters["best"], train_config=comparable,
                   **(description or {}))
        if signature is not None and any(not k.startswith("student.")
                                         for k in task.state_dict()):
            save_distiller_extras(run_dir / BEST_EXTRAS_FILE, task, epoch=epoch + 1)
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
    from .precision import PRECISIONS

    defaults = TrainConfig()
    p = subparsers.add_parser(
        "train", help="train a DPDCRN preset on a paired corpus, alone or distilled from a "
                      "teacher (--method)")
    p.add_argument("--preset", required=True, help="lite-teacher, lite-student, paper-...")
    p.add_argument("--data", required=True, help="corpus root (reduced set, VoiceBank, DNS, ...)")
    p.add_argument("--out", required=True, help="run folder (resumed if it holds a state)")
    p.add_argument("--epochs", type=int, default=defaults.epochs)
    p.add_argument("--batch-size", type=int, default=defaults.batch_size,
                   help="utterances per forward pass of one process (the micro-batch; the "
                        "calibration blocks are built for it), in every mode")
    p.add_argument("--segment-seconds", type=float, default=defaults.segment_seconds)
    p.add_argument("--lr", type=float, default=defaults.lr)
    p.add_argument("--warmup-steps", type=int, default=defaults.warmup_steps)
    p.add_argument("--steps-per-epoch", type=int, default=None)
    p.add_argument("--valid-clips", type=int, default=None)
    p.add_argument("--checkpoint-every", type=int, default=0)
    p.add_argument("--seed", type=int, default=defaults.seed)
    p.add_argument("--remix-snr", type=float, nargs=2, default=None, metavar=("LOW", "HIGH"),
                   help="remix every training crop on the fly with another pair's noise at an "
                        "SNR drawn from [LOW, HIGH] dB (default: the pairs as built; 0 20 is "
                        "the range measured in the README)")
    p.add_argument("--device", default=defaults.device,
                   help="auto (a GPU when present), cpu, cuda or cuda:N; under torchrun each "
                        "process takes cuda:LOCAL_RANK")
    p.add_argument("--precision", default=defaults.precision, choices=list(PRECISIONS),
                   help="fp32 (default), or bf16 / fp16 autocast with fp32 islands "
                        "(tfckd_lite/precision.py)")
    p.add_argument("--grad-accum", type=int, default=defaults.grad_accum, metavar="K",
                   help="micro-batches of --batch-size per optimizer step (default 1)")
    p.add_argument("--workers", type=int, default=defaults.workers,
                   help="processes loading training batches (default 0: this process); the "
                        "batches are the same")
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
    p.set_defaults(func=_train_command)

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


def _usage_error(message: str) -> SystemExit:
    """A command-line mistake: reported as one line on stderr (exit status 1), no traceback."""
    return SystemExit(f"python -m tfckd_lite train: error: {message}")


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
    import hashlib

    from . import pretrained
    from .checkpoint import (CheckpointError, load_model, model_description,
                             read_model_description)

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
    info = {"teacher": spec, "teacher_sha256": hashlib.sha256(file.read_bytes()).hexdigest(),
            "teacher_preset": theirs.get("preset")}
    return teacher, info


def _train_command(args) -> int:
    """``python -m tfckd_lite train``: plain training, or distillation with ``--method``.

    Notebook: 05_distillation.ipynb

    With a method other than ``none``: the student (``--preset``, initialised from ``--seed``
    as in plain training) and the teacher go into ``build_distiller`` with batch size
    ``--batch-size`` and ``num_frames(round(segment_seconds * 16000))`` frames (the calibration
    blocks' fixed shape); ``fit`` trains it and saves the best *student*, whose description
    adds ``method``, ``kd_weight`` (the value used), ``method_options``, ``teacher`` (name or
    path as given), ``teacher_sha256`` (of the file) and ``teacher_preset``.
    """
    import shlex
    import sys

    from .data import open_corpus
    from .distill import build_distiller
    from .models import build_model
    from .stft import SAMPLE_RATE, num_frames

    config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size,
                         segment_seconds=args.segment_seconds, lr=args.lr,
                         warmup_steps=args.warmup_steps, steps_per_epoch=args.steps_per_epoch,
                         valid_clips=args.valid_clips, checkpoint_every=args.checkpoint_every,
                         seed=args.seed, device=args.device, remix_snr=args.remix_snr,
                         precision=args.precision, grad_accum=args.grad_accum,
                         workers=args.workers)
    launched = distributed.world_from_env()
    try:                    # before any work: "cuda" on a machine without one is refused now
        if launched is None:
            resolve_device(config.device)
        else:
            distributed.rank_device(config.device, launched[2])
    except DeviceError as error:
        raise _usage_error(str(error)) from None
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
    torch.manual_seed(config.seed)
    model = build_model(args.preset)
    description = {"preset": args.preset,
                   "command": getattr(args, "command_line", None)
                   or "python -m tfckd_lite " + shlex.join(sys.argv[1:]),
                   "method": args.method}
    if args.method == "none":
        task = SupervisedTask(model)
    else:
        teacher, teacher_info = _load_teacher(args.teacher, model)
        frames = num_frames(round(config.segment_seconds * SAMPLE_RATE))
        task = build_distiller(args.method, teacher, model, config.batch_size, frames,
                               se_loss=compressed_spectral_loss, kd_weight=args.kd_weight,
                               **options)
        description.update(kd_weight=task.kd_weight, method_options=options, **teacher_info)
        if distributed.launched_rank() == 0:
            print(f"distilling {args.teacher} into {args.preset} with {args.method} "
                  f"(kd_weight {task.kd_weight:g}, batch {config.batch_size} x {frames} frames)")
    description["data_manifest_sha256"] = manifest_sha256(args.data)
    result = fit(task, open_corpus(args.data, "train"),
                 open_corpus(args.data, "valid"), args.out, config,
                 resume=not args.no_resume, description=description,
                 progress=getattr(args, "progress", True))
    if distributed.launched_rank() == 0:
        print(f"best epoch {result.best_metrics['epoch']}: {result.best_path}")
    return 0


def _evaluate_command(args) -> int:
    import json

    from .audio import atomic_write_bytes
    from .checkpoint import load_model
    from .data import open_corpus
    from .metrics import evaluate, format_breakdown, summary_by

    try:
        device = resolve_device(args.device)
    except DeviceError as error:
        raise SystemExit(f"python -m tfckd_lite evaluate: error: {error}") from None
    dataset = open_corpus(args.data, args.split)
    if args.model == "noisy":
        enhance = None
    else:
        from . import pretrained
        enhance = load_model(pretrained.resolve(args.model),
                             map_location=device).enhance
    report = evaluate(enhance, dataset, max_clips=args.max_clips)
    for key, value in report["summary"].items():
        print(f"{key:<28} {value:.3f}" if isinstance(value, float) else f"{key:<28} {value}")
    for field in args.by:
        report.setdefault("by", {})[field] = breakdown = summary_by(report, dataset, field)
        print("\n" + format_breakdown(breakdown, field))
    if args.json:
        atomic_write_bytes(args.json, (json.dumps(report, indent=2, default=str) + "\n").encode())
    return 0
