"""Plots of listening-test results (FMP style: pass ``ax`` or get a new figure; each returns
``(fig, ax, artist)``).

Notebook: 08_judging_methods.ipynb
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from .design import ANCHOR, REFERENCE


def _axes(ax, figsize):
    import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(figsize=figsize, layout="constrained")
    return ax.figure, ax


def _colour(system: str) -> str:
    """Controls in grey, the TFCKD student in red, every other system in blue (as notebook 05)."""
    if system in (REFERENCE, ANCHOR):
        return "0.6"
    return "C3" if system == "lite-student-tfckd" else "C0"


def plot_ratings(summary: Mapping[str, dict], ax=None, title: str | None = None):
    """Mean rating per system with its interval (from :func:`summarise_ratings`), 0 to 100.

    Notebook: 08_judging_methods.ipynb

    Returns ``(fig, ax, bars)``. The hidden reference and the anchor are drawn in grey.
    """
    systems = list(summary)
    if not systems:
        raise ValueError("nothing to plot: the summary is empty")
    fig, ax = _axes(ax, (1.0 * len(systems) + 2.0, 3.4))
    means = np.array([summary[s]["mean"] for s in systems])
    lows = np.array([summary[s]["low"] for s in systems])
    highs = np.array([summary[s]["high"] for s in systems])
    # no interval (one rating): no error bar rather than a NaN one
    errors = np.nan_to_num(np.vstack([means - lows, highs - means]), nan=0.0)
    x = np.arange(len(systems))
    bars = ax.bar(x, means, yerr=errors, capsize=3, color=[_colour(s) for s in systems])
    ax.set_ylim(0, 100)
    ax.set_xticks(x, systems, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("rating (0–100)")
    for edge in (20, 40, 60, 80):             # MUSHRA's scale: bad, poor, fair, good, excellent
        ax.axhline(edge, color="0.85", lw=0.8, zorder=0)
    ax.set_title(title or "mean rating with its 95 % t interval", fontsize=9, loc="left")
    return fig, ax, bars


def plot_paired_ratings(paired: Mapping[str, dict], baseline: str = "lite-student", ax=None,
                        title: str | None = None):
    """Per system, the mean paired difference to ``baseline`` with its interval, and a line at 0
    (from :func:`paired_against`).

    Notebook: 08_judging_methods.ipynb

    Green: the interval lies above 0 (rated better than the baseline); red: below; grey: it
    includes 0. Returns ``(fig, ax, lines)``.
    """
    systems = list(paired)
    if not systems:
        raise ValueError("nothing to plot: no paired differences")
    fig, ax = _axes(ax, (6.0, 0.4 * len(systems) + 1.4))
    y = np.arange(len(systems))[::-1]
    lines = []
    for yi, system in zip(y, systems):
        entry = paired[system]
        mean, low, high = entry["mean"], entry["low"], entry["high"]
        known = np.isfinite(low)
        colour = "0.5" if not known else ("C2" if low > 0 else ("C3" if high < 0 else "0.5"))
        xerr = [[mean - low], [high - mean]] if known else None
        lines.append(ax.errorbar(mean, yi, xerr=xerr, fmt="o", color=colour, capsize=3))
    ax.axvline(0.0, color="k", lw=1)
    ax.set_yticks(y, systems, fontsize=8)
    ax.set_xlabel(f"rating difference, system − {baseline}")
    ax.set_title(title or f"paired against {baseline} (95 % t intervals)", fontsize=9,
                 loc="left")
    return fig, ax, lines
