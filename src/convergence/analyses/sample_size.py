"""The ``sample_size`` analysis: alignment as a function of the number of stimuli.

Critiques of the Platonic Representation Hypothesis point out that mutual k-NN falls as the stimulus set
grows (with k fixed, neighbourhoods get finer) and that scores are confounded by scale; a score is only
interpretable next to its chance level at the same n. :func:`nested_subsets` draws one seeded random order
of the shared stimuli and takes its first m for every size m, so the subsets are nested (each contains the
smaller ones) and differ only in size; :func:`sample_size_curve` scores every model pair on each subset
(``convergence.pairwise`` with ``stimuli=``: neighbours and Grams recomputed on the subset from the stored
features) with the permutation null, calibrated score, q-value (over the model pairs at that size) and
jackknife interval of one layer summary at every size.
:func:`curve_table` is its tidy table (each unordered model pair once for a symmetric metric) and
:func:`size_trend` the summary the claims table reports.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import xarray as xr
from scipy.stats import spearmanr

from ..inference import rng_for
from ..pairwise import common_stimuli, make_metric, pairwise
from . import labels_of
from .alignment import label_models

#: Per-size fields of one summary, as ``convergence.pairwise`` names them.
FIELDS = ("summary_score", "null_mean", "null_std", "z_score", "p_value", "q_value", "tau", "calibrated",
          "ci_low", "ci_high",
          "summary_layer_name_a", "summary_layer_name_b")


def nested_subsets(ids: Sequence[str], sizes: Sequence[int], seed: int = 0) -> dict[int, np.ndarray]:
    """size -> stimulus ids: the first ``size`` ids of one seeded random order of the sorted ``ids``.

    Nested by construction (a smaller subset is contained in every larger one). Sizes must be distinct
    whole numbers from 2 to ``len(ids)``; they are returned in increasing order."""
    ids = np.asarray(sorted(str(i) for i in ids), dtype=object)
    sizes = [int(s) for s in sizes]
    if not sizes:
        raise ValueError("sample_size: give at least one subset size")
    if len(set(sizes)) != len(sizes):
        raise ValueError(f"sample_size: subset sizes {sizes} repeat a size; give each size once")
    bad = [s for s in sizes if not 2 <= s <= ids.size]
    if bad:
        raise ValueError(f"sample_size: subset sizes {bad} are outside 2..{ids.size} (the number of stimuli "
                         "every model shares)")
    order = rng_for(seed, "sample_size").permutation(ids.size)
    return {s: ids[np.sort(order[:s])] for s in sorted(sizes)}


def sample_size_curve(
    kernels: Mapping[str, xr.Dataset],
    metric: str,
    *,
    sizes: Sequence[int],
    include_all: bool = True,
    params: Mapping | None = None,
    summary: str = "last",
    n_permutations: int = 100,
    n_bootstrap: int = 100,
    alpha: float = 0.05,
    seed: int = 0,
    model_labels: Mapping[str, Mapping[str, str]] | None = None,
    progress: bool = True,
) -> xr.Dataset:
    """Every model pair of ``kernels`` scored by ``metric`` on nested random subsets of the shared stimuli.

    ``sizes`` below the metric's minimum (e.g. k + 1 for k-NN metrics) are an error; with ``include_all``
    the full set is the last point and sizes at or above it are left out (recorded in the attrs), else a
    size above the number of shared stimuli is an error. Returns a Dataset with dims ``n_stimuli``,
    ``model_a``, ``model_b`` and the fields of :data:`FIELDS` for ``summary`` (``best``, ``last``: each model's
    deepest layer), plus the models' labels as coordinates.
    """
    from tqdm.auto import tqdm

    if summary not in ("best", "last"):
        raise ValueError(f"sample_size: summary {summary!r} is not allowed; allowed: best, last")
    measure = make_metric(metric, **dict(params or {}))
    ids = common_stimuli(kernels, list(kernels))
    asked = sorted(set(int(s) for s in sizes))
    left_out = [s for s in asked if include_all and s >= ids.size]
    wanted = sorted(set(asked) - set(left_out) | ({int(ids.size)} if include_all else set()))
    too_small = [s for s in wanted if s < measure.min_stimuli()]
    if too_small:
        raise ValueError(f"sample_size: {metric} with {measure.params()} needs at least {measure.min_stimuli()} "
                         f"stimuli; subset sizes {too_small} are too small")
    subsets = nested_subsets(ids, wanted, seed)
    rows = []
    for size, subset in tqdm(subsets.items(), desc=f"{metric} by n", unit="size", disable=not progress):
        scores = pairwise(kernels, measure, stimuli=subset, summaries=(summary,), n_permutations=n_permutations,
                          n_bootstrap=n_bootstrap, alpha=alpha, seed=seed)
        rows.append(scores[[f for f in FIELDS if f in scores]].sel(summary=summary, drop=True))
    out = xr.concat(rows, dim=xr.DataArray(list(subsets), dims="n_stimuli", name="n_stimuli"))
    info = {m: labels_of(kernels[m], (model_labels or {}).get(m)) for m in kernels}
    out = label_models(out, info)
    out.attrs.update({
        "metric": measure.name, **{f"metric_{k}": v for k, v in measure.params().items()},
        "summary": summary, "seed": int(seed), "n_permutations": int(n_permutations),
        "n_bootstrap": int(n_bootstrap), "alpha": float(alpha), "symmetric": int(measure.symmetric),
        "subsets": "nested: the first n stimuli of one seeded random order of the shared stimulus ids",
        "sizes_left_out": [int(s) for s in left_out],
    })
    return out


def curve_table(curve: xr.Dataset) -> pd.DataFrame:
    """One row per (n_stimuli, model pair): the score, its null, p-value and interval. Self pairs are left out,
    and for a symmetric metric each unordered pair appears once (model_a < model_b)."""
    table = curve.drop_vars([c for c in curve.coords if c not in ("n_stimuli", "model_a", "model_b")])
    table = table.to_dataframe().reset_index()
    table = table[table["model_a"] != table["model_b"]]
    if curve.attrs.get("symmetric", 1):
        table = table[table["model_a"] < table["model_b"]]
    labels = {}
    for side in ("a", "b"):
        for m, mod in zip(curve[f"model_{side}"].values, curve[f"modality_{side}"].values):
            labels[str(m)] = str(mod)
    pair_kind = [" x ".join(sorted((labels[a], labels[b]))) for a, b in zip(table["model_a"], table["model_b"])]
    table.insert(3, "pair_kind", pair_kind)
    return table.rename(columns={"summary_score": "score"}).reset_index(drop=True)


def size_trend(table: pd.DataFrame) -> pd.DataFrame:
    """Per pair kind (and ``all``): the mean score and mean null over model pairs at each n, the excess over
    the null, the mean calibrated score (where the table has it), and Spearman's rho between n and the mean
    score (negative: the score falls as n grows), between n and the mean excess and between n and the mean
    calibrated score."""
    parts = []
    for kind, sub in [("all", table), *table.groupby("pair_kind")]:
        columns = ["score", "null_mean", *(["calibrated"] if "calibrated" in sub else [])]
        means = sub.groupby("n_stimuli")[columns].mean()
        means["excess"] = means["score"] - means["null_mean"]
        enough = len(means) >= 3

        def rho_of(column):
            if not enough or column not in means or means[column].nunique() < 2:
                return np.nan
            return spearmanr(means.index, means[column]).statistic

        rho, rho_excess, rho_calibrated = rho_of("score"), rho_of("excess"), rho_of("calibrated")
        has_calibrated = "calibrated" in means
        means = means.reset_index()
        means.insert(0, "pair_kind", kind)
        means["rho_n_score"] = rho
        means["rho_n_excess"] = rho_excess
        if has_calibrated:
            means["rho_n_calibrated"] = rho_calibrated
        means["n_pairs"] = sub.groupby("n_stimuli").size().to_numpy()
        parts.append(means)
    return pd.concat(parts, ignore_index=True)
