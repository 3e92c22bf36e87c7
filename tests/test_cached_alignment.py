"""The workflow's alignment step: cached pair results equal a fresh all-pairs run, and only new pairs are computed."""
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from convergence.analyses.alignment import alignment, summary_table
from convergence.analyses.competence import competence_table
from convergence.analyses.crossmodal import crossmodal
from convergence.analyses.prh import prh_competence
from convergence.config import metric_params
from convergence.kernels import build_kernel, kernel_fingerprint
from convergence.pairwise import cached_pairwise, pairwise

N = 30


def store(name, modality, dims, seed, objective="supervised"):
    rng = np.random.default_rng(seed)
    base = np.random.default_rng(0).normal(size=(N, 6))  # shared structure so models agree somewhat
    layers = [f"layer{i}" for i in range(len(dims))]
    data = {}
    for layer, d in zip(layers, dims):
        data[layer] = (("stimulus", f"feature_{layer}"), (base @ rng.normal(size=(6, d)) + 0.5 * rng.normal(size=(N, d))).astype(np.float32))
    return xr.Dataset(
        data,
        coords={"stimulus": np.array([f"s{i:02d}" for i in range(N)], dtype=object)},
        attrs={"model": name, "modality": modality, "layers": layers, "depths": list(np.linspace(0.5, 1, len(dims))),
               "provenance": {"objective": objective, "family": "cnn"}},
    )


@pytest.fixture(scope="module")
def kernels():
    specs = {"va": ("vision", [8, 5], 1), "vb": ("vision", [7], 2), "la": ("language", [9, 4, 6], 3)}
    return {m: build_kernel(store(m, mod, dims, seed), k=5) for m, (mod, dims, seed) in specs.items()}


def computed(cache_dir, run):
    """How many pair results ``run()`` computed: each computed pair adds one entry to the cache."""
    before = set(cache_dir.glob("*.pkl")) if cache_dir.exists() else set()
    result = run()
    return len(set(cache_dir.glob("*.pkl")) - before), result


def quiet(*_):
    pass


def test_cached_equals_fresh_and_reuses_pairs(kernels, tmp_path):
    opts = dict(params={"k": 5}, n_permutations=10, n_bootstrap=10, seed=3, log=quiet)
    fresh = pairwise(kernels, "mutual_knn", stimuli=sorted(kernels["va"]["stimulus"].values),
                     **{k: v for k, v in opts.items() if k != "log"})
    n_first, first = computed(tmp_path, lambda: cached_pairwise(kernels, "mutual_knn", cache_dir=tmp_path, **opts))
    assert n_first == 9
    np.testing.assert_allclose(first["summary_score"].values, fresh["summary_score"].values)
    np.testing.assert_allclose(first["null_mean"].values, fresh["null_mean"].values)
    n_second, second = computed(tmp_path, lambda: cached_pairwise(kernels, "mutual_knn", cache_dir=tmp_path, **opts))
    assert n_second == 0
    xr.testing.assert_allclose(first.drop_vars("stimulus"), second.drop_vars("stimulus"))


def test_adding_a_model_computes_only_its_pairs(kernels, tmp_path):
    opts = dict(params={"k": 5}, n_permutations=5, n_bootstrap=5, log=quiet)
    two = {m: kernels[m] for m in ("va", "vb")}
    assert computed(tmp_path, lambda: cached_pairwise(two, "mutual_knn", cache_dir=tmp_path, **opts))[0] == 4
    n_new, full = computed(tmp_path, lambda: cached_pairwise(kernels, "mutual_knn", cache_dir=tmp_path, **opts))
    assert n_new == 5  # (la, va), (la, vb), (va, la), (vb, la), (la, la)
    fresh = cached_pairwise(kernels, "mutual_knn", cache_dir=tmp_path / "other", **opts)
    np.testing.assert_allclose(full["summary_score"].values, fresh["summary_score"].values)


def test_changed_settings_never_read_a_stale_entry(kernels, tmp_path):
    opts = dict(n_permutations=5, n_bootstrap=5, log=quiet)
    cached_pairwise(kernels, "mutual_knn", cache_dir=tmp_path, params={"k": 5}, **opts)
    n_new, _ = computed(tmp_path, lambda: cached_pairwise(kernels, "mutual_knn", cache_dir=tmp_path, params={"k": 3}, **opts))
    assert n_new == 9


def test_fingerprint_tracks_content(kernels):
    k = kernels["va"]
    same = k.copy(deep=True)
    assert kernel_fingerprint(same) == kernel_fingerprint(k)
    changed = k.copy(deep=True)
    changed["features_layer0"].values[0, 0] += 1.0
    assert kernel_fingerprint(changed) != kernel_fingerprint(k)


def test_crossmodal_block_and_tables(kernels, tmp_path):
    scores = alignment(kernels, "cka_linear", cache_dir=tmp_path, n_permutations=5, n_bootstrap=5, log=quiet)
    assert list(scores["modality_a"].values) == ["vision", "vision", "language"]
    block = crossmodal(scores)
    assert list(block["model_a"].values) == ["va", "vb"] and list(block["model_b"].values) == ["la"]
    assert block.sizes["layer_a"] == 2 and block.sizes["layer_b"] == 3
    table = summary_table(block)
    assert len(table) == 2 * 2  # 2 pairs x (best, last)
    assert set(table.columns) >= {"metric", "model_a", "model_b", "summary", "score", "layer_a", "layer_b",
                                  "null_mean", "p_value", "ci_low", "ci_high", "modality_a", "objective_b", "n_stimuli"}
    best = table[(table.summary == "best") & (table.model_a == "va")].iloc[0]
    assert best["score"] == pytest.approx(float(scores["score"].sel(model_a="va", model_b="la").max()))
    # the block's q-values are over its own vision x language pairs, not over the alignment's three pairs
    from scipy.stats import false_discovery_control

    for s in ("best", "last"):
        p = block["p_value"].sel(summary=s).values.ravel()
        assert np.allclose(block["q_value"].sel(summary=s).values.ravel(), false_discovery_control(p, method="bh"))
    assert {"tau", "calibrated", "q_value"} <= set(table.columns)
    with pytest.raises(ValueError, match="vision and language"):
        crossmodal(scores.sel(model_b=["va"]))


def test_competence_table_and_prh_choice():
    stim = xr.Dataset({"label": ("stimulus", np.array(["a", "b"] * (N // 2), dtype=object))},
                      coords={"stimulus": np.array([f"s{i:02d}" for i in range(N)], dtype=object)})
    lm = store("lm", "language", [4], 5)
    lm["bits_per_byte"] = ("stimulus", np.full(N, 0.75, np.float32))
    table = competence_table(stim, {"va": store("va", "vision", [8], 1), "lm": lm}, k=5)
    assert set(table["measure"]) == {"knn_accuracy", "linear_probe_accuracy", "bits_per_byte"}
    assert ((table["value"] >= 0) & (table["value"] <= 1)).all()
    competence, label = prh_competence(table)
    assert competence.to_dict() == {"lm": pytest.approx(0.25)} and "bits per byte" in label
    competence, label = prh_competence(table[table.measure != "bits_per_byte"])
    assert list(competence.index) == ["va"] and "probe" in label


def test_fixed_text_competence_is_preferred_over_the_caption_mean():
    stim = xr.Dataset(coords={"stimulus": np.array([f"s{i:02d}" for i in range(N)], dtype=object)})
    lms = {}
    for name, caption_bpb, text_bpb in (("small", 2.7, 0.94), ("big", 2.6, 0.70)):
        lm = store(name, "language", [4], 5)
        lm["bits_per_byte"] = ("stimulus", np.full(N, caption_bpb, np.float32))
        lm.attrs["text_bits_per_byte"] = {"bits_per_byte": text_bpb, "text": "CC0-1.0.txt", "bytes": 7048}
        lms[name] = lm
    table = competence_table(stim, lms)
    text_rows = table[table.measure == "text_bits_per_byte"].set_index("model")["value"]
    assert text_rows.to_dict() == {"small": pytest.approx(0.94), "big": pytest.approx(0.70)}
    competence, label = prh_competence(table)
    assert competence.to_dict() == {"small": pytest.approx(0.06), "big": pytest.approx(0.30)}
    assert label == "competence (1 - bits per byte on the fixed text)"
    # one LM without the text value: both fall back to the caption mean, never a mix of the two texts
    del lms["big"].attrs["text_bits_per_byte"]
    competence, label = prh_competence(competence_table(stim, lms))
    assert competence.to_dict() == {"small": pytest.approx(-1.7), "big": pytest.approx(-1.6)}
    assert "caption mean" in label
    lms["big"].attrs["text_bits_per_byte"] = {"text": "x"}
    with pytest.raises(ValueError, match="malformed 'text_bits_per_byte'"):
        competence_table(stim, lms)


def test_metric_params_only_what_the_metric_takes():
    cfg = {"k": 7, "rbf_sigma": 0.3}
    assert metric_params("mutual_knn", cfg) == {"k": 7}
    assert metric_params("cka_rbf", cfg) == {"sigma": 0.3}
    assert metric_params("cka_linear", cfg) == {}


def test_changing_k_reuses_feature_metric_pairs(kernels, tmp_path):
    """kNN pairs depend on the neighbour lists; CKA pairs only on the features, so a new k reuses them."""
    rebuilt = {m: build_kernel(store(m, *spec), k=3) for m, spec in
               {"va": ("vision", [8, 5], 1), "vb": ("vision", [7], 2), "la": ("language", [9, 4, 6], 3)}.items()}
    second = {}
    for metric, params in (("cka_linear", {}), ("mutual_knn", {"k": 3})):
        opts = dict(params=params, n_permutations=3, n_bootstrap=3, log=quiet, cache_dir=tmp_path / metric)
        cached_pairwise(kernels, metric, **opts)
        second[metric], _ = computed(tmp_path / metric, lambda: cached_pairwise(rebuilt, metric, **opts))
    assert second == {"cka_linear": 0, "mutual_knn": 9}


def test_config_labels_override_provenance(kernels, tmp_path):
    scores = alignment(kernels, "cka_linear", cache_dir=tmp_path, n_permutations=0, n_bootstrap=0, log=quiet,
                       model_labels={"vb": {"objective": "self-supervised"}})
    objectives = dict(zip(scores["model_a"].values, scores["objective_a"].values))
    assert objectives == {"va": "supervised", "vb": "self-supervised", "la": "supervised"}


def test_one_class_dataset_has_no_classification_competence():
    stim = xr.Dataset({"label": ("stimulus", np.array(["a"] * N, dtype=object))},
                      coords={"stimulus": np.array([f"s{i:02d}" for i in range(N)], dtype=object)})
    table = competence_table(stim, {"va": store("va", "vision", [8], 1)}, k=5)
    assert table.empty


def test_named_layers_add_a_named_summary(kernels, tmp_path):
    scores = alignment(kernels, "cka_linear", cache_dir=tmp_path, n_permutations=3, n_bootstrap=3, log=quiet,
                       named_layers={"la": "layer1"})
    assert list(scores["summary"].values) == ["best", "last", "named"]
    named = scores.sel(summary="named")
    assert named["summary_layer_name_b"].sel(model_a="va", model_b="la").item() == "layer1"
    assert named["summary_layer_name_b"].sel(model_a="va", model_b="va").item() == "layer1"  # va: its last layer
    expected = scores["score"].sel(model_a="va", model_b="la").values[1, 1]
    assert named["summary_score"].sel(model_a="va", model_b="la").item() == pytest.approx(expected)
    table = summary_table(scores)
    assert set(table["summary"]) == {"best", "last", "named"}


def test_cknna_all_layer_pairs_at_once_equal_the_pair_function(kernels):
    """The batched CKNNA engine (every layer pair of a model pair from the shared neighbour pairs, no call per
    layer pair) gives what ``metrics.cknna`` gives on each layer pair's features, in both orders."""
    from convergence.metrics import cknna

    ds = pairwise(kernels, "cknna", params={"k": 5}, summaries=("best",), n_permutations=0, n_bootstrap=0)
    worst = 0.0
    for a in kernels:
        for b in kernels:
            for i, la in enumerate(kernels[a].attrs["layers"]):
                for j, lb in enumerate(kernels[b].attrs["layers"]):
                    xa = kernels[a][f"features_{la}"].values.astype(np.float64)
                    xb = kernels[b][f"features_{lb}"].values.astype(np.float64)
                    got = float(ds["score"].sel(model_a=a, model_b=b, layer_a=i, layer_b=j))
                    worst = max(worst, abs(got - cknna(xa, xb, k=5)))
    assert worst < 1e-10


def test_cknna_padded_products_equal_the_matched_pairs_accumulation(monkeypatch):
    """The two CKNNA score engines agree: batched products over per-stimulus padded neighbour slots (both
    orders of a pair at once) and the matched-pairs accumulation (what the null uses, and the fallback when
    the padded arrays would not fit), on models with duplicated stimuli (tied neighbours) and unequal layer
    counts; forcing the fallback by the memory budget gives the same matrices."""
    from convergence.pairwise.measures import cknna as engine
    from convergence.pairwise.measures import make_metric
    from convergence.pairwise.products import ModelProducts, common_stimuli

    rng = np.random.default_rng(5)
    ids = np.array([f"s{i:02d}" for i in range(40)], dtype=object)
    base = rng.normal(size=(40, 4))
    base[30:] = base[:10]  # ten duplicated stimuli
    kernels = {}
    for name, n_layers in (("a", 3), ("b", 2)):
        layers = [f"l{i}" for i in range(n_layers)]
        data = {layer: (("stimulus", f"feature_{layer}"),
                        (base @ rng.normal(size=(4, 6)) + 0.3 * i * rng.normal(size=(40, 6))).astype(np.float32))
                for i, layer in enumerate(layers)}
        kernels[name] = build_kernel(xr.Dataset(data, coords={"stimulus": ids}, attrs={
            "model": name, "modality": "vision", "layers": layers, "depths": list(np.linspace(0, 1, n_layers))}), k=6)
    common = common_stimuli(kernels, ["a", "b"])
    metric = make_metric("cknna", k=6)
    prepared = {m: metric.prepare(ModelProducts.from_kernel(m, kernels[m], common)) for m in kernels}
    pairs = [("a", "b"), ("b", "a"), ("a", "a")]
    fast = metric.score_matrices(prepared, pairs)
    ident = np.arange(40)[None]
    for a, b in pairs:
        matched = metric._matched_hsic(prepared[a], prepared[b], ident)[0]
        both = engine._both_orders(prepared[a], prepared[b])
        np.testing.assert_allclose(both[0], matched, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(both[1], metric._matched_hsic(prepared[b], prepared[a], ident)[0], rtol=1e-12,
                                   atol=1e-15)
    monkeypatch.setattr(engine, "_BLOCK_BYTES", 1)
    assert engine._both_orders(prepared["a"], prepared["b"]) is None
    slow = metric.score_matrices(prepared, pairs)
    for pair in pairs:
        np.testing.assert_allclose(fast[pair], slow[pair], rtol=1e-12, atol=1e-15)
    assert np.allclose(np.diag(fast[("a", "a")]), 1.0)


def test_rsa_above_its_limit_compares_a_seeded_subsample(kernels):
    """RSA's n x n RDMs: above ``max_n`` stimuli pairwise draws a seeded subsample of that size (recorded in
    the attrs), the same as asking for those stimuli explicitly."""
    from convergence.pairwise import make_metric

    rsa = make_metric("rsa")
    rsa.max_n = 20
    ds = pairwise(kernels, rsa, summaries=("last",), n_permutations=0, n_bootstrap=0, seed=4)
    assert ds.attrs["n_stimuli"] == 20 and ds.attrs["subsampled_from"] == N
    again = pairwise(kernels, rsa, summaries=("last",), n_permutations=0, n_bootstrap=0, seed=4)
    assert list(again["stimulus"].values) == list(ds["stimulus"].values)
    explicit = pairwise(kernels, "rsa", stimuli=list(ds["stimulus"].values), summaries=("last",),
                        n_permutations=0, n_bootstrap=0)
    np.testing.assert_allclose(ds["score"].values, explicit["score"].values)
    assert explicit.attrs["subsampled_from"] == 0


def test_results_on_approximate_neighbours_carry_the_smaller_recall_of_each_pair(kernels, tmp_path):
    pytest.importorskip("faiss")
    approx = {m: build_kernel(store(m, mod, dims, seed), k=5, neighbours="approximate")
              for m, (mod, dims, seed) in {"va": ("vision", [8, 5], 1), "vb": ("vision", [7], 2)}.items()}
    assert approx["va"].attrs["kernel_search"] == "approximate" and 0 < approx["va"].attrs["kernel_recall_min"] <= 1
    approx["vb"].attrs["kernel_recall_min"] = 0.9  # as if vb's search had missed a tenth of its neighbours
    mixed = {"va": approx["va"], "vb": approx["vb"], "la": kernels["la"]}  # la: exact lists (recall 1)
    scores = alignment(mixed, "mutual_knn", cache_dir=tmp_path, params={"k": 5}, n_permutations=3, n_bootstrap=3,
                       log=quiet)
    recall = scores["neighbour_recall"].to_series()
    r_va = approx["va"].attrs["kernel_recall_min"]
    assert recall[("va", "la")] == r_va and recall[("la", "la")] == 1.0
    assert recall[("va", "vb")] == recall[("vb", "la")] == 0.9
    assert scores.attrs["neighbour_recall_min"] == 0.9
    table = summary_table(scores)
    row = table[(table.model_a == "vb") & (table.model_b == "va")].iloc[0]
    assert row["neighbour_recall"] == 0.9
    # CKA reads no neighbours; exact stores only: nothing added
    assert "neighbour_recall" not in alignment(mixed, "cka_linear", cache_dir=tmp_path, n_permutations=0,
                                               n_bootstrap=0, log=quiet)
    assert "neighbour_recall" not in alignment(kernels, "mutual_knn", cache_dir=tmp_path, params={"k": 5},
                                               n_permutations=0, n_bootstrap=0, log=quiet)
