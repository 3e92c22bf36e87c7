"""The metric registry: every measure declared once, and everything that lists metrics reads it."""
import re
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from convergence.config import load_schema, metric_params
from convergence.kernels import build_kernel
from convergence.metrics.registry import METRIC_NAMES, METRICS, get_metric, kernel_needs, markdown_table
from convergence.pairwise import make_metric, pairwise

ROOT = Path(__file__).resolve().parents[1]
N = 40
PARAMS = {"mutual_knn": {"k": 6}, "cycle_knn": {"k": 6}, "jaccard_knn": {"k": 6}, "cknna": {"k": 6},
          "cka_rbf": {"sigma": 0.8}}


def one_layer_store(name, x):
    ids = np.array([f"s{i:02d}" for i in range(len(x))], dtype=object)
    return xr.Dataset({"h": (("stimulus", "feature_h"), x.astype(np.float32))}, coords={"stimulus": ids},
                      attrs={"model": name, "modality": "vision", "layers": ["h"], "depths": [1.0]})


@pytest.fixture(scope="module")
def pair():
    rng = np.random.default_rng(5)
    latent = rng.normal(size=(N, 4))
    xa = latent @ rng.normal(size=(4, 9)) + 0.3 * rng.normal(size=(N, 9))
    xb = latent @ rng.normal(size=(4, 7)) + 0.3 * rng.normal(size=(N, 7))
    return {m: build_kernel(one_layer_store(m, x), k=6, preprocess="l2") for m, x in (("a", xa), ("b", xb))}


@pytest.mark.parametrize("name", METRIC_NAMES)
def test_the_engine_of_every_registry_metric_computes_its_pair_function(pair, name):
    """One definition per measure: the all-pairs engine and the pair function agree on the same features."""
    spec = get_metric(name)
    ds = pairwise(pair, name, params=PARAMS.get(name), models_a=["a"], models_b=["b"], n_permutations=0,
                  n_bootstrap=0)
    x, y = (pair[m]["features_h"].values.astype(np.float64) for m in ("a", "b"))
    with np.errstate(all="ignore"):
        expected = spec.pair_function(x, y, **PARAMS.get(name, {}))
    assert float(ds["score"].values[0, 0, 0, 0]) == pytest.approx(expected, abs=1e-6)
    lo, hi = spec.range
    assert lo - 1e-9 <= expected <= hi + 1e-9
    assert ds.attrs["metric"] == name and ds.attrs["higher_is_better"] == int(spec.higher_is_better)


@pytest.mark.parametrize("name", METRIC_NAMES)
def test_direction_and_symmetry_come_from_the_registry(name):
    engine = make_metric(name, **PARAMS.get(name, {}))
    spec = METRICS[name]
    assert (engine.name, engine.symmetric, engine.higher_is_better) == (spec.name, spec.symmetric, spec.higher_is_better)


def test_unknown_names_and_parameters_are_one_clear_error():
    with pytest.raises(ValueError, match=r"mutual_knnn.*did you mean 'mutual_knn'"):
        get_metric("mutual_knnn")
    with pytest.raises(ValueError, match=r"cka_linear.*takes no parameter.*\['k'\]"):
        make_metric("cka_linear", k=3)


def test_config_schema_allows_exactly_the_registry_names():
    items = load_schema()["properties"]["alignment"]["properties"]["metrics"]["items"]
    assert items["enum"] == list(METRIC_NAMES)


def test_config_keys_feed_only_the_metrics_that_declare_them():
    section = {"k": 7, "rbf_sigma": 0.3}
    assert metric_params("mutual_knn", section) == {"k": 7}
    assert metric_params("cka_rbf", section) == {"sigma": 0.3}
    assert metric_params("cka_linear", section) == {}


def test_kernel_needs_follow_the_configured_metrics():
    assert kernel_needs(["mutual_knn", "cknna"], {"k": 12}) == {"k": 12, "gram": False}
    assert kernel_needs(["cka_linear"], {}) == {"k": None, "gram": True}
    assert kernel_needs(["rsa", "cycle_knn"], {}) == {"k": 10, "gram": False}  # the registry's default k


def test_readme_metric_table_is_the_registrys():
    readme = (ROOT / "README.md").read_text()
    assert markdown_table() in readme, "README's metric table is stale: regenerate it with `make readme`"
    assert len(re.findall(r"^\| `\w+` \|", markdown_table(), flags=re.M)) == len(METRIC_NAMES)
