"""Seed-level statistics: comparisons that count the training seed as a source of variance.

Notebook: 05_distillation.ipynb

A distillation result varies with two draws: the test clips (how hard each one is) and the
training seed (initialisation and data order). :func:`~tfckd_lite.experiment.paired_comparison`'s
clip bootstrap covers the first only: its interval says how much another draw of test clips could
move the difference *between these particular trained students*. Whether the *method* is better
— another seed would give other students — needs the second draw too. Here the scores of a pair
of methods are paired by seed number (seed ``s`` of both uses the same initialisation and data
order; only the seeds both have) and by clip, giving a difference matrix ``D[s, c]`` (seeds x
clips), and these summaries (:func:`seed_level_comparison` gives them all):

* :func:`paired_seed_test`: a paired t-test on the per-seed mean differences ``D[s, :].mean()``
  (each seed's clip average is one observation, so the clip variance is inside it), with its
  t interval: the standard answer to "does the method beat the other across seeds". This is the
  interval the experiment's verdicts use.
* :func:`two_level_bootstrap`: resample the seeds with replacement, then, within each resampled
  seed, the clips; the interval of the mean of ``D`` then carries both variances. With few seeds
  it is too narrow: a bootstrap of ``S`` seeds sees at most ``S`` distinct seed means, its
  variance is ``(S-1)/S`` of the sampling variance, and its percentiles are those of a
  near-normal spread where the t distribution with ``S − 1`` degrees of freedom has far heavier
  tails (97.5 % quantile 4.30 at ``S = 3`` against 1.96). At 3 seeds it comes out about 0.4 times
  as wide as the t interval, so it is reported beside the test, not used for verdicts; it
  approaches the t interval as seeds are added.
* :func:`variance_components`: the spread between seeds against the clip noise within one seed.
* :func:`seeds_needed`: from the observed difference and the per-seed spread, how many seeds a
  paired t-test would need to find that difference at the 5 % level with a given power
  (:func:`paired_t_power`) — the power table of the report. It treats the observed difference
  as the true one, which overstates small lucky differences (the winner's curse) and the
  per-seed spread is itself estimated from a few seeds: read it as an order of magnitude.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy import stats

#: bootstrap resamples, as the clip-level interval uses
DEFAULT_RESAMPLES = 10_000

#: the most seeds :func:`seeds_needed` considers (beyond: ``None``)
SEEDS_NEEDED_LIMIT = 1000


def shared_seeds(reference: Mapping[int, list[dict]], other: Mapping[int, list[dict]]
                 ) -> list[int]:
    """The seed numbers both methods were trained with, in increasing order.

    Notebook: 05_distillation.ipynb
    """
    return sorted(set(reference) & set(other))


def difference_matrix(reference: Mapping[int, list[dict]], other: Mapping[int, list[dict]],
                      metric: str) -> np.ndarray:
    """``D[s, c] = reference − other`` of one metric, paired by seed number and clip.

    Notebook: 05_distillation.ipynb

    ``reference`` and ``other`` map each seed number to the per-clip test records of
    :func:`tfckd_lite.metrics.evaluate` (``{"name", metric: value, ...}``) of that seed's run.
    Row ``s`` pairs seed ``s`` of both (same initialisation and data order); only the seeds
    both have (:func:`shared_seeds`) enter, in increasing order. Every run must be scored on
    the same clips in the same order. A clip unscorable for either method in any seed (NaN) is
    left out of every seed, so that the pairing holds.
    """
    seeds = shared_seeds(reference, other)
    if not seeds:
        raise ValueError(f"the two methods share no seed (seeds {sorted(reference)} and "
                         f"{sorted(other)})")
    names = [r["name"] for r in reference[seeds[0]]]
    rows = []
    for seed in seeds:
        mine, theirs = reference[seed], other[seed]
        if [r["name"] for r in mine] != names or [r["name"] for r in theirs] != names:
            raise ValueError("every seed of both methods must be scored on the same clips")
        rows.append([a[metric] - b[metric] for a, b in zip(mine, theirs)])
    diff = np.asarray(rows, dtype=np.float64)
    return diff[:, np.isfinite(diff).all(axis=0)]


def two_level_bootstrap(diff: np.ndarray, confidence: float = 0.95,
                        resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> dict:
    """Mean of ``diff`` (seeds x clips) with a two-level percentile-bootstrap interval.

    Notebook: 05_distillation.ipynb

    Each resample draws ``S`` seeds with replacement and, for each drawn seed independently,
    ``C`` of its clips with replacement, and takes the mean. Returns ``{"mean", "low", "high",
    "seeds", "clips"}``. Seeded: the same matrix gives the same interval.
    """
    diff = _checked(diff)
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    n_seeds, n_clips = diff.shape
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    chunk = max(1, 2_000_000 // (n_seeds * n_clips))       # bounded memory
    for start in range(0, resamples, chunk):
        count = min(chunk, resamples - start)
        seeds = rng.integers(0, n_seeds, size=(count, n_seeds))
        clips = rng.integers(0, n_clips, size=(count, n_seeds, n_clips))
        means[start:start + count] = diff[seeds[:, :, None], clips].mean(axis=(1, 2))
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return {"mean": float(diff.mean()), "low": float(low), "high": float(high),
            "seeds": n_seeds, "clips": n_clips}


def paired_seed_test(diff: np.ndarray, confidence: float = 0.95) -> dict:
    """Paired t-test across seeds on the per-seed mean differences of ``diff``.

    Notebook: 05_distillation.ipynb

    Returns ``{"mean", "sd", "low", "high", "t", "p", "seeds"}``: the mean and sample standard
    deviation of the per-seed means, the ``confidence`` t interval of their mean, the t
    statistic and its two-sided p-value (``S − 1`` degrees of freedom). Needs two seeds or more.
    """
    per_seed = _checked(diff).mean(axis=1)
    n = per_seed.size
    if n < 2:
        raise ValueError("a test across seeds needs at least 2 seeds")
    mean, sd = float(per_seed.mean()), float(per_seed.std(ddof=1))
    half = stats.t.ppf(0.5 + confidence / 2.0, n - 1) * sd / np.sqrt(n)
    if sd == 0.0:
        t, p = (0.0, 1.0) if mean == 0.0 else (float(np.copysign(np.inf, mean)), 0.0)
    else:
        t = mean / (sd / np.sqrt(n))
        p = float(2.0 * stats.t.sf(abs(t), n - 1))
    return {"mean": mean, "sd": sd, "low": float(mean - half), "high": float(mean + half),
            "t": float(t), "p": p, "seeds": n}


def paired_t_power(difference: float, sd: float, seeds: int, alpha: float = 0.05) -> float:
    """Power of a two-sided paired t-test with ``seeds`` seeds to detect ``difference``.

    Notebook: 05_distillation.ipynb

    ``sd`` is the standard deviation of one seed's mean difference; the power is exact, from
    the noncentral t distribution with ``seeds − 1`` degrees of freedom and noncentrality
    ``difference / sd · √seeds``.
    """
    if seeds < 2:
        raise ValueError(f"a paired t-test needs at least 2 seeds, got {seeds}")
    if sd == 0.0:
        return 1.0 if difference != 0.0 else alpha
    df = seeds - 1
    critical = stats.t.ppf(1.0 - alpha / 2.0, df)
    ncp = abs(difference) / sd * np.sqrt(seeds)
    upper = stats.nct.sf(critical, df, ncp)
    # the wrong-sign tail: scipy returns NaN where it underflows (large ncp), i.e. 0
    lower = stats.nct.cdf(-critical, df, ncp)
    return float(min(1.0, upper + (lower if np.isfinite(lower) else 0.0)))


def seeds_needed(difference: float, sd: float, power: float = 0.8, alpha: float = 0.05,
                 limit: int = SEEDS_NEEDED_LIMIT) -> int | None:
    """Seeds a two-sided paired t-test needs to detect ``difference`` with ``power``.

    Notebook: 05_distillation.ipynb

    ``sd`` is the standard deviation of one seed's mean difference. The smallest ``n ≥ 2``
    whose :func:`paired_t_power` reaches ``power`` is returned, ``None`` when even ``limit``
    seeds do not (e.g. a difference of 0). The power grows with ``n`` (more degrees of freedom,
    larger noncentrality), so ``n`` is found by bisection.
    """
    if sd < 0 or not 0 < power < 1 or not 0 < alpha < 1:
        raise ValueError(f"need sd >= 0, 0 < power < 1 and 0 < alpha < 1; got {sd}, {power}, "
                         f"{alpha}")
    if difference == 0.0:
        return None
    if sd == 0.0:
        return 2
    if paired_t_power(difference, sd, limit, alpha) < power:
        return None
    low, high = 1, limit              # power(low) < power (or low = 1), power(high) >= power
    while high - low > 1:
        middle = (low + high) // 2
        if paired_t_power(difference, sd, middle, alpha) >= power:
            high = middle
        else:
            low = middle
    return high


def variance_components(diff: np.ndarray) -> dict:
    """Where the variance of a difference comes from: seeds or clips.

    Notebook: 05_distillation.ipynb

    ``{"between_seeds": sd of the per-seed means, "within_seed": the standard error of one
    seed's clip mean (mean over seeds of sd over clips / √C)}``. When the first is much larger
    than the second, more test clips cannot settle the comparison; more seeds can.
    """
    diff = _checked(diff)
    n_seeds, n_clips = diff.shape
    between = float(diff.mean(axis=1).std(ddof=1)) if n_seeds > 1 else float("nan")
    within = float(np.mean(diff.std(axis=1, ddof=1)) / np.sqrt(n_clips)) if n_clips > 1 \
        else float("nan")
    return {"between_seeds": between, "within_seed": within}


def seed_level_comparison(reference: Mapping[int, list[dict]], other: Mapping[int, list[dict]],
                          metric: str, confidence: float = 0.95,
                          resamples: int = DEFAULT_RESAMPLES, power: float = 0.8) -> dict | None:
    """Every seed-level summary of ``reference − other`` on one metric, or ``None`` when the two
    share fewer than 2 seeds (no spread between seeds to measure).

    Notebook: 05_distillation.ipynb

    Returns ``{"seeds": [seed numbers], "clips", "dropped", "per_seed": [mean difference of each
    seed], "t_test": paired_seed_test, "bootstrap": two_level_bootstrap, "variance":
    variance_components, "power", "seeds_needed"}``, where ``seeds_needed`` is
    :func:`seeds_needed` for the observed mean difference and per-seed spread at the test's
    level ``1 − confidence`` (``None``: more than :data:`SEEDS_NEEDED_LIMIT` seeds, or no
    difference).
    """
    seeds = shared_seeds(reference, other)
    if len(seeds) < 2:
        return None
    diff = difference_matrix(reference, other, metric)
    test = paired_seed_test(diff, confidence)
    return {"seeds": seeds, "clips": int(diff.shape[1]),
            "dropped": len(reference[seeds[0]]) - int(diff.shape[1]),
            "per_seed": [float(v) for v in diff.mean(axis=1)], "t_test": test,
            "bootstrap": two_level_bootstrap(diff, confidence, resamples),
            "variance": variance_components(diff), "power": power,
            "seeds_needed": seeds_needed(test["mean"], test["sd"], power, 1.0 - confidence)}


def _checked(diff) -> np.ndarray:
    diff = np.asarray(diff, dtype=np.float64)
    if diff.ndim != 2 or diff.shape[0] < 1 or diff.shape[1] < 1:
        raise ValueError(f"expected a seeds x clips matrix, got shape {diff.shape}")
    if not np.isfinite(diff).all():
        raise ValueError("the difference matrix holds non-finite values; drop those clips first "
                         "(difference_matrix does)")
    return diff
