"""Seed-level statistics of the experiment (tfckd_lite.experiment.statistics)."""

import numpy as np
import pytest
from scipy import stats

from tfckd_lite.experiment.statistics import (SEEDS_NEEDED_LIMIT, difference_matrix,
                                              paired_seed_test, paired_t_power,
                                              seed_level_comparison, seeds_needed, shared_seeds,
                                              two_level_bootstrap, variance_components)


def _records(values, names=None, seeds=None):
    """``{seed: per-clip records}`` as the experiment holds them (metrics.evaluate's records)."""
    names = names or [f"c{i}" for i in range(len(values[0]))]
    seeds = range(len(values)) if seeds is None else seeds
    return {s: [{"name": n, "pesq_wb": v} for n, v in zip(names, seed)]
            for s, seed in zip(seeds, values)}


def test_difference_matrix_pairs_by_seed_and_clip_and_drops_unscorable_clips():
    ref = _records([[2.0, 3.0, 1.0], [2.5, 3.5, 1.5]])
    other = _records([[1.0, float("nan"), 1.0], [2.0, 3.0, 0.5]])
    diff = difference_matrix(ref, other, "pesq_wb")
    assert diff.shape == (2, 2)                       # clip c1 dropped in every seed
    np.testing.assert_allclose(diff, [[1.0, 0.0], [0.5, 1.0]])


def test_difference_matrix_pairs_by_seed_number_over_the_shared_seeds():
    # the reference has seeds 0-2, the other 1-3 (e.g. more seeds run for one method):
    # rows are seeds 1 and 2, each against the same seed, whatever the order of the mappings
    ref = _records([[1.0], [2.0], [3.0]], seeds=[0, 1, 2])
    other = _records([[10.0], [0.5], [0.0], [20.0]], seeds=[3, 2, 1, 9])
    assert shared_seeds(ref, other) == [1, 2]
    np.testing.assert_allclose(difference_matrix(ref, other, "pesq_wb"), [[2.0], [2.5]])


def test_difference_matrix_refuses_unpaired_inputs():
    with pytest.raises(ValueError, match="share no seed"):
        difference_matrix(_records([[1.0]], seeds=[0]), _records([[1.0]], seeds=[1]), "pesq_wb")
    with pytest.raises(ValueError, match="same clips"):
        difference_matrix(_records([[1.0, 2.0]]), _records([[1.0, 2.0]], ["a", "b"]), "pesq_wb")


def test_paired_seed_test_is_the_one_sample_t_test_of_the_seed_means():
    rng = np.random.default_rng(0)
    diff = rng.normal(0.03, 0.02, (4, 1)) + rng.normal(0, 0.1, (4, 50))
    result = paired_seed_test(diff)
    reference = stats.ttest_1samp(diff.mean(axis=1), 0.0)
    assert result["t"] == pytest.approx(reference.statistic)
    assert result["p"] == pytest.approx(reference.pvalue)
    interval = reference.confidence_interval(0.95)
    assert (result["low"], result["high"]) == pytest.approx((interval.low, interval.high))
    with pytest.raises(ValueError, match="at least 2 seeds"):
        paired_seed_test(diff[:1])


def test_seed_variance_widens_the_interval_beyond_the_clip_bootstrap():
    """Seeds that disagree (between-seed spread much larger than the clip noise): the clip-only
    interval of a seed-averaged difference excludes 0, the two-level one and the t-test do not."""
    from tfckd_lite.metrics import bootstrap_mean_interval

    rng = np.random.default_rng(3)
    diff = np.array([[0.06], [-0.01], [0.03]]) + rng.normal(0, 0.05, (3, 300))
    clip_only = bootstrap_mean_interval(diff.mean(axis=0))
    two_level = two_level_bootstrap(diff)
    seed_test = paired_seed_test(diff)
    assert clip_only["low"] > 0
    assert two_level["low"] < clip_only["low"] and two_level["high"] > clip_only["high"]
    assert seed_test["low"] < 0 < seed_test["high"]
    components = variance_components(diff)
    assert components["between_seeds"] > 5 * components["within_seed"]


def test_two_level_bootstrap_is_seeded_and_centred():
    rng = np.random.default_rng(1)
    diff = rng.normal(0.1, 0.05, (5, 40))
    first, second = two_level_bootstrap(diff, resamples=2000), two_level_bootstrap(diff, resamples=2000)
    assert first == second
    assert first["low"] < first["mean"] < first["high"]
    assert first["mean"] == pytest.approx(diff.mean())
    with pytest.raises(ValueError, match="non-finite"):
        two_level_bootstrap(np.array([[np.nan, 1.0]]))


def test_seeds_needed_matches_the_textbook_power_of_a_paired_t_test():
    # one-sample/paired t-test, effect size 1, alpha 0.05 two-sided, power 0.8: n = 10
    assert seeds_needed(1.0, 1.0) == 10
    assert seeds_needed(-0.5, 1.0) == seeds_needed(0.5, 1.0) > 10     # sign-free, smaller: more
    assert seeds_needed(0.0, 1.0) is None
    assert seeds_needed(0.001, 1.0, limit=50) is None
    # the bisection finds what a search seed by seed finds, far past the range where scipy's
    # noncentral t returns NaN for the wrong-sign tail (large noncentrality)
    for effect in (0.1, 0.3, 0.5, 2.0, 5.0):
        powers = [paired_t_power(effect, 1.0, n) for n in range(2, 900)]
        assert all(np.isfinite(powers)) and np.all(np.diff(powers) >= 0)
        assert seeds_needed(effect, 1.0) == next(n for n, p in zip(range(2, 900), powers)
                                                 if p >= 0.8)
    assert seeds_needed(0.005, 0.126) is None                  # ~5000 seeds: past the limit
    assert seeds_needed(0.005, 0.126, limit=10 * SEEDS_NEEDED_LIMIT) > SEEDS_NEEDED_LIMIT


def test_paired_t_power_is_the_rejection_rate_of_the_t_test():
    """Simulated: seeds whose mean difference is N(0.5, 1); the test rejects at the computed
    rate, and at alpha when there is no difference."""
    rng = np.random.default_rng(7)
    for effect, seeds in ((0.5, 12), (0.0, 6)):
        samples = rng.normal(effect, 1.0, (20_000, seeds))
        rejected = stats.ttest_1samp(samples, 0.0, axis=1).pvalue < 0.05
        expected = paired_t_power(effect, 1.0, seeds)
        assert rejected.mean() == pytest.approx(expected, abs=0.015)
    assert paired_t_power(0.0, 1.0, 6) == pytest.approx(0.05)
    with pytest.raises(ValueError, match="at least 2 seeds"):
        paired_t_power(1.0, 1.0, 1)


def test_seed_level_comparison_gathers_every_summary_of_the_shared_seeds():
    rng = np.random.default_rng(2)
    ref = _records(rng.normal(2.0, 0.3, (4, 60)).tolist(), seeds=[0, 1, 2, 5])
    other = _records(rng.normal(1.9, 0.3, (3, 60)).tolist(), seeds=[0, 1, 2])
    result = seed_level_comparison(ref, other, "pesq_wb", resamples=500)
    diff = difference_matrix(ref, other, "pesq_wb")
    assert result["seeds"] == [0, 1, 2] and result["clips"] == 60 and result["dropped"] == 0
    np.testing.assert_allclose(result["per_seed"], diff.mean(axis=1))
    assert result["t_test"] == paired_seed_test(diff)
    assert result["bootstrap"] == two_level_bootstrap(diff, resamples=500)
    assert result["variance"] == variance_components(diff)
    assert result["seeds_needed"] == seeds_needed(result["t_test"]["mean"],
                                                  result["t_test"]["sd"])
    # one shared seed: no spread between seeds to measure
    assert seed_level_comparison(ref, _records([[1.0] * 60], seeds=[5]), "pesq_wb") is None
