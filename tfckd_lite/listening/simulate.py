"""SIMULATED listeners: ratings computed from an objective metric plus noise. Not human data.

Notebook: 08_judging_methods.ipynb

Nobody listens in CI, yet a notebook must show the analysis running end to end. These ratings
stand in for listeners there, and only there: they say nothing about how the systems sound,
since they are the metric itself, rescaled and blurred. Every simulated listener's name must
start with ``"simulated"`` and every row's timestamp reads ``"simulated"``, so that such ratings
cannot pass for a listener's in a file or a table.
"""

from __future__ import annotations

import math
from typing import Mapping

import numpy as np

from .design import ListeningTest
from .ratings import HIGHEST, LOWEST, Rating

#: The metric values mapped to ratings 0 and 100 (a linear map in between, then clipped).
SIMULATION_SCALES = {"pesq_wb": (1.0, 4.64), "pesq_nb": (1.0, 4.55), "stoi": (0.0, 1.0),
                     "estoi": (0.0, 1.0), "si_sdr": (-10.0, 30.0)}
SIMULATED_PREFIX = "simulated"


def simulated_listener(test: ListeningTest, scores: Mapping[str, Mapping[str, Mapping[str, float]]],
                       *, name: str = "simulated-1", metric: str = "pesq_wb",
                       noise_sd: float = 8.0, bias: float = 0.0,
                       reference_score: float | None = None, seed: int = 0) -> list[Rating]:
    """SIMULATED ratings (not human data) of every trial of ``test`` from an objective metric.

    Notebook: 08_judging_methods.ipynb

    ``scores``: ``{clip: {system: {metric: value}}}`` (:func:`score_stimuli` of each clip).
    A stimulus's rating is its ``metric`` mapped linearly from :data:`SIMULATION_SCALES` onto
    0–100, plus ``bias`` and Gaussian noise of ``noise_sd`` (seeded by ``seed``), rounded and
    clipped to 0–100. The hidden reference is rated ``reference_score`` mapped the same way,
    without noise or bias (default: the top of the scale, 100: a listener who recognises it, as
    MUSHRA asks); a lower value simulates a careless listener, the kind post-screening removes.
    The simulated ratings follow the metric, blind spots included: PESQ-WB scores the 3.5 kHz
    anchor high, so simulated listeners rate it high where people would not. ``name`` must start with ``"simulated"``.
    """
    if not str(name).startswith(SIMULATED_PREFIX):
        raise ValueError(f"a simulated listener's name must start with {SIMULATED_PREFIX!r} so "
                         f"that its ratings are never taken for a person's; got {name!r}")
    if metric not in SIMULATION_SCALES:
        raise ValueError(f"no rating scale for metric {metric!r}; choose from "
                         f"{sorted(SIMULATION_SCALES)}")
    if not noise_sd >= 0:
        raise ValueError(f"noise_sd must be >= 0, got {noise_sd!r}")
    low, high = SIMULATION_SCALES[metric]
    top = high if reference_score is None else float(reference_score)
    rng = np.random.default_rng(seed)
    ratings = []
    for trial in test.trials:
        if trial.clip not in scores:
            raise ValueError(f"no scores of clip {trial.clip!r} (trial {trial.index})")
        for label, system in trial.mapping.items():
            if system == test.reference:
                # recognised (or not) as such: neither noise nor bias
                raw = 100 * (top - low) / (high - low)
            else:
                value = scores[trial.clip].get(system, {}).get(metric, math.nan)
                if not math.isfinite(value):
                    raise ValueError(f"no finite {metric} of {system!r} on clip "
                                     f"{trial.clip!r}")
                raw = 100 * (value - low) / (high - low) + bias + rng.normal(0.0, noise_sd)
            rating = int(np.clip(round(raw), LOWEST, HIGHEST))
            ratings.append(Rating(name, trial.index, trial.clip, label, system, rating,
                                  "simulated"))
    return ratings
