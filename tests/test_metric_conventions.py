"""The two conventions every measure follows (convergence.metrics._checks): a representation constant across
stimuli is one ValueError for every pair function (NaN in the all-pairs engines), and the scale of the
features changes nothing where the definition ignores it (1e200 and 1e-200 included)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import xarray as xr

from convergence import metrics as M
from convergence.kernels import build_kernel
from convergence.metrics.registry import METRICS
from convergence.pairwise import pairwise

N = 40
RNG = np.random.default_rng(7)
X = RNG.normal(size=(N, 8))
Y = X @ RNG.normal(size=(8, 6)) + 0.8 * RNG.normal(size=(N, 6))
#: Parameters for the pair functions; cka_rbf by the median rule (its scale-invariant form).
PARAMS = {"mutual_knn": {"k": 5}, "cycle_knn": {"k": 5}, "jaccard_knn": {"k": 5}, "cknna": {"k": 5},
          "cka_rbf": {"sigma_factor": 1.0}}


def score(name, x, y):
    return METRICS[name].pair_function(x, y, **PARAMS.get(name, {}))


@pytest.mark.parametrize("name", list(METRICS))
@pytest.mark.parametrize("constant", [np.ones((N, 8)), np.zeros((N, 8)), np.tile(RNG.normal(size=8), (N, 1)),
                                      np.tile(RNG.normal(size=8), (N, 1)) * 1e-200])
def test_every_measure_raises_the_same_error_for_a_constant_representation(name, constant):
    for x, y, side in ((constant, Y, "X"), (X, constant, "Y"), (constant, constant, "X")):
        with pytest.raises(ValueError, match=rf"^{side} is constant across stimuli .*is undefined"):
            score(name, x, y)


@pytest.mark.parametrize("name", list(METRICS))
@pytest.mark.parametrize("sx, sy", [(1e200, 1.0), (1e-200, 1.0), (1e200, 1e-200), (2.0**40, 2.0**-40)])
def test_every_measure_ignores_the_scale_of_the_features(name, sx, sy):
    base = score(name, X, Y)
    assert np.isfinite(base)
    assert score(name, X * sx, Y * sy) == pytest.approx(base, rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("name", ["mutual_knn", "cka_linear", "cknna", "svcca", "rsa"])
def test_a_power_of_two_scale_changes_nothing_to_the_last_bit(name):
    assert score(name, X * 2.0**30, Y * 2.0**-30) == score(name, X, Y)


def test_rbf_cka_with_an_absolute_bandwidth_depends_on_scale_but_never_overflows():
    """An absolute sigma is not scale-invariant by definition; far-apart stimuli give kernel 0 (the limit),
    a bandwidth far wider than every distance a constant kernel: the common error, never NaN."""
    k = M.rbf_kernel(X * 1e200, 0.4)
    assert np.array_equal(k, np.eye(N))
    limit = M.cka_from_grams(np.eye(N), M.rbf_kernel(Y, 0.4))
    assert M.cka(X * 1e200, Y, kernel="rbf", sigma=0.4) == pytest.approx(limit, rel=1e-12)
    with pytest.raises(ValueError, match="K is constant across stimuli"):
        M.cka(X * 1e-200, Y, kernel="rbf", sigma=0.4)
    assert np.isfinite(M.rbf_kernel(X, 1e-170)).all() and np.isfinite(M.rbf_kernel(X * 1e-170, 1e-170)).all()


def test_unbiased_cka_of_constant_kernels_is_an_error_not_round_off():
    ones = np.ones((N, N))
    with pytest.raises(ValueError, match="K is constant across stimuli"):
        M.cka_from_grams(ones, M.linear_kernel(Y), unbiased=True)
    assert M.cka_from_grams(M.linear_kernel(X) * 1e-300, M.linear_kernel(Y), unbiased=True) == pytest.approx(
        M.cka_from_grams(M.linear_kernel(X), M.linear_kernel(Y), unbiased=True), rel=1e-12)


def test_l2_normalise_is_exact_whatever_the_scale():
    rows = np.array([[3.0, 4.0], [1e200, 1e200], [3e-200, 4e-200]])
    assert np.allclose(M.l2_normalise(rows), [[0.6, 0.8], [2**-0.5, 2**-0.5], [0.6, 0.8]], rtol=1e-15)


def _store(name, x, scale=1.0):
    layers = ["l0", "l1"]
    data = {layer: (("stimulus", f"feature_{layer}"), (x * (1 + i) + i * Y[:, :1]) * scale)
            for i, layer in enumerate(layers)}
    return xr.Dataset(data, coords={"stimulus": np.array([f"s{i:02d}" for i in range(N)], dtype=object)},
                      attrs={"model": name, "modality": "vision", "layers": layers, "depths": [0.0, 1.0]})


@pytest.mark.parametrize("preprocess", ["prh", "l2"])
def test_the_all_pairs_engines_follow_the_same_conventions(preprocess):
    """Scaled embeddings give the same all-pairs scores (preprocessing normalises them safely); a constant
    layer scores NaN (the engines' side of the convention, tested per measure in test_alignment)."""
    def run(scale_a, scale_b, metric):
        kernels = {m: build_kernel(_store(m, base, s), k=5, preprocess=preprocess)
                   for m, base, s in (("a", X, scale_a), ("b", Y, scale_b))}
        params = {"sigma": 0.7} if metric == "cka_rbf" else {k: v for k, v in PARAMS.get(metric, {}).items()}
        return pairwise(kernels, metric, params=params, n_permutations=0, n_bootstrap=0)["score"].values

    for metric in METRICS:
        base = run(1.0, 1.0, metric)
        assert np.isfinite(base[np.isfinite(base)]).any()
        for sa, sb in ((1e200, 1e-200), (1e-200, 1e200)):
            # features are stored as float32 after preprocessing: equal to float32 round-off
            np.testing.assert_allclose(run(sa, sb, metric), base, rtol=2e-5, atol=2e-6, err_msg=metric)
    flat = _store("a", X)
    flat["l0"] = flat["l0"] * 0 + 1e-200
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kernels = {"a": build_kernel(flat, k=5, preprocess=preprocess), "b": build_kernel(_store("b", Y), k=5)}
        for metric in METRICS:
            params = {"sigma": 0.7} if metric == "cka_rbf" else PARAMS.get(metric, {})
            grid = pairwise(kernels, metric, params=params, n_permutations=0, n_bootstrap=0)["score"]
            assert np.isnan(grid.sel(model_a="a", model_b="b").values[0]).all(), metric
