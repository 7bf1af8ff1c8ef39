"""Where the notebooks keep what they build: generated data sets and run folders.

Notebook: 00_overview.ipynb

A notebook must run both inside the repository and copied alone into an empty folder (a Colab
session, a JupyterHub home), so no notebook names a path relative to the repository. It asks
here instead:

- in a **source checkout** (the library imported from the repository, e.g. after ``make lab``),
  data sets live in ``<checkout>/data/generated/<profile>`` and runs in ``<checkout>/runs/``,
  both git-ignored, as the Makefile and the README use them;
- **elsewhere** (the library installed from a wheel), data sets go to the user's cache,
  ``$XDG_CACHE_HOME/tfckd_lite/data/<profile>`` (default ``~/.cache/...``), since they are
  rebuilt deterministically in seconds, and runs to ``runs/`` in the current folder, next to
  the notebook, where the user sees them;
- ``$TFCKD_DATA`` overrides the data folder in both cases (``$TFCKD_DATA/<profile>``), e.g. to
  share one copy between the users of a JupyterHub or to point the tests at a temporary set.
"""

from __future__ import annotations

import os
from pathlib import Path

DATA_ENV = "TFCKD_DATA"
# What marks the repository's root: the project file next to the notebook collection.
_CHECKOUT_MARKERS = ("pyproject.toml", "notebooks")


def source_checkout() -> Path | None:
    """The repository the library is imported from, or None when it is installed from a wheel.

    Notebook: 00_overview.ipynb
    """
    root = Path(__file__).resolve().parents[1]
    return root if all((root / marker).exists() for marker in _CHECKOUT_MARKERS) else None


def data_dir(profile: str) -> Path:
    """The folder of a generated data set (``build_dataset(data_dir("mini"), profile="mini")``).

    Notebook: 00_overview.ipynb
    """
    if not profile or Path(profile).name != profile:
        raise ValueError(f"a data set profile is a plain name like 'mini', got {profile!r}")
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV]).expanduser() / profile
    checkout = source_checkout()
    if checkout is not None:
        return checkout / "data" / "generated" / profile
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache).expanduser() / "tfckd_lite" / "data" / profile


def runs_dir() -> Path:
    """The folder that holds the notebooks' training runs.

    Notebook: 03_training.ipynb
    """
    checkout = source_checkout()
    return checkout / "runs" if checkout is not None else Path("runs")
