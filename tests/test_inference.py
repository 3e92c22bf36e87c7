"""Claims of convergence.inference: the p-value convention, z only against a real null, intervals and
random-subset comparisons that find what was planted."""
import numpy as np
import pytest

from convergence.inference import (
    bootstrap_interval,
    bootstrap_weights,
    null_summary,
    p_value,
    percentile_interval,
    permutations,
    random_subset_test,
    resample_indices,
    rng_for,
)


def test_p_value_counts_ties_and_is_never_zero():
    null = np.array([0.1, 0.2, 0.3, 0.3, 0.5])
    assert p_value(null, 0.3) == pytest.approx((1 + 3) / 6)  # 0.3, 0.3 (ties) and 0.5
    assert p_value(null, 9.0) == pytest.approx(1 / 6)
    assert p_value(null, 0.3, higher_is_better=False) == pytest.approx((1 + 4) / 6)
    assert np.isnan(p_value(np.array([np.nan]), 0.3))


def test_z_score_against_a_null_with_spread():
    null = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    s = null_summary(null, 7.0)
    assert s["null_mean"] == pytest.approx(2.0) and s["null_std"] == pytest.approx(np.std(null, ddof=1))
    assert s["z_score"] == pytest.approx(5.0 / np.std(null, ddof=1))


def test_degenerate_null_gives_no_z_score():
    """A null whose spread is round-off (a constant score under every permutation) has no meaningful z."""
    null = 0.25 + np.spacing(0.25) * np.array([0.0, 1.0, -1.0, 2.0, 0.0])
    s = null_summary(null, 0.9)
    assert 0 < s["null_std"] < 1e-15
    assert np.isnan(s["z_score"])
    assert s["p_value"] == pytest.approx(1 / 6)


def test_draws_depend_only_on_seed_and_names():
    a = permutations(rng_for(3, "x", "y"), 10, 4)
    b = permutations(rng_for(3, "x", "y"), 10, 4)
    c = permutations(rng_for(3, "x", "z"), 10, 4)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert all(sorted(p) == list(range(10)) for p in a)
    assert permutations(rng_for(0), 10, 0) is None


def test_bootstrap_weights_are_multiplicities_of_resamples():
    w = bootstrap_weights(np.random.default_rng(0), 7, 50)
    assert w.shape == (50, 7) and np.all(w.sum(axis=1) == 7) and np.all(w >= 0)
    idx = resample_indices(w[0])
    assert np.array_equal(np.bincount(idx, minlength=7), w[0])


def test_bootstrap_interval_of_a_mean_brackets_it():
    x = np.random.default_rng(1).normal(loc=2.0, size=200)
    low, high = bootstrap_interval(lambda idx: x[idx].mean(), x.size, n_bootstrap=300, rng=np.random.default_rng(2))
    assert low < x.mean() < high and high - low < 0.5
    assert percentile_interval([np.nan, np.nan]) != percentile_interval([1.0, 2.0])
    with pytest.raises(ValueError, match="ci"):
        percentile_interval([1.0], ci=1.5)


def test_random_subset_test_finds_a_planted_subset_and_not_a_random_one():
    values = np.random.default_rng(4).normal(size=100)
    values[:10] += 3.0  # planted: the first ten stimuli are special
    stat = lambda idx: values[idx].mean()  # noqa: E731
    planted = random_subset_test(stat, np.arange(10), 100, n_draws=199, rng=np.random.default_rng(0))
    assert planted["p_value"] == pytest.approx(1 / 200) and planted["z_score"] > 4
    ordinary = random_subset_test(stat, np.arange(50, 60), 100, n_draws=199, rng=np.random.default_rng(0))
    assert ordinary["p_value"] > 0.05
    with pytest.raises(ValueError, match="distinct indices"):
        random_subset_test(stat, [1, 1, 2], 100)


def test_random_subsets_are_distinct_draws_of_the_size_asked():
    from convergence.inference import random_subsets

    draws = random_subsets(rng_for(0, "x"), 30, 7, 50)
    assert draws.shape == (50, 7) and draws.min() >= 0 and draws.max() < 30
    assert all(np.unique(d).size == 7 for d in draws)
    assert len({tuple(sorted(d)) for d in draws}) > 45  # independent draws, not one repeated
    np.testing.assert_array_equal(draws, random_subsets(rng_for(0, "x"), 30, 7, 50))
    with pytest.raises(ValueError, match="size"):
        random_subsets(rng_for(0), 5, 6, 3)


def test_percentile_of_counts_ties_half():
    from convergence.inference import percentile_of

    draws = np.array([1.0, 2.0, 3.0, 4.0])
    assert percentile_of(draws, 10.0) == 100.0 and percentile_of(draws, 0.0) == 0.0
    assert percentile_of(draws, 2.0) == pytest.approx(100 * 1.5 / 4)
    assert percentile_of(np.full(5, 0.3), 0.3) == 50.0
    assert np.isnan(percentile_of(np.array([np.nan]), 1.0))
