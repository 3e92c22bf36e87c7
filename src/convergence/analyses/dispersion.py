"""The ``dispersion`` analysis (study 000; science.md section C): which stimuli a group of vision models
agree on, and whether cross-modal alignment is higher on them.

:func:`dispersion`
    one group of vision models on one dataset, each at one layer (default its last), read from the
    kernel stores (the preprocessed features): generalised Procrustes (:mod:`convergence.dispersion`) and
    the per-stimulus dispersion, labelled by stimulus id.
:func:`dispersion_alignment`
    for several selection criteria (the lowest and highest ``q * n`` stimuli for each quantile ``q``, the
    lowest and highest ``size`` stimuli for each size), the cross-modal alignment of every vision x
    language pair on the low- and on the high-dispersion subset and on ``n_random`` random subsets of the
    same size, for each registry metric. Everything is recomputed WITHIN each subset: neighbour lists,
    centred Grams (``convergence.pairwise.ModelProducts`` on the subset's ids). kNN metrics use
    ``k = max(k_min, round(k_fraction * size))`` (default ``k_fraction`` = the full set's ``k / n``), the
    same k for the low, high and random subsets of one size.

Reported per (criterion, metric, vision model, language model): ``low``, ``high``, ``ratio = low / high``
with jackknife intervals (``convergence.inference.INTERVAL_RULE``: a group of the subset's stimuli left out
at a time, the metric recomputed as its engine defines it; the ratio's variance is the sum of the low and
the high subset's jackknife variances, the two subsets being disjoint), and where ``low`` and ``high`` fall
among the random subsets: ``percentile`` = 100 * (#random below + #tied / 2) / #random, the one-sided
p-values of ``convergence.inference`` (low more similar than random; high less similar than random) with
their Benjamini-Hochberg q-values over the vision x language pairs of each criterion and metric, and the
calibrated scores against the random subsets (``low_tau``/``low_calibrated``, ``high_tau``/
``high_calibrated``: the excess over the random subsets' (1 - alpha) threshold, in the direction "more
similar than random", ``convergence.inference.THRESHOLD_RULE``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import xarray as xr

from .. import __version__
from ..dispersion import generalized_procrustes
from ..inference import (
    INTERVAL_RULE,
    P_VALUE_RULE,
    THRESHOLD_RULE,
    _check_alpha,
    bh_qvalues,
    calibrate,
    check_count,
    jackknife_interval,
    jackknife_weights,
    null_summary,
    percentile_interval,
    percentile_of,
    random_subsets,
    rng_for,
)
from ..kernels import check_kernel, feature_var, stimulus_ids
from ..metrics.registry import get_metric
from ..pairwise import ModelProducts, common_stimuli, make_metric, stimulus_digest
from ..pairwise.scores import most_similar
from . import labels_of

DISPERSION_RULE = ("dispersion of stimulus i = mean over models m of ||(X_m Q_m)_i - M_i||^2 after generalised "
                   "Procrustes (X_m: the model's preprocessed features at its layer, centred and scaled to unit "
                   "Frobenius norm as configured, brought to one width; Q_m orthogonal; M the mean of the X_m Q_m)")
PERCENTILE_RULE = "100 * (#random subsets scoring below + #tied / 2) / #random subsets"


def layer_of(kernel: xr.Dataset, layer: str | None = None, name: str = "?") -> str:
    """``layer`` if the store has it, else (``None``) the store's last layer."""
    layers = [str(x) for x in kernel.attrs["layers"]]
    if layer is None:
        return layers[-1]
    if str(layer) not in layers:
        raise ValueError(f"layer {layer!r} is not a layer of {name!r}; allowed: {layers}")
    return str(layer)


def layer_view(kernel: xr.Dataset, layer: str, name: str = "?") -> xr.Dataset:
    """A kernel store reduced to one layer (its features and neighbour lists), loaded in memory: what the
    subset comparisons read, so that nothing is recomputed for the layers they do not use."""
    check_kernel(kernel, name)
    layers = [str(x) for x in kernel.attrs["layers"]]
    i = layers.index(layer_of(kernel, layer, name))
    view = xr.Dataset({feature_var(layer): kernel[feature_var(layer)],
                       "neighbors": kernel["neighbors"].isel(layer=[i])}).load()
    constant = [str(x) for x in np.asarray(kernel.attrs.get("kernel_constant_layers", []), dtype=object).ravel()]
    view.attrs = {**kernel.attrs, "layers": [layer], "depths": [float(kernel["depth"].values[i])],
                  "kernel_constant_layers": [layer] if layer in constant else []}
    view.attrs.pop("kernel_has_gram", None)
    return view


def _features(kernel: xr.Dataset, layer: str, ids: np.ndarray) -> np.ndarray:
    index = {s: i for i, s in enumerate(stimulus_ids(kernel))}
    rows = np.fromiter((index[str(s)] for s in ids), dtype=np.int64, count=len(ids))
    return np.asarray(kernel[feature_var(layer)].values, dtype=np.float64)[rows]


def dispersion(
    kernels: Mapping[str, xr.Dataset],
    *,
    group: str = "",
    layers: Mapping[str, str] | None = None,
    model_labels: Mapping[str, Mapping[str, str]] | None = None,
    tol: float = 1e-8,
    max_iter: int = 500,
    centre: bool = True,
    scale: bool = True,
    width="pad",
    allow_reflection: bool = True,
) -> xr.Dataset:
    """Per-stimulus dispersion of the models in ``kernels`` (model -> kernel store, at least two) by
    generalised Procrustes, each model at ``layers[model]`` (default its last layer), on the stimulus ids
    every model holds (sorted). The GPA options are those of
    :func:`convergence.dispersion.generalized_procrustes`.

    Returns
    -------
    xarray.Dataset
        ``dispersion`` (stimulus), ``rank`` (stimulus; 0 = lowest dispersion, ties by id), ``distance``
        (model, stimulus: each model's squared distance to the mean row), the convergence trace
        ``gpa_mean_change`` and ``gpa_residual`` (iteration); coordinates ``layer``, ``feature_dims``,
        ``modality``, ``objective``, ``family`` along ``model``; attrs: the options, ``converged``,
        ``n_iter``, ``width_dims``, ``group``, the definition.
    """
    if not isinstance(kernels, Mapping) or len(kernels) < 2:
        raise ValueError(f"dispersion needs kernel stores of at least 2 models; got {len(kernels or {})}")
    models = [str(m) for m in kernels]
    for m in models:
        check_kernel(kernels[m], m)
    unknown = sorted(set(layers or {}) - set(models))
    chosen = {m: layer_of(kernels[m], (layers or {}).get(m), m) for m in models}
    ids = common_stimuli(kernels, models)
    if ids.size < 3:
        raise ValueError(f"only {ids.size} stimuli are shared by {models}; dispersion needs at least 3")
    matrices = [_features(kernels[m], chosen[m], ids) for m in models]
    res = generalized_procrustes(matrices, tol=tol, max_iter=max_iter, centre=centre, scale=scale, width=width,
                                 allow_reflection=allow_reflection)
    order = np.lexsort((np.arange(ids.size), res.dispersion))
    rank = np.empty(ids.size, dtype=np.int64)
    rank[order] = np.arange(ids.size)
    info = {m: labels_of(kernels[m], (model_labels or {}).get(m)) for m in models}
    coords = {
        "stimulus": ("stimulus", ids),
        "model": ("model", np.asarray(models, dtype=object)),
        "layer": ("model", np.asarray([chosen[m] for m in models], dtype=object)),
        "feature_dims": ("model", np.array([x.shape[1] for x in matrices], dtype=np.int64)),
        "iteration": ("iteration", np.arange(1, res.n_iter + 1)),
        **{f: ("model", np.asarray([info[m][f] for m in models], dtype=object)) for f in ("modality", "objective", "family")},
    }
    data = {
        "dispersion": ("stimulus", res.dispersion),
        "rank": ("stimulus", rank),
        "distance": (("model", "stimulus"), res.distances),
        "gpa_mean_change": ("iteration", res.mean_change),
        "gpa_residual": ("iteration", res.residual),
    }
    attrs = {
        "group": str(group), "definition": DISPERSION_RULE, "tol": float(tol), "max_iter": int(max_iter),
        "centre": int(bool(centre)), "scale": int(bool(scale)), "width": str(width),
        "width_dims": int(res.width), "allow_reflection": int(bool(allow_reflection)),
        "converged": int(res.converged), "n_iter": res.n_iter, "n_stimuli": int(ids.size),
        "stimulus_digest": stimulus_digest(ids), "preprocess": str(kernels[models[0]].attrs.get("kernel_preprocess", "")),
        "unused_layer_entries": unknown, "convergence_version": __version__,
    }
    return xr.Dataset(data, coords=coords, attrs=attrs)


# ------------------------------------------------------------------------------- selection criteria


def selection_criteria(n: int, quantiles: Sequence[float] = (), sizes: Sequence[int] = (),
                       min_size: int = 4) -> tuple[list[dict], list[str]]:
    """The criteria (``name``, ``size``, ``quantile``) for ``n`` stimuli, and the names of those skipped
    because their subsets would overlap (size > n / 2) or be smaller than ``min_size``."""
    criteria, skipped = [], []
    for q in quantiles:
        q = float(q)
        if not 0 < q <= 0.5:
            raise ValueError(f"quantile {q!r} is out of range; allowed: 0 < q <= 0.5 (low and high must not overlap)")
        size = int(np.floor(q * n + 1e-9))
        (criteria if size >= min_size else skipped).append({"name": f"q{q:g}", "size": size, "quantile": q})
    for s in sizes:
        s = check_count(s, "size")
        (criteria if min_size <= s <= n // 2 else skipped).append({"name": f"n{s}", "size": s, "quantile": np.nan})
    names = [c["name"] for c in criteria]
    if len(set(names)) != len(names):
        raise ValueError(f"selection criteria repeat: {names}")
    return criteria, [c["name"] for c in skipped]


def extreme_subsets(values: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the ``size`` lowest and the ``size`` highest ``values`` (ties to the lower position)."""
    order = np.lexsort((np.arange(values.size), values))
    return np.sort(order[:size]), np.sort(order[::-1][:size] if size else order[:0])


def subset_k(size: int, k_fraction: float, k_min: int) -> int:
    """k of the kNN metrics on a subset of ``size`` stimuli: ``max(k_min, round(k_fraction * size))``, at most
    ``size - 1``."""
    return int(min(size - 1, max(int(k_min), int(round(float(k_fraction) * size)))))


class _SubsetScorer:
    """Cross-modal scores of every (vision, language) pair on a stimulus subset, each model at one layer,
    neighbours and Grams recomputed within the subset (``ModelProducts``), one set of products per subset
    shared by every metric."""

    def __init__(self, views: Mapping[str, xr.Dataset], vision: Sequence[str], language: Sequence[str],
                 metrics: Mapping[str, Mapping]):
        self.views, self.vision, self.language = views, list(vision), list(language)
        self.metrics = {name: (get_metric(name), dict(params)) for name, params in metrics.items()}
        self.stored_k = min(int(v.attrs["kernel_k"]) for v in views.values())
        self.pairs = [(a, b) for a in self.vision for b in self.language]

    def measures(self, k: int) -> dict:
        out = {}
        for name, (spec, params) in self.metrics.items():
            if "k" in spec.param_names:
                if k > self.stored_k:
                    raise ValueError(f"{name} with k={k} on a subset needs k <= the kernel stores' k={self.stored_k}; "
                                     "lower dispersion.k_fraction / k_min or raise kernels.k")
                params = {**params, "k": k}
            out[name] = make_metric(name, **params)
        return out

    def prepared(self, ids: np.ndarray, measures: Mapping) -> dict:
        products = {m: ModelProducts.from_kernel(m, self.views[m], ids) for m in (*self.vision, *self.language)}
        return {name: ({m: measure.prepare(p) for m, p in products.items()}, products)
                for name, measure in measures.items()}

    def scores(self, ids: np.ndarray, measures: Mapping, prepared: Mapping | None = None) -> dict:
        """metric -> (vision, language) scores on the stimuli ``ids`` (or on what ``prepared`` was prepared
        from); NaN where a model is constant there."""
        out = {}
        for name, (prepared, products) in (prepared or self.prepared(ids, measures)).items():
            matrices = measures[name].score_matrices(prepared, self.pairs)
            grid = np.array([[float(np.asarray(matrices[(a, b)]).ravel()[0]) for b in self.language] for a in self.vision])
            for i, a in enumerate(self.vision):
                for j, b in enumerate(self.language):
                    if products[a].constant[0] or products[b].constant[0]:
                        grid[i, j] = np.nan
            out[name] = grid
        return out


def dispersion_alignment(
    kernels: Mapping[str, xr.Dataset],
    dispersion: xr.Dataset,
    *,
    vision: Sequence[str],
    language: Sequence[str],
    metrics: Mapping[str, Mapping] | Sequence[str] = ("mutual_knn", "cka_linear"),
    layers: Mapping[str, str] | None = None,
    quantiles: Sequence[float] = (0.1, 0.25, 0.5),
    sizes: Sequence[int] = (),
    k_fraction: float | None = None,
    k_full: int = 10,
    k_min: int = 3,
    n_random: int = 200,
    n_bootstrap: int = 200,
    ci: float = 0.95,
    alpha: float = 0.05,
    seed: int = 0,
    model_labels: Mapping[str, Mapping[str, str]] | None = None,
    log=print,
) -> xr.Dataset:
    """Cross-modal alignment on low- vs high-dispersion stimuli against random subsets (module docstring).

    Parameters
    ----------
    kernels : model name -> kernel store, for every model in ``vision`` and ``language``.
    dispersion : the result of :func:`dispersion` on the same dataset (its ids select the stimuli).
    vision, language : the two sides of the cross-modal pairs.
    metrics : registry names, or a mapping name -> parameters (``k`` of kNN metrics is set per subset).
    layers : model -> layer (default: each model's last layer).
    quantiles, sizes : the selection criteria (:func:`selection_criteria`).
    k_fraction, k_full, k_min : kNN ``k`` per subset (:func:`subset_k`); ``k_fraction=None`` means ``k_full / n``.
    n_random, n_bootstrap, ci, seed : random subsets per size; jackknife groups (at most the subset size) and
        central level of the intervals; draws from ``convergence.inference.rng_for(seed, ...)`` keyed by the size or criterion only,
        so they do not depend on which models take part.
    alpha : level of the calibration threshold against the random subsets.

    Returns
    -------
    xarray.Dataset
        dims ``criterion``, ``metric``, ``vision``, ``language``, ``draw``, ``stimulus``; see the variables'
        ``description`` attrs.
    """
    vision, language = [str(m) for m in vision], [str(m) for m in language]
    if not vision or not language:
        raise ValueError(f"cross-modal alignment needs vision and language models; got vision={vision}, language={language}")
    missing = [m for m in (*vision, *language) if m not in kernels]
    if missing:
        raise ValueError(f"no kernel store for {missing}; given: {sorted(kernels)}")
    metrics = {m: {} for m in metrics} if not isinstance(metrics, Mapping) else {str(k): dict(v) for k, v in metrics.items()}
    if not metrics:
        raise ValueError("metrics is empty")
    n_random = check_count(n_random, "n_random")
    if n_random < 1:
        raise ValueError("n_random must be at least 1")
    n_bootstrap = check_count(n_bootstrap, "n_bootstrap")
    alpha = _check_alpha(alpha)
    models = [*vision, *language]
    chosen = {m: layer_of(kernels[m], (layers or {}).get(m), m) for m in models}
    views = {m: layer_view(kernels[m], chosen[m], m) for m in models}
    ids = np.asarray([str(s) for s in dispersion["stimulus"].values], dtype=object)
    shared = common_stimuli(views, models)
    if set(ids) - set(shared):
        raise ValueError(f"{len(set(ids) - set(shared))} stimuli of the dispersion store are not held by every model")
    values = np.asarray(dispersion["dispersion"].values, dtype=np.float64)
    n = ids.size
    fraction = float(k_full) / n if k_fraction is None else float(k_fraction)
    criteria, skipped = selection_criteria(n, quantiles, sizes)
    if not criteria:
        raise ValueError(f"no selection criterion applies to n={n} stimuli (skipped: {skipped}); "
                         "use quantiles <= 0.5 or sizes <= n / 2")
    if skipped:
        log(f"selection criteria skipped for n={n}: {skipped}")
    scorer = _SubsetScorer(views, vision, language, metrics)
    names = list(metrics)
    C, K, V, L = len(criteria), len(names), len(vision), len(language)
    shape = (C, K, V, L)
    out = {key: np.full(shape, np.nan) for key in (
        "low", "high", "ratio", "ratio_ci_low", "ratio_ci_high", "low_ci_low", "low_ci_high", "high_ci_low",
        "high_ci_high", "random_mean", "random_std", "random_ci_low", "random_ci_high", "low_percentile",
        "high_percentile", "low_p", "high_p", "low_z", "high_z", "low_q", "high_q", "low_tau", "low_calibrated",
        "high_tau", "high_calibrated")}
    random_scores = np.full((C, K, V, L, n_random), np.nan)
    member_low = np.zeros((C, n), dtype=bool)
    member_high = np.zeros((C, n), dtype=bool)
    ks = np.zeros(C, dtype=np.int64)
    disp_low = np.zeros(C)
    disp_high = np.zeros(C)
    random_cache: dict[tuple[int, int], dict] = {}
    for c, crit in enumerate(criteria):
        size = crit["size"]
        k = subset_k(size, fraction, k_min)
        ks[c] = k
        measures = scorer.measures(k)
        low, high = extreme_subsets(values, size)
        member_low[c, low] = member_high[c, high] = True
        disp_low[c], disp_high[c] = values[low].mean(), values[high].mean()
        if (size, k) not in random_cache:
            draws = random_subsets(rng_for(seed, "dispersion-random", size), n, size, n_random)
            per_draw = [scorer.scores(ids[np.sort(d)], measures) for d in draws]
            random_cache[(size, k)] = {name: np.stack([s[name] for s in per_draw], axis=-1) for name in names}
            log(f"{crit['name']}: {n_random} random subsets of {size} stimuli scored (k={k})")
        prep_low, prep_high = scorer.prepared(ids[low], measures), scorer.prepared(ids[high], measures)
        w_low = jackknife_weights(rng_for(seed, "dispersion-jackknife", crit["name"], "low"), size, n_bootstrap)
        w_high = jackknife_weights(rng_for(seed, "dispersion-jackknife", crit["name"], "high"), size, n_bootstrap)
        score_low, score_high = scorer.scores(None, measures, prep_low), scorer.scores(None, measures, prep_high)
        for x, name in enumerate(names):
            measure = measures[name]
            rand = random_cache[(size, k)][name]
            random_scores[c, x] = rand
            better = bool(measure.higher_is_better)
            top = most_similar(measure)
            for i, a in enumerate(vision):
                for j, b in enumerate(language):
                    lo, hi, null = score_low[name][i, j], score_high[name][i, j], rand[i, j]
                    e = {"low": lo, "high": hi, "ratio": lo / hi if hi != 0 else np.nan}
                    e["random_mean"] = float(np.nanmean(null)) if np.isfinite(null).any() else np.nan
                    e["random_std"] = float(np.nanstd(null, ddof=1)) if np.isfinite(null).sum() > 1 else np.nan
                    e["random_ci_low"], e["random_ci_high"] = percentile_interval(null, ci)
                    e["low_percentile"], e["high_percentile"] = percentile_of(null, lo), percentile_of(null, hi)
                    s_low, s_high = null_summary(null, lo, better), null_summary(null, hi, not better)
                    e["low_p"], e["low_z"] = s_low["p_value"], s_low["z_score"]
                    e["high_p"], e["high_z"] = s_high["p_value"], s_high["z_score"]
                    for side, value in (("low", lo), ("high", hi)):
                        cal = calibrate(null, value, top, alpha, better)
                        e[f"{side}_tau"], e[f"{side}_calibrated"] = cal["tau"], cal["calibrated"]
                    if w_low is not None and w_high is not None and np.isfinite(lo) and np.isfinite(hi):
                        pl, ph = prep_low[name][0], prep_high[name][0]
                        boot_low = np.asarray(measure.bootstrap(pl[a], 0, pl[b], 0, w_low), dtype=np.float64)
                        boot_high = np.asarray(measure.bootstrap(ph[a], 0, ph[b], 0, w_high), dtype=np.float64)
                        with np.errstate(divide="ignore", invalid="ignore"):
                            # leave-a-group-out ratios of each subset, the other held at its full value
                            ratio_low = boot_low / hi if hi != 0 else np.full(boot_low.shape, np.nan)
                            ratio_high = np.where(boot_high != 0, lo / boot_high, np.nan)
                        e["ratio_ci_low"], e["ratio_ci_high"] = jackknife_interval(e["ratio"], ratio_low, ratio_high, ci=ci)
                        e["low_ci_low"], e["low_ci_high"] = jackknife_interval(lo, boot_low, ci=ci)
                        e["high_ci_low"], e["high_ci_high"] = jackknife_interval(hi, boot_high, ci=ci)
                    for key, value in e.items():
                        out[key][c, x, i, j] = value
            for side in ("low", "high"):  # q-values over the vision x language pairs of this criterion and metric
                out[f"{side}_q"][c, x] = bh_qvalues(out[f"{side}_p"][c, x].ravel()).reshape(V, L)
        log(f"{crit['name']}: low/high scored on {size} stimuli each")

    # the full set, for reference (k = round(k_fraction * n), i.e. k_full by default)
    k_all = subset_k(n, fraction, k_min)
    full = scorer.scores(ids, scorer.measures(min(k_all, scorer.stored_k)))
    dims = ("criterion", "metric", "vision", "language")
    descriptions = {
        "low": "alignment on the low-dispersion subset", "high": "alignment on the high-dispersion subset",
        "ratio": "low / high", "ratio_ci_low": "jackknife interval of low / high (lower end)",
        "ratio_ci_high": "jackknife interval of low / high (upper end)",
        "low_ci_low": "jackknife interval of low (lower end)", "low_ci_high": "jackknife interval of low (upper end)",
        "high_ci_low": "jackknife interval of high (lower end)", "high_ci_high": "jackknife interval of high (upper end)",
        "random_mean": "mean over random subsets of the same size", "random_std": "std (ddof 1) over random subsets",
        "random_ci_low": "random subsets: lower percentile of the central interval",
        "random_ci_high": "random subsets: upper percentile of the central interval",
        "low_percentile": f"where low falls among the random subsets: {PERCENTILE_RULE}",
        "high_percentile": f"where high falls among the random subsets: {PERCENTILE_RULE}",
        "low_p": "one-sided p: low more similar than random subsets", "high_p": "one-sided p: high less similar than random subsets",
        "low_z": "(low - random mean) / random std", "high_z": "(high - random mean) / random std",
        "low_q": "Benjamini-Hochberg q of low_p over the vision x language pairs (per criterion and metric)",
        "high_q": "Benjamini-Hochberg q of high_p over the vision x language pairs (per criterion and metric)",
        "low_tau": "the random subsets' (1 - alpha) threshold with low among them (more similar = above)",
        "high_tau": "the random subsets' (1 - alpha) threshold with high among them (more similar = above)",
        "low_calibrated": f"low calibrated against the random subsets: {THRESHOLD_RULE}",
        "high_calibrated": f"high calibrated against the random subsets: {THRESHOLD_RULE}",
    }
    data = {key: (dims, value, {"description": descriptions.get(key, key.replace("_", " "))}) for key, value in out.items()}
    data["random"] = ((*dims, "draw"), random_scores, {"description": "alignment on each random subset"})
    data["full"] = (("metric", "vision", "language"), np.stack([full[name] for name in names]),
                    {"description": f"alignment on all {n} stimuli (kNN k={min(k_all, scorer.stored_k)})"})
    data["low_member"] = (("criterion", "stimulus"), member_low, {"description": "stimulus is in the low subset"})
    data["high_member"] = (("criterion", "stimulus"), member_high, {"description": "stimulus is in the high subset"})
    data["low_dispersion"] = ("criterion", disp_low, {"description": "mean dispersion of the low subset"})
    data["high_dispersion"] = ("criterion", disp_high, {"description": "mean dispersion of the high subset"})
    info = {m: labels_of(kernels[m], (model_labels or {}).get(m)) for m in models}
    coords = {
        "criterion": ("criterion", np.asarray([c["name"] for c in criteria], dtype=object)),
        "size": ("criterion", np.array([c["size"] for c in criteria], dtype=np.int64)),
        "quantile": ("criterion", np.array([c["quantile"] for c in criteria], dtype=np.float64)),
        "k": ("criterion", ks),
        "metric": ("metric", np.asarray(names, dtype=object)),
        "vision": ("vision", np.asarray(vision, dtype=object)),
        "language": ("language", np.asarray(language, dtype=object)),
        "layer_vision": ("vision", np.asarray([chosen[m] for m in vision], dtype=object)),
        "layer_language": ("language", np.asarray([chosen[m] for m in language], dtype=object)),
        "objective_vision": ("vision", np.asarray([info[m]["objective"] for m in vision], dtype=object)),
        "draw": ("draw", np.arange(n_random)),
        "stimulus": ("stimulus", ids),
    }
    attrs = {
        "group": str(dispersion.attrs.get("group", "")), "group_models": [str(m) for m in dispersion["model"].values],
        "n_stimuli": int(n), "stimulus_digest": stimulus_digest(ids), "n_random": n_random, "n_bootstrap": n_bootstrap,
        "ci": float(ci), "alpha": float(alpha), "seed": int(seed), "k_fraction": fraction, "k_min": int(k_min), "skipped_criteria": skipped,
        "metric_params": {name: dict(params) for name, params in metrics.items()},
        "selection": "low/high: the `size` stimuli of lowest/highest dispersion (ties to the lower stimulus id); "
                     "size = floor(q * n) for quantile criteria",
        "recomputed": "neighbour lists and centred Grams recomputed within every subset (low, high, random)",
        "bootstrap_method": "jackknife over the stimuli of the low and of the high subset (n_bootstrap groups "
                            "each, at most the subset size); ratio variance = the sum of both subsets' jackknife "
                            "variances; each metric's own replicate (kNN: query jackknife on the subset's "
                            "neighbour graphs)",
        "interval_rule": INTERVAL_RULE, "threshold_rule": THRESHOLD_RULE,
        "percentile_rule": PERCENTILE_RULE, "p_value_rule": P_VALUE_RULE, "convergence_version": __version__,
    }
    return xr.Dataset(data, coords=coords, attrs=attrs)


def ratio_table(result: xr.Dataset) -> pd.DataFrame:
    """One row per (criterion, metric, vision, language): size, k, low, high, ratio with its interval, random
    mean and interval, percentiles, p-values and z-scores."""
    fields = ["low", "high", "ratio", "ratio_ci_low", "ratio_ci_high", "low_ci_low", "low_ci_high", "high_ci_low",
              "high_ci_high", "random_mean", "random_ci_low", "random_ci_high", "low_percentile", "high_percentile",
              "low_p", "high_p", "low_q", "high_q", "low_z", "high_z", "low_tau", "low_calibrated", "high_tau",
              "high_calibrated"]
    table = result[fields].to_dataframe().reset_index()
    for coord in ("size", "quantile", "k"):
        table[coord] = table["criterion"].map(dict(zip(result["criterion"].values, result[coord].values)))
    table["objective_vision"] = table["vision"].map(dict(zip(result["vision"].values, result["objective_vision"].values)))
    table.insert(0, "group", result.attrs.get("group", ""))
    keep = ["group", "criterion", "size", "quantile", "k", "metric", "vision", "objective_vision", "language", *fields]
    return table[keep]
