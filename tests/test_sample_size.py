"""Alignment vs number of stimuli: nested seeded subsets, the curve's layout and its trend summary."""
import numpy as np
import pytest
import xarray as xr

from convergence.analyses.sample_size import curve_table, nested_subsets, sample_size_curve, size_trend
from convergence.kernels import build_kernel

N = 60


def store(name, modality, seed, n_layers=2):
    rng = np.random.default_rng(seed)
    latent = np.random.default_rng(0).normal(size=(N, 4))
    layers = [f"layer{i}" for i in range(n_layers)]
    data = {layer: (("stimulus", f"feature_{layer}"),
                    (latent @ rng.normal(size=(4, 12)) + 0.3 * rng.normal(size=(N, 12))).astype(np.float32))
            for layer in layers}
    return xr.Dataset(data, coords={"stimulus": np.array([f"s{i:03d}" for i in range(N)], dtype=object)},
                      attrs={"model": name, "modality": modality, "layers": layers,
                             "depths": [0.5, 1.0][:n_layers], "provenance": {"objective": "supervised"}})


@pytest.fixture(scope="module")
def kernels():
    return {m: build_kernel(store(m, mod, seed), k=5)
            for m, mod, seed in (("va", "vision", 1), ("vb", "vision", 2), ("la", "language", 3))}


def test_subsets_are_nested_seeded_and_sorted():
    ids = [f"s{i:03d}" for i in range(50)]
    subsets = nested_subsets(ids[::-1], [40, 10, 25], seed=3)
    assert list(subsets) == [10, 25, 40]
    assert set(subsets[10]) < set(subsets[25]) < set(subsets[40])
    assert all(list(v) == sorted(v) for v in subsets.values())
    again = nested_subsets(ids, [10, 25, 40], seed=3)
    assert all(np.array_equal(subsets[s], again[s]) for s in subsets)
    other = nested_subsets(ids, [10], seed=4)[10]
    assert not np.array_equal(other, subsets[10])
    with pytest.raises(ValueError, match=r"outside 2\.\.50"):
        nested_subsets(ids, [10, 51])
    with pytest.raises(ValueError, match="repeat"):
        nested_subsets(ids, [10, 10])


def test_curve_scores_each_size_like_a_direct_run_on_that_subset(kernels):
    from convergence.pairwise import pairwise

    curve = sample_size_curve(kernels, "mutual_knn", sizes=[12, 30], params={"k": 5}, summary="last",
                              n_permutations=20, n_bootstrap=10, seed=1, progress=False)
    assert list(curve["n_stimuli"].values) == [12, 30, N]
    subset = nested_subsets(sorted(kernels["va"]["stimulus"].values), [12, 30, N], seed=1)[30]
    direct = pairwise(kernels, "mutual_knn", params={"k": 5}, stimuli=subset, summaries=("last",),
                      n_permutations=20, n_bootstrap=10, seed=1)
    np.testing.assert_allclose(curve["summary_score"].sel(n_stimuli=30).values,
                               direct["summary_score"].sel(summary="last").values)
    np.testing.assert_allclose(curve["null_mean"].sel(n_stimuli=30).values,
                               direct["null_mean"].sel(summary="last").values)
    table = curve_table(curve)
    assert len(table) == 3 * 3  # 3 sizes x 3 unordered pairs of 3 models
    assert set(table["pair_kind"]) == {"vision x vision", "language x vision"}
    trend = size_trend(table)
    assert set(trend["pair_kind"]) == {"all", "vision x vision", "language x vision"}
    # the null of mutual kNN is about k / n: it falls as n grows
    null = trend[trend["pair_kind"] == "all"].set_index("n_stimuli")["null_mean"]
    assert null[12] > null[30] > null[N]
    with pytest.raises(ValueError, match="needs at least 6 stimuli"):
        sample_size_curve(kernels, "mutual_knn", sizes=[5], params={"k": 5}, progress=False)


def test_trend_rho_is_negative_when_scores_fall():
    import pandas as pd

    table = pd.DataFrame({"n_stimuli": [10, 20, 40] * 2, "model_a": ["a"] * 3 + ["a"] * 3,
                          "model_b": ["b"] * 3 + ["c"] * 3, "pair_kind": ["vision x vision"] * 6,
                          "score": [0.5, 0.4, 0.3, 0.6, 0.5, 0.2], "null_mean": [0.2, 0.15, 0.05] * 2})
    trend = size_trend(table).set_index(["pair_kind", "n_stimuli"])
    assert trend.loc[("all", 10), "score"] == pytest.approx(0.55)
    assert trend.loc[("all", 40), "excess"] == pytest.approx(0.25 - 0.05)
    assert trend.loc[("all", 20), "excess"] == pytest.approx(0.45 - 0.15)
    assert trend.loc[("all", 10), "rho_n_score"] == pytest.approx(-1.0)
    assert trend.loc[("all", 10), "rho_n_excess"] == pytest.approx(-1.0)  # excess 0.35, 0.30, 0.20
    assert trend.loc[("all", 10), "n_pairs"] == 2
