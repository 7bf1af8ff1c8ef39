"""Analysis of listening-test ratings: post-screening, means with intervals, paired differences
against the student alone, and the ratings beside the objective scores of the same clips.

Notebook: 08_judging_methods.ipynb

The intervals are t intervals over the individual ratings (one per listener and trial), the
statistic ITU-R BS.1534-3 asks a MUSHRA report to give. What they answer: how far a mean could
move with another draw of (listener, clip) ratings *like these*, each counted as independent.
Ratings of one listener (and of one clip) are correlated, so with few listeners the interval
is too narrow for a claim about listeners in general; the paired differences remove the
listener's and clip's own level (each difference is taken within one listener and trial),
which is why they are much tighter and the better test of "does distillation help".
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
from scipy import stats

from ..compare.computations import METRIC_LABELS
from .design import REFERENCE
from .ratings import Rating

#: BS.1534-3 post-screening: a listener who rates the hidden reference below ``SCREEN_BELOW``
#: in more than ``SCREEN_SHARE`` of the trials is excluded.
SCREEN_BELOW, SCREEN_SHARE = 90, 0.15


def t_interval(values, confidence: float = 0.95) -> dict:
    """``{"mean", "low", "high", "sd", "n"}``: the mean of ``values`` and its t interval.

    Notebook: 08_judging_methods.ipynb

    With one value the interval is undefined (NaN ends); equal values give a zero width.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence!r}")
    x = np.asarray(values, dtype=np.float64).reshape(-1)
    if x.size == 0:
        raise ValueError("no values to summarise")
    mean = float(x.mean())
    if x.size < 2:
        return {"mean": mean, "low": math.nan, "high": math.nan, "sd": math.nan, "n": 1}
    sd = float(x.std(ddof=1))
    half = float(stats.t.ppf(0.5 + confidence / 2, x.size - 1)) * sd / math.sqrt(x.size)
    return {"mean": mean, "low": mean - half, "high": mean + half, "sd": sd, "n": int(x.size)}


def summarise_ratings(ratings: Sequence[Rating], confidence: float = 0.95) -> dict[str, dict]:
    """``{system: t_interval of its ratings}``, highest mean first.

    Notebook: 08_judging_methods.ipynb

    Every rating of a system (all listeners, all trials) is one value; screen the listeners
    first (:func:`post_screen`).
    """
    by_system: dict[str, list[int]] = {}
    for r in ratings:
        by_system.setdefault(r.system, []).append(r.rating)
    if not by_system:
        raise ValueError("no ratings to summarise")
    summary = {s: t_interval(v, confidence) for s, v in by_system.items()}
    return dict(sorted(summary.items(), key=lambda item: -item[1]["mean"]))


def paired_against(ratings: Sequence[Rating], baseline: str = "lite-student",
                   confidence: float = 0.95) -> dict[str, dict]:
    """``{system: t_interval of (system − baseline)}`` for every other system.

    Notebook: 08_judging_methods.ipynb

    A difference is taken within one listener and one trial (the same clip heard in one
    sitting), so each listener's use of the scale and each clip's difficulty cancel. Each
    entry also has ``"differences"``: the paired values, in (listener, trial) order.
    """
    table: dict[tuple[str, int], dict[str, int]] = {}
    for r in ratings:
        table.setdefault((r.listener, r.trial), {})[r.system] = r.rating
    if not any(baseline in row for row in table.values()):
        raise ValueError(f"no rating of the baseline {baseline!r}; the ratings have "
                         f"{sorted({r.system for r in ratings})}")
    systems = list(dict.fromkeys(r.system for r in ratings if r.system != baseline))
    out = {}
    for system in systems:
        diffs = [row[system] - row[baseline] for _, row in sorted(table.items())
                 if system in row and baseline in row]
        if diffs:
            out[system] = {**t_interval(diffs, confidence), "differences": tuple(diffs)}
    return out


@dataclass(frozen=True)
class Screening:
    """The outcome of :func:`post_screen`.

    Notebook: 08_judging_methods.ipynb

    ``shares``: per listener, the share of their trials with the hidden reference rated below
    the threshold; ``excluded``: the listeners over the limit; ``ratings``: the ratings of the
    others (the ones to analyse).
    """

    shares: dict[str, float]
    excluded: tuple[str, ...]
    ratings: tuple[Rating, ...]

    @property
    def kept(self) -> tuple[str, ...]:
        return tuple(listener for listener in self.shares if listener not in self.excluded)


def post_screen(ratings: Sequence[Rating], reference: str = REFERENCE,
                below: int = SCREEN_BELOW, most_share: float = SCREEN_SHARE) -> Screening:
    """BS.1534-3 post-screening: exclude a listener who rates the hidden reference below
    ``below`` in more than ``most_share`` of their trials.

    Notebook: 08_judging_methods.ipynb

    Such a listener could not pick out the unprocessed recording, so their other ratings say
    little about the systems.
    """
    per_listener: dict[str, list[int]] = {}
    for r in ratings:
        if r.system == reference:
            per_listener.setdefault(r.listener, []).append(r.rating)
    listeners = list(dict.fromkeys(r.listener for r in ratings))
    missing = [name for name in listeners if name not in per_listener]
    if missing:
        raise ValueError(f"no rating of the hidden reference {reference!r} by {missing}: "
                         f"post-screening needs it")
    shares = {name: float(np.mean([v < below for v in per_listener[name]]))
              for name in listeners}
    excluded = tuple(name for name, share in shares.items() if share > most_share)
    return Screening(shares, excluded, tuple(r for r in ratings if r.listener not in excluded))


@dataclass(frozen=True)
class ListeningTable:
    """Mean ratings beside the objective scores: ``rows`` of ``{"system", "rating", "low",
    "high", "n", <metric>: value}``.

    Notebook: 08_judging_methods.ipynb
    """

    metrics: tuple[str, ...]
    rows: tuple[dict, ...]

    def markdown(self) -> str:
        head = ["system", "rating (95 % interval)", "n"] + \
            [METRIC_LABELS.get(m, m) for m in self.metrics]
        lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
        for row in self.rows:
            cells = [f"`{row['system']}`", _rating_text(row), str(row["n"])]
            cells += [_number(row[m], 3 if "stoi" in m else 2) for m in self.metrics]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def html(self) -> str:
        head = "".join(f"<th>{html.escape(h)}</th>" for h in
                       ["system", "rating (95 % interval)", "n"] +
                       [METRIC_LABELS.get(m, m) for m in self.metrics])
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in
                             [row["system"], _rating_text(row), str(row["n"])] +
                             [_number(row[m], 3 if "stoi" in m else 2) for m in self.metrics])
            + "</tr>" for row in self.rows)
        return f"<table><tr>{head}</tr>{body}</table>"


def _number(value: float, digits: int) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _rating_text(row: dict) -> str:
    if not math.isfinite(row["low"]):
        return f"{row['rating']:.1f}"
    return f"{row['rating']:.1f} [{row['low']:.1f}, {row['high']:.1f}]"


def ratings_beside_metrics(summary: Mapping[str, dict],
                           metrics: Mapping[str, Mapping[str, float]]) -> ListeningTable:
    """A :class:`ListeningTable`: each system's mean rating (``summary``, from
    :func:`summarise_ratings`) beside its objective scores (``metrics``: ``{system: {metric:
    mean over the test's clips}}``, from :func:`mean_scores`), in the summary's order.

    Notebook: 08_judging_methods.ipynb

    A system without scores (the hidden reference: it is the scoring reference) gets NaN.
    """
    names = list(dict.fromkeys(m for row in metrics.values() for m in row))
    rows = []
    for system, entry in summary.items():
        scores = metrics.get(system, {})
        rows.append({"system": system, "rating": entry["mean"], "low": entry["low"],
                     "high": entry["high"], "n": entry["n"],
                     **{m: float(scores.get(m, math.nan)) for m in names}})
    return ListeningTable(tuple(names), tuple(rows))
