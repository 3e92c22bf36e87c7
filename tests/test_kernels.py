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
    assert ker.attrs["kernel_constant_layers"] == [layer]  # read by convergence.alignment: NaN scores
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


def test_zero_vector_cannot_be_normalised(rng):
    emb = embedding_store(rng)
    values = emb["block_02"].values.copy()
    values[4] = 0.0
    emb["block_02"] = (emb["block_02"].dims, values)
    with pytest.raises(ValueError, match=r"toy_vit.*block_02.*zero norm"):
        build_kernel(emb, k=3, preprocess="l2")
