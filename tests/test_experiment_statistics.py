"""Seed-level statistics of the experiment (tfckd_lite.experiment.statistics)."""

import numpy as np
import pytest
from scipy import stats

from tfckd_lite.experiment.statistics import (difference_matrix, paired_seed_test, seeds_needed,
                                              two_level_bootstrap, variance_components)


def _records(values, names=None):
    """Per seed, per clip records as metrics.evaluate writes them."""
    names = names or [f"c{i}" for i in range(len(values[0]))]
    return [[{"name": n, "pesq_wb": v} for n, v in zip(names, seed)] for seed in values]


def test_difference_matrix_pairs_by_seed_and_clip_and_drops_unscorable_clips():
    ref = _records([[2.0, 3.0, 1.0], [2.5, 3.5, 1.5]])
    other = _records([[1.0, float("nan"), 1.0], [2.0, 3.0, 0.5]])
    diff = difference_matrix(ref, other, "pesq_wb")
    assert diff.shape == (2, 2)                       # clip c1 dropped in every seed
    np.testing.assert_allclose(diff, [[1.0, 0.0], [0.5, 1.0]])


def test_difference_matrix_refuses_unpaired_inputs():
    with pytest.raises(ValueError, match="same seeds"):
        difference_matrix(_records([[1.0]]), _records([[1.0], [2.0]]), "pesq_wb")
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
