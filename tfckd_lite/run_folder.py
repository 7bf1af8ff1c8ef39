"""A training run's folder and the names of the files in it.

Notebook: 03_training.ipynb

``train`` (:func:`tfckd_lite.train.fit`) writes one run into one folder::

    best.safetensors          the network at the best epoch (by validation PESQ-WB)
    best.json                 its description, readable (written by save_model next to it)
    best.extras.safetensors   a distiller's calibration / fusion / adaptors at that epoch
    last.state.safetensors    the resume state: weights, optimiser moments, RNG, counters
    history.json              one record per finished epoch
    .train.lock               held by the process training in the folder
    train.log                 the output of a run trained as a subprocess (experiment)
    test.json                 cached test-split scores of the best model (experiment)

:class:`RunFolder` is the one place those names are spelled; everything else asks it for the
paths, and for what the files say (how many epochs are done, whether an unfinished run lost
its resume state).
"""

from __future__ import annotations

import json
from pathlib import Path


class RunFolder:
    """The files of one training run in ``path``.

    Notebook: 03_training.ipynb
    """

    BEST = "best.safetensors"
    BEST_DESCRIPTION = Path(BEST).with_suffix(".json").name     # where save_model puts it
    BEST_EXTRAS = "best.extras.safetensors"
    STATE = "last.state.safetensors"
    HISTORY = "history.json"
    LOCK = ".train.lock"
    LOG = "train.log"
    TEST_SCORES = "test.json"

    def __init__(self, path):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, RunFolder) and other.path == self.path

    def __hash__(self) -> int:
        return hash(self.path)

    # paths --------------------------------------------------------------------------------
    @property
    def best(self) -> Path:
        return self.path / self.BEST

    @property
    def best_description(self) -> Path:
        return self.path / self.BEST_DESCRIPTION

    @property
    def best_extras(self) -> Path:
        return self.path / self.BEST_EXTRAS

    @property
    def state(self) -> Path:
        return self.path / self.STATE

    @property
    def history_file(self) -> Path:
        return self.path / self.HISTORY

    @property
    def log(self) -> Path:
        return self.path / self.LOG

    @property
    def test_scores(self) -> Path:
        return self.path / self.TEST_SCORES

    def outputs(self, extras: bool = True) -> list[Path]:
        """What a run's epochs produce (best weights, their description, the history and, with
        ``extras``, the distiller extras), whether or not they exist yet."""
        listed = [self.best, self.best_description, self.history_file]
        return listed + [self.best_extras] if extras else listed

    def earlier_run_files(self) -> list[Path]:
        """The files of an earlier run that exist here (resume state and outputs): what a run
        that starts over must delete so that they do not pass for its own."""
        candidates = [self.state, self.best, self.best_description, self.best_extras,
                      self.history_file]
        return [path for path in candidates if path.exists()]

    # what the files say --------------------------------------------------------------------
    def history(self) -> list[dict]:
        """The epoch records of ``history.json`` ([] before the first epoch has finished).

        Notebook: 03_training.ipynb
        """
        return json.loads(self.history_file.read_text()) if self.history_file.is_file() else []

    def epochs_done(self) -> int:
        """How many epochs ``history.json`` records."""
        return len(self.history())

    def finished(self, epochs: int) -> bool:
        """Whether the run has trained all ``epochs`` epochs.

        Notebook: 05_distillation.ipynb
        """
        return self.history_file.is_file() and self.epochs_done() >= epochs

    def orphaned(self, epochs: int) -> bool:
        """The folder holds outputs of an unfinished run but not its resume state (e.g. they
        were committed from another machine, where the state is not kept): nothing can be
        resumed, so the run must start over (``train`` refuses such a folder otherwise).

        Notebook: 05_distillation.ipynb
        """
        return (not self.state.is_file() and not self.finished(epochs)
                and any(path.is_file() for path in self.outputs()))
