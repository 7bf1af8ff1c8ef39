"""Seed-level statistics: comparisons that count the training seed as a source of variance.

Notebook: 05_distillation.ipynb

A distillation result varies with two draws: the test clips (how hard each one is) and the
training seed (initialisation and data order). :func:`~tfckd_lite.experiment.paired_comparison`'s
clip bootstrap covers the first only: its interval says how much another draw of test clips could
move the difference *between these particular trained students*. Whether the *method* is better
— another seed would give other students — needs the second draw too. Here the scores of a pair
of methods are paired by seed (seed ``s`` of both uses the same initialisation and data order) and
by clip, giving a difference matrix ``D[s, c]`` (seeds x clips), and three summaries:

* :func:`two_level_bootstrap`: resample the seeds with replacement, then, within each resampled
  seed, the clips; the interval of the mean of ``D`` then carries both variances. With few seeds
  it is too narrow (a bootstrap of ``S`` values sees at most ``S`` distinct ones, and its variance
  is ``(S-1)/S`` of the sampling variance), which is why the test below is reported beside it.
* :func:`paired_seed_test`: a paired t-test on the per-seed mean differences ``D[s, :].mean()``
  (each seed's clip average is one observation, so the clip variance is inside it), with its
  t interval: the standard answer to "does the method beat the other across seeds".
* :func:`seeds_needed`: from the observed difference and the per-seed spread, how many seeds a
  paired t-test would need to find that difference at the 5 % level with a given power — the
  power table of the report. It treats the observed difference as the true one, which
  overstates small lucky differences (the winner's curse): read it as an order of magnitude.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

#: bootstrap resamples, as the clip-level interval uses
DEFAULT_RESAMPLES = 10_000


def difference_matrix(reference: list[list[dict]], other: list[list[dict]], metric: str
                      ) -> np.ndarray:
    """``D[s, c] = reference − other`` of one metric, paired by seed index and clip name.

    Notebook: 05_distillation.ipynb

    ``reference`` and ``other`` hold, per seed, the per-clip test records of
    :func:`tfckd_lite.metrics.evaluate` (``{"name", metric: value, ...}``); both must list the
    same seeds in the same order and each seed the same clips. A clip unscorable for either
    method in any seed (NaN) is left out of every seed, so that the pairing holds.
    """
    if len(reference) != len(other) or not reference:
        raise ValueError(f"the two methods must have the same seeds, got {len(reference)} and "
                         f"{len(other)} seeds")
    names = [r["name"] for r in reference[0]]
    rows = []
    for mine, theirs in zip(reference, other):
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


def seeds_needed(difference: float, sd: float, power: float = 0.8, alpha: float = 0.05,
                 limit: int = 1000) -> int | None:
    """Seeds a two-sided paired t-test needs to detect ``difference`` with ``power``.

    Notebook: 05_distillation.ipynb

    ``sd`` is the standard deviation of one seed's mean difference. The power of the test with
    ``n`` seeds is computed exactly from the noncentral t distribution (noncentrality
    ``difference / sd · √n``); the smallest ``n ≥ 2`` reaching ``power`` is returned, ``None``
    when even ``limit`` seeds do not (e.g. a difference of 0).
    """
    if sd < 0 or not 0 < power < 1 or not 0 < alpha < 1:
        raise ValueError(f"need sd >= 0, 0 < power < 1 and 0 < alpha < 1; got {sd}, {power}, "
                         f"{alpha}")
    if difference == 0.0:
        return None
    if sd == 0.0:
        return 2
    effect = abs(difference) / sd
    for n in range(2, limit + 1):
        df = n - 1
        critical = stats.t.ppf(1.0 - alpha / 2.0, df)
        ncp = effect * np.sqrt(n)
        reached = stats.nct.sf(critical, df, ncp) + stats.nct.cdf(-critical, df, ncp)
        if reached >= power:
            return n
    return None


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


def _checked(diff) -> np.ndarray:
    diff = np.asarray(diff, dtype=np.float64)
    if diff.ndim != 2 or diff.shape[0] < 1 or diff.shape[1] < 1:
        raise ValueError(f"expected a seeds x clips matrix, got shape {diff.shape}")
    if not np.isfinite(diff).all():
        raise ValueError("the difference matrix holds non-finite values; drop those clips first "
                         "(difference_matrix does)")
    return diff
