"""The layers analysis (study 003): granularity, low-level statistics, read-out, layer matrices and summaries."""
import numpy as np
import pytest
import xarray as xr

from convergence.analyses import layers as L
from convergence.granularity import needs_block_extraction
from convergence.kernels import build_kernel
from convergence.lowlevel import image_statistics, lowlevel_statistics


# ------------------------------------------------------------------------------------- read-out
def test_readout_recovers_a_planted_statistic_and_not_noise():
    rng = np.random.default_rng(0)
    n, d = 240, 60
    x = rng.normal(size=(n, d))
    planted = x[:, :5] @ rng.normal(size=5) + 0.1 * rng.normal(size=n)
    noise = rng.normal(size=n)
    r2 = L.readout_r2(x, np.column_stack([planted, noise]), folds=5, seed=0)
    assert r2[0] > 0.9
    assert abs(r2[1]) < 0.1


def test_readout_gives_nan_for_a_constant_target_and_rejects_bad_input():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(30, 4))
    r2 = L.readout_r2(x, np.column_stack([np.ones(30), x[:, 0]]), folds=3)
    assert np.isnan(r2[0]) and r2[1] > 0.9
    with pytest.raises(ValueError, match="share n"):
        L.readout_r2(x, np.ones(29))
    with pytest.raises(ValueError, match="folds"):
        L.readout_r2(x[:5], np.arange(5.0), folds=5)
    with pytest.raises(ValueError, match="alphas"):
        L.readout_r2(x, x[:, 0], alphas=[0.0])


# ------------------------------------------------------------------------------ low-level statistics
def test_image_statistics_of_known_images():
    gray = np.full((8, 8, 3), 128, np.uint8)
    red = np.zeros((8, 8, 3), np.uint8)
    red[..., 0] = 255
    checker = np.zeros((8, 8, 3), np.uint8)
    checker[(np.add.outer(np.arange(8), np.arange(8)) % 2) == 1] = 255
    halves = np.zeros((8, 8, 3), np.uint8)
    halves[:, 4:] = 255
    s = image_statistics(np.stack([gray, red, checker, halves]))
    assert s["luminance"][0] == pytest.approx(128 / 255)
    assert s["luminance"][1] == pytest.approx(0.2126)
    assert s["contrast"][0] == 0 and s["contrast"][2] == pytest.approx(0.5)
    assert s["saturation"][0] == 0 and s["saturation"][1] == 1 and s["saturation"][2] == 0
    assert s["high_frequency"][0] == 0  # no energy at all
    assert s["high_frequency"][2] == pytest.approx(1.0)  # all power at Nyquist
    assert s["high_frequency"][3] < 0.2  # one edge: mostly low frequencies
    with pytest.raises(ValueError, match="uint8"):
        image_statistics(np.zeros((2, 8, 8, 3)))
    with pytest.raises(ValueError, match="hf_cutoff"):
        image_statistics(np.stack([gray]), hf_cutoff=1.5)


def test_lowlevel_store_is_labelled_by_stimulus(emoji_stimuli):
    stats = lowlevel_statistics(emoji_stimuli, batch=7)
    assert list(stats["stimulus"].values) == [str(s) for s in emoji_stimuli["stimulus"].values]
    assert set(stats.data_vars) == {"luminance", "contrast", "saturation", "high_frequency"}
    for name in stats.data_vars:
        v = stats[name].values
        assert np.isfinite(v).all() and (v >= 0).all() and (v <= 1).all()
    assert stats["contrast"].std() > 0


# ------------------------------------------------------------------------------------ granularity
def test_which_models_are_extracted_per_block():
    cnn = {"source": "timm", "name": "resnet18", "modality": "vision", "family": "cnn"}
    assert needs_block_extraction(cnn)
    assert not needs_block_extraction(cnn, "stored")
    assert not needs_block_extraction({**cnn, "granularity": "blocks"})  # already per block
    assert not needs_block_extraction({**cnn, "granularity": "stages"})  # the user keeps stages
    assert not needs_block_extraction({**cnn, "family": "transformer"})
    assert needs_block_extraction({"source": "packaged", "name": "efficientnet_lite0", "modality": "vision"})
    assert not needs_block_extraction({"source": "packaged", "name": "dinov2_small", "modality": "vision"})
    # HED's stored layers are its five VGG16 blocks: read as they are, no second extraction
    assert not needs_block_extraction({"source": "packaged", "name": "hed_edges", "modality": "vision"})
    # SSCD's graphs have one layer (their own output): nothing to extract per block, nothing to compare by depth
    sscd = {"source": "packaged", "name": "sscd", "modality": "vision", "family": "cnn"}
    assert not needs_block_extraction(sscd)
    assert needs_block_extraction({"source": "packaged", "name": "mobilenetv2", "modality": "vision"})
    assert not needs_block_extraction({"source": "hf", "name": "x", "modality": "language"})
    with pytest.raises(ValueError, match="granularity"):
        needs_block_extraction(cnn, "stages")


@pytest.mark.parametrize("arch, n_blocks", [("resnet18", 8), ("tf_efficientnet_lite0", 16)])
def test_cnn_blocks_have_monotone_relative_depths(arch, n_blocks):
    from convergence.models.timm_source import load

    spec = {"name": arch, "pretrained": False, "input_size": 32}
    blocks = load(arch, {**spec, "granularity": "blocks"}, "cpu")
    stages = load(arch, spec, "cpu")
    assert len([n for n in blocks.layer_names if n != "pre_logits"]) == n_blocks > len(stages.layer_names) - 1
    d = np.asarray(blocks.depths)
    assert ((d > 0) & (d <= 1)).all() and d[-1] == 1 and (np.diff(d) > 0).all()
    images = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    out_b, out_s = blocks.encode(images), stages.encode(images)
    last_stage = [n for n in stages.layer_names if n != "pre_logits"][-1]
    last_block = [n for n in blocks.layer_names if n != "pre_logits"][-1]
    np.testing.assert_allclose(out_b[last_block], out_s[last_stage], rtol=1e-4, atol=1e-5)
    assert blocks.provenance["granularity"] == "blocks"
    with pytest.raises(ValueError, match="granularity"):
        load(arch, {**spec, "granularity": "layers"}, "cpu")


# ------------------------------------------------------------------------------- layer matrices
N = 60


def _store(name, feats, family, objective):
    layers = [f"l{i}" for i in range(len(feats))]
    ds = xr.Dataset({f"l{i}": (("stimulus", f"feature_l{i}"), f.astype(np.float32)) for i, f in enumerate(feats)},
                    coords={"stimulus": np.array([f"s{i:03d}" for i in range(N)], dtype=object)})
    ds.attrs = {"model": name, "modality": "vision", "layers": layers,
                "depths": [(i + 1) / len(layers) for i in range(len(layers))],
                "provenance": {"family": family, "objective": objective}}
    return ds


def _trajectory(rng, n_layers, noise, stages):
    """Layers along one shared trajectory of representations (``stages``), each with its own noise."""
    return [stages[int(round(i * (len(stages) - 1) / max(1, n_layers - 1)))] + noise * rng.normal(size=stages[0].shape)
            for i in range(n_layers)]


@pytest.fixture(scope="module")
def synthetic():
    rng = np.random.default_rng(0)
    stages = [rng.normal(size=(N, 12)) for _ in range(6)]  # independent representations along depth
    emb = {
        "cnn1": _store("cnn1", _trajectory(rng, 6, 0.3, stages), "cnn", "supervised"),
        "cnn2": _store("cnn2", _trajectory(rng, 11, 0.3, stages), "cnn", "supervised"),
        "vit1": _store("vit1", _trajectory(rng, 12, 0.3, stages), "transformer", "random"),
    }
    kernels = {m: build_kernel(e, k=5) for m, e in emb.items()}
    return emb, L.layer_matrices(kernels, "cka_linear")


def test_self_pair_matrix_has_a_unit_diagonal(synthetic):
    _, scores = synthetic
    for m in ("cnn1", "cnn2", "vit1"):
        s, da, db = L.pair_matrix(scores, m, m)
        np.testing.assert_allclose(np.diag(s), 1.0, atol=1e-6)
        np.testing.assert_allclose(s, s.T, atol=1e-6)
        assert (da == db).all() and ((da > 0) & (da <= 1)).all() and (np.diff(da) > 0).all()


def test_models_on_one_trajectory_match_along_the_diagonal(synthetic):
    _, scores = synthetic
    result = L.diagonal_test(scores, tolerance=0.1, n_permutations=200, n_bootstrap=200)
    assert result["n_pairs"] == 6
    assert result["fraction"] > 0.7 > result["fraction_null_mean"]
    assert result["fraction_p_value"] < 0.01
    assert result["fraction_ci_low"] <= result["fraction"] <= result["fraction_ci_high"]
    assert result["mean_abs_offset"] < result["offset_null_mean"]
    matches = L.best_matches(scores)
    assert len(matches) == 2 * (6 + 11 + 12) and (matches["model_a"] != matches["model_b"]).all()
    assert matches["offset"].abs().max() <= 1


def test_shuffled_layers_lose_the_diagonal():
    rng = np.random.default_rng(3)
    stages = [rng.normal(size=(N, 12)) for _ in range(8)]
    order = [5, 0, 7, 2, 6, 1, 4, 3]
    emb = {"a": _store("a", _trajectory(rng, 8, 0.2, stages), "cnn", "random"),
           "b": _store("b", [stages[k] + 0.2 * rng.normal(size=(N, 12)) for k in order], "cnn", "random")}
    scores = L.layer_matrices({m: build_kernel(e, k=5) for m, e in emb.items()}, "cka_linear")
    result = L.diagonal_test(scores, n_permutations=200, n_bootstrap=50)
    assert result["fraction"] < 0.3 and result["fraction_p_value"] > 0.05


def test_depth_profile_and_smoothness(synthetic):
    _, scores = synthetic
    per_pair, summary = L.depth_profile(scores, n_bins=5)
    assert len(per_pair) == 6 * 5 and set(summary["kind"]) == {"all", "cnn-cnn", "cnn-transformer"}
    allpairs = summary[summary["kind"] == "all"]
    assert ((allpairs["dissimilarity_best_mean"] <= allpairs["dissimilarity_matched_mean"] + 1e-12)).all()
    steps, curves, summ = L.smoothness(scores, n_bins=5, n_bootstrap=100, n_permutations=100)
    assert len(steps) == 5 + 10 + 11
    # the 12-layer model repeats each representation twice, so its steps are smoother than the 6-layer one's
    assert summ["models"]["vit1"] > summ["models"]["cnn1"]
    assert set(summ["families"]) == {"cnn", "transformer"}
    assert summ["transformer_minus_cnn"]["difference"] > 0
    fam = curves[curves["kind"] == "family"]
    assert (fam["ci_low"] <= fam["score"] + 1e-12).all() and (fam["score"] <= fam["ci_high"] + 1e-12).all()


def test_readout_by_layer_and_objective(synthetic):
    emb, _ = synthetic
    rng = np.random.default_rng(5)
    ids = emb["cnn1"]["stimulus"].values
    # luminance is planted in the first layers of every model only (read from cnn1's first layer)
    first = np.asarray(emb["cnn1"]["l0"].values, dtype=float)
    low = xr.Dataset({"luminance": ("stimulus", first[::-1, 0]), "contrast": ("stimulus", rng.normal(size=N))},
                     coords={"stimulus": ids[::-1].copy()})  # reversed order: joined on ids, not rows
    table = L.layer_readout(emb, low, folds=5, log=lambda *_: None)
    assert set(table["statistic"]) == {"luminance", "contrast"}
    lum = table[(table.model == "cnn1") & (table.statistic == "luminance")].sort_values("depth")
    assert lum["r2"].iloc[0] > 0.8 and lum["r2"].iloc[-1] < 0.3
    assert table.loc[table.statistic == "contrast", "r2"].abs().max() < 0.35
    curves, summary = L.readout_summary(table, n_bins=4, n_bootstrap=50)
    assert set(summary["objectives"]) == {"supervised", "random"}
    assert summary["models"]["cnn1"]["statistics"]["luminance"]["drop"] > 0.5
    assert set(curves["objective"]) == {"supervised", "random"}


def test_layers_datasets_restrict_the_analysis_and_unknown_names_are_refused():
    from convergence.config import ConfigError, validate_config
    from convergence.granularity import layers_datasets

    model = {"source": "timm", "name": "resnet18", "pretrained": False, "modality": "vision", "objective": "random"}
    cfg = {"datasets": {"a": {"source": "digits"}, "b": {"source": "digits", "seed": 1}},
           "models": {"m1": dict(model), "m2": {**model, "name": "resnet10t"}}}
    assert layers_datasets(validate_config(cfg)) == ["a", "b"]
    assert layers_datasets(validate_config({**cfg, "layers": {"datasets": ["b"]}})) == ["b"]
    with pytest.raises(ConfigError, match=r"config.layers.datasets: unknown dataset 'c'"):
        validate_config({**cfg, "layers": {"datasets": ["c"]}})
