"""All-pairs alignment from cached kernel stores, with layer summaries, a permutation null and bootstrap CIs.

Output layout of ``pairwise`` (an ``xarray.Dataset``), for models ``A`` x ``B``:

dimensions
    ``model_a``, ``model_b``; ``layer_a``, ``layer_b`` (integer layer positions 0 .. max layers - 1:
    models have different layer counts, so positions beyond a model's ``n_layers`` are NaN padding);
    ``summary`` (e.g. ``"best"``, ``"last"``); ``stimulus`` (the ids the scores were computed on).
coordinates
    ``layer_name_a`` (model_a, layer_a) str ("" padding), ``depth_a`` (model_a, layer_a) relative depth
    (NaN padding), ``n_layers_a`` (model_a), ``preprocess_a`` (model_a); the same for ``_b``.
variables
    ``score`` (model_a, model_b, layer_a, layer_b): the metric for every layer pair.
    Per (model_a, model_b, summary): ``summary_score``; ``summary_layer_a``/``_b`` (positions, -1 when
    undefined), ``summary_layer_name_a``/``_b``, ``summary_depth_a``/``_b``; ``null_mean``, ``null_std``,
    ``z_score`` = (score - null_mean) / null_std (NaN for a degenerate null), ``p_value`` = (1 + #null at least as similar) /
    (1 + #permutations); ``q_value`` (Benjamini-Hochberg over the distinct model pairs of the result, per
    summary; NaN for self pairs); ``tau`` (the null's ``(1 - alpha)`` threshold with the observed value among
    the draws) and ``calibrated`` (0 at or below tau, else the excess over tau as a share of the room to the
    metric's maximum; ``convergence.inference.THRESHOLD_RULE``), both from the same null as the p-value;
    ``ci_low``, ``ci_high`` (delete-a-group jackknife interval, ``convergence.inference.INTERVAL_RULE``).
attrs
    ``metric`` and ``metric_<param>``, ``higher_is_better``, ``symmetric``, ``n_stimuli``,
    ``stimulus_digest``, ``n_permutations``, ``n_bootstrap``, ``ci``, ``alpha``, ``seed``, ``null_method``,
    ``bootstrap_method``, ``interval_rule``, ``p_value_rule``, ``q_value_rule``, ``z_rule``,
    ``threshold_rule``, ``most_similar`` (the conventions of ``convergence.inference``).

Summaries: ``best`` = the layer pair with the highest score (lowest for distances such as procrustes;
scores within 1e-9 of the best count as tied and the first in row-major order, i.e. the shallowest, wins;
NaN layer pairs never win); ``last`` = the deepest layer of each model; ``named`` = the layers given in
``named_layers``.

Nulls (``_null_and_bootstrap``): the same ``n_permutations`` permutations of model_b's stimulus order
serve every summary of a pair. ``best`` is a maximum over all L_a x L_b layer pairs, so its null is
selection-aware: each permutation scores ALL layer pairs (the same permutation for every layer pair of
that draw) and keeps their maximum (minimum for distances); ``null_mean``/``null_std``/``z_score``/
``p_value`` of ``best`` come from these maxima, and so do its ``tau`` and ``calibrated``: the calibrated
``best`` score is the excess of the best layer pair over the best-of-all-layer-pairs null, which removes
the inflation of the maximum over L_a x L_b scores. Layer pairs whose observed score is NaN are left out
of the maxima. ``last`` and ``named`` involve no search: their null is the metric at their fixed layer
pair. Intervals (jackknife replicates: a group of stimuli left out) are at the summary's layer pair for
every summary (for ``best``: the winning pair of the full set; the search is not repeated per replicate).

Layers constant across the stimuli (``ModelProducts.constant``) score NaN with every layer of the other
model, for every metric (a kNN metric would otherwise see pure ties, i.e. the lowest positions, as
neighbours and report a spurious agreement).

Symmetric metrics are computed once per unordered pair and mirrored, so ``(b, a)`` is exactly ``(a, b)``
with the layer axes swapped (nulls and intervals included). Random draws for a pair depend only on
(seed, model names), so a pair's result is the same whichever other models a call includes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import xarray as xr

from .. import __version__
from ..inference import (
    ALPHA,
    INTERVAL_RULE,
    NULL_FIELDS,
    P_VALUE_RULE,
    Q_VALUE_RULE,
    THRESHOLD_RULE,
    Z_RULE,
    _check_alpha,
    bh_qvalues,
    calibrate,
    check_count,
    jackknife_interval,
    jackknife_weights,
    null_summary,
    permutations,
    rng_for,
)
from ..metrics.registry import METRICS as _REGISTRY
from ..kernels import check_kernel
from .measures import PairMetric, make_metric
from .products import ModelProducts, common_stimuli, stimulus_digest

SUMMARIES = ("best", "last", "named")
_CALIBRATION_FIELDS = ("tau", "calibrated")
_SUMMARY_FIELDS = (*NULL_FIELDS, *_CALIBRATION_FIELDS, "ci_low", "ci_high")
SELECTION_NULL = (
    "best: max over all layer pairs per permutation (min for distances): each permutation of model_b's "
    "stimulus order scores every layer pair and the null draw is the best of them, so the null accounts for "
    "the search over layer pairs (layer pairs with a NaN observed score left out); last/named: the null at "
    "that fixed layer pair"
)
SELECTION_BOOTSTRAP = "best: at the winning layer pair of the full set (the layer search is not repeated per replicate)"


def most_similar(measure) -> float:
    """The most similar value a measure can take (its registry range's upper end, the lower end for a
    distance); infinite when the measure is not in the registry (the calibrated score is then the excess)."""
    spec = _REGISTRY.get(getattr(measure, "name", ""))
    if spec is None:
        return np.inf if measure.higher_is_better else -np.inf
    return float(spec.range[1] if measure.higher_is_better else spec.range[0])


@dataclass
class _ModelInfo:
    name: str
    layers: list[str]
    depths: np.ndarray
    preprocess: str


@dataclass
class _PairResult:
    scores: np.ndarray  # (L_a, L_b)
    summary: dict = field(default_factory=dict)  # summary -> dict of fields

    def transposed(self) -> _PairResult:
        flipped = {}
        for name, entry in self.summary.items():
            e = dict(entry)
            e["layer_a"], e["layer_b"] = entry["layer_b"], entry["layer_a"]
            flipped[name] = e
        return _PairResult(self.scores.T.copy(), flipped)


def _model_list(kernels: Mapping, names, what: str) -> list[str]:
    names = list(kernels) if names is None else [str(m) for m in names]
    if not names:
        raise ValueError(f"{what} is empty")
    unknown = [m for m in names if m not in kernels]
    if unknown:
        raise ValueError(f"{what} names unknown model(s) {unknown}; kernels given for: {sorted(kernels)}")
    if len(set(names)) != len(names):
        raise ValueError(f"{what} repeats a model: {names}")
    return names


def pairwise(
    kernels: Mapping[str, xr.Dataset],
    metric: str | PairMetric,
    *,
    models_a: Sequence[str] | None = None,
    models_b: Sequence[str] | None = None,
    params: Mapping | None = None,
    stimuli: Sequence[str] | None = None,
    summaries: Sequence[str] = ("best", "last"),
    named_layers: Mapping[str, str] | None = None,
    n_permutations: int = 1000,
    n_bootstrap: int = 1000,
    ci: float = 0.95,
    alpha: float = ALPHA,
    seed: int = 0,
) -> xr.Dataset:
    """Score every layer pair of every (model_a, model_b) pair from cached kernel stores.

    Parameters
    ----------
    kernels : mapping model name -> kernel store (``convergence.kernels.build_kernel``; may be lazily
        opened Zarr: the n x n Grams are then read in row blocks).
    metric : str or PairMetric
        A metric of ``convergence.metrics.registry``, with ``params`` (see ``make_metric``), or a metric object.
    models_a, models_b : sequences of model names
        Rows and columns of the result; default every model in ``kernels``.
    stimuli : sequence of stimulus ids, optional
        Restrict to these ids (for example to sweep n); default: the ids shared by every model involved.
        Models are joined on ids in sorted-id order, never on row position.
    summaries : subset of ("best", "last", "named")
        Layer-pair summaries that get a permutation null and a bootstrap CI.
    named_layers : mapping model -> layer name
        The layer of each model for the ``named`` summary.
    n_permutations, n_bootstrap : int
        Draws for the null (model_b's stimulus order permuted; for ``best`` each draw scores every layer
        pair and keeps the best, see the module docstring) and jackknife groups for the interval (at most
        n: delete-one); 0 skips (NaN fields).
    ci : float
        Central coverage of the interval (0.95: estimate +/- 1.96 jackknife standard errors).
    alpha : float
        Level of the calibration threshold ``tau`` (the null's (1 - alpha) order statistic).
    seed : int
        Draws for each pair come from a generator seeded by (seed, model_a, model_b) alone.

    Returns
    -------
    xarray.Dataset
        Layout in the module docstring.
    """
    if not isinstance(kernels, Mapping) or not kernels:
        raise ValueError("kernels must be a non-empty mapping of model name -> kernel store")
    measure = metric if isinstance(metric, PairMetric) else make_metric(metric, **dict(params or {}))
    models_a = _model_list(kernels, models_a, "models_a")
    models_b = _model_list(kernels, models_b, "models_b")
    summaries = list(summaries)
    for s in summaries:
        if s not in SUMMARIES:
            raise ValueError(f"summary {s!r} is not known; allowed: {SUMMARIES}")
    n_permutations = check_count(n_permutations, "n_permutations")
    n_bootstrap = check_count(n_bootstrap, "n_bootstrap")
    if not 0 < float(ci) < 1:
        raise ValueError(f"ci={ci!r} is out of range; allowed: 0 < ci < 1")
    alpha = _check_alpha(alpha)
    top = most_similar(measure)
    involved = list(dict.fromkeys(models_a + models_b))
    for name in involved:
        check_kernel(kernels[name], name)
    named = _named_positions(kernels, involved, named_layers) if "named" in summaries else {}

    ids = common_stimuli(kernels, involved, stimuli)
    ids, subsampled_from = _within_metric_limit(measure, ids, seed)
    needed = measure.min_stimuli()
    if ids.size < needed:
        raise ValueError(f"only {ids.size} stimuli are shared by {involved}; {measure.name} with "
                         f"{measure.params()} needs at least {needed}")
    products = {m: ModelProducts.from_kernel(m, kernels[m], ids) for m in involved}
    prepared = {m: measure.prepare(products[m]) for m in involved}

    wanted = [(a, b) for a in models_a for b in models_b]
    canonical = {pair: (tuple(sorted(pair)) if measure.symmetric else pair) for pair in wanted}
    # score matrices in the requested orientation, once per canonical pair (a symmetric metric's (b, a) is
    # the transpose); summaries, nulls and intervals in the canonical (sorted) orientation
    oriented = {}
    for pair, c in canonical.items():
        oriented.setdefault(c, pair)
    matrices = measure.score_matrices(prepared, list(oriented.values()))

    computed = {}
    for (a, b), pair in oriented.items():
        scores = np.asarray(matrices[pair], dtype=np.float64)
        result = _PairResult(scores if pair == (a, b) else scores.T.copy())
        constant = products[a].constant[:, None] | products[b].constant[None, :]
        result.scores[constant] = np.nan  # no fake scores from tied neighbours or zero Grams
        layer_pairs = {s: _summary_layers(s, result.scores, measure, named.get(a), named.get(b)) for s in summaries}
        stats, best_null = _null_and_bootstrap(measure, prepared[a], prepared[b], set(layer_pairs.values()),
                                               result.scores, rng_for(seed, a, b), ids.size, n_permutations,
                                               n_bootstrap, ci, best=layer_pairs.get("best"),
                                               null_pairs={p for s, p in layer_pairs.items() if s != "best"},
                                               alpha=alpha, top=top)
        for s, (i, j) in layer_pairs.items():
            entry = {"layer_a": i, "layer_b": j}
            entry["score"] = result.scores[i, j] if i >= 0 else np.nan
            entry.update(stats.get((i, j), dict.fromkeys(_SUMMARY_FIELDS, np.nan)))
            if s == "best":
                entry.update(best_null)
            result.summary[s] = entry
        computed[(a, b)] = result
    results = {pair: computed[c] if c == pair else computed[c].transposed() for pair, c in canonical.items()}

    info = {m: _ModelInfo(m, products[m].layers, products[m].depths,
                          str(kernels[m].attrs.get("kernel_preprocess", ""))) for m in involved}
    attrs = {
        "metric": measure.name,
        **{f"metric_{key}": value for key, value in measure.params().items()},
        "higher_is_better": int(measure.higher_is_better),
        "symmetric": int(measure.symmetric),
        "n_stimuli": int(ids.size),
        "subsampled_from": int(subsampled_from),
        "stimulus_digest": stimulus_digest(ids),
        "n_permutations": n_permutations,
        "n_bootstrap": n_bootstrap,
        "ci": float(ci),
        "alpha": float(alpha),
        "seed": int(seed),
        "null_method": f"{measure.null_method}; {SELECTION_NULL}",
        "bootstrap_method": f"{measure.bootstrap_method}; {SELECTION_BOOTSTRAP}",
        "interval_rule": INTERVAL_RULE,
        "p_value_rule": P_VALUE_RULE,
        "q_value_rule": Q_VALUE_RULE,
        "z_rule": Z_RULE,
        "threshold_rule": THRESHOLD_RULE,
        "most_similar": float(top),
        "layer_index": "layer_a/layer_b are positions into each model's layers (shallow to deep); "
                       "names in layer_name_a/_b; NaN beyond a model's n_layers",
        "convergence_version": __version__,
    }
    return _assemble(info, results, models_a, models_b, summaries, ids, attrs)


def _within_metric_limit(measure, ids: np.ndarray, seed: int) -> tuple[np.ndarray, int]:
    """``ids``, or a seeded random subsample of ``measure.max_stimuli()`` of them (sorted) when there are more
    (RSA's n x n RDMs above 5,000 stimuli); also the number it was drawn from (0: no subsample)."""
    limit = measure.max_stimuli()
    if limit is None or ids.size <= limit:
        return ids, 0
    keep = np.sort(rng_for(seed, "subsample", measure.name).choice(ids.size, size=limit, replace=False))
    return ids[keep], int(ids.size)


def pair_scores(kernels: Mapping[str, xr.Dataset], model_a: str, model_b: str, metric, **kwargs) -> xr.Dataset:
    """``pairwise`` for the single pair (model_a, model_b): needs only those two kernel stores.

    Give ``stimuli=`` (the ids shared by ALL models of the study) when per-pair results are cached and
    later combined with ``combine_pairs``, so that every pair is scored on the same stimuli.
    """
    subset = {model_a: kernels[model_a], model_b: kernels[model_b]}
    return pairwise(subset, metric, models_a=[model_a], models_b=[model_b], **kwargs)


def _named_positions(kernels, models, named_layers) -> dict[str, int]:
    if not named_layers:
        raise ValueError("summary 'named' needs named_layers: a mapping model -> layer name")
    out = {}
    for m in models:
        if m not in named_layers:
            raise ValueError(f"named_layers has no layer for model {m!r}")
        layers = [str(x) for x in kernels[m].attrs["layers"]]
        if named_layers[m] not in layers:
            raise ValueError(f"named_layers[{m!r}]={named_layers[m]!r} is not a layer of {m!r}; allowed: {layers}")
        out[m] = layers.index(named_layers[m])
    return out


def _summary_layers(summary: str, scores: np.ndarray, measure: PairMetric, named_a, named_b) -> tuple[int, int]:
    if summary == "last":
        return scores.shape[0] - 1, scores.shape[1] - 1
    if summary == "named":
        return named_a, named_b
    if np.all(np.isnan(scores)):
        return -1, -1
    oriented = scores if measure.higher_is_better else -scores
    top = np.nanmax(oriented)
    # numerical ties (e.g. a model with itself: 1 on every diagonal pair) go to the shallowest layer pair
    tied = np.flatnonzero(np.nan_to_num(oriented, nan=-np.inf).ravel() >= top - 1e-9 * max(1.0, abs(top)))
    i, j = np.unravel_index(tied[0], scores.shape)
    return int(i), int(j)


def _selection_null(measure, pa, pb, scores, perms) -> np.ndarray:
    """One null draw per permutation: the best score over all layer pairs (with a finite observed score)
    of model_b permuted by that permutation; NaN where no layer pair has a finite null score."""
    valid = np.isfinite(scores)
    nulls = np.asarray(measure.null_matrices(pa, pb, perms, valid), dtype=np.float64).reshape(perms.shape[0], -1)
    oriented = nulls if measure.higher_is_better else -nulls
    oriented = np.where(valid.ravel()[None, :] & np.isfinite(oriented), oriented, -np.inf).max(axis=1)
    best = oriented if measure.higher_is_better else -oriented
    return np.where(np.isfinite(best), best, np.nan)


def _null_and_bootstrap(measure, pa, pb, layer_pairs, scores, rng, n, n_perm, n_boot, ci, best=None,
                        null_pairs=None, alpha=ALPHA, top=np.inf):
    """Jackknife intervals for each (layer_a, layer_b) of ``layer_pairs`` and the fixed-pair null (with its
    calibration threshold and calibrated score) for those also in ``null_pairs`` (default: all); given
    ``best`` (the winning layer pair), the null statistics of the ``best`` summary (best over all layer pairs
    per permutation). The same permutations serve every layer pair and the selection null; the
    permutations are drawn first, so the nulls do not depend on the interval's settings."""
    null_pairs = set(layer_pairs) if null_pairs is None else set(null_pairs)
    perms = permutations(rng, n, n_perm)
    weights = jackknife_weights(rng, n, n_boot)
    out = {}
    for i, j in sorted(layer_pairs):
        entry = dict.fromkeys(_SUMMARY_FIELDS, np.nan)
        score = scores[i, j] if i >= 0 else np.nan
        if i >= 0 and np.isfinite(score):
            if n_perm and (i, j) in null_pairs:
                null = np.asarray(measure.null(pa, i, pb, j, perms), dtype=np.float64)
                entry.update(null_summary(null, score, measure.higher_is_better))
                entry.update(calibrate(null, score, top, alpha, measure.higher_is_better))
            if weights is not None:
                boot = measure.bootstrap(pa, i, pb, j, weights)
                entry["ci_low"], entry["ci_high"] = jackknife_interval(score, boot, ci=ci)
        out[(i, j)] = entry
    best_null = dict.fromkeys((*NULL_FIELDS, *_CALIBRATION_FIELDS), np.nan)
    if best is not None and best[0] >= 0 and n_perm:
        null = _selection_null(measure, pa, pb, scores, perms)
        best_null = null_summary(null, float(scores[best]), measure.higher_is_better)
        best_null.update(calibrate(null, float(scores[best]), top, alpha, measure.higher_is_better))
    return out, best_null


def _assemble(info: Mapping[str, _ModelInfo], results: Mapping, models_a, models_b, summaries, ids, attrs):
    la = max(len(info[m].layers) for m in models_a)
    lb = max(len(info[m].layers) for m in models_b)
    na, nb, ns = len(models_a), len(models_b), len(summaries)
    score = np.full((na, nb, la, lb), np.nan)
    fields = {f: np.full((na, nb, ns), np.nan) for f in ("summary_score", "summary_depth_a", "summary_depth_b",
                                                         *_SUMMARY_FIELDS)}
    layer_pos = {f: np.full((na, nb, ns), -1, dtype=np.int64) for f in ("summary_layer_a", "summary_layer_b")}
    layer_names = {f: np.full((na, nb, ns), "", dtype=object) for f in ("summary_layer_name_a", "summary_layer_name_b")}
    for x, a in enumerate(models_a):
        for y, b in enumerate(models_b):
            if (a, b) not in results:
                continue
            res = results[(a, b)]
            score[x, y, : res.scores.shape[0], : res.scores.shape[1]] = res.scores
            for z, s in enumerate(summaries):
                e = res.summary[s]
                fields["summary_score"][x, y, z] = e["score"]
                for f in _SUMMARY_FIELDS:
                    fields[f][x, y, z] = e[f]
                for side, model, pos in (("a", a, e["layer_a"]), ("b", b, e["layer_b"])):
                    layer_pos[f"summary_layer_{side}"][x, y, z] = pos
                    if pos >= 0:
                        layer_names[f"summary_layer_name_{side}"][x, y, z] = info[model].layers[pos]
                        fields[f"summary_depth_{side}"][x, y, z] = info[model].depths[pos]

    def per_model(models, width):
        names = np.full((len(models), width), "", dtype=object)
        depths = np.full((len(models), width), np.nan)
        for r, m in enumerate(models):
            names[r, : len(info[m].layers)] = info[m].layers
            depths[r, : len(info[m].layers)] = info[m].depths
        return names, depths

    fields["q_value"] = pair_q_values(fields["p_value"], models_a, models_b, bool(attrs.get("symmetric", 1)))
    names_a, depths_a = per_model(models_a, la)
    names_b, depths_b = per_model(models_b, lb)
    dims3 = ("model_a", "model_b", "summary")
    data_vars = {"score": (("model_a", "model_b", "layer_a", "layer_b"), score)}
    data_vars.update({f: (dims3, v) for f, v in {**fields, **layer_pos, **layer_names}.items()})
    coords = {
        "model_a": ("model_a", np.asarray(models_a, dtype=object)),
        "model_b": ("model_b", np.asarray(models_b, dtype=object)),
        "layer_a": ("layer_a", np.arange(la)),
        "layer_b": ("layer_b", np.arange(lb)),
        "summary": ("summary", np.asarray(summaries, dtype=object)),
        "stimulus": ("stimulus", np.asarray(ids, dtype=object)),
        "layer_name_a": (("model_a", "layer_a"), names_a),
        "depth_a": (("model_a", "layer_a"), depths_a),
        "n_layers_a": ("model_a", np.array([len(info[m].layers) for m in models_a])),
        "preprocess_a": ("model_a", np.asarray([info[m].preprocess for m in models_a], dtype=object)),
        "layer_name_b": (("model_b", "layer_b"), names_b),
        "depth_b": (("model_b", "layer_b"), depths_b),
        "n_layers_b": ("model_b", np.array([len(info[m].layers) for m in models_b])),
        "preprocess_b": ("model_b", np.asarray([info[m].preprocess for m in models_b], dtype=object)),
    }
    return xr.Dataset(data_vars, coords=coords, attrs=attrs)


def pair_q_values(p: np.ndarray, models_a, models_b, symmetric: bool) -> np.ndarray:
    """Benjamini-Hochberg q-values of ``p`` (model_a, model_b, summary) over the distinct tests of each
    summary: model pairs with a != b, counted once per unordered pair for a symmetric metric (its mirror
    gets the same q); self pairs NaN."""
    q = np.full(p.shape, np.nan)
    tests: dict[tuple, list] = {}
    for x, a in enumerate(models_a):
        for y, b in enumerate(models_b):
            if a != b:
                tests.setdefault(tuple(sorted((a, b))) if symmetric else (a, b), []).append((x, y))
    if not tests:
        return q
    keys = list(tests)
    for z in range(p.shape[2]):
        first = [tests[key][0] for key in keys]
        adjusted = bh_qvalues(np.array([p[x, y, z] for x, y in first]))
        for key, value in zip(keys, adjusted):
            for x, y in tests[key]:
                q[x, y, z] = value
    return q


def combine_pairs(datasets: Iterable[xr.Dataset]) -> xr.Dataset:
    """Combine ``pairwise``/``pair_scores`` results (e.g. cached per pair) into one model x model dataset.

    All inputs must share the metric, its parameters, the summaries and the stimuli; a (model_a, model_b)
    pair may appear only once. Pairs that no input holds are NaN. Models keep their first-seen order.
    """
    datasets = list(datasets)
    if not datasets:
        raise ValueError("combine_pairs needs at least one dataset")
    ref = datasets[0]
    keys = [k for k in ref.attrs if k.startswith("metric") or k in ("stimulus_digest", "n_permutations",
                                                                       "n_bootstrap", "ci", "alpha", "seed")]
    for ds in datasets[1:]:
        for k in keys:
            if ds.attrs.get(k) != ref.attrs.get(k):
                raise ValueError(f"cannot combine: attrs[{k!r}] differ ({ref.attrs.get(k)!r} vs {ds.attrs.get(k)!r})")
        if list(ds["summary"].values) != list(ref["summary"].values):
            raise ValueError("cannot combine: the summaries differ")
    summaries = [str(s) for s in ref["summary"].values]
    info: dict[str, _ModelInfo] = {}
    results = {}
    models_a, models_b = [], []
    for ds in datasets:
        for side, models in (("a", models_a), ("b", models_b)):
            for r, m in enumerate(ds[f"model_{side}"].values):
                m = str(m)
                count = int(ds[f"n_layers_{side}"].values[r])
                layers = [str(x) for x in ds[f"layer_name_{side}"].values[r, :count]]
                entry = _ModelInfo(m, layers, np.asarray(ds[f"depth_{side}"].values[r, :count]),
                                   str(ds[f"preprocess_{side}"].values[r]))
                if m in info and info[m].layers != layers:
                    raise ValueError(f"cannot combine: model {m!r} has different layers in two inputs")
                info.setdefault(m, entry)
                if m not in models:
                    models.append(m)
        for x, a in enumerate(ds["model_a"].values):
            for y, b in enumerate(ds["model_b"].values):
                pair = (str(a), str(b))
                if pair in results:
                    raise ValueError(f"cannot combine: pair {pair} appears twice")
                n_a, n_b = int(ds["n_layers_a"].values[x]), int(ds["n_layers_b"].values[y])
                res = _PairResult(np.asarray(ds["score"].values[x, y, :n_a, :n_b]))
                for z, s in enumerate(summaries):
                    e = {"score": float(ds["summary_score"].values[x, y, z]),
                         "layer_a": int(ds["summary_layer_a"].values[x, y, z]),
                         "layer_b": int(ds["summary_layer_b"].values[x, y, z])}
                    e.update({f: float(ds[f].values[x, y, z]) for f in _SUMMARY_FIELDS})
                    res.summary[s] = e
                results[pair] = res
    ids = ref["stimulus"].values
    return _assemble(info, results, models_a, models_b, summaries, ids, dict(ref.attrs))
