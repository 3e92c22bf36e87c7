"""The ``alignment`` analysis: every model pair on one dataset, for one metric, over all layer pairs.

:func:`alignment` scores every (model_a, model_b, layer_a, layer_b) from the kernel stores
(``convergence.pairwise``), with layer summaries (``best``, ``last``, ``named``), a permutation null and
a jackknife interval, a calibrated score (``tau``, ``calibrated``) and a Benjamini-Hochberg q-value per
summary (``convergence.inference``), each pair's result cached by content so that
adding a model computes only its own pairs. The result carries each model's labels as coordinates
(``modality_a``, ``objective_a``, ``family_a`` ...). :func:`summary_table` is its tidy table.

When a neighbour-based metric reads kernel stores whose neighbour lists are approximate
(``kernels.neighbours``), the result carries ``neighbour_recall`` (model_a, model_b): the smaller recall@k of
the pair's two stores (``kernels.neighbour_recall``), also as a column of the table, and its minimum over
all pairs in ``attrs["neighbour_recall_min"]``. With exact lists (the default) nothing is added.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from ..kernels import neighbour_recall
from ..metrics.registry import get_metric
from ..pairwise import cached_pairwise
from . import MODEL_FIELDS, labels_of


def alignment(
    kernels: Mapping[str, xr.Dataset],
    metric: str,
    *,
    cache_dir: str | Path,
    params: Mapping | None = None,
    n_permutations: int = 100,
    n_bootstrap: int = 100,
    alpha: float = 0.05,
    seed: int = 0,
    named_layers: Mapping[str, str] | None = None,
    model_labels: Mapping[str, Mapping[str, str]] | None = None,
    log=print,
) -> xr.Dataset:
    """All pairs of the models in ``kernels`` (model name -> kernel store) for ``metric`` (a registry name,
    with ``params``), labelled with ``model_labels`` (model -> fields; the workflow passes the config's)
    or else each kernel's provenance. Layout: ``convergence.pairwise.scores``."""
    scores = cached_pairwise(kernels, metric, cache_dir=cache_dir, params=params, n_permutations=n_permutations,
                             n_bootstrap=n_bootstrap, alpha=alpha, seed=seed, named_layers=named_layers, log=log)
    info = {m: labels_of(kernels[m], (model_labels or {}).get(m)) for m in kernels}
    return with_neighbour_recall(label_models(scores, info), kernels, metric)


def with_neighbour_recall(scores: xr.Dataset, kernels: Mapping[str, xr.Dataset], metric: str) -> xr.Dataset:
    """``scores`` with ``neighbour_recall`` (model_a, model_b) = min(recall of a's store, recall of b's) and
    ``attrs["neighbour_recall_min"]``, when ``metric`` reads neighbour lists and some store's lists are
    approximate; else ``scores`` unchanged."""
    if get_metric(metric).needs != "neighbors":
        return scores
    if all(str(kernel.attrs.get("kernel_search", "exact")) != "approximate" for kernel in kernels.values()):
        return scores
    recall = {m: neighbour_recall(kernels[m]) for m in kernels}
    ra = np.array([recall[str(m)] for m in scores["model_a"].values])
    rb = np.array([recall[str(m)] for m in scores["model_b"].values])
    pair = np.minimum(ra[:, None], rb[None, :])
    out = scores.assign(neighbour_recall=(("model_a", "model_b"), pair))
    out["neighbour_recall"].attrs["description"] = (
        "recall@k of the approximate neighbour lists: the smaller of the two kernel stores' (each measured "
        "against exact lists on a seeded sample of rows); bounds in README 'Large stimulus sets'")
    out.attrs["neighbour_recall_min"] = float(pair.min())
    return out


def label_models(scores: xr.Dataset, info: Mapping[str, Mapping[str, str]]) -> xr.Dataset:
    """Attach each model's modality/objective/family as coordinates along ``model_a`` and ``model_b``."""
    coords = {}
    for side in ("a", "b"):
        names = [str(m) for m in scores[f"model_{side}"].values]
        for field in MODEL_FIELDS:
            coords[f"{field}_{side}"] = (f"model_{side}", np.array([info[m][field] for m in names], dtype=object))
    return scores.assign_coords(coords)


def summary_table(scores: xr.Dataset) -> pd.DataFrame:
    """One row per (model_a, model_b, summary): score, winning layers and depths, null, z, p, q, the
    calibration threshold ``tau`` and the ``calibrated`` score, CI."""
    fields = ["summary_score", "summary_layer_name_a", "summary_layer_name_b", "summary_depth_a", "summary_depth_b",
              "null_mean", "null_std", "z_score", "p_value", "q_value", "tau", "calibrated", "ci_low", "ci_high"]
    table = scores[[f for f in fields if f in scores]].to_dataframe().reset_index()
    keep = ["model_a", "model_b", "summary", *[f for f in fields if f in table]]
    for side in ("a", "b"):
        for field in MODEL_FIELDS:
            name = f"{field}_{side}"
            if name in scores.coords:
                table[name] = table[f"model_{side}"].map(dict(zip(scores[f"model_{side}"].values, scores[name].values)))
                keep.append(name)
    table = table[keep].rename(columns={"summary_score": "score", "summary_layer_name_a": "layer_a",
                                        "summary_layer_name_b": "layer_b", "summary_depth_a": "depth_a",
                                        "summary_depth_b": "depth_b"})
    table.insert(0, "metric", scores.attrs.get("metric", ""))
    table["n_stimuli"] = int(scores.attrs.get("n_stimuli", scores.sizes.get("stimulus", 0)))
    if "neighbour_recall" in scores:
        recall = scores["neighbour_recall"].to_series()
        table["neighbour_recall"] = [float(recall[(a, b)]) for a, b in zip(table["model_a"], table["model_b"])]
    return table
