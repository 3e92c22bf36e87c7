"""The workflow's alignment step: all pairs from kernel stores, each pair's result cached by content.

Adding a model to a study must not recompute the scores of pairs that already exist. Snakemake reruns
the aggregate ``alignment`` job (one per dataset and metric) whenever a kernel is added, so the pair
results themselves are cached: each (model_a, model_b) result is stored under a key that hashes
everything it depends on (both kernels' content fingerprints and names, the metric and its parameters,
the null and bootstrap settings, the stimuli, the step version). A rerun then computes only the pairs
whose key is new; the rest is bookkeeping. A stale entry can never be read back, since any change that
would alter it changes its key.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from ..kernels import feature_var
from ..store import open_store, write_store
from ..versions import STEP_VERSIONS
from .pairwise import combine_pairs, pairwise
from .products import common_stimuli, stimulus_digest

MODEL_FIELDS = ("modality", "objective", "family")


#: Metrics that read the cached neighbour lists (their results depend on k); the others read features/Grams.
NEIGHBOUR_METRICS = ("mutual_knn", "cycle_knn", "jaccard_knn", "cknna")


def kernel_fingerprint(kernel: xr.Dataset, *, neighbours: bool = True) -> str:
    """Content hash of what pairwise metrics read from a kernel store: ids, layers, preprocessed features
    and, with ``neighbours``, the top-k neighbour lists (so changing k invalidates kNN pairs only)."""
    digest = hashlib.sha256()
    layers = [str(x) for x in kernel.attrs["layers"]]
    header = {
        "ids": [str(s) for s in kernel["stimulus"].values],
        "layers": layers,
        "preprocess": str(kernel.attrs.get("kernel_preprocess", "")),
    }
    if neighbours:
        header["k"] = int(kernel.attrs["kernel_k"])
    digest.update(json.dumps(header, sort_keys=True).encode())
    for layer in layers:
        digest.update(np.ascontiguousarray(kernel[feature_var(layer)].values, dtype=np.float32).tobytes())
    if neighbours:
        digest.update(np.ascontiguousarray(kernel["neighbors"].values, dtype=np.int32).tobytes())
    return digest.hexdigest()


def with_fingerprints(kernel: xr.Dataset) -> xr.Dataset:
    """The kernel with its content fingerprints in attrs (computed once, when the kernel is built)."""
    kernel.attrs["fingerprint"] = kernel_fingerprint(kernel, neighbours=True)
    kernel.attrs["fingerprint_features"] = kernel_fingerprint(kernel, neighbours=False)
    return kernel


def _fingerprint(kernel: xr.Dataset, metric: str) -> str:
    neighbours = metric in NEIGHBOUR_METRICS
    stored = kernel.attrs.get("fingerprint" if neighbours else "fingerprint_features")
    return str(stored or kernel_fingerprint(kernel, neighbours=neighbours))


def model_info(kernel: xr.Dataset) -> dict[str, str]:
    """Modality, training objective and architecture family recorded in a kernel's provenance."""
    prov = kernel.attrs.get("provenance", {}) or {}
    return {
        "modality": str(kernel.attrs.get("modality", "")),
        "objective": str(prov.get("objective", "")),
        "family": str(prov.get("family", "")),
    }


def cached_pairwise(
    kernels: Mapping[str, xr.Dataset],
    metric: str,
    *,
    cache_dir: str | Path,
    params: Mapping | None = None,
    models_a: Sequence[str] | None = None,
    models_b: Sequence[str] | None = None,
    n_permutations: int = 100,
    n_bootstrap: int = 100,
    seed: int = 0,
    summaries: Sequence[str] = ("best", "last"),
    model_labels: Mapping[str, Mapping[str, str]] | None = None,
    named_layers: Mapping[str, str] | None = None,
    log=print,
) -> xr.Dataset:
    """:func:`~convergence.alignment.pairwise` over ``models_a`` x ``models_b``, reusing cached pair results.

    Every pair is scored on the stimuli shared by ALL models given, so cached pairs combine. The result
    carries ``modality``, ``objective`` and ``family`` of each model as coordinates (``modality_a`` ...),
    from ``model_labels`` (model -> fields; the workflow passes the config's) or else the kernels' provenance.
    With ``named_layers`` (model -> layer name; unlisted models use their last layer) a ``named`` summary is
    added to ``summaries``.
    """
    models = list(kernels)
    models_a = list(models_a or models)
    models_b = list(models_b or models)
    ids = common_stimuli(kernels, models)
    named = None
    if named_layers:
        named = {m: str(named_layers.get(m) or kernels[m].attrs["layers"][-1]) for m in models}
        summaries = tuple(dict.fromkeys([*summaries, "named"]))
    fingerprints = {m: _fingerprint(kernels[m], metric) for m in models}
    settings = json.dumps(
        {
            "metric": metric,
            "params": dict(params or {}),
            "n_permutations": int(n_permutations),
            "n_bootstrap": int(n_bootstrap),
            "seed": int(seed),
            "summaries": list(summaries),
            "stimuli": stimulus_digest(ids),
            "version": STEP_VERSIONS["alignment"],
        },
        sort_keys=True,
    )
    cache = Path(cache_dir)

    def entry(a: str, b: str) -> Path:
        # named layers enter per pair (only the two models' own), so adding a model keeps other pairs' keys
        na, nb = (named or {}).get(a, ""), (named or {}).get(b, "")
        key = hashlib.sha256(f"{settings}|{a}|{fingerprints[a]}|{na}|{b}|{fingerprints[b]}|{nb}".encode()).hexdigest()[:32]
        return cache / f"{key}.zarr"

    results: dict[tuple[str, str], xr.Dataset] = {}
    missing: dict[str, list[str]] = {}
    for a in models_a:
        for b in models_b:
            path = entry(a, b)
            if path.exists():
                results[(a, b)] = open_store(path, load=True)
            else:
                missing.setdefault(a, []).append(b)
    n_missing = sum(len(v) for v in missing.values())
    log(f"{metric}: {len(models_a) * len(models_b) - n_missing} pair(s) from the cache, {n_missing} to compute")

    options = dict(params=params, stimuli=ids, summaries=summaries, n_permutations=n_permutations,
                   n_bootstrap=n_bootstrap, seed=seed, named_layers=named)
    if n_missing == len(models_a) * len(models_b):
        groups = [(models_a, models_b)]  # nothing cached: one all-pairs call prepares each model once
    else:
        groups = [([a], bs) for a, bs in missing.items()]
    for rows, cols in groups:
        scores = pairwise(kernels, metric, models_a=rows, models_b=cols, **options)
        for i, a in enumerate(rows):
            for j, b in enumerate(cols):
                part = scores.isel(model_a=[i], model_b=[j])
                write_store(part, entry(a, b))
                results[(a, b)] = part
    combined = combine_pairs([results[(a, b)] for a in models_a for b in models_b])
    info = {m: {**model_info(kernels[m]), **{k: v for k, v in (model_labels or {}).get(m, {}).items() if v}} for m in models}
    return label_models(combined, info)


def label_models(scores: xr.Dataset, info: Mapping[str, Mapping[str, str]]) -> xr.Dataset:
    """Attach each model's modality/objective/family as coordinates along ``model_a`` and ``model_b``."""
    coords = {}
    for side in ("a", "b"):
        names = [str(m) for m in scores[f"model_{side}"].values]
        for field in MODEL_FIELDS:
            coords[f"{field}_{side}"] = (f"model_{side}", np.array([info[m][field] for m in names], dtype=object))
    return scores.assign_coords(coords)


def crossmodal_block(scores: xr.Dataset) -> xr.Dataset:
    """The vision (rows) x language (columns) block of a labelled all-pairs result, padding trimmed."""
    vision = [str(m) for m, mod in zip(scores["model_a"].values, scores["modality_a"].values) if mod == "vision"]
    language = [str(m) for m, mod in zip(scores["model_b"].values, scores["modality_b"].values) if mod == "language"]
    if not vision or not language:
        raise ValueError(f"cross-modal alignment needs vision and language models; got vision={vision}, language={language}")
    block = scores.sel(model_a=vision, model_b=language)
    return block.isel(
        layer_a=slice(0, int(block["n_layers_a"].max())), layer_b=slice(0, int(block["n_layers_b"].max()))
    )


def summary_table(scores: xr.Dataset) -> pd.DataFrame:
    """One row per (model_a, model_b, summary): score, winning layers and depths, null, z, p, CI."""
    fields = ["summary_score", "summary_layer_name_a", "summary_layer_name_b", "summary_depth_a", "summary_depth_b",
              "null_mean", "null_std", "z_score", "p_value", "ci_low", "ci_high"]
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
    return table


def competence_table(
    stimuli: xr.Dataset,
    stores: Mapping[str, xr.Dataset],
    *,
    k: int = 10,
    seed: int = 0,
    model_labels: Mapping[str, Mapping[str, str]] | None = None,
) -> pd.DataFrame:
    """Per model: k-NN and linear-probe accuracy of its last layer on labelled stimuli (vision), and mean
    bits per byte on the captions (causal LMs). Tidy: one row per (model, measure). Model labels come
    from ``model_labels`` where given, else from the store's provenance."""
    from .competence import knn_accuracy, linear_probe_accuracy, mean_bits_per_byte

    rows = []
    labels = stimuli["label"].to_series() if "label" in stimuli else None
    for name, ds in stores.items():
        info = {"model": name, "modality": ds.attrs.get("modality", ""),
                "objective": (ds.attrs.get("provenance") or {}).get("objective", ""),
                "family": (ds.attrs.get("provenance") or {}).get("family", "")}
        info.update({f: v for f, v in (model_labels or {}).get(name, {}).items() if v and f in info})
        layer = ds.attrs["layers"][-1]
        if labels is not None and info["modality"] == "vision":
            x = ds[layer].values
            y = labels.reindex([str(s) for s in ds["stimulus"].values]).values
            counts = pd.Series(y).value_counts()
            if len(counts) < 2:  # one class: nothing to classify
                continue
            smallest = int(counts.min())
            rows.append({**info, "measure": "knn_accuracy", "layer": layer,
                         "value": knn_accuracy(x, y, k=min(k, len(y) - 1))})
            if smallest >= 2:  # stratified folds need every class at least twice; 5 folds when classes allow
                rows.append({**info, "measure": "linear_probe_accuracy", "layer": layer,
                             "value": linear_probe_accuracy(x, y, seed=seed, n_splits=min(5, smallest))})
        if "bits_per_byte" in ds.data_vars:
            rows.append({**info, "measure": "bits_per_byte", "layer": "", "value": mean_bits_per_byte(ds)})
    return pd.DataFrame(rows, columns=["model", "modality", "objective", "family", "measure", "layer", "value"])


def prh_competence(table: pd.DataFrame) -> tuple[pd.Series, str]:
    """The competence the PRH plot uses: ``1 - bits per byte`` when causal LMs recorded it, otherwise the
    vision models' linear-probe accuracy. Returns (model -> value, axis label); empty when neither exists."""
    bpb = table[table["measure"] == "bits_per_byte"]
    if len(bpb):
        return pd.Series(1.0 - bpb["value"].to_numpy(), index=bpb["model"].to_numpy()), "competence (1 - bits per byte)"
    probe = table[table["measure"] == "linear_probe_accuracy"]
    return pd.Series(probe["value"].to_numpy(), index=probe["model"].to_numpy()), "linear-probe accuracy (last layer)"



def prh_table(scores: xr.Dataset, competence: pd.DataFrame, reference: str, summary: str = "best"):
    """The PRH plot's numbers: (table of alignment to ``reference`` vs competence, linear fit or None,
    x-axis label). The fit is None when fewer than two models have a competence value."""
    from .competence import alignment_vs_competence, linear_fit

    values, x_label = prh_competence(competence)
    table = alignment_vs_competence(scores, values, reference, summary=summary)
    numeric = [c for c in table.columns if c != "model"]
    table[numeric] = table[numeric].astype(float)  # an empty table (no competence here) stays numeric
    try:
        fit = linear_fit(table["competence"], table["alignment"])
    except ValueError:
        fit = None
    return table, fit, x_label
