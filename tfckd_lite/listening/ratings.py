"""Ratings of a listening test and the CSV file that keeps them between sessions.

Notebook: 08_judging_methods.ipynb

One row per (listener, trial, stimulus): an integer from 0 (bad) to 100 (excellent). Each saved
trial rewrites the whole file atomically (:func:`tfckd_lite.files.atomic_write_bytes`), so a
crash leaves the file as it was before that trial, never half a row. Every row carries the
design's fingerprint: a file written for another design (another seed, other clips or systems)
is refused rather than mixed in.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Mapping

import numpy as np

from ..files import atomic_write_bytes
from .design import ListeningTest

COLUMNS = ("listener", "test_seed", "design", "trial", "clip", "stimulus_label", "system",
           "rating", "timestamp")
LOWEST, HIGHEST = 0, 100


class ForeignDesignError(ValueError):
    """A ratings file holds ratings of another listening-test design.

    Notebook: 08_judging_methods.ipynb
    """


@dataclass(frozen=True)
class Rating:
    """One listener's score of one stimulus in one trial.

    Notebook: 08_judging_methods.ipynb
    """

    listener: str
    trial: int
    clip: str
    label: str
    system: str
    rating: int
    timestamp: str = ""


def check_rating(value, what: str = "rating") -> int:
    """``value`` as an int if it is a whole number from 0 to 100; ``ValueError`` otherwise.

    Notebook: 08_judging_methods.ipynb
    """
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{what} must be a whole number from {LOWEST} to {HIGHEST}, got "
                         f"{value!r} ({type(value).__name__})")
    if not LOWEST <= value <= HIGHEST:
        raise ValueError(f"{what} must lie from {LOWEST} to {HIGHEST}, got {value}")
    return int(value)


class RatingsFile:
    """``RatingsFile(path, test)``: the ratings of ``test`` (a :class:`ListeningTest`) in a CSV.

    Notebook: 08_judging_methods.ipynb

    :meth:`load` reads and checks every row; :meth:`save_trial` appends one trial of one
    listener; :meth:`completed_trials` and :meth:`next_trial` tell a later session where to
    resume. A missing file is an empty one (created on the first save).
    """

    def __init__(self, path, test: ListeningTest):
        if not isinstance(test, ListeningTest):
            raise TypeError(f"test must be a ListeningTest (design_test(...)), got "
                            f"{type(test).__name__}")
        self.path = Path(path)
        self.test = test

    # ---------------------------------------------------------------------------- reading
    def load(self) -> list[Rating]:
        """Every rating in the file, checked against the design (in file order)."""
        if not self.path.exists():
            return []
        text = self.path.read_text(encoding="utf-8")
        rows = list(csv.reader(io.StringIO(text)))
        if not rows:
            return []
        if tuple(rows[0]) != COLUMNS:
            raise ValueError(f"{self.path} is not a ratings file: its header is {rows[0]}, "
                             f"expected {list(COLUMNS)}")
        ratings, seen = [], set()
        for line, row in enumerate(rows[1:], start=2):
            if len(row) != len(COLUMNS):
                raise ValueError(f"{self.path}, line {line}: {len(row)} fields, expected "
                                 f"{len(COLUMNS)} (the file was cut short or edited by hand)")
            record = dict(zip(COLUMNS, row))
            if record["design"] != self.test.fingerprint:
                raise ForeignDesignError(
                    f"{self.path} holds ratings of another design (fingerprint "
                    f"{record['design']}, seed {record['test_seed']}); this test (seed "
                    f"{self.test.seed}) is {self.test.fingerprint}. Use another file, or the "
                    f"design those ratings were made with")
            try:
                rating = self._checked_row(record)
            except (ValueError, KeyError, IndexError) as error:
                raise ValueError(f"{self.path}, line {line}: {error}") from None
            key = (rating.listener, rating.trial, rating.system)
            if key in seen:
                raise ValueError(f"{self.path}, line {line}: a second rating of {rating.system} "
                                 f"in trial {rating.trial} by {rating.listener!r}")
            seen.add(key)
            ratings.append(rating)
        return ratings

    def _checked_row(self, record: dict) -> Rating:
        trial = self.test.trial(int(record["trial"]))
        if record["clip"] != trial.clip:
            raise ValueError(f"trial {trial.index} plays clip {trial.clip}, the row says "
                             f"{record['clip']}")
        if trial.system_of(record["stimulus_label"]) != record["system"]:
            raise ValueError(f"label {record['stimulus_label']} of trial {trial.index} is "
                             f"{trial.system_of(record['stimulus_label'])}, the row says "
                             f"{record['system']}")
        value = record["rating"]
        if not value.lstrip("-").isdigit():
            raise ValueError(f"rating {value!r} is not a whole number")
        return Rating(record["listener"], trial.index, trial.clip, record["stimulus_label"],
                      record["system"], check_rating(int(value)), record["timestamp"])

    def completed_trials(self, listener: str) -> list[int]:
        """Indices of the trials ``listener`` has rated completely, in increasing order."""
        count: dict[int, int] = {}
        for r in self.load():
            if r.listener == listener:
                count[r.trial] = count.get(r.trial, 0) + 1
        return sorted(t for t, n in count.items() if n == len(self.test.stimuli))

    def next_trial(self, listener: str) -> int | None:
        """The first trial ``listener`` has not completed, ``None`` when all are done."""
        done = set(self.completed_trials(listener))
        return next((t.index for t in self.test.trials if t.index not in done), None)

    # ---------------------------------------------------------------------------- writing
    def save_trial(self, listener: str, trial: int, ratings: Mapping[str, int]) -> list[Rating]:
        """Add ``listener``'s ratings of trial ``trial``: ``{system: 0..100}`` for every stimulus.

        Returns the new rows. Refused with ``ValueError``: an empty listener name, a rating
        that is not a whole number from 0 to 100, a system the trial does not play, a missing
        one, and a trial this listener has already rated (the file is left unchanged). Rows of
        an incomplete trial (which these atomic writes never leave, but a hand-edited file
        may) are replaced.
        """
        listener = str(listener).strip()
        if not listener:
            raise ValueError("a listener name is needed (it keeps listeners apart in the file)")
        if any(c in listener for c in "\r\n"):
            raise ValueError("a listener name must fit on one line")
        shown = self.test.trial(trial)
        unknown = sorted(set(ratings) - set(shown.stimuli))
        if unknown:
            raise ValueError(f"unknown system(s) {unknown}: trial {shown.index} plays "
                             f"{sorted(shown.stimuli)}")
        missing = sorted(set(shown.stimuli) - set(ratings))
        if missing:
            raise ValueError(f"trial {shown.index} needs a rating of every stimulus; missing: "
                             f"{missing}")
        values = {s: check_rating(v, f"rating of {s}") for s, v in ratings.items()}
        existing = self.load()
        if shown.index in self.completed_trials(listener):
            raise ValueError(f"{listener!r} has already rated trial {shown.index} (clip "
                             f"{shown.clip}); ratings are not overwritten")
        kept = [r for r in existing if (r.listener, r.trial) != (listener, shown.index)]
        stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
        new = [Rating(listener, shown.index, shown.clip, shown.label_of(s), s, values[s], stamp)
               for s in shown.stimuli]
        self._write(kept + new)
        return new

    def _write(self, ratings: list[Rating]) -> None:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(COLUMNS)
        for r in ratings:
            writer.writerow([r.listener, self.test.seed, self.test.fingerprint, r.trial, r.clip,
                             r.label, r.system, r.rating, r.timestamp])
        atomic_write_bytes(self.path, buffer.getvalue().encode("utf-8"))
