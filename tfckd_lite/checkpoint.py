"""Checkpoints without pickle: safetensors files whose header carries a JSON description.

Notebook: 03_training.ipynb

Two kinds of file, both written atomically (temporary file in the same folder, fsync, rename):

- a **model file** (``*.safetensors``): the network's weights plus, in the safetensors header
  metadata, ``{"format": "tfckd_lite.model", "config": {...DPDCRNConfig...}, "preset": ...,
  "stft": {...}, "sample_rate": ..., "library_version": ..., ...}``. A readable copy of that
  description is written next to it as ``*.json``; loading trusts only the header, so the two
  can never disagree about what the weights are.
- a **distiller extras file** (``*.extras.safetensors``): a distiller's own trained parameters
  (calibration blocks, fusion chains, adaptors) without the student or teacher, with the
  distiller's ``resume_signature()`` in the header; with the student's model file it rebuilds
  the trained distiller, e.g. to plot the calibration weights a shipped student learned with.
- a **training state** (``*.state.safetensors``): everything needed to resume - the trainable
  module's state dict, the optimiser's tensors, the RNG states - with counters, history and
  optimiser hyper-parameters in the header.

Loading never unpickles anything, and a file that is truncated, not safetensors, or a
safetensors file of someone else's (no ``format`` tag) raises :class:`CheckpointError` naming it.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from . import __version__
from .files import atomic_write_bytes
from .models import DPDCRN, DPDCRNConfig
from .stft import HOP_LENGTH, N_FFT, SAMPLE_RATE, WIN_LENGTH, segment_frames

MODEL_FORMAT = "tfckd_lite.model"
STATE_FORMAT = "tfckd_lite.training_state"
EXTRAS_FORMAT = "tfckd_lite.distiller_extras"


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: corrupted, foreign, or for another model."""


def _read(path: str | os.PathLike, expected_format: str) -> tuple[dict[str, torch.Tensor], dict]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    data = path.read_bytes()
    try:
        (header_len,) = struct.unpack("<Q", data[:8])
        if header_len > len(data) - 8:
            raise ValueError("header longer than the file (truncated?)")
        header = json.loads(data[8:8 + header_len])
        tensors = st_load(data)
    except Exception as exc:  # any parse failure means the same thing to the user
        raise CheckpointError(f"{path} is not a readable safetensors checkpoint "
                              f"(corrupted or truncated?): {exc}") from exc
    meta = header.get("__metadata__") or {}
    if meta.get("format") != expected_format:
        found = meta.get("format", "no tfckd_lite format tag")
        raise CheckpointError(f"{path} is not a {expected_format} file ({found}); was it made by "
                              f"another program, or is it a different kind of tfckd_lite file?")
    try:
        description = json.loads(meta["description"])
    except (KeyError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: the checkpoint description is missing or damaged") from exc
    return tensors, description


def _canonical_header(blob: bytes) -> bytes:
    """``blob`` with its safetensors header rewritten with sorted keys.

    safetensors writes its ``__metadata__`` from a hash map, so two saves of the same weights
    and description can order the keys differently and differ in bytes (and sha256, which the
    distillation experiment pins its teacher by). Sorting makes a file a pure function of its
    content. The tensor offsets count from the end of the header, so they stay valid; the
    header is padded with spaces to a multiple of 8 bytes, as safetensors itself does.
    """
    (header_len,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + header_len])
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + blob[8 + header_len:]


def _write(path, tensors: dict[str, torch.Tensor], description: dict, fmt: str) -> Path:
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    blob = st_save(tensors, metadata={"format": fmt, "description": json.dumps(description)})
    return atomic_write_bytes(path, _canonical_header(blob))


def model_description(model: DPDCRN, **extra: Any) -> dict:
    """The JSON description stored with a model's weights."""
    from dataclasses import asdict

    return {"config": asdict(model.config), "sample_rate": SAMPLE_RATE,
            "stft": {"n_fft": N_FFT, "hop_length": HOP_LENGTH, "win_length": WIN_LENGTH,
                     "window": "hann (periodic)", "center": True},
            "library_version": __version__, **extra}


def save_model(path: str | os.PathLike, model: DPDCRN, **extra: Any) -> Path:
    """Save a DPDCRN's weights as safetensors plus a readable ``.json`` next to it.

    Notebook: 03_training.ipynb

    ``extra`` (e.g. ``preset=``, ``metrics=``, ``data_manifest_sha256=``, ``command=``) is stored
    in the description. Returns the path of the weights.
    """
    path = Path(path)
    description = model_description(model, **extra)
    _write(path, model.state_dict(), description, MODEL_FORMAT)
    atomic_write_bytes(path.with_suffix(".json"),
                       (json.dumps(description, indent=2, sort_keys=True) + "\n").encode())
    return path


def read_model_description(path: str | os.PathLike) -> dict:
    """The description stored in a model file's header (validated like a full load)."""
    return _read(path, MODEL_FORMAT)[1]


def load_model(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> DPDCRN:
    """Build the DPDCRN described by a model file and load its weights (no pickle involved).

    Notebook: 03_training.ipynb
    """
    tensors, description = _read(path, MODEL_FORMAT)
    _check_stft(path, description)
    try:
        config = DPDCRNConfig(**description["config"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: unusable model config {description.get('config')}") from exc
    model = DPDCRN(config)
    _load_state(model, tensors, path, description)
    model.description = description
    return model.to(map_location).eval()


def load_weights(model: DPDCRN, path: str | os.PathLike) -> DPDCRN:
    """Load a model file into an existing DPDCRN, refusing weights of another configuration.

    Notebook: 03_training.ipynb
    """
    tensors, description = _read(path, MODEL_FORMAT)
    _check_stft(path, description)
    from dataclasses import asdict

    theirs, ours = description.get("config"), asdict(model.config)
    if theirs != ours:
        raise CheckpointError(
            f"{path} holds a {description.get('preset', 'DPDCRN')} with config {theirs}, but the "
            f"model has config {ours}; build it with tfckd_lite.checkpoint.load_model instead")
    _load_state(model, tensors, path, description)
    return model


def _check_stft(path, description: dict) -> None:
    if description.get("sample_rate") != SAMPLE_RATE or description.get("stft", {}).get("n_fft") != N_FFT:
        raise CheckpointError(f"{path} was trained with sample rate {description.get('sample_rate')}"
                              f" and STFT {description.get('stft')}; this library uses "
                              f"{SAMPLE_RATE} Hz and n_fft {N_FFT}")


def _load_state(module: torch.nn.Module, tensors: dict, path, description: dict) -> None:
    missing, unexpected = module.load_state_dict(tensors, strict=False)
    if missing or unexpected:
        raise CheckpointError(f"{path} does not match the model: missing {sorted(missing)[:5]}, "
                              f"unexpected {sorted(unexpected)[:5]}")


# ------------------------------------------------------------ distiller extras (calibration)

def save_distiller_extras(path: str | os.PathLike, distiller: torch.nn.Module, **extra: Any) -> Path:
    """Save a distiller's own parameters and buffers (everything but student and teacher).

    Notebook: 05_distillation.ipynb

    The header holds ``signature`` (the distiller's ``resume_signature()``: method, λ, options,
    teacher hash) and ``extra``; :func:`load_distiller_extras` refuses a distiller whose
    signature differs.
    """
    tensors = {k: v for k, v in distiller.state_dict().items() if not k.startswith("student.")}
    description = {"signature": distiller.resume_signature(), "library_version": __version__,
                   **extra}
    return _write(path, tensors, description, EXTRAS_FORMAT)


def load_distiller_extras(path: str | os.PathLike, distiller: torch.nn.Module) -> dict:
    """Load what :func:`save_distiller_extras` wrote into ``distiller``; returns its description.

    Notebook: 05_distillation.ipynb

    The student's weights are not touched (load them from its model file). Raises
    :class:`CheckpointError` when the file was written for another method, λ, option set or
    teacher, or when its tensors do not fit.
    """
    tensors, description = _read(path, EXTRAS_FORMAT)
    ours = distiller.resume_signature()
    theirs = description.get("signature") or {}
    if theirs != ours:
        changed = {k: (theirs.get(k), ours.get(k)) for k in sorted({*theirs, *ours})
                   if theirs.get(k) != ours.get(k)}
        raise CheckpointError(f"{path} holds the extras of another distiller (saved, this one): "
                              f"{changed}")
    state = {k: v for k, v in distiller.state_dict().items() if k.startswith("student.")}
    state.update(tensors)
    _load_state(distiller, state, path, description)
    return description


def load_trained_distiller(student_file: str | os.PathLike, extras_file: str | os.PathLike,
                           teacher: DPDCRN) -> torch.nn.Module:
    """The trained distiller of a distilled student's model file and its extras file (eval mode).

    Notebooks: 05_distillation.ipynb, 06_compare_spectrograms.ipynb (through
    ``pretrained.load_distiller``)

    Rebuilds ``build_distiller(method, teacher, student, ...)`` from the student's description
    (method, λ, options, batch size and segment length of its training run) around ``teacher``
    and loads the extras into it. :func:`load_distiller_extras` refuses extras written for
    another method, λ, option set or teacher (its hash is part of the signature).
    """
    from .distill import build_distiller
    from .losses import compressed_spectral_loss

    student = load_model(student_file)
    info = student.description
    if "method" not in info or "train_config" not in info:
        raise CheckpointError(f"{student_file} is not a distilled student (its description "
                              "names no distillation method or training run)")
    train = info["train_config"]
    frames = segment_frames(train["segment_seconds"])
    distiller = build_distiller(info["method"], teacher, student, train["batch_size"], frames,
                                se_loss=compressed_spectral_loss, kd_weight=info["kd_weight"],
                                **info.get("method_options", {}))
    load_distiller_extras(extras_file, distiller)
    return distiller.eval()


# ---------------------------------------------------------------- training state (resume)

def save_training_state(path: str | os.PathLike, module: torch.nn.Module,
                        optimizer: torch.optim.Optimizer, counters: dict) -> Path:
    """Everything a resumed run needs: module and optimiser tensors, RNG state, counters.

    Notebook: 03_training.ipynb

    ``counters`` must be JSON-serialisable (epoch, step, history, scheduler state, config).
    """
    tensors = {f"module.{k}": v for k, v in module.state_dict().items()}
    opt = optimizer.state_dict()
    for pid, state in opt["state"].items():
        for key, value in state.items():
            value = value if isinstance(value, torch.Tensor) else torch.tensor(value)
            tensors[f"optim.{pid}.{key}"] = value
    tensors["rng.torch"] = torch.get_rng_state()
    description = {"counters": counters, "optimizer_param_groups": opt["param_groups"],
                   "library_version": __version__}
    return _write(path, tensors, description, STATE_FORMAT)


def load_training_state(path: str | os.PathLike, module: torch.nn.Module,
                        optimizer: torch.optim.Optimizer) -> dict:
    """Restore what :func:`save_training_state` wrote; returns the counters.

    Notebook: 03_training.ipynb
    """
    tensors, description = _read(path, STATE_FORMAT)
    module_state = {k[len("module."):]: v for k, v in tensors.items() if k.startswith("module.")}
    _load_state(module, module_state, path, description)
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, pid, name = key.split(".", 2)
            state.setdefault(int(pid), {})[name] = value
    groups = description["optimizer_param_groups"]
    ours = optimizer.state_dict()["param_groups"]
    if [len(g["params"]) for g in groups] != [len(g["params"]) for g in ours]:
        raise CheckpointError(f"{path}: the optimiser in the checkpoint has parameter groups of "
                              f"another shape; is it from a different method or preset?")
    optimizer.load_state_dict({"state": state, "param_groups": groups})
    torch.set_rng_state(tensors["rng.torch"])
    return description["counters"]
