"""Claims of convergence.pairwise (and the competence/PRH analyses): all-pairs scores from cached products equal the per-pair metrics,
models are joined on stimulus ids, and every summary carries a null and a confidence interval."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from convergence import metrics as M
from convergence.analyses.competence import knn_accuracy, linear_probe_accuracy, mean_bits_per_byte
from convergence.analyses.prh import alignment_vs_competence, linear_fit
from convergence.pairwise import (
    METRICS,
    ModelProducts,
    combine_pairs,
    common_stimuli,
    make_metric,
    pair_scores,
    pairwise,
)
from convergence.kernels import build_kernel, feature_var

N = 48
LATENT = np.random.default_rng(11).normal(size=(N, 5))
IDS = np.array([f"s{i:03d}" for i in range(N)], dtype=object)


def embedding_store(name, n_layers, dim, noise, seed, order=None, drop=0):
    rng = np.random.default_rng(seed)
    layers = [f"hidden_{i:02d}" for i in range(n_layers)]
    data = {}
    for i, layer in enumerate(layers):
        x = LATENT @ rng.normal(size=(5, dim)) + noise * (1 + i) * rng.normal(size=(N, dim))
        data[layer] = (("stimulus", f"feature_{layer}"), x.astype(np.float32))
    ds = xr.Dataset(data, coords={"stimulus": IDS}, attrs={
        "model": name, "modality": "language", "layers": layers,
        "depths": [float(d) for d in np.linspace(0, 1, n_layers)]})
    if order is not None:
        ds = ds.isel(stimulus=order)
    if drop:
        ds = ds.isel(stimulus=slice(drop, None))
    return ds


@pytest.fixture(scope="module")
def kernels():
    shuffled = np.random.default_rng(5).permutation(N)
    emb = {
        "alpha": embedding_store("alpha", 3, 10, 0.3, 1),
        "beta": embedding_store("beta", 4, 12, 0.5, 2, order=shuffled),  # another row order
        "gamma": embedding_store("gamma", 2, 6, 2.0, 3),
    }
    return {m: build_kernel(e, k=8) for m, e in emb.items()}


def by_id(kernel, layer_pos, ids=IDS):
    """Features of one layer, rows in the order of ``ids`` (an independent join)."""
    layer = kernel.attrs["layers"][layer_pos]
    return kernel[feature_var(layer)].sel(stimulus=list(ids)).values.astype(np.float64)


REFERENCE = {
    "mutual_knn": lambda x, y: M.mutual_knn(x, y, 8),
    "cycle_knn": lambda x, y: M.cycle_knn(x, y, 8),
    "jaccard_knn": lambda x, y: M.jaccard_knn(x, y, 8),
    "cka_linear": M.cka,
    "cka_linear_unbiased": lambda x, y: M.cka(x, y, unbiased=True),
    "cka_rbf": lambda x, y: M.cka(x, y, kernel="rbf", sigma=0.7),
    "cknna": lambda x, y: M.cknna(x, y, 8),
    "svcca": M.svcca,
    "procrustes": M.procrustes_distance,
    "rsa": M.rsa,
}
PARAMS = {"mutual_knn": {"k": 8}, "cycle_knn": {"k": 8}, "jaccard_knn": {"k": 8}, "cknna": {"k": 8},
          "cka_rbf": {"sigma": 0.7}}


def quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


@pytest.mark.parametrize("metric", METRICS)
def test_all_pairs_scores_equal_the_single_pair_metric_on_id_joined_features(kernels, metric):
    ds = quiet(pairwise, kernels, metric, params=PARAMS.get(metric), n_permutations=0, n_bootstrap=0)
    assert ds["score"].dims == ("model_a", "model_b", "layer_a", "layer_b")
    for a in kernels:
        for b in kernels:
            sub = ds["score"].sel(model_a=a, model_b=b).values
            la, lb = len(kernels[a].attrs["layers"]), len(kernels[b].attrs["layers"])
            assert np.isnan(sub[la:, :]).all() and np.isnan(sub[:, lb:]).all()  # padding
            expected = np.array([[quiet(REFERENCE[metric], by_id(kernels[a], i), by_id(kernels[b], j))
                                  for j in range(lb)] for i in range(la)])
            assert np.allclose(sub[:la, :lb], expected, atol=1e-6), (a, b)


def test_cknna_neighbour_values_are_the_kernel_at_each_neighbour(kernels):
    """CKNNA's prepared values, one neighbour rank at a time, are K[i, j] = x_i . x_j at each listed neighbour."""
    from convergence.pairwise.measures import make_metric
    from convergence.pairwise.products import ModelProducts, common_stimuli

    ids = common_stimuli(kernels, list(kernels))
    model = ModelProducts.from_kernel("alpha", kernels["alpha"], ids)
    prepared = make_metric("cknna", k=8).prepare(model)
    for layer in range(prepared.n_layers):
        x = model.features(layer)
        expected = (x @ x.T)[np.arange(model.n)[:, None], prepared.nbrs[layer]]
        np.testing.assert_allclose(prepared.values[layer], expected, rtol=1e-12, atol=1e-12)


def test_scores_depend_on_ids_not_row_positions(kernels):
    ds = pairwise(kernels, "mutual_knn", params={"k": 8}, n_permutations=0, n_bootstrap=0)
    by_position = M.mutual_knn(kernels["alpha"]["features_hidden_00"].values.astype(float),
                               kernels["beta"]["features_hidden_00"].values.astype(float), 8)
    joined = float(ds["score"].sel(model_a="alpha", model_b="beta", layer_a=0, layer_b=0))
    assert joined > 3 * by_position  # the shuffled store is aligned only through its ids


def test_models_are_compared_on_the_shared_stimuli(kernels):
    partial = dict(kernels)
    partial["delta"] = build_kernel(embedding_store("delta", 2, 8, 0.4, 4, drop=10), k=8)
    ds = pairwise(partial, "mutual_knn", params={"k": 8}, n_permutations=0, n_bootstrap=0)
    shared = IDS[10:]
    assert list(ds["stimulus"].values) == sorted(shared) and ds.attrs["n_stimuli"] == N - 10
    # neighbours were recomputed on the subset for every model, never taken from the full set
    expected = M.mutual_knn(by_id(partial["alpha"], 1, shared), by_id(partial["delta"], 0, shared), 8)
    assert float(ds["score"].sel(model_a="alpha", model_b="delta", layer_a=1, layer_b=0)) == pytest.approx(expected)


def test_too_few_shared_stimuli_is_a_clear_error(kernels):
    with pytest.raises(ValueError, match=r"only 5 stimuli .* needs at least 9"):
        pairwise(kernels, "mutual_knn", params={"k": 8}, stimuli=IDS[:5], n_permutations=0, n_bootstrap=0)
    with pytest.raises(ValueError, match="not held by every model"):
        pairwise(kernels, "mutual_knn", stimuli=["nope"], n_permutations=0, n_bootstrap=0)


def test_best_and_last_layer_summaries(kernels):
    ds = pairwise(kernels, "cka_linear", summaries=("best", "last"), n_permutations=0, n_bootstrap=0)
    for a in kernels:
        for b in kernels:
            grid = ds["score"].sel(model_a=a, model_b=b).values
            best = ds.sel(model_a=a, model_b=b, summary="best")
            assert float(best["summary_score"]) == pytest.approx(np.nanmax(grid))
            i, j = int(best["summary_layer_a"]), int(best["summary_layer_b"])
            assert grid[i, j] == np.nanmax(grid)
            assert str(best["summary_layer_name_a"].values) == kernels[a].attrs["layers"][i]
            assert float(best["summary_depth_b"]) == pytest.approx(kernels[b].attrs["depths"][j])
            last = ds.sel(model_a=a, model_b=b, summary="last")
            la, lb = len(kernels[a].attrs["layers"]) - 1, len(kernels[b].attrs["layers"]) - 1
            assert (int(last["summary_layer_a"]), int(last["summary_layer_b"])) == (la, lb)
            assert float(last["summary_score"]) == pytest.approx(grid[la, lb])


def test_distances_pick_the_smallest_layer_pair(kernels):
    ds = pairwise(kernels, "procrustes", n_permutations=0, n_bootstrap=0)
    grid = ds["score"].sel(model_a="alpha", model_b="gamma").values
    assert float(ds["summary_score"].sel(model_a="alpha", model_b="gamma", summary="best")) == np.nanmin(grid)
    assert ds.attrs["higher_is_better"] == 0


def test_named_layer_summary(kernels):
    named = {"alpha": "hidden_01", "beta": "hidden_00", "gamma": "hidden_01"}
    ds = pairwise(kernels, "cka_linear", summaries=("named",), named_layers=named, n_permutations=0, n_bootstrap=0)
    e = ds.sel(model_a="alpha", model_b="beta", summary="named")
    assert (int(e["summary_layer_a"]), int(e["summary_layer_b"])) == (1, 0)
    with pytest.raises(ValueError, match="hidden_09"):
        pairwise(kernels, "cka_linear", summaries=("named",), named_layers={**named, "beta": "hidden_09"})


def test_symmetric_metrics_give_symmetric_matrices(kernels):
    ds = pairwise(kernels, "cka_linear", n_permutations=20, n_bootstrap=20)
    for a in kernels:
        for b in kernels:
            ab = ds["score"].sel(model_a=a, model_b=b).values
            ba = ds["score"].sel(model_a=b, model_b=a).values
            assert np.allclose(ab, ba.T, equal_nan=True)
            for field in ("summary_score", "p_value", "ci_low"):
                assert np.allclose(ds[field].sel(model_a=a, model_b=b), ds[field].sel(model_a=b, model_b=a),
                                   equal_nan=True)
    assert np.allclose(np.diag(ds["summary_score"].sel(summary="best").values), 1.0)


def test_null_is_near_chance_and_p_value_follows_the_count_rule(kernels):
    ds = pairwise(kernels, "mutual_knn", params={"k": 8}, n_permutations=99, n_bootstrap=0, seed=1)
    last = ds.sel(model_a="alpha", model_b="beta", summary="last")
    assert float(last["null_mean"]) == pytest.approx(8 / (N - 1), abs=0.03)  # one fixed layer pair: chance
    best = ds.sel(model_a="alpha", model_b="beta", summary="best")
    assert float(best["null_mean"]) > float(last["null_mean"])  # the best of 3 x 4 layer pairs per draw
    for e in (last, best):
        assert float(e["p_value"]) == pytest.approx(1 / 100)  # no permutation reaches the aligned score
        assert float(e["z_score"]) > 5


@pytest.mark.parametrize("metric", ["mutual_knn", "cycle_knn", "jaccard_knn", "cka_linear", "cka_linear_unbiased",
                                    "cka_rbf", "cknna", "svcca", "procrustes", "rsa"])
def test_null_scores_are_the_metric_on_permuted_stimuli(kernels, metric):
    ids = common_stimuli(kernels, ["alpha", "beta"])
    measure = make_metric(metric, **PARAMS.get(metric, {}))
    pa = measure.prepare(ModelProducts.from_kernel("alpha", kernels["alpha"], ids))
    pb = measure.prepare(ModelProducts.from_kernel("beta", kernels["beta"], ids))
    perms = np.random.default_rng(0).permuted(np.tile(np.arange(N), (3, 1)), axis=1)
    got = quiet(measure.null, pa, 1, pb, 2, perms)
    x, y = by_id(kernels["alpha"], 1, ids), by_id(kernels["beta"], 2, ids)
    expected = [quiet(REFERENCE[metric], x, y[perm]) for perm in perms]
    assert np.allclose(got, expected, atol=1e-6)


@pytest.mark.parametrize("metric", ["cka_linear", "cka_linear_unbiased", "cka_rbf", "svcca", "procrustes"])
def test_bootstrap_scores_are_the_metric_on_resampled_stimuli(kernels, metric):
    ids = common_stimuli(kernels, ["alpha", "gamma"])
    measure = make_metric(metric, **PARAMS.get(metric, {}))
    pa = measure.prepare(ModelProducts.from_kernel("alpha", kernels["alpha"], ids))
    pb = measure.prepare(ModelProducts.from_kernel("gamma", kernels["gamma"], ids))
    draws = np.random.default_rng(2).integers(0, N, size=(3, N))
    weights = np.stack([np.bincount(d, minlength=N) for d in draws]).astype(float)
    got = quiet(measure.bootstrap, pa, 0, pb, 1, weights)
    x, y = by_id(kernels["alpha"], 0, ids), by_id(kernels["gamma"], 1, ids)
    if metric == "cka_rbf":  # the bandwidth is fixed; kernels are re-indexed, not recomputed
        ref = [M.cka_from_grams(M.rbf_kernel(x[d], 0.7), M.rbf_kernel(y[d], 0.7)) for d in draws]
    else:
        ref = [quiet(REFERENCE[metric], x[np.sort(d)], y[np.sort(d)]) for d in draws]
    assert np.allclose(got, ref, atol=1e-6)


def test_knn_bootstrap_resamples_the_per_stimulus_terms(kernels):
    ids = common_stimuli(kernels, ["alpha", "beta"])
    measure = make_metric("jaccard_knn", k=8)
    pa = measure.prepare(ModelProducts.from_kernel("alpha", kernels["alpha"], ids))
    pb = measure.prepare(ModelProducts.from_kernel("beta", kernels["beta"], ids))
    terms = M.knn_terms(M.knn_indices(by_id(kernels["alpha"], 0), 8), M.knn_indices(by_id(kernels["beta"], 1), 8),
                        "jaccard")
    draw = np.random.default_rng(4).integers(0, N, N)
    weights = np.bincount(draw, minlength=N)[None, :].astype(float)
    assert measure.bootstrap(pa, 0, pb, 1, weights)[0] == pytest.approx(terms[draw].mean())


def test_confidence_interval_brackets_an_aligned_score_and_is_deterministic(kernels):
    run = lambda seed, groups=10: pairwise(kernels, "cka_linear", n_permutations=30, n_bootstrap=groups,  # noqa: E731
                                           seed=seed)
    ds, again, other = run(7), run(7), run(8)
    e = ds.sel(model_a="alpha", model_b="beta", summary="best")
    assert float(e["ci_low"]) < float(e["summary_score"]) < float(e["ci_high"])
    assert ds.identical(again)
    # the random split into groups depends on the seed; delete-one (groups >= n) does not
    assert not np.allclose(ds["ci_low"].values, other["ci_low"].values, equal_nan=True)
    assert np.allclose(run(7, 500)["ci_low"].values, run(8, 500)["ci_low"].values, equal_nan=True)


def test_pair_results_do_not_depend_on_other_models_and_combine_into_the_full_matrix(kernels):
    kwargs = dict(params={"k": 8}, n_permutations=25, n_bootstrap=25, seed=3)
    full = pairwise(kernels, "cycle_knn", **kwargs)
    pieces = [pair_scores(kernels, a, b, "cycle_knn", **kwargs) for a in kernels for b in kernels]
    single = pieces[1].sel(model_a="alpha", model_b="beta")
    assert single["summary_score"].equals(full.sel(model_a="alpha", model_b="beta")["summary_score"])
    assert np.allclose(single["p_value"], full["p_value"].sel(model_a="alpha", model_b="beta"))
    combined = combine_pairs(pieces)
    xr.testing.assert_allclose(combined, full)
    with pytest.raises(ValueError, match="appears twice"):
        combine_pairs(pieces + pieces[:1])


def test_feature_space_path_matches_the_gram_path(kernels):
    ids = common_stimuli(kernels, list(kernels))
    no_gram = {m: build_kernel(embedding_store(m, len(k.attrs["layers"]), k["features_hidden_00"].shape[1], 0.3, i),
                               k=8, gram_max_n=10) for i, (m, k) in enumerate(kernels.items())}
    with_gram = {m: build_kernel(embedding_store(m, len(k.attrs["layers"]), k["features_hidden_00"].shape[1], 0.3, i),
                                 k=8) for i, (m, k) in enumerate(kernels.items())}
    for metric in ("cka_linear", "cka_linear_unbiased"):
        a = pairwise(no_gram, metric, stimuli=ids, n_permutations=5, n_bootstrap=5)
        b = pairwise(with_gram, metric, stimuli=ids, n_permutations=5, n_bootstrap=5)
        assert np.allclose(a["score"], b["score"], equal_nan=True, atol=1e-6)
        assert np.allclose(a["null_mean"], b["null_mean"], equal_nan=True, atol=1e-6)
        assert np.allclose(a["ci_high"], b["ci_high"], equal_nan=True, atol=1e-6)


def test_lazily_opened_zarr_kernels_give_the_same_scores(kernels, tmp_path):
    lazy = {}
    for m, k in kernels.items():
        k.to_zarr(tmp_path / f"{m}.zarr", consolidated=False)
        lazy[m] = xr.open_zarr(tmp_path / f"{m}.zarr", chunks=None, consolidated=False)
    for metric in ("cka_linear", "mutual_knn"):
        a = pairwise(lazy, metric, params=PARAMS.get(metric), n_permutations=10, n_bootstrap=10)
        b = pairwise(kernels, metric, params=PARAMS.get(metric), n_permutations=10, n_bootstrap=10)
        xr.testing.assert_allclose(a, b)


def test_result_survives_a_zarr_round_trip(kernels, tmp_path):
    ds = pairwise(kernels, "mutual_knn", params={"k": 8}, n_permutations=5, n_bootstrap=5)
    ds.to_zarr(tmp_path / "scores.zarr", consolidated=False)
    back = xr.open_zarr(tmp_path / "scores.zarr", consolidated=False).load()
    assert back.sel(model_a="beta", summary="best")["summary_layer_name_b"].values.tolist() == \
        ds.sel(model_a="beta", summary="best")["summary_layer_name_b"].values.tolist()
    assert np.allclose(back["score"], ds["score"], equal_nan=True)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"metric": "cosine"}, "metric='cosine'"),
        ({"metric": "mutual_knn", "params": {"sigma": 1.0}}, "allowed: \\['k'\\]"),
        ({"metric": "mutual_knn", "params": {"k": 20}}, "holds k=8"),
        ({"metric": "cka_rbf"}, "exactly one"),
        ({"metric": "cka_linear", "models_a": ["alpha", "omega"]}, "omega"),
        ({"metric": "cka_linear", "summaries": ("median",)}, "median"),
        ({"metric": "cka_linear", "n_permutations": -1}, "n_permutations"),
        ({"metric": "cka_linear", "ci": 1.5}, "ci=1.5"),
        ({"metric": "cka_linear", "summaries": ("named",)}, "named_layers"),
    ],
)
def test_bad_arguments_raise_a_clear_value_error(kernels, kwargs, message):
    metric = kwargs.pop("metric")
    with pytest.raises(ValueError, match=message):
        pairwise(kernels, metric, **kwargs)


def test_not_a_kernel_store_is_refused(kernels):
    with pytest.raises(ValueError, match="not a kernel store"):
        pairwise({"alpha": kernels["alpha"], "raw": embedding_store("raw", 2, 4, 0.1, 9)}, "cka_linear")


# ------------------------------------------------------------------------------------------ competence


def clusters(rng, n_per=15, classes=3, dim=6, spread=0.1):
    centres = rng.normal(size=(classes, dim)) * 3
    labels = np.repeat(np.arange(classes), n_per)
    return centres[labels] + spread * rng.normal(size=(labels.size, dim)), labels


def test_knn_accuracy_leave_one_out():
    rng = np.random.default_rng(0)
    x, y = clusters(rng)
    assert knn_accuracy(x, y, k=5) == 1.0
    noise = rng.normal(size=(300, 6))
    assert knn_accuracy(noise, rng.integers(0, 3, 300), k=5) < 0.5
    # hand case: 1-NN of each point is its mirror, except point 3 whose neighbour has another label
    pts = np.array([[1.0, 0.0], [0.99, 0.1], [0.0, 1.0], [0.1, 0.99]])
    assert knn_accuracy(pts, ["a", "a", "b", "a"], k=1) == pytest.approx(0.5)


def test_linear_probe_accuracy():
    rng = np.random.default_rng(0)
    x, y = clusters(rng, n_per=20)
    assert linear_probe_accuracy(x, y, seed=0) == 1.0
    assert linear_probe_accuracy(x, y, seed=0) == linear_probe_accuracy(x, y, seed=0)
    with pytest.raises(ValueError, match="n_splits=5"):
        linear_probe_accuracy(x[16:26], y[16:26])  # 4 of class 0, 6 of class 1
    with pytest.raises(ValueError, match="one label per stimulus"):
        knn_accuracy(x, y[:-1])


def test_bits_per_byte_is_read_from_the_store():
    emb = embedding_store("lm", 2, 4, 0.1, 0)
    with pytest.raises(ValueError, match="bits_per_byte"):
        mean_bits_per_byte(emb)
    emb["bits_per_byte"] = (("stimulus",), np.linspace(0.5, 1.5, N))
    assert mean_bits_per_byte(emb) == pytest.approx(1.0)


def test_alignment_versus_competence_table_and_fit(kernels):
    ds = pairwise(kernels, "mutual_knn", params={"k": 8}, models_a=["alpha"], n_permutations=10, n_bootstrap=10)
    table = alignment_vs_competence(ds, {"beta": 0.4, "gamma": 0.2, "alpha": 0.9}, reference="alpha")
    assert list(table["model"]) == ["beta", "gamma"]
    expected = float(ds["summary_score"].sel(model_a="alpha", model_b="beta", summary="best"))
    assert table.loc[0, "alignment"] == pytest.approx(expected)
    fit = linear_fit([0.0, 1.0, 2.0], [1.0, 3.0, 5.0])
    assert (fit["slope"], fit["intercept"], fit["r"]) == pytest.approx((2.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="reference"):
        alignment_vs_competence(ds, {}, reference="omega")


# ------------------------------------------------------------------------------------------------ plots


def test_figures_are_written_as_png_and_pdf(kernels, tmp_path):
    from convergence.plots.alignment import (
        plot_alignment_heatmap,
        plot_crossmodal_heatmap,
        plot_layer_pairs,
        plot_prh,
    )

    ds = pairwise(kernels, "mutual_knn", params={"k": 8}, n_permutations=10, n_bootstrap=10)
    cross = pairwise(kernels, "mutual_knn", params={"k": 8}, models_a=["alpha"], models_b=["beta", "gamma"],
                     n_permutations=10, n_bootstrap=10)
    table = pd.DataFrame({"model": ["beta", "gamma"], "competence": [0.4, 0.2], "alignment": [0.3, 0.1],
                          "ci_low": [0.25, 0.05], "ci_high": [0.35, 0.15], "null_mean": [0.17, 0.17]})
    jobs = {
        "heat": lambda p: plot_alignment_heatmap(ds, p),
        "cross": lambda p: plot_crossmodal_heatmap(cross, p),
        "prh": lambda p: plot_prh(table, p, fit=linear_fit(table["competence"], table["alignment"]), reference="alpha"),
        "layers": lambda p: plot_layer_pairs(ds, "alpha", "beta", p),
    }
    for name, job in jobs.items():
        paths = [tmp_path / f"{name}.png", tmp_path / f"{name}.pdf"]
        job(paths)
        assert all(p.stat().st_size > 1000 for p in paths)


# ------------------------------------------------------------------------- selection-aware null (best)


@pytest.mark.parametrize("metric", METRICS)
def test_null_matrices_score_every_layer_pair_under_the_same_permutation(kernels, metric, monkeypatch):
    from convergence.pairwise.measures import base as measures_base

    ids = common_stimuli(kernels, ["alpha", "beta"])
    measure = make_metric(metric, **PARAMS.get(metric, {}))
    pa = measure.prepare(ModelProducts.from_kernel("alpha", kernels["alpha"], ids))
    pb = measure.prepare(ModelProducts.from_kernel("beta", kernels["beta"], ids))
    perms = np.random.default_rng(0).permuted(np.tile(np.arange(N), (5, 1)), axis=1)
    got = quiet(measure.null_matrices, pa, pb, perms)
    assert got.shape == (5, 3, 4)
    expected = np.stack([np.stack([quiet(measure.null, pa, i, pb, j, perms) for j in range(4)], axis=1)
                         for i in range(3)], axis=1)
    assert np.allclose(got, expected, atol=1e-9)
    if metric.endswith("_knn") or metric == "cknna":  # large n: codes found by binary search, not a table
        monkeypatch.setattr(measures_base, "_KNN_LOOKUP_MAX", 0)
        assert np.allclose(measure.null_matrices(pa, pb, perms), expected, atol=1e-9)


def noise_kernels(n_layers=8, n=40, dim=6):
    """Two models whose layers are independent noise: no layer pair is aligned beyond chance."""
    ids = np.array([f"s{i:03d}" for i in range(n)], dtype=object)
    out = {}
    for seed, name in enumerate(("noise_a", "noise_b")):
        rng = np.random.default_rng(100 + seed)
        layers = [f"hidden_{i:02d}" for i in range(n_layers)]
        data = {layer: (("stimulus", f"feature_{layer}"), rng.normal(size=(n, dim)).astype(np.float32))
                for layer in layers}
        out[name] = build_kernel(xr.Dataset(data, coords={"stimulus": ids}, attrs={"model": name, "layers": layers}),
                                 k=5)
    return out


@pytest.mark.parametrize("metric", ["mutual_knn", "cka_linear"])
def test_best_of_many_layer_pairs_is_not_significant_for_independent_models(metric):
    kernels = noise_kernels()
    params = {"k": 5} if metric == "mutual_knn" else None
    best = pairwise(kernels, metric, params=params, models_a=["noise_a"], models_b=["noise_b"],
                    n_permutations=199, n_bootstrap=0, seed=0).sel(model_a="noise_a", model_b="noise_b",
                                                                   summary="best")
    winner = {"noise_a": str(best["summary_layer_name_a"].values), "noise_b": str(best["summary_layer_name_b"].values)}
    # the old null: the winning layer pair, as if it had been chosen in advance
    fixed = pairwise(kernels, metric, params=params, models_a=["noise_a"], models_b=["noise_b"],
                     summaries=("named",), named_layers=winner, n_permutations=199, n_bootstrap=0,
                     seed=0).sel(model_a="noise_a", model_b="noise_b", summary="named")
    assert float(fixed["summary_score"]) == float(best["summary_score"])
    assert float(fixed["p_value"]) < 0.05  # the best of 64 chance scores looks significant at its own pair
    assert float(best["p_value"]) > 0.2  # but not against the best of 64 per permutation
    assert float(best["null_mean"]) > float(fixed["null_mean"])


@pytest.mark.parametrize("metric", ["mutual_knn", "cycle_knn", "cka_linear", "cknna", "procrustes", "rsa"])
def test_aligned_models_keep_the_smallest_p_value_and_the_best_null_dominates_the_fixed_one(kernels, metric):
    n_perm = 39
    ds = quiet(pairwise, kernels, metric, params=PARAMS.get(metric), n_permutations=n_perm, n_bootstrap=20,
               seed=2, models_a=["alpha", "beta"], models_b=["beta", "alpha"])
    assert "best: max over all layer pairs per permutation" in ds.attrs["null_method"]
    assert "best: at the winning layer pair" in ds.attrs["bootstrap_method"]
    e = ds.sel(model_a="alpha", model_b="beta", summary="best")
    assert float(e["p_value"]) == pytest.approx(1 / (1 + n_perm))  # truly aligned: no draw reaches it
    winner = {"alpha": str(e["summary_layer_name_a"].values), "beta": str(e["summary_layer_name_b"].values)}
    fixed = quiet(pair_scores, kernels, "alpha", "beta", metric, params=PARAMS.get(metric), n_permutations=n_perm,
                  n_bootstrap=20, seed=2, summaries=("best", "named"), named_layers=winner)
    named = fixed.sel(model_a="alpha", model_b="beta", summary="named")
    same = fixed.sel(model_a="alpha", model_b="beta", summary="best")
    assert float(same["null_mean"]) == pytest.approx(float(e["null_mean"]))  # per pair: no other model matters
    # the same permutations: every draw of the best is at least that of the winning layer pair
    sign = 1 if ds.attrs["higher_is_better"] else -1
    assert sign * float(same["null_mean"]) >= sign * float(named["null_mean"]) - 1e-12
    # the interval of best stays at the winning layer pair
    assert float(same["ci_low"]) == float(named["ci_low"]) and float(same["ci_high"]) == float(named["ci_high"])


# ------------------------------------------------------------------------------------- constant layers


@pytest.fixture(scope="module")
def constant_kernels():
    """Two aligned models whose first layer is constant across stimuli."""
    out = {}
    for seed, name in enumerate(("flat_a", "flat_b")):
        emb = embedding_store(name, 3, 8, 0.3, 20 + seed)
        emb["hidden_00"] = emb["hidden_00"] * 0 + 1.0
        with pytest.warns(UserWarning, match="hidden_00.*constant across stimuli; its alignment scores will be NaN"):
            out[name] = build_kernel(emb, k=8)
        assert out[name].attrs["kernel_constant_layers"] == ["hidden_00"]
    return out


@pytest.mark.parametrize("metric", METRICS)
def test_constant_layers_score_nan_and_never_win_best(constant_kernels, metric):
    old_store = {m: k.copy() for m, k in constant_kernels.items()}  # written before the attribute existed
    for k in old_store.values():
        del k.attrs["kernel_constant_layers"]
    for kernels, stimuli in ((constant_kernels, None), (old_store, None), (constant_kernels, IDS[:40])):
        ds = quiet(pairwise, kernels, metric, params=PARAMS.get(metric), stimuli=stimuli, n_permutations=9,
                   n_bootstrap=9)
        for a in kernels:
            for b in kernels:
                grid = ds["score"].sel(model_a=a, model_b=b).values
                assert np.isnan(grid[0, :]).all() and np.isnan(grid[:, 0]).all()  # no score from ties
                assert np.isfinite(grid[1:, 1:]).all()
                best = ds.sel(model_a=a, model_b=b, summary="best")
                assert int(best["summary_layer_a"]) > 0 and int(best["summary_layer_b"]) > 0
                assert np.isfinite(float(best["p_value"])) and np.isfinite(float(best["null_mean"]))


def test_best_p_value_counts_every_permutation_whose_best_layer_pair_ties_or_beats_the_observed():
    from convergence.inference import rng_for

    kernels = noise_kernels(n_layers=4)
    ds = pairwise(kernels, "mutual_knn", params={"k": 5}, models_a=["noise_a"], models_b=["noise_b"],
                  n_permutations=99, n_bootstrap=0, seed=4)
    e = ds.sel(model_a="noise_a", model_b="noise_b", summary="best")
    # kNN scores are exact multiples of 1 / (n k), so ties with null draws are common and must count
    score = ds["score"].values[0, 0, :4, :4]
    assert np.allclose(score * 40 * 5, np.round(score * 40 * 5), rtol=0, atol=1e-9)
    ids = common_stimuli(kernels, ["noise_a", "noise_b"])
    measure = make_metric("mutual_knn", k=5)
    pa, pb = (measure.prepare(ModelProducts.from_kernel(m, kernels[m], ids)) for m in ("noise_a", "noise_b"))
    perms = rng_for(4, "noise_a", "noise_b").permuted(np.tile(np.arange(40), (99, 1)), axis=1)
    maxima = np.max([[measure.null(pa, i, pb, j, perms) for j in range(4)] for i in range(4)], axis=(0, 1))
    observed = float(e["summary_score"])
    assert observed == pytest.approx(score.max())
    assert np.any(np.isclose(maxima, observed))  # the case at hand has ties
    assert float(e["p_value"]) == pytest.approx((1 + np.sum(maxima >= observed - 1e-12)) / 100)
    assert float(e["null_mean"]) == pytest.approx(maxima.mean())


# ----------------------------------------------------------------- calibration, q-values, jackknife intervals


@pytest.mark.parametrize("metric", ["cka_linear", "cka_linear_unbiased", "cka_rbf", "svcca", "procrustes"])
def test_jackknife_replicates_are_the_metric_on_the_stimuli_kept(kernels, metric):
    from convergence.inference import jackknife_weights

    ids = common_stimuli(kernels, ["alpha", "gamma"])
    measure = make_metric(metric, **PARAMS.get(metric, {}))
    pa = measure.prepare(ModelProducts.from_kernel("alpha", kernels["alpha"], ids))
    pb = measure.prepare(ModelProducts.from_kernel("gamma", kernels["gamma"], ids))
    weights = jackknife_weights(np.random.default_rng(3), N, 6)
    got = quiet(measure.bootstrap, pa, 0, pb, 1, weights)
    x, y = by_id(kernels["alpha"], 0, ids), by_id(kernels["gamma"], 1, ids)
    kept = [np.flatnonzero(w) for w in weights]
    if metric == "cka_rbf":  # the bandwidth is fixed; kernels are re-indexed, not recomputed
        ref = [M.cka_from_grams(M.rbf_kernel(x[k], 0.7), M.rbf_kernel(y[k], 0.7)) for k in kept]
    else:
        ref = [quiet(REFERENCE[metric], x[k], y[k]) for k in kept]
    assert np.allclose(got, ref, atol=1e-6)


def test_knn_jackknife_averages_the_terms_of_the_stimuli_kept(kernels):
    from convergence.inference import jackknife_weights

    ids = common_stimuli(kernels, ["alpha", "beta"])
    measure = make_metric("mutual_knn", k=8)
    pa = measure.prepare(ModelProducts.from_kernel("alpha", kernels["alpha"], ids))
    pb = measure.prepare(ModelProducts.from_kernel("beta", kernels["beta"], ids))
    terms = M.knn_terms(M.knn_indices(by_id(kernels["alpha"], 0), 8), M.knn_indices(by_id(kernels["beta"], 1), 8),
                        "mutual")
    weights = jackknife_weights(np.random.default_rng(4), N, 5)
    expected = [terms[w > 0].mean() for w in weights]
    assert np.allclose(measure.bootstrap(pa, 0, pb, 1, weights), expected)


@pytest.mark.parametrize("metric", ["mutual_knn", "cka_linear", "cknna", "rsa", "svcca", "procrustes"])
def test_every_summary_has_tau_calibrated_and_q_from_its_null(kernels, metric):
    from scipy.stats import false_discovery_control

    from convergence.metrics.registry import get_metric

    ds = quiet(pairwise, kernels, metric, params=PARAMS.get(metric), n_permutations=39, n_bootstrap=10, alpha=0.1,
               seed=1)
    assert ds.attrs["alpha"] == 0.1 and "tau" in ds.attrs["threshold_rule"]
    higher = get_metric(metric).higher_is_better
    top = get_metric(metric).range[1 if higher else 0]
    sign = 1 if higher else -1
    score, tau, cal = (ds[f].values for f in ("summary_score", "tau", "calibrated"))
    ok = np.isfinite(score)
    assert np.all(np.isfinite(tau[ok])) and np.all((cal[ok] >= 0) & (cal[ok] <= 1))
    above = sign * (score - tau) > 1e-9
    assert np.allclose(cal[ok & above], ((score - tau) / (top - tau))[ok & above])
    assert np.all(cal[ok & ~above] == 0)
    # calibrated > 0 exactly when the score beats all but the top alpha share of the null with it
    assert np.all((cal[ok] > 0) <= (ds["p_value"].values[ok] <= 0.1 + 1e-12))
    models = [str(m) for m in ds["model_a"].values]
    for s in ds["summary"].values:
        sub = ds.sel(summary=s)
        symmetric = get_metric(metric).symmetric  # a symmetric metric's mirrored pair is the same test
        pairs = [(a, b) for i, a in enumerate(models) for b in (models[i + 1:] if symmetric else models) if a != b]
        p = np.array([float(sub["p_value"].sel(model_a=a, model_b=b)) for a, b in pairs])
        q = np.array([float(sub["q_value"].sel(model_a=a, model_b=b)) for a, b in pairs])
        assert np.allclose(q, false_discovery_control(p, method="bh"))
        if symmetric:
            assert np.allclose(sub["q_value"].values, sub["q_value"].values.T, equal_nan=True)
        assert np.all(np.isnan(np.diag(sub["q_value"].values)))  # a model with itself is no test
        # the intervals are jackknife ones: they contain their estimate
        lo, hi, est = (sub[f].values for f in ("ci_low", "ci_high", "summary_score"))
        fin = np.isfinite(est)
        assert np.all((lo[fin] <= est[fin]) & (est[fin] <= hi[fin]))


def test_calibrated_score_is_zero_for_independent_random_features():
    """200 seeds of two independent 3-layer noise models: the calibrated best (its selection null) and last
    scores are 0 in >= 95 % of seeds at alpha 0.05 (with 29 permutations the threshold is the largest of the
    30 values, so a chance score passes it with probability 1/30)."""
    zero = {"best": 0, "last": 0}
    for seed in range(200):
        rng = np.random.default_rng(1000 + seed)
        ids = np.array([f"s{i:03d}" for i in range(24)], dtype=object)
        stores = {}
        for name in ("a", "b"):
            layers = [f"hidden_{i}" for i in range(3)]
            data = {layer: (("stimulus", f"feature_{layer}"), rng.normal(size=(24, 4)).astype(np.float32))
                    for layer in layers}
            stores[name] = build_kernel(xr.Dataset(data, coords={"stimulus": ids},
                                                   attrs={"model": name, "layers": layers}), k=5)
        ds = pairwise(stores, "cka_linear", models_a=["a"], models_b=["b"], n_permutations=29, n_bootstrap=0,
                      seed=seed)
        for s in zero:
            zero[s] += float(ds["calibrated"].sel(model_a="a", model_b="b", summary=s)) == 0.0
    assert zero["best"] >= 190 and zero["last"] >= 190, zero
