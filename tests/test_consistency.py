"""The consistency analysis (Ciernik et al., science.md section B): known answers, label matching, errors."""
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from convergence.analyses.consistency import (
    behaviour_link,
    behaviour_table,
    dataset_consistency,
    layer_kernel,
    model_set_pairs,
    probe_accuracy,
    similarity_matrix,
    similarity_scores,
    upper_triangle,
)
from convergence.inference import permutation_test
from convergence.stimuli import StimulusError, subsample_indices

OBJECTIVES = {"a": "supervised", "b": "supervised", "c": "supervised", "d": "random", "e": "random",
              "f": "self-supervised"}


def matrix(values: np.ndarray, models, metric="cka_linear_unbiased") -> xr.DataArray:
    models = list(models)
    out = xr.DataArray(np.asarray(values, dtype=float), dims=("model_a", "model_b"),
                       coords={"model_a": models, "model_b": models})
    out = out.assign_coords(objective_a=("model_a", [OBJECTIVES[m] for m in models]),
                            objective_b=("model_b", [OBJECTIVES[m] for m in models]))
    out.attrs["metric"] = metric
    return out


def random_similarity(models, seed) -> np.ndarray:
    rng = np.random.default_rng(seed)
    s = rng.uniform(0, 1, (len(models), len(models)))
    s = (s + s.T) / 2
    np.fill_diagonal(s, 1.0)
    return s


MODELS = list(OBJECTIVES)


def test_identical_matrices_are_perfectly_consistent():
    s = random_similarity(MODELS, 0)
    table = dataset_consistency({"x": matrix(s, MODELS), "y": matrix(s, MODELS)})
    row = table[table.set_pair == "all"].iloc[0]
    assert row.n_pairs == 15 and row.n_models == 6
    assert row.pearson == pytest.approx(1.0) and row.spearman == pytest.approx(1.0)
    # model-set pairs: supervised x supervised has the 3 pairs among a, b, c
    sup = table[table.set_pair == "supervised x supervised"].iloc[0]
    assert sup.n_pairs == 3 and sup.spearman == pytest.approx(1.0)
    # random x random has a single pair (d, e): no correlation from one point
    rr = table[table.set_pair == "random x random"].iloc[0]
    assert rr.n_pairs == 1 and np.isnan(rr.spearman)
    # self-supervised has one model: no within-group pairs, so no such model-set pair
    assert "self-supervised x self-supervised" not in set(table.set_pair)


def test_known_values_and_diagonal_excluded():
    s1 = random_similarity(MODELS, 1)
    s2 = random_similarity(MODELS, 2)
    np.fill_diagonal(s2, -5.0)  # the diagonal must not enter
    table = dataset_consistency({"x": matrix(s1, MODELS), "y": matrix(s2, MODELS)})
    i, j = np.triu_indices(6, 1)
    expected = np.corrcoef(s1[i, j], s2[i, j])[0, 1]
    from scipy.stats import spearmanr

    row = table[table.set_pair == "all"].iloc[0]
    assert row.pearson == pytest.approx(expected)
    assert row.spearman == pytest.approx(spearmanr(s1[i, j], s2[i, j]).statistic)
    # restricted to random x supervised: the 6 pairs (d|e, a|b|c)
    mask = [(OBJECTIVES[MODELS[p]], OBJECTIVES[MODELS[q]]) in {("supervised", "random"), ("random", "supervised")}
            for p, q in zip(i, j)]
    sub = table[table.set_pair == "random x supervised"].iloc[0]
    assert sub.n_pairs == 6
    assert sub.pearson == pytest.approx(np.corrcoef(s1[i, j][mask], s2[i, j][mask])[0, 1])


def test_permuted_model_order_gives_the_same_consistency():
    s1, s2 = random_similarity(MODELS, 3), random_similarity(MODELS, 4)
    order = [4, 0, 5, 2, 1, 3]
    permuted = [MODELS[k] for k in order]
    straight = dataset_consistency({"x": matrix(s1, MODELS), "y": matrix(s2, MODELS)})
    shuffled = dataset_consistency({"x": matrix(s1, MODELS), "y": matrix(s2[np.ix_(order, order)], permuted)})
    pd.testing.assert_frame_equal(straight, shuffled)
    # and matching by position instead of label would have given something else
    wrong = dataset_consistency({"x": matrix(s1, MODELS), "y": matrix(s2[np.ix_(order, order)], MODELS)})
    assert not np.allclose(wrong["pearson"].to_numpy(float), straight["pearson"].to_numpy(float), equal_nan=True)


def test_model_missing_on_one_dataset_intersects_or_fails():
    s = random_similarity(MODELS, 5)
    fewer = [m for m in MODELS if m != "f"]
    keep = [MODELS.index(m) for m in fewer]
    mats = {"x": matrix(s, MODELS), "y": matrix(s[np.ix_(keep, keep)], fewer)}
    table = dataset_consistency(mats)
    row = table[table.set_pair == "all"].iloc[0]
    assert row.n_models == 5 and row.n_pairs == 10 and row.spearman == pytest.approx(1.0)
    with pytest.raises(ValueError, match=r"'y' lacks model\(s\) \['f'\]"):
        dataset_consistency(mats, missing="error")


def test_nan_pairs_are_left_out_and_bad_input_fails():
    s1, s2 = random_similarity(MODELS, 6), random_similarity(MODELS, 6)
    s2[0, 1] = s2[1, 0] = np.nan
    row = dataset_consistency({"x": matrix(s1, MODELS), "y": matrix(s2, MODELS)}).iloc[0]
    assert row.n_pairs == 14 and row.pearson == pytest.approx(1.0)
    with pytest.raises(ValueError, match="at least 2 datasets"):
        dataset_consistency({"x": matrix(s1, MODELS)})
    with pytest.raises(ValueError, match="missing="):
        dataset_consistency({"x": matrix(s1, MODELS), "y": matrix(s2, MODELS)}, missing="drop")
    relabelled = matrix(s1, MODELS).assign_coords(objective_a=("model_a", ["random"] * 6))
    with pytest.raises(ValueError, match="model 'a' has objective"):
        dataset_consistency({"x": matrix(s1, MODELS), "y": relabelled})


def test_upper_triangle_is_in_sorted_name_order():
    s = random_similarity(["b", "a", "c"], 7)
    tri = upper_triangle(matrix(s, ["b", "a", "c"]))
    assert list(tri.index) == [("a", "b"), ("a", "c"), ("b", "c")]
    assert tri[("a", "b")] == s[1, 0] and tri[("a", "c")] == s[1, 2]
    assert model_set_pairs({"a": "x", "b": "x", "c": "y"}) == [("x", "x"), ("x", "y")]


def test_similarity_matrix_reads_an_alignment_layout_and_symmetrises():
    models = ["a", "d"]
    store = xr.Dataset(
        {"summary_score": (("model_a", "model_b", "summary"),
                           np.array([[[1.0, 1.0], [0.2, 0.4]], [[0.6, 0.8], [1.0, 1.0]]]))},
        coords={"model_a": models, "model_b": models, "summary": ["best", "last"],
                "objective_a": ("model_a", ["supervised", "random"]), "objective_b": ("model_b", ["supervised", "random"])},
        attrs={"metric": "cknna", "symmetric": 0},
    )
    m = similarity_matrix(store, "last")
    assert m.sel(model_a="a", model_b="d").item() == pytest.approx(0.6) == m.sel(model_a="d", model_b="a").item()
    assert list(m["objective_a"].values) == ["supervised", "random"]
    with pytest.raises(ValueError, match="summary 'named' is not in this store"):
        similarity_matrix(store, "named")


@pytest.fixture(scope="module")
def embeddings():
    """Three synthetic models on 30 stimuli: b is a rotation of a (CKA 1 with a), c is noise."""
    rng = np.random.default_rng(0)
    ids = [f"s{i:02d}" for i in range(30)]
    base = rng.normal(size=(30, 8))
    q, _ = np.linalg.qr(rng.normal(size=(8, 8)))
    feats = {"a": base, "b": base @ q, "c": rng.normal(size=(30, 8))}
    out = {}
    for name, x in feats.items():
        early = rng.normal(size=(30, 4))
        out[name] = xr.Dataset(
            {"early": (("stimulus", "feature_early"), early.astype(np.float32)),
             "late": (("stimulus", "feature_late"), x.astype(np.float32))},
            coords={"stimulus": ids}, attrs={"model": name, "layers": ["early", "late"], "depths": [0.5, 1.0],
                                             "modality": "vision", "provenance": {"objective": OBJECTIVES[name]}})
    out["b"] = out["b"].isel(stimulus=np.arange(30)[::-1])  # another row order: joined on ids
    return out


def test_layer_kernel_reads_the_last_layer_l2_normalised(embeddings):
    kernel = layer_kernel(embeddings["a"])
    assert kernel.attrs["layers"] == ["late"] and kernel.attrs["kernel_preprocess"] == "l2"
    norms = np.linalg.norm(kernel["features_late"].values, axis=1)
    assert np.allclose(norms, 1.0, atol=1e-6)
    assert layer_kernel(embeddings["a"], "early").attrs["layers"] == ["early"]
    with pytest.raises(ValueError, match="layer 'mid' is not a layer of 'a'"):
        layer_kernel(embeddings["a"], "mid")


@pytest.mark.parametrize("metric,params", [("cka_linear_unbiased", {}), ("cka_rbf", {"sigma": 0.4, "unbiased": True}),
                                           ("rsa", {})])
def test_similarity_scores_match_the_pair_functions(embeddings, tmp_path, metric, params):
    from convergence.metrics import l2_normalise
    from convergence.metrics.registry import get_metric

    scores = similarity_scores(embeddings, metric, params=params, cache_dir=tmp_path, log=lambda *_: None)
    m = similarity_matrix(scores)
    assert list(m["model_a"].values) == ["a", "b", "c"]
    assert dict(zip(m["model_a"].values, m["objective_a"].values)) == {m_: OBJECTIVES[m_] for m_ in "abc"}
    fn = get_metric(metric).pair_function
    late = {k: v["late"].sortby("stimulus").values.astype(np.float64) for k, v in embeddings.items()}
    for a, b in [("a", "b"), ("a", "c"), ("b", "c")]:
        expected = fn(l2_normalise(late[a]), l2_normalise(late[b]), **params)
        assert m.sel(model_a=a, model_b=b).item() == pytest.approx(expected, abs=1e-5)
    if metric == "cka_linear_unbiased":  # a rotation keeps linear CKA at 1
        assert m.sel(model_a="a", model_b="b").item() == pytest.approx(1.0, abs=1e-5)


def test_probe_accuracy_separates_signal_from_noise():
    rng = np.random.default_rng(0)
    y = np.repeat(["p", "q", "r"], 20)
    signal = rng.normal(size=(60, 10)) + 3 * (y[:, None] == np.array(["p", "q", "r"])[None, :]).repeat(4, axis=1)[:, :10]
    noise = rng.normal(size=(60, 10))
    assert probe_accuracy(signal, y, seed=0) > 0.9
    assert probe_accuracy(noise, y, seed=0) < 0.6
    assert probe_accuracy(signal, y, seed=0) == probe_accuracy(signal, y, seed=0)
    with pytest.raises(ValueError, match="has 3 stimuli; n_splits=5"):
        probe_accuracy(signal[:43], y[:43])


def test_behaviour_link_detects_similarity_that_tracks_accuracy():
    models = ["a", "b", "c", "d", "e", "f"]
    acc = pd.Series([0.9, 0.85, 0.8, 0.4, 0.35, 0.6], index=models)
    diff = np.abs(acc.to_numpy()[:, None] - acc.to_numpy()[None, :])
    tracked = matrix(1.0 - diff, models)  # similarity = 1 - |difference|: rho = -1
    link = behaviour_link(tracked, acc, n_permutations=200, seed=0)
    assert link["rho"] == pytest.approx(-1.0) and link["n_pairs"] == 15 and link["n_models"] == 6
    assert link["p_value"] <= 0.02
    unrelated = matrix(random_similarity(models, 9), models)
    assert behaviour_link(unrelated, acc, n_permutations=200, seed=0)["p_value"] > 0.05
    # a model without accuracy is left out; too few pairs give NaN
    few = behaviour_link(tracked, acc[["a", "b"]], n_permutations=10)
    assert few["n_pairs"] == 1 and np.isnan(few["rho"])


def test_behaviour_table_labels_each_dataset_with_its_domain():
    models = ["a", "b", "c", "d", "e", "f"]
    acc = pd.Series([0.9, 0.85, 0.8, 0.4, 0.35, 0.6], index=models)
    probe = pd.DataFrame({"model": models, "accuracy": acc.to_numpy()})
    sims = {"digits": matrix(random_similarity(models, 1), models), "clipart": matrix(random_similarity(models, 2), models),
            "unlabelled": matrix(random_similarity(models, 3), models)}
    probes = {"digits": probe, "clipart": probe, "unlabelled": probe.iloc[:0]}
    links, pairs = behaviour_table(sims, probes, domains={"digits": "single", "clipart": "multi"}, n_permutations=20)
    assert links.set_index("dataset")["domain"].to_dict() == {"digits": "single", "clipart": "multi"}
    assert len(pairs) == 2 * 15
    links, _ = behaviour_table(sims, probes, n_permutations=20)
    assert set(links["domain"]) == {""}


def test_permutation_test_directions():
    x = np.arange(10.0)

    def corr(perm):
        return float(np.corrcoef(x, x[perm])[0, 1])

    rng = np.random.default_rng(0)
    greater = permutation_test(corr, 10, n_permutations=99, rng=rng)
    assert greater["observed"] == pytest.approx(1.0) and greater["p_value"] == pytest.approx(0.01)
    less = permutation_test(corr, 10, n_permutations=99, alternative="less", rng=np.random.default_rng(0))
    assert less["p_value"] == pytest.approx(1.0)
    two = permutation_test(corr, 10, n_permutations=99, alternative="two-sided", rng=np.random.default_rng(0))
    assert two["p_value"] == pytest.approx(0.01)
    with pytest.raises(ValueError, match="alternative"):
        permutation_test(corr, 10, alternative="both")


def test_per_class_cap_keeps_ceil_cap_over_classes_per_class():
    labels = [c for c in "abc" for _ in range(50)]  # 150 stimuli, 3 classes
    idx = subsample_indices(150, labels, per_class=None, limit=None, seed=42, per_class_cap=100)
    counts = pd.Series(np.asarray(labels)[idx]).value_counts()
    assert (counts == 34).all()  # ceil(100 / 3)
    again = subsample_indices(150, labels, per_class=None, limit=None, seed=42, per_class_cap=100)
    other = subsample_indices(150, labels, per_class=None, limit=None, seed=7, per_class_cap=100)
    assert np.array_equal(idx, again) and not np.array_equal(idx, other)
    whole = subsample_indices(150, labels, per_class=None, limit=None, seed=42, per_class_cap=150)
    assert whole.size == 150  # not above the cap: kept whole
    with pytest.raises(StimulusError, match="labelled source"):
        subsample_indices(150, None, per_class=None, limit=None, seed=0, per_class_cap=10)
