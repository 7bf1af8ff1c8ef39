"""The training loop: one optimisation step, :func:`fit` (validation, best model, exact resume)
and :func:`train_steps` (a short live run for the notebooks).

Notebook: 03_training.ipynb

The choices behind the loop (optimizer, schedule, clipping, segments, resumability, scale-out)
are listed in :mod:`tfckd_lite.train`.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from .. import distributed
from ..checkpoint import (load_training_state, save_distiller_extras, save_model,
                          save_training_state)
from ..losses import compressed_spectral_loss
from ..precision import as_fp32, autocast, full_precision, grad_scaler
from ..run_folder import RunFolder
from .config import _FIELD_DEFAULTS, _NOT_COMPARED, TrainConfig


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
    from ..metrics import evaluate

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
    from ..files import folder_lock

    config = config or TrainConfig()
    with distributed.session(config.device) as world:
        lock = folder_lock(run_dir, RunFolder.LOCK, wait=False) if world.is_main \
            else contextlib.nullcontext()
        with lock:
            return _fit(task, train_set, valid_set, Path(run_dir), config, progress, resume,
                        description, valid_workers, world)


def _fit(task, train_set, valid_set, run_dir: Path, config, progress, resume, description,
         valid_workers, world: distributed.World) -> TrainResult:
    from ..data import make_loader
    from ..files import atomic_write_bytes
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
