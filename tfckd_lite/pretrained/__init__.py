"""Trained lite models shipped with the library (safetensors + JSON, no pickle).

Notebook: 03_training.ipynb

Each ``<name>.safetensors`` has a ``<name>.json`` next to it with its config, validation and
test metrics and the exact command that reproduces it (``make pretrained``).
"""

from __future__ import annotations

import json
from pathlib import Path

from ..checkpoint import load_model

PRETRAINED_DIR = Path(__file__).resolve().parent


def available() -> list[str]:
    """Names of the shipped models.

    Notebook: 03_training.ipynb
    """
    return sorted(p.stem for p in PRETRAINED_DIR.glob("*.safetensors"))


def path(name: str) -> Path:
    """File of a shipped model; a clear error lists what exists.

    Notebook: 03_training.ipynb
    """
    file = PRETRAINED_DIR / f"{name}.safetensors"
    if not file.is_file():
        raise KeyError(f"no pretrained model {name!r}; available: {available()}")
    return file


def describe(name: str) -> dict:
    """The JSON description of a shipped model (config, metrics, reproducing command).

    Notebook: 03_training.ipynb
    """
    return json.loads(path(name).with_suffix(".json").read_text())


def load(name: str, map_location="cpu"):
    """A ready DPDCRN (eval mode) with the shipped weights of ``name``.

    Notebook: 03_training.ipynb
    """
    return load_model(path(name), map_location=map_location)
