"""Claims of convergence.kernels: one model's products, computed once, exactly what the metrics use."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from convergence import metrics as M
from convergence.kernels import build_kernel, check_kernel, feature_var, has_gram


def embedding_store(rng, n=40, dims=(6, 9, 5), name="toy_vit", with_bpb=False):
    layers = [f"block_{i:02d}" for i in range(len(dims))]
    latent = rng.normal(size=(n, 4))
    data = {layer: (("stimulus", f"feature_{layer}"),
                    (latent @ rng.normal(size=(4, d)) + 0.3 * rng.normal(size=(n, d))).astype(np.float32))
            for layer, d in zip(layers, dims)}
    if with_bpb:
        data["bits_per_byte"] = (("stimulus",), rng.uniform(0.8, 1.2, n))
    ids = np.array([f"img_{i:04d}" for i in range(n)], dtype=object)
    return xr.Dataset(data, coords={"stimulus": ids}, attrs={
        "model": name, "modality": "vision", "layers": layers, "depths": list(np.linspace(0.0, 1.0, len(dims))),
        "source": "offline", "pooling": "cls"})


@pytest.fixture
def rng():
    return np.random.default_rng(3)


def test_kernel_store_layout_and_provenance(rng):
    emb = embedding_store(rng, with_bpb=True)
    ker = build_kernel(emb, k=5)
    layers = emb.attrs["layers"]
    assert list(ker["layer"].values) == layers
    assert np.allclose(ker["depth"].values, emb.attrs["depths"])
    assert list(ker["stimulus"].values) == list(emb["stimulus"].values)
    assert ker["neighbors"].dims == ("layer", "stimulus", "neighbor") and ker["neighbors"].dtype == np.int32
    assert ker["gram"].dims == ("layer", "stimulus", "stimulus_j") and ker["gram"].dtype == np.float32
    for layer in layers:
        assert ker[feature_var(layer)].dims == ("stimulus", f"feature_{layer}")
        assert ker[feature_var(layer)].dtype == np.float32
    assert "bits_per_byte" not in ker  # not a layer
    for key in ("model", "modality", "source", "pooling"):
        assert ker.attrs[key] == emb.attrs[key]
    assert ker.attrs["kernel_k"] == 5 and ker.attrs["kernel_preprocess"] == "prh" and ker.attrs["kernel_has_gram"] == 1
    check_kernel(ker, "toy_vit")


def test_features_are_prh_preprocessed(rng):
    emb = embedding_store(rng)
    ker = build_kernel(emb, k=5)
    raw = {layer: emb[layer].values.astype(np.float64) for layer in emb.attrs["layers"]}
    expected = M.prh_preprocess(raw)
    assert ker.attrs["kernel_clip_value"] == pytest.approx(M.outlier_clip_value(raw))
    for layer, value in expected.items():
        assert np.allclose(ker[feature_var(layer)].values, value, atol=1e-6)


def test_neighbour_lists_are_the_k_nearest_others_by_inner_product(rng):
    ker = build_kernel(embedding_store(rng), k=6)
    for i, layer in enumerate(ker.attrs["layers"]):
        x = ker[feature_var(layer)].values.astype(np.float64)
        sim = x @ x.T
        np.fill_diagonal(sim, -np.inf)
        expected = np.argsort(-sim, axis=1, kind="stable")[:, :6]
        got = ker["neighbors"].values[i]
        assert np.array_equal(got, expected)
        assert not np.any(got == np.arange(x.shape[0])[:, None])


def test_gram_is_the_centred_linear_gram_of_the_features(rng):
    ker = build_kernel(embedding_store(rng), k=3)
    for i, layer in enumerate(ker.attrs["layers"]):
        x = ker[feature_var(layer)].values.astype(np.float64)
        h = np.eye(x.shape[0]) - 1.0 / x.shape[0]
        assert np.allclose(ker["gram"].values[i], h @ x @ x.T @ h, atol=1e-6)


def test_no_n_by_n_matrix_above_gram_max_n(rng):
    ker = build_kernel(embedding_store(rng, n=40), k=3, gram_max_n=39)
    assert not has_gram(ker) and "stimulus_j" not in ker.dims
    assert ker.attrs["kernel_has_gram"] == 0 and "feature space" in ker.attrs["kernel_gram"]


def test_preprocess_modes(rng):
    emb = embedding_store(rng)
    raw = build_kernel(emb, k=3, preprocess="none")
    layer = emb.attrs["layers"][1]
    assert np.array_equal(raw[feature_var(layer)].values, emb[layer].values)
    assert "kernel_clip_value" not in raw.attrs
    l2 = build_kernel(emb, k=3, preprocess="l2")
    assert np.allclose(np.linalg.norm(l2[feature_var(layer)].values, axis=1), 1.0, atol=1e-6)


def test_kernel_store_survives_a_zarr_round_trip(rng, tmp_path):
    ker = build_kernel(embedding_store(rng), k=4)
    ker.to_zarr(tmp_path / "k.zarr", consolidated=False)
    back = xr.open_zarr(tmp_path / "k.zarr", chunks=None, consolidated=False)
    assert back.attrs["layers"] == ker.attrs["layers"]
    assert list(back["stimulus"].values) == list(ker["stimulus"].values)
    assert np.array_equal(back["neighbors"].values, ker["neighbors"].values)
    assert np.array_equal(back["gram"].values, ker["gram"].values)


def test_constant_layer_is_reported(rng):
    emb = embedding_store(rng)
    layer = emb.attrs["layers"][0]
    emb[layer] = emb[layer] * 0 + 1.0
    with pytest.warns(UserWarning, match="constant across stimuli; its alignment scores will be NaN"):
        ker = build_kernel(emb, k=3, preprocess="none")
    assert ker.attrs["kernel_constant_layers"] == [layer]  # read by convergence.pairwise: NaN scores
    healthy = build_kernel(embedding_store(rng), k=3)
    assert healthy.attrs["kernel_constant_layers"] == []


def test_constant_layer_list_survives_a_zarr_round_trip(rng, tmp_path):
    emb = embedding_store(rng)
    emb["block_01"] = emb["block_01"] * 0 + 2.0
    with pytest.warns(UserWarning, match="block_01"):
        ker = build_kernel(emb, k=3)
    for name, store in (("flat", ker), ("healthy", build_kernel(embedding_store(rng), k=3))):
        store.to_zarr(tmp_path / f"{name}.zarr", consolidated=False)
        back = xr.open_zarr(tmp_path / f"{name}.zarr", chunks=None, consolidated=False)
        assert list(back.attrs["kernel_constant_layers"]) == list(store.attrs["kernel_constant_layers"])


@pytest.mark.parametrize(
    ("mutate", "kwargs", "message"),
    [
        (lambda ds: ds, {"k": 40}, "k=40"),
        (lambda ds: ds, {"k": 0}, "k=0"),
        (lambda ds: ds, {"preprocess": "zscore"}, "preprocess='zscore'"),
        (lambda ds: ds, {"gram_max_n": -1}, "gram_max_n"),
        (lambda ds: ds, {"clip_quantile": 2.0}, "clip_quantile"),
        (lambda ds: ds.assign_attrs(layers=[]), {}, "attrs\\['layers'\\]"),
        (lambda ds: ds.assign_attrs(layers=["block_00", "block_99"]), {}, "block_99"),
        (lambda ds: ds.assign_attrs(depths=[0.0]), {}, "depths"),
        (lambda ds: ds.assign_coords(stimulus=["same"] * ds.sizes["stimulus"]), {}, "unique"),
        (lambda ds: ds.to_array(), {}, "xarray.Dataset"),
    ],
)
def test_bad_input_raises_a_clear_value_error(rng, mutate, kwargs, message):
    emb = mutate(embedding_store(rng))
    with pytest.raises(ValueError, match=message):
        build_kernel(emb, **{"k": 3, **kwargs})


def test_nan_features_name_the_layer_and_stimulus(rng):
    emb = embedding_store(rng)
    values = emb["block_01"].values.copy()
    values[7, 2] = np.nan
    emb["block_01"] = (emb["block_01"].dims, values)
    with pytest.raises(ValueError, match=r"block_01.*img_0007"):
        build_kernel(emb, k=3)


def with_layer(emb: xr.Dataset, name: str, values: np.ndarray, position: int) -> xr.Dataset:
    """``emb`` with one more layer ``name`` inserted at ``position`` of attrs['layers'] (depths respaced)."""
    layers = list(emb.attrs["layers"])
    layers.insert(position, name)
    out = emb.assign({name: (("stimulus", f"feature_{name}"), values.astype(np.float32))})
    return out.assign_attrs(layers=layers, depths=list(np.linspace(0.0, 1.0, len(layers))))


@pytest.mark.parametrize("preprocess", ["prh", "l2", "none"])
def test_an_all_zero_layer_is_reported_and_the_others_are_unchanged(rng, preprocess):
    """A dead ReLU stage (every value 0) must not stop the model's kernel: it is listed as constant (NaN
    scores downstream), the PRH clamp comes from the other layers, and their products are as without it."""
    healthy = embedding_store(rng)
    dead = with_layer(healthy, "relu_dead", np.zeros((healthy.sizes["stimulus"], 7)), position=1)
    with pytest.warns(UserWarning, match=r"toy_vit.*relu_dead") as caught:
        ker = build_kernel(dead, k=5, preprocess=preprocess)
    assert not any("block_0" in str(w.message) for w in caught)  # only the dead layer is named
    assert ker.attrs["kernel_constant_layers"] == ["relu_dead"]
    ref = build_kernel(healthy, k=5, preprocess=preprocess)
    assert ker.attrs.get("kernel_clip_value") == ref.attrs.get("kernel_clip_value")
    for layer in healthy.attrs["layers"]:
        np.testing.assert_array_equal(ker["neighbors"].sel(layer=layer).values, ref["neighbors"].sel(layer=layer).values)
        np.testing.assert_array_equal(ker[feature_var(layer)].values, ref[feature_var(layer)].values)
    for name, var in ker.data_vars.items():
        assert np.isfinite(var.values).all(), name
    assert not ker[feature_var("relu_dead")].values.any()


def test_a_zero_vector_stays_zero_and_is_named(rng):
    """One stimulus with an all-zero vector in one layer: that row stays zero (no NaN), the layer still
    counts (it is not constant), and the warning names model, layer and stimulus."""
    emb = embedding_store(rng)
    values = emb["block_02"].values.copy()
    values[4] = 0.0
    emb["block_02"] = (emb["block_02"].dims, values)
    with pytest.warns(UserWarning, match=r"toy_vit.*block_02.*img_0004"):
        ker = build_kernel(emb, k=3, preprocess="l2")
    x = ker[feature_var("block_02")].values
    assert not x[4].any() and np.allclose(np.linalg.norm(np.delete(x, 4, axis=0), axis=1), 1.0, atol=1e-6)
    assert ker.attrs["kernel_constant_layers"] == []
    for var in ker.data_vars.values():
        assert np.isfinite(var.values).all()


def test_preprocess_layers_skips_degenerate_layers_for_the_clamp(rng):
    layers = {"a": rng.normal(size=(12, 4)), "dead": np.zeros((12, 3)), "b": 2 * rng.normal(size=(12, 5))}
    out, clip = M.preprocess_layers(layers, "prh")
    alive = {k: v for k, v in layers.items() if k != "dead"}
    ref, ref_clip = M.preprocess_layers(alive, "prh")
    assert clip == ref_clip == pytest.approx(M.outlier_clip_value(alive))
    assert not out["dead"].any()
    for name in alive:
        np.testing.assert_array_equal(out[name], ref[name])
    everything_dead, clip = M.preprocess_layers({"dead": np.zeros((12, 3))}, "prh")
    assert clip == 0.0 and not everything_dead["dead"].any()


# ------------------------------------------------------------------------------- neighbour search modes


def noise_store(n=1500, d=64, seed=4):
    """Unit rows of high intrinsic dimension: an HNSW search misses some neighbours (recall below 1)."""
    x = np.random.default_rng(seed).normal(size=(n, d))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    ids = np.array([f"s{i:05d}" for i in range(n)], dtype=object)
    return xr.Dataset({"layer": (("stimulus", "feature_layer"), x.astype(np.float32))}, coords={"stimulus": ids},
                      attrs={"model": "noise", "layers": ["layer"], "depths": [1.0]}), x.astype(np.float32)


def brute_force_neighbours(x, k):
    """Exact top-k by float64 inner product, self excluded, ties to the lower index: a full sort per row."""
    x = np.asarray(x, dtype=np.float64)
    sim = x @ x.T
    np.fill_diagonal(sim, -np.inf)
    cols = np.broadcast_to(np.arange(x.shape[0]), sim.shape)
    return np.lexsort((cols, -sim), axis=1)[:, :k]


def test_approximate_store_records_the_recall_computed_independently_from_exact_lists():
    pytest.importorskip("faiss")
    store, x = noise_store()
    k = 10
    exact = brute_force_neighbours(x, k)
    full = build_kernel(store, k=k, preprocess="none", neighbours="approximate", recall_sample=len(x))
    found = full["neighbors"].values[0]
    independent = np.mean([len(set(a) & set(b)) / k for a, b in zip(found, exact)])
    assert full.attrs["kernel_search"] == "approximate"
    assert full.attrs["kernel_recall"] == [pytest.approx(independent, abs=1e-12)]
    assert full.attrs["kernel_recall_min"] == pytest.approx(independent, abs=1e-12)
    assert 0.8 < independent < 1.0  # a search that misses some neighbours, so the check can fail
    # a seeded sample of rows (layer position 0 seeds the draw): the recall of those rows' lists
    part = build_kernel(store, k=k, preprocess="none", neighbours="approximate", recall_sample=300)
    rows = np.random.default_rng(0).choice(len(x), size=300, replace=False)
    found = part["neighbors"].values[0]
    expected = np.mean([len(set(found[r]) & set(exact[r])) / k for r in rows])
    assert part.attrs["kernel_recall_min"] == pytest.approx(expected, abs=1e-12)
    assert part.attrs["kernel_recall_sample"] == 300
    assert part.attrs["fingerprint"] != build_kernel(store, k=k, preprocess="none").attrs["fingerprint"]


def test_exact_and_auto_modes():
    store, x = noise_store(n=300, d=8)
    exact = build_kernel(store, k=5, preprocess="none")
    assert exact.attrs["kernel_search"] == "exact" and "kernel_recall" not in exact.attrs
    assert np.array_equal(exact["neighbors"].values[0], brute_force_neighbours(x, 5))
    auto = build_kernel(store, k=5, preprocess="none", neighbours="auto", approximate_above=300)
    assert auto.attrs["kernel_search"] == "exact" and auto.attrs["fingerprint"] == exact.attrs["fingerprint"]
    if pytest.importorskip("faiss"):
        auto = build_kernel(store, k=5, preprocess="none", neighbours="auto", approximate_above=299)
        assert auto.attrs["kernel_search"] == "approximate"
    with pytest.raises(ValueError, match="neighbours='fast'"):
        build_kernel(store, k=5, neighbours="fast")
