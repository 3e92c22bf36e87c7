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


# ----------------------------------------------------------------- calibration, q-values, jackknife intervals


def test_threshold_and_calibrated_score_of_a_hand_computed_case():
    from convergence.inference import calibrate, calibrated_score, null_threshold

    null = np.array([0.10, 0.30, 0.20, 0.05, 0.25, 0.15, 0.35, 0.00, 0.40])  # B = 9
    # B + 1 = 10 values with the observed 0.6; alpha 0.05: ceil(0.95 * 10) = 10th smallest = 0.6 itself
    assert null_threshold(null, 0.6, 0.05) == pytest.approx(0.6)
    assert calibrated_score(0.6, 0.6, 1.0) == 0.0
    # alpha 0.2: ceil(0.8 * 10) = 8th smallest of {0, .05, .1, .15, .2, .25, .3, .35, .4, .6} = 0.35
    out = calibrate(null, 0.6, 1.0, alpha=0.2)
    assert out["tau"] == pytest.approx(0.35)
    assert out["calibrated"] == pytest.approx((0.6 - 0.35) / (1.0 - 0.35))
    # at or below tau: 0; alpha 0.5: ceil(5) = 5th smallest = 0.2 with the observed 0.18 among them (0.18)
    assert calibrate(null, 0.18, 1.0, alpha=0.5) == {"tau": pytest.approx(0.18), "calibrated": 0.0}
    # a distance (lower = more similar, most similar 0): the same on the oriented scale
    # (distances 1 - similarity: tau = 1 - 0.35, and the same calibrated score as the similarity)
    dist = calibrate(1 - null, 0.4, 0.0, alpha=0.2, higher_is_better=False)
    assert dist["tau"] == pytest.approx(0.65)
    assert dist["calibrated"] == pytest.approx((0.65 - 0.4) / (0.65 - 0.0)) == out["calibrated"]
    # an unbounded measure: the unnormalised excess
    assert calibrate(null, 0.6, np.inf, alpha=0.2)["calibrated"] == pytest.approx(0.25)
    assert np.isnan(null_threshold([], 0.6)) and np.isnan(calibrated_score(np.nan, 0.3, 1.0))
    with pytest.raises(ValueError, match="alpha"):
        null_threshold(null, 0.6, alpha=1.5)


def test_bh_q_values_equal_scipy():
    from scipy.stats import false_discovery_control

    from convergence.inference import bh_qvalues

    rng = np.random.default_rng(0)
    for size in (1, 2, 7, 50):
        p = np.concatenate([rng.uniform(size=size), rng.uniform(0, 0.01, size=size // 3)])
        p[rng.integers(0, p.size)] = p[0]  # ties
        assert np.allclose(bh_qvalues(p), false_discovery_control(p, method="bh"))
    p = np.array([0.01, np.nan, 0.04, 0.03])  # NaN is no test: it stays NaN and does not count
    q = bh_qvalues(p)
    assert np.isnan(q[1]) and np.allclose(q[[0, 2, 3]], false_discovery_control(p[[0, 2, 3]], method="bh"))
    assert np.all(np.isnan(bh_qvalues([np.nan])))


def test_jackknife_replicates_leave_out_disjoint_groups_covering_every_stimulus():
    from convergence.inference import jackknife_weights

    w = jackknife_weights(np.random.default_rng(0), 23, 5)
    assert w.shape == (5, 23) and set(np.unique(w)) == {0.0, 1.0}
    left_out = 1 - w
    assert np.all(left_out.sum(axis=0) == 1)  # each stimulus left out exactly once
    assert sorted(left_out.sum(axis=1)) == [4, 4, 5, 5, 5]  # near-equal groups
    one = jackknife_weights(np.random.default_rng(0), 6, 99)  # more groups than stimuli: delete-one
    assert one.shape == (6, 6) and np.array_equal(np.sort(1 - one, axis=0), np.sort(np.eye(6), axis=0))
    assert jackknife_weights(np.random.default_rng(0), 6, 0) is None


def test_jackknife_interval_of_a_mean_is_the_textbook_one_and_adds_variances():
    from scipy.stats import norm

    from convergence.inference import jackknife_interval, stimulus_interval

    x = np.random.default_rng(1).normal(loc=2.0, size=50)
    low, high = stimulus_interval(lambda idx: x[idx].mean(), x.size, n_groups=50)  # delete-one
    half = norm.ppf(0.975) * x.std(ddof=1) / np.sqrt(x.size)  # the jackknife se of a mean is s / sqrt(n)
    assert (low, high) == pytest.approx((x.mean() - half, x.mean() + half))
    d1, d2 = np.array([1.0, 2.0, 3.0]), np.array([0.0, 4.0])
    lo, hi = jackknife_interval(10.0, d1, d2, ci=0.9)
    se = np.sqrt(2 / 3 * 2.0 + 1 / 2 * 8.0)
    assert (lo, hi) == pytest.approx((10 - norm.ppf(0.95) * se, 10 + norm.ppf(0.95) * se))
    assert np.isnan(jackknife_interval(np.nan, d1)[0])


def test_linear_cka_jackknife_interval_covers_the_population_value_and_contains_its_estimate():
    """200 seeds of Gaussian pairs y = x A + noise (population CKA = ||A||_F^2 / (sqrt(d) ||A^T A + I||_F)):
    the 95 % interval covers the population value in >= 90 % and contains its own estimate in >= 99 %."""
    from convergence.inference import stimulus_interval
    from convergence.metrics import cka

    a = np.array([[1.0, 0.5, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.3]])
    population = np.sum(a**2) / (np.sqrt(3) * np.linalg.norm(a.T @ a + np.eye(3)))
    cover = contain = 0
    for seed in range(200):
        rng = np.random.default_rng(seed)
        x = rng.normal(size=(60, 3))
        y = x @ a + rng.normal(size=(60, 3))
        estimate = cka(x, y)
        low, high = stimulus_interval(lambda idx: cka(x[idx], y[idx]), 60, n_groups=20, rng=np.random.default_rng(seed))
        cover += low <= population <= high
        contain += low <= estimate <= high
    assert cover >= 180 and contain >= 198


def test_intervals_excluding_their_estimate_are_counted():
    from convergence.inference import count_excluding

    est = np.array([0.5, 0.5, 0.5, np.nan, 0.5])
    low = np.array([0.4, 0.51, 0.1, 0.0, np.nan])
    high = np.array([0.6, 0.7, 0.49, 1.0, 1.0])
    assert count_excluding(est, low, high) == (2, 3)


def test_resampling_with_replacement_moves_cka_off_its_estimate_and_the_jackknife_does_not():
    """Why intervals over stimuli are jackknife ones: duplicated stimuli inflate linear CKA of wide, unit-norm
    features (as after PRH preprocessing), so the with-replacement percentile interval lies above its own
    estimate; the jackknife interval (no duplicates) contains it."""
    from convergence.inference import stimulus_interval
    from convergence.metrics import cka

    above = contained = 0
    for seed in range(5):
        rng = np.random.default_rng(seed)
        z = rng.normal(size=(60, 10))
        x = np.maximum(z @ rng.normal(size=(10, 200)), 0) + 0.5 * rng.normal(size=(60, 200))
        y = np.tanh(z @ rng.normal(size=(10, 200))) + 0.5 * rng.normal(size=(60, 200))
        x, y = (v / np.linalg.norm(v, axis=1, keepdims=True) for v in (x, y))
        stat = lambda idx: cka(x[idx], y[idx])  # noqa: E731
        estimate = stat(np.arange(60))
        above += bootstrap_interval(stat, 60, n_bootstrap=100, rng=np.random.default_rng(seed))[0] > estimate
        low, high = stimulus_interval(stat, 60, n_groups=20, rng=np.random.default_rng(seed))
        contained += low <= estimate <= high
    assert above >= 4 and contained == 5
