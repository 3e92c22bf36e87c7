"""The ``layers`` analysis: how different models get to their representations, layer by layer (study 003,
Mahaut & Baroni; ``science.md`` section D, a reconstruction: the study published no code).

Every function takes stored products (kernel stores, embedding stores, the low-level statistics of
:mod:`convergence.lowlevel`) or the results of the previous step and returns labelled xarray/pandas results.
Layers are placed on a relative-depth axis (0 = input, 1 = last layer; the stores' ``depths``).

- :func:`layer_matrices`: for every model pair (each model with itself included) the full layer x layer
  matrix of a registry metric (``convergence.pairwise``; no null, no bootstrap).
- :func:`best_matches`: per layer of model A, the best-matching layer of model B (highest score; lowest for
  distances; ties to the shallowest) and its offset from the relative-depth diagonal,
  ``depth_B(best) - depth_A``.
- :func:`diagonal_test`: "similar positions are most similar": the fraction of layers whose best match lies
  within ``tolerance`` relative depth, averaged over ordered model pairs (A != B), with a bootstrap interval
  over pairs and a shuffled-depth null (per draw, each pair's B layers get their depths permuted; the
  best-matching layers stay the same, so the null keeps which layers share a match).
- :func:`depth_profile`: where models differ most: per bin of relative depth and model pair, the
  dissimilarity at matched depth (layers of A and B nearest the bin centre) and to the best-matching layer
  of B, summarised over pairs (mean, spread). Dissimilarity is ``1 - score`` for similarity metrics and the
  score itself for distances.
- :func:`smoothness`: within each model (its self pair), the score between consecutive layers, at the
  midpoint of their depths, interpolated onto the bin centres; per family (cnn, transformer) the mean
  curve and mean smoothness with bootstrap intervals over the family's models, and the transformer - cnn
  difference with a bootstrap interval and a family-label permutation null.
- :func:`layer_readout` / :func:`readout_summary`: per layer, the cross-validated R^2 of a ridge read-out of
  each low-level statistic (centred features scaled by one RMS per layer, ``RidgeCV`` over ``alphas`` inside each training fold,
  k-fold out-of-fold predictions, ``R^2 = 1 - SSE / SST``; one scale per layer, not per feature), summarised by training objective: the peak over
  layers, the last layer and their difference (the "discard" of a classifier's final layers).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from ..inference import bootstrap_weights, null_summary, percentile_interval, rng_for
from ..lowlevel import STATISTICS
from ..pairwise import cached_pairwise, pairwise
from . import MODEL_FIELDS, labels_of
from .alignment import label_models

DEFAULT_ALPHAS = tuple(float(a) for a in np.logspace(-2, 6, 17))


# ---------------------------------------------------------------------------------------- matrices
def layer_matrices(
    kernels: Mapping[str, xr.Dataset],
    metric: str,
    *,
    params: Mapping | None = None,
    cache_dir: str | Path | None = None,
    model_labels: Mapping[str, Mapping[str, str]] | None = None,
    log=print,
) -> xr.Dataset:
    """Every layer pair of every model pair (each model with itself included) for ``metric`` from kernel
    stores; layout of ``convergence.pairwise.scores`` (no null or bootstrap), labelled like ``alignment``.
    With ``cache_dir`` each pair's matrix is cached by content."""
    if not isinstance(kernels, Mapping) or len(kernels) < 2:
        raise ValueError(f"the layers analysis needs kernel stores of at least two models; got {len(kernels or {})}")
    options = dict(params=params, n_permutations=0, n_bootstrap=0)
    if cache_dir is not None:
        scores = cached_pairwise(kernels, metric, cache_dir=cache_dir, log=log, **options)
    else:
        scores = pairwise(kernels, metric, **options)
    info = {m: labels_of(kernels[m], (model_labels or {}).get(m)) for m in kernels}
    return label_models(scores, info)


def _models(scores: xr.Dataset) -> list[str]:
    a = [str(m) for m in scores["model_a"].values]
    if a != [str(m) for m in scores["model_b"].values]:
        raise ValueError("layer matrices must hold the same models along model_a and model_b")
    return a


def pair_matrix(scores: xr.Dataset, a: str, b: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(score (L_a, L_b), depths of a, depths of b) of one model pair, padding removed."""
    x = list(map(str, scores["model_a"].values)).index(a)
    y = list(map(str, scores["model_b"].values)).index(b)
    na, nb = int(scores["n_layers_a"].values[x]), int(scores["n_layers_b"].values[y])
    s = np.asarray(scores["score"].values[x, y, :na, :nb], dtype=np.float64)
    return s, np.asarray(scores["depth_a"].values[x, :na], float), np.asarray(scores["depth_b"].values[y, :nb], float)


def _higher(scores: xr.Dataset) -> bool:
    return bool(int(scores.attrs.get("higher_is_better", 1)))


def _label(scores: xr.Dataset, model: str, field: str) -> str:
    name = f"{field}_a"
    if name not in scores.coords:
        return ""
    return str(scores[name].values[list(map(str, scores["model_a"].values)).index(model)])


def _best(row: np.ndarray, higher: bool) -> int:
    """Position of the best finite entry (first on ties), -1 when none is finite."""
    if not np.isfinite(row).any():
        return -1
    oriented = np.where(np.isfinite(row), row if higher else -row, -np.inf)
    return int(np.argmax(oriented))


def _ordered_pairs(scores: xr.Dataset):
    """``(a, b, scores, depths_a, depths_b)`` for every ordered pair of different models (``pair_matrix``)."""
    models = _models(scores)
    for a in models:
        for b in models:
            if a != b:
                yield (a, b, *pair_matrix(scores, a, b))


# ---------------------------------------------------------------------------------- best matches
def best_matches(scores: xr.Dataset) -> pd.DataFrame:
    """Per ordered model pair (A != B) and layer of A: the best-matching layer of B, its score and its offset
    from the relative-depth diagonal (``depth_b - depth_a``); rows whose scores are all NaN are left out."""
    higher = _higher(scores)
    rows = []
    for a, b, s, da, db in _ordered_pairs(scores):
        names_a = _layer_names(scores, "a", a)
        names_b = _layer_names(scores, "b", b)
        for i in range(s.shape[0]):
            j = _best(s[i], higher)
            if j < 0:
                continue
            rows.append({"model_a": a, "model_b": b, "layer_a": names_a[i], "position_a": i, "depth_a": da[i],
                         "layer_b": names_b[j], "position_b": j, "depth_b": db[j], "offset": db[j] - da[i],
                         "score": s[i, j],
                         **{f"{f}_{side}": _label(scores, m, f) for f in MODEL_FIELDS if f != "modality"
                            for side, m in (("a", a), ("b", b))}})
    return pd.DataFrame(rows)


def _layer_names(scores: xr.Dataset, side: str, model: str) -> list[str]:
    x = list(map(str, scores[f"model_{side}"].values)).index(model)
    n = int(scores[f"n_layers_{side}"].values[x])
    return [str(v) for v in scores[f"layer_name_{side}"].values[x, :n]]


def diagonal_test(scores: xr.Dataset, *, tolerance: float = 0.1, n_permutations: int = 1000,
                  n_bootstrap: int = 1000, ci: float = 0.95, seed: int = 0) -> dict:
    """"Similar positions are most similar" over every ordered model pair (A != B).

    ``fraction``: per pair the fraction of A's layers whose best match in B lies within ``tolerance`` of
    A's relative depth, averaged over pairs (each pair counts once); ``ci_low``/``ci_high``: percentile
    bootstrap over pairs; null: ``n_permutations`` draws, each permuting the depths of every pair's B layers
    (``convergence.inference`` conventions for null mean, std, z and the one-sided p). The same for
    ``mean_abs_offset`` (lower is closer to the diagonal), whose p counts null draws at least as low.
    """
    if not 0 < float(tolerance) <= 1:
        raise ValueError(f"tolerance={tolerance!r} must lie in (0, 1] (relative depth)")
    higher = _higher(scores)
    pairs = []
    for a, b, s, da, db in _ordered_pairs(scores):
        best = np.array([_best(row, higher) for row in s])
        keep = best >= 0
        if keep.any():
            pairs.append((da[keep], db, best[keep]))
    if not pairs:
        raise ValueError("no model pair has a finite layer score; the diagonal test needs at least two models")
    tol = float(tolerance) + 1e-12
    frac = np.array([np.mean(np.abs(db[j] - da) <= tol) for da, db, j in pairs])
    off = np.array([np.mean(np.abs(db[j] - da)) for da, db, j in pairs])
    rng = rng_for(seed, "layers", "diagonal")
    null_frac = np.zeros(n_permutations)
    null_off = np.zeros(n_permutations)
    for da, db, j in pairs:
        if not n_permutations:
            break
        perms = rng.permuted(np.tile(np.arange(db.size), (n_permutations, 1)), axis=1)
        shuffled = db[perms][:, j]  # (P, L_a): the depth each best match gets under the permuted depths
        null_frac += np.mean(np.abs(shuffled - da) <= tol, axis=1) / len(pairs)
        null_off += np.mean(np.abs(shuffled - da), axis=1) / len(pairs)
    out = {"tolerance": float(tolerance), "n_pairs": len(pairs), "n_permutations": int(n_permutations),
           "n_bootstrap": int(n_bootstrap), "ci": float(ci), "fraction": float(frac.mean()),
           "mean_abs_offset": float(off.mean())}
    out.update({f"fraction_{k}": v for k, v in null_summary(null_frac if n_permutations else [],
                                                           out["fraction"]).items()})
    out.update({f"offset_{k}": v for k, v in null_summary(null_off if n_permutations else [],
                                                         out["mean_abs_offset"], higher_is_better=False).items()})
    weights = bootstrap_weights(rng, len(pairs), n_bootstrap)
    for name, values in (("fraction", frac), ("offset", off)):
        draws = weights @ values / len(pairs) if weights is not None else np.array([])
        out[f"{name}_ci_low"], out[f"{name}_ci_high"] = percentile_interval(draws, ci)
    return out


# --------------------------------------------------------------------------------- depth profile
def depth_bins(n_bins: int) -> np.ndarray:
    """Centres of ``n_bins`` equal bins of relative depth: (k + 0.5) / n_bins."""
    if int(n_bins) < 1:
        raise ValueError(f"the relative-depth grid needs at least one bin; got {n_bins}")
    return (np.arange(int(n_bins)) + 0.5) / int(n_bins)


def _dissimilarity(value, higher: bool):
    return 1.0 - value if higher else value


def depth_profile(scores: xr.Dataset, *, n_bins: int = 10) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Where models differ most, along relative depth.

    Returns ``(per_pair, summary)``. ``per_pair``: one row per ordered model pair (A != B) and bin centre
    ``depth``: the layers of A and B nearest that depth, ``matched`` (their score), ``best`` (A's layer
    against its best-matching layer of B) and the dissimilarities of both. ``summary``: per bin and pair kind
    (``all`` and each family combination, e.g. ``cnn-transformer``) the mean, standard deviation, quartiles,
    minimum and maximum of both dissimilarities over pairs.
    """
    higher = _higher(scores)
    centres = depth_bins(n_bins)
    rows = []
    for a, b, s, da, db in _ordered_pairs(scores):
        fams = sorted([_label(scores, a, "family") or "?", _label(scores, b, "family") or "?"])
        for t in centres:
            i, j = int(np.argmin(np.abs(da - t))), int(np.argmin(np.abs(db - t)))
            jb = _best(s[i], higher)
            best = s[i, jb] if jb >= 0 else np.nan
            rows.append({"model_a": a, "model_b": b, "kind": "-".join(fams), "depth": t,
                         "depth_a": da[i], "depth_b": db[j], "matched": s[i, j], "best": best,
                         "dissimilarity_matched": _dissimilarity(s[i, j], higher),
                         "dissimilarity_best": _dissimilarity(best, higher)})
    per_pair = pd.DataFrame(rows)
    parts = []
    for kind, group in [("all", per_pair), *per_pair.groupby("kind")]:
        for t, g in group.groupby("depth"):
            entry = {"kind": kind, "depth": t, "n_pairs": int(g["dissimilarity_matched"].notna().sum())}
            for col in ("dissimilarity_matched", "dissimilarity_best"):
                v = g[col].to_numpy(dtype=float)
                v = v[np.isfinite(v)]
                stats = (np.mean(v), np.std(v, ddof=1) if v.size > 1 else np.nan, *np.percentile(v, [25, 50, 75]),
                         v.min(), v.max()) if v.size else (np.nan,) * 7
                for name, value in zip(("mean", "std", "q25", "median", "q75", "min", "max"), stats, strict=True):
                    entry[f"{col}_{name}"] = float(value)
            parts.append(entry)
    return per_pair, pd.DataFrame(parts)


# ------------------------------------------------------------------------------------- smoothness
def consecutive_scores(scores: xr.Dataset) -> pd.DataFrame:
    """Per model and consecutive layer pair (i, i + 1): their score in the model's self pair, at the midpoint
    of their relative depths."""
    rows = []
    for m in _models(scores):
        s, d, _ = pair_matrix(scores, m, m)
        names = _layer_names(scores, "a", m)
        for i in range(s.shape[0] - 1):
            rows.append({"model": m, "family": _label(scores, m, "family"),
                         "objective": _label(scores, m, "objective"), "step": i, "layer_from": names[i],
                         "layer_to": names[i + 1], "depth": (d[i] + d[i + 1]) / 2, "score": s[i, i + 1]})
    return pd.DataFrame(rows, columns=["model", "family", "objective", "step", "layer_from", "layer_to", "depth",
                                       "score"])


def smoothness(scores: xr.Dataset, *, n_bins: int = 10, n_bootstrap: int = 1000, n_permutations: int = 1000,
               ci: float = 0.95, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Similarity between consecutive layers within each model, on a common relative-depth grid, by family.

    Returns ``(steps, curves, summary)``: ``steps`` from :func:`consecutive_scores`; ``curves``: per model
    (``kind`` model) and per family (``kind`` family: mean over its models, bootstrap interval over them) the
    score at each bin centre (each model's steps linearly interpolated in depth, constant beyond its first and
    last step); ``summary``: per family the mean smoothness (each model's mean step score) with a bootstrap
    interval, and when both ``cnn`` and ``transformer`` are present their difference (transformer - cnn)
    with a bootstrap interval (models resampled within each family) and a permutation null over family labels.
    """
    steps = consecutive_scores(scores)
    centres = depth_bins(n_bins)
    higher = _higher(scores)
    per_model, means, families = {}, {}, {}
    for m, g in steps.groupby("model", sort=False):
        g = g[np.isfinite(g["score"].to_numpy(dtype=float))]
        if g.empty:
            continue
        per_model[m] = np.interp(centres, g["depth"].to_numpy(float), g["score"].to_numpy(float))
        means[m] = float(g["score"].mean())
        families[m] = str(g["family"].iloc[0])
    rows = [{"kind": "model", "name": m, "family": families[m], "depth": t, "score": v, "ci_low": np.nan,
             "ci_high": np.nan, "n_models": 1} for m, curve in per_model.items() for t, v in zip(centres, curve)]
    summary = {"higher_is_better": higher, "n_bins": int(n_bins), "models": means, "families": {}}
    rng = rng_for(seed, "layers", "smoothness")
    family_draws = {}
    for fam in sorted(set(families.values())):
        members = [m for m in per_model if families[m] == fam]
        curves = np.array([per_model[m] for m in members])
        scalars = np.array([means[m] for m in members])
        weights = bootstrap_weights(rng, len(members), n_bootstrap)
        boot_curves = weights @ curves / len(members) if weights is not None else np.empty((0, len(centres)))
        boot_scalar = weights @ scalars / len(members) if weights is not None else np.array([])
        family_draws[fam] = boot_scalar
        for k, t in enumerate(centres):
            lo, hi = percentile_interval(boot_curves[:, k], ci) if boot_curves.size else (np.nan, np.nan)
            rows.append({"kind": "family", "name": fam, "family": fam, "depth": t, "score": curves[:, k].mean(),
                         "ci_low": lo, "ci_high": hi, "n_models": len(members)})
        lo, hi = percentile_interval(boot_scalar, ci) if boot_scalar.size else (np.nan, np.nan)
        summary["families"][fam] = {"mean": float(scalars.mean()), "ci_low": lo, "ci_high": hi,
                                    "n_models": len(members), "models": members}
    if {"cnn", "transformer"} <= set(family_draws):
        t_models = [m for m in means if families[m] == "transformer"]
        c_models = [m for m in means if families[m] == "cnn"]
        observed = np.mean([means[m] for m in t_models]) - np.mean([means[m] for m in c_models])
        diff = {"difference": float(observed)}
        if family_draws["cnn"].size and family_draws["transformer"].size:
            diff["ci_low"], diff["ci_high"] = percentile_interval(family_draws["transformer"] - family_draws["cnn"], ci)
        pool = np.array([means[m] for m in t_models + c_models])
        null = []
        for _ in range(int(n_permutations)):
            order = rng.permutation(pool.size)
            null.append(pool[order[: len(t_models)]].mean() - pool[order[len(t_models):]].mean())
        diff.update(null_summary(np.array(null), float(observed), higher_is_better=higher))
        summary["transformer_minus_cnn"] = diff
    return steps, pd.DataFrame(rows), summary


# ---------------------------------------------------------------------------------------- read-out
def readout_r2(features: np.ndarray, targets: np.ndarray, *, folds: int = 5,
               alphas: Sequence[float] = DEFAULT_ALPHAS, seed: int = 0) -> np.ndarray:
    """Cross-validated R^2 of a ridge read-out of each column of ``targets`` (n, s) from ``features`` (n, d).

    Features are centred and divided by one scale for the whole layer (their RMS), and the ridge penalty chosen among ``alphas`` (per target, efficient
    leave-one-out inside the training folds); predictions are out of fold over ``folds`` shuffled folds
    (seeded), and ``R^2 = 1 - sum (y - y_hat)^2 / sum (y - mean y)^2``; NaN for a constant target. Noise
    features give R^2 near 0 (slightly below, on average); a statistic carried linearly gives R^2 near 1.
    """
    from sklearn.linear_model import RidgeCV
    from sklearn.model_selection import KFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = np.asarray(features, dtype=np.float64)
    y = np.asarray(targets, dtype=np.float64)
    y = y[:, None] if y.ndim == 1 else y
    if x.ndim != 2 or y.ndim != 2 or x.shape[0] != y.shape[0]:
        raise ValueError(f"features (n, d) and targets (n, s) must share n; got {x.shape} and {y.shape}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("features and targets must be finite")
    folds = int(folds)
    if folds < 2 or x.shape[0] < 2 * folds:
        raise ValueError(f"the read-out needs folds >= 2 and at least 2 stimuli per fold; got {folds} folds for "
                         f"{x.shape[0]} stimuli")
    alphas = np.asarray(alphas, dtype=np.float64)
    if alphas.ndim != 1 or not alphas.size or (alphas <= 0).any():
        raise ValueError(f"alphas must be a non-empty list of positive penalties; got {alphas.tolist()}")
    # one scale for the whole layer (its RMS after centring), not one per feature: per-feature z-scoring
    # blows up near-dead units (ReLU6 pre-logits on small images) into huge out-of-fold predictions
    rms = float(np.sqrt(np.mean((x - x.mean(axis=0)) ** 2)))
    x = x / rms if rms > 0 else x
    model = make_pipeline(StandardScaler(with_std=False), RidgeCV(alphas=alphas, alpha_per_target=y.shape[1] > 1))
    cv = KFold(n_splits=folds, shuffle=True, random_state=int(seed))
    pred = cross_val_predict(model, x, y if y.shape[1] > 1 else y[:, 0], cv=cv)
    pred = pred.reshape(y.shape)
    sst = ((y - y.mean(axis=0)) ** 2).sum(axis=0)
    sse = ((y - pred) ** 2).sum(axis=0)
    constant = sst <= 1e-12 * np.maximum(1.0, (y ** 2).sum(axis=0))
    return np.where(constant, np.nan, 1.0 - sse / np.where(constant, 1.0, sst))


def layer_readout(embeddings: Mapping[str, xr.Dataset], lowlevel: xr.Dataset, *, folds: int = 5,
                  alphas: Sequence[float] = DEFAULT_ALPHAS, seed: int = 0,
                  model_labels: Mapping[str, Mapping[str, str]] | None = None, log=print) -> pd.DataFrame:
    """Per model (embedding store), layer and low-level statistic: the cross-validated R^2 of
    :func:`readout_r2`. Stimuli are joined on ids (those the model and the statistics share)."""
    stats = [s for s in STATISTICS if s in lowlevel]
    if not stats:
        raise ValueError(f"the low-level store has none of the statistics {STATISTICS}")
    low_ids = [str(s) for s in np.asarray(lowlevel["stimulus"].values).tolist()]
    low_pos = {s: i for i, s in enumerate(low_ids)}
    targets_all = np.column_stack([np.asarray(lowlevel[s].values, dtype=np.float64) for s in stats])
    rows = []
    for model, store in embeddings.items():
        ids = [str(s) for s in np.asarray(store["stimulus"].values).tolist()]
        shared = sorted(set(ids) & set(low_pos))
        if len(shared) < 2 * int(folds):
            raise ValueError(f"model {model!r} shares only {len(shared)} stimuli with the low-level statistics")
        mine = {s: i for i, s in enumerate(ids)}
        rows_model = np.array([mine[s] for s in shared])
        targets = targets_all[[low_pos[s] for s in shared]]
        layers = [str(x) for x in store.attrs["layers"]]
        depths = [float(d) for d in store.attrs["depths"]]
        labels = labels_of(store, (model_labels or {}).get(model))
        for layer, depth in zip(layers, depths, strict=True):
            x = np.asarray(store[layer].values, dtype=np.float64)[rows_model]
            r2 = readout_r2(x, targets, folds=folds, alphas=alphas, seed=seed)
            for stat, value in zip(stats, r2, strict=True):
                rows.append({"model": model, "objective": labels["objective"], "family": labels["family"],
                             "layer": layer, "depth": depth, "statistic": stat, "r2": float(value),
                             "n_stimuli": len(shared)})
        log(f"read-out: {model}, {len(layers)} layers")
    return pd.DataFrame(rows)


def readout_summary(table: pd.DataFrame, *, n_bins: int = 10, n_bootstrap: int = 1000, ci: float = 0.95,
                    seed: int = 0) -> tuple[pd.DataFrame, dict]:
    """The read-out by training objective.

    Returns ``(curves, summary)``. ``curves``: per objective, statistic and bin centre the mean R^2 over the
    objective's models (each model's R^2 interpolated linearly in depth). ``summary``: per model and
    statistic the peak R^2 over layers, its depth, the last layer's R^2 and ``drop`` = peak - last; per
    objective the mean over models and statistics of ``last`` and ``drop`` with bootstrap intervals over the
    objective's models (each model's values averaged over statistics first).
    """
    need = {"model", "objective", "layer", "depth", "statistic", "r2"}
    if not need <= set(table.columns):
        raise ValueError(f"the read-out table lacks columns {sorted(need - set(table.columns))}")
    centres = depth_bins(n_bins)
    per_model: dict[str, dict] = {}
    curve_rows = []
    for (model, stat), g in table.groupby(["model", "statistic"], sort=False):
        g = g.sort_values("depth")
        r2 = g["r2"].to_numpy(float)
        depth = g["depth"].to_numpy(float)
        ok = np.isfinite(r2)
        if not ok.any():
            continue
        k = int(np.nanargmax(r2))
        entry = per_model.setdefault(model, {"objective": str(g["objective"].iloc[0]), "statistics": {}})
        entry["statistics"][stat] = {"peak": float(r2[k]), "peak_depth": float(depth[k]), "peak_layer": str(g["layer"].iloc[k]),
                                     "last": float(r2[-1]), "drop": float(r2[k] - r2[-1])}
        curve_rows += [{"model": model, "objective": entry["objective"], "statistic": stat, "depth": t, "r2": v}
                       for t, v in zip(centres, np.interp(centres, depth[ok], r2[ok]))]
    per_bin = pd.DataFrame(curve_rows)
    curves = (per_bin.groupby(["objective", "statistic", "depth"], as_index=False)
              .agg(r2=("r2", "mean"), r2_min=("r2", "min"), r2_max=("r2", "max"), n_models=("model", "nunique"))
              if not per_bin.empty else per_bin)
    rng = rng_for(seed, "layers", "readout")
    objectives = {}
    for obj in sorted({e["objective"] for e in per_model.values()}):
        members = [m for m, e in per_model.items() if e["objective"] == obj]
        out = {"models": members, "n_models": len(members)}
        for field in ("last", "drop", "peak"):
            values = np.array([np.mean([s[field] for s in per_model[m]["statistics"].values()]) for m in members])
            out[field] = float(values.mean())
            weights = bootstrap_weights(rng, len(members), n_bootstrap)
            draws = weights @ values / len(members) if weights is not None else np.array([])
            out[f"{field}_ci_low"], out[f"{field}_ci_high"] = percentile_interval(draws, ci)
        out["by_statistic"] = {stat: {f: float(np.mean([per_model[m]["statistics"][stat][f] for m in members
                                                         if stat in per_model[m]["statistics"]]))
                                      for f in ("peak", "last", "drop")}
                               for stat in sorted({s for m in members for s in per_model[m]["statistics"]})}
        objectives[obj] = out
    return curves, {"models": per_model, "objectives": objectives}


# ------------------------------------------------------------------------------------------ claims
def claims(diagonal: Mapping, profile_summary: pd.DataFrame, smooth: Mapping, readout: Mapping | None = None,
           *, alpha: float = 0.05, strong_difference: float = 0.2, classifier: str = "supervised") -> dict:
    """The study's three claims against what was measured, each with ``reproduced`` (True/False/None when
    it cannot be decided) and the numbers behind it. Criteria:

    1. similar positions are most similar (diagonal fraction above its shuffled-depth null, p < ``alpha``)
       yet strong differences remain (somewhere along depth the mean dissimilarity to the best-matching
       layer of another model is at least ``strong_difference``);
    2. classifiers discard low-level statistics in their final layers: the lower end of the bootstrap
       interval of the ``classifier`` objective's mean drop (peak - last R^2, averaged over statistics)
       exceeds every other objective's mean drop (a drop is never negative, so "above 0" would be no test);
    3. transformers change more smoothly than CNNs: the transformer - cnn difference in consecutive-layer
       similarity is in the smoother direction with a bootstrap interval that excludes 0.
    """
    out = {}
    allpairs = profile_summary[profile_summary["kind"] == "all"]
    worst = allpairs.loc[allpairs["dissimilarity_best_mean"].idxmax()] if len(allpairs) else None
    matched_worst = allpairs.loc[allpairs["dissimilarity_matched_mean"].idxmax()] if len(allpairs) else None
    above = bool(diagonal["fraction_p_value"] < alpha and diagonal["fraction"] > diagonal["fraction_null_mean"])
    strong = bool(worst is not None and worst["dissimilarity_best_mean"] >= strong_difference)
    out["positions"] = {
        "reproduced": above and strong, "diagonal": above, "strong_differences": strong,
        "fraction": diagonal["fraction"], "ci": [diagonal["fraction_ci_low"], diagonal["fraction_ci_high"]],
        "null_mean": diagonal["fraction_null_mean"], "p_value": diagonal["fraction_p_value"],
        "tolerance": diagonal["tolerance"],
        "most_different_depth": None if matched_worst is None else float(matched_worst["depth"]),
        "most_different_matched_dissimilarity": None if matched_worst is None
        else float(matched_worst["dissimilarity_matched_mean"]),
        "most_different_spread": None if matched_worst is None else float(matched_worst["dissimilarity_matched_std"]),
        "max_best_match_dissimilarity": None if worst is None else float(worst["dissimilarity_best_mean"]),
        "max_best_match_dissimilarity_depth": None if worst is None else float(worst["depth"]),
    }
    if readout and readout.get("objectives"):
        objs = readout["objectives"]
        if classifier in objs and len(objs) > 1:
            c = objs[classifier]
            others = {k: v["drop"] for k, v in objs.items() if k != classifier}
            ok = bool(np.isfinite(c["drop_ci_low"]) and c["drop_ci_low"] > max(others.values()))
            out["lowlevel"] = {"reproduced": ok, "classifier_drop": c["drop"],
                               "classifier_drop_ci": [c["drop_ci_low"], c["drop_ci_high"]],
                               "other_drops": others, "last_r2": {k: v["last"] for k, v in objs.items()}}
        else:
            out["lowlevel"] = {"reproduced": None, "reason": f"needs {classifier!r} and another objective"}
    diff = smooth.get("transformer_minus_cnn")
    if diff:
        sign = 1 if smooth["higher_is_better"] else -1
        lo, hi = diff.get("ci_low", np.nan), diff.get("ci_high", np.nan)
        ok = bool(sign * diff["difference"] > 0 and np.isfinite(lo) and (lo > 0 if sign > 0 else hi < 0))
        out["smoothness"] = {"reproduced": ok, "difference": diff["difference"], "ci": [lo, hi],
                             "p_value": diff.get("p_value"),
                             "families": {k: v["mean"] for k, v in smooth["families"].items()}}
    else:
        out["smoothness"] = {"reproduced": None, "reason": "needs both cnn and transformer models"}
    return out
