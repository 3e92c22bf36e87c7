"""The ``consistency`` analysis: is model-to-model similarity consistent across datasets, by training
objective, and does it follow the models' behaviour? (Ciernik et al. 2024, study 001.)

Method (``docs/science.md`` section B):

1. **Features**: one layer per model, by default its last stored layer (the penultimate / embedding
   layer: the extraction never stores logits), L2-normalised per stimulus (:func:`layer_kernel`).
2. **Similarity matrices**: per dataset, every model pair scored with a registry metric
   (:func:`similarity_scores`; the study's are unbiased linear CKA, unbiased RBF CKA with an absolute
   sigma of 0.4, and RSA). The result has the layout of the ``alignment`` analysis (one layer per model,
   summary ``last``, no null), so :func:`similarity_matrix` reads either one: it returns a labelled
   model x model matrix with each model's ``objective``.
3. **Consistency** (:func:`dataset_consistency`): for every pair of datasets, the Pearson and Spearman
   correlation between the upper triangles (diagonal excluded) of their two similarity matrices,
   optionally restricted to the model pairs of a model-set pair (both models' objectives, e.g.
   self-supervised x supervised). Matrices are matched by model name, never by position.
4. **Behaviour** (:func:`probe_accuracy`, :func:`behaviour_link`): per labelled dataset a linear probe per
   model (logistic regression, nested cross-validation), and the Spearman correlation between pairwise
   similarity and the absolute difference of probe accuracy over model pairs, with a permutation
   p-value (Mantel: probe accuracies permuted over models, ``convergence.inference.permutation_test``).

Conventions:

- **Upper triangle**: model pairs ``(i, j)`` with ``i < j`` in sorted model-name order, so the pair set never
  depends on the order models come in. An asymmetric metric (``cknna``, ``cycle_knn``) is symmetrised
  first, ``(S_ij + S_ji) / 2``; symmetric metrics are unchanged by that.
- **Missing models**: two datasets are compared on the models both have (``missing="intersect"``, the
  default; the table records ``n_models`` and ``n_pairs``), or a model absent from one of them is an error
  (``missing="error"``). Pairs whose similarity is NaN on either dataset (a constant layer) are left out.
- **Model-set pairs**: unordered pairs of groups (a model's ``objective`` by default), named
  ``"<group> x <group>"`` in sorted order, plus ``"all"`` (every model pair). A correlation needs at least
  ``min_pairs`` model pairs (3 by default); with fewer, or when either triangle is constant, it is NaN.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from ..inference import ALTERNATIVES, check_count, permutation_test, rng_for
from ..metrics._checks import as_features, check_int
from . import labels_of
from .alignment import label_models

#: The study's metrics (registry names) and the parameters it uses.
DEFAULT_METRICS = ("cka_linear_unbiased", "cka_rbf", "rsa")
ALL_PAIRS = "all"
MISSING = ("intersect", "error")
CONSISTENCY_COLUMNS = ["metric", "dataset_a", "dataset_b", "set_pair", "group_a", "group_b", "n_models", "n_pairs",
                       "pearson", "spearman"]


# ------------------------------------------------------------------------------------------- features


def layer_of(embeddings: xr.Dataset, layer: str | None = None) -> str:
    """The layer the analysis reads from an embedding store: ``layer`` if given (it must exist), else the
    last stored layer (the penultimate / embedding layer)."""
    layers = [str(x) for x in embeddings.attrs.get("layers", [])]
    model = embeddings.attrs.get("model", "?")
    if not layers:
        raise ValueError(f"the embedding store of {model!r} has no attrs['layers']")
    if layer is None:
        return layers[-1]
    if str(layer) not in layers:
        raise ValueError(f"layer {layer!r} is not a layer of {model!r}; its layers: {layers}")
    return str(layer)


def layer_kernel(embeddings: xr.Dataset, layer: str | None = None, *, preprocess: str = "l2",
                 gram: bool = True) -> xr.Dataset:
    """A kernel store (``convergence.kernels.build_kernel``) holding one layer of one model: ``layer``
    (default the last stored one), preprocessed with ``preprocess`` (``l2``: each stimulus' feature vector
    L2-normalised, the study's choice). ``gram``: whether to store the centred Gram (linear CKA reads it)."""
    from ..kernels import build_kernel

    name = layer_of(embeddings, layer)
    layers = [str(x) for x in embeddings.attrs["layers"]]
    depths = embeddings.attrs.get("depths")
    one = embeddings[[name]]
    one.attrs = dict(embeddings.attrs, layers=[name],
                     depths=[float(depths[layers.index(name)])] if depths is not None else [1.0])
    return build_kernel(one, k=1, preprocess=preprocess, gram=gram)


def similarity_scores(
    embeddings: Mapping[str, xr.Dataset],
    metric: str,
    *,
    cache_dir: str | Path,
    params: Mapping | None = None,
    layers: Mapping[str, str] | None = None,
    preprocess: str = "l2",
    model_labels: Mapping[str, Mapping[str, str]] | None = None,
    log=print,
) -> xr.Dataset:
    """Every model pair of one dataset scored with ``metric`` (a registry name, with ``params``) at one layer
    per model (``layers``: model -> layer name; unlisted models use their last stored layer), features
    preprocessed with ``preprocess``. Same engines and per-pair cache as the ``alignment`` analysis, no
    null or interval; layout ``convergence.pairwise.scores`` with the single summary ``last``, labelled with
    each model's modality/objective/family (``model_labels`` or the store's provenance)."""
    from ..metrics.registry import kernel_needs
    from ..pairwise import cached_pairwise

    if len(embeddings) < 2:
        raise ValueError(f"similarity needs at least 2 models; got {list(embeddings)}")
    unknown = sorted(set(layers or {}) - set(embeddings))
    if unknown:
        raise ValueError(f"layers names model(s) {unknown} that are not compared here; models: {sorted(embeddings)}")
    gram = kernel_needs([metric], {})["gram"]
    kernels = {m: layer_kernel(ds, (layers or {}).get(m), preprocess=preprocess, gram=gram) for m, ds in embeddings.items()}
    scores = cached_pairwise(kernels, metric, cache_dir=cache_dir, params=params, n_permutations=0, n_bootstrap=0,
                             summaries=("last",), log=log)
    info = {m: labels_of(kernels[m], (model_labels or {}).get(m)) for m in kernels}
    scores = label_models(scores, info)
    scores.attrs.update(consistency_preprocess=preprocess, consistency_layers={m: kernels[m].attrs["layers"][0] for m in kernels})
    return scores


# ------------------------------------------------------------------------------------------ matrices


def similarity_matrix(scores: xr.Dataset, summary: str = "last", *, symmetrise: bool = True,
                      models: Sequence[str] | None = None) -> xr.DataArray:
    """The model x model matrix of one summary of an alignment or similarity store.

    Returns a DataArray with dims (``model_a``, ``model_b``), the same models on both axes (those present on
    both sides, sorted, or ``models``), coordinates ``objective_a``/``objective_b`` (and the other labels the
    store carries), attrs ``metric`` and ``summary``. With ``symmetrise`` an asymmetric metric becomes
    ``(S + S^T) / 2`` (a symmetric one is unchanged).
    """
    if "summary_score" not in scores or "summary" not in scores.dims:
        raise ValueError("not an alignment/similarity store: it needs 'summary_score' with a 'summary' dimension")
    present = [str(s) for s in scores["summary"].values]
    if summary not in present:
        raise ValueError(f"summary {summary!r} is not in this store; present: {present}")
    rows = {str(m) for m in scores["model_a"].values}
    cols = {str(m) for m in scores["model_b"].values}
    names = sorted(rows & cols) if models is None else [str(m) for m in models]
    absent = [m for m in names if m not in rows or m not in cols]
    if absent:
        raise ValueError(f"model(s) {absent} are not on both sides of this store; present: {sorted(rows & cols)}")
    sub = scores["summary_score"].sel(summary=summary, model_a=names, model_b=names)
    values = np.asarray(sub.values, dtype=np.float64)
    if symmetrise and not bool(scores.attrs.get("symmetric", 1)):
        values = (values + values.T) / 2
    out = xr.DataArray(values, dims=("model_a", "model_b"), coords={"model_a": names, "model_b": names})
    for coord in scores.coords:
        for side in ("a", "b"):
            if coord.endswith(f"_{side}") and scores[coord].dims == (f"model_{side}",):
                lookup = dict(zip((str(m) for m in scores[f"model_{side}"].values), scores[coord].values))
                out = out.assign_coords({coord: (f"model_{side}", np.array([lookup[m] for m in names], dtype=object))})
    out.attrs = {"metric": str(scores.attrs.get("metric", "")), "summary": summary,
                 "n_stimuli": int(scores.attrs.get("n_stimuli", 0))}
    return out


def _check_matrix(matrix: xr.DataArray, what: str) -> list[str]:
    if not isinstance(matrix, xr.DataArray) or matrix.dims != ("model_a", "model_b"):
        raise ValueError(f"{what} must be a DataArray with dims ('model_a', 'model_b'); got "
                         f"{getattr(matrix, 'dims', type(matrix).__name__)}")
    rows = [str(m) for m in matrix["model_a"].values]
    cols = [str(m) for m in matrix["model_b"].values]
    if sorted(rows) != sorted(cols) or len(set(rows)) != len(rows):
        raise ValueError(f"{what} must have the same unique models on both axes; got {rows} x {cols}")
    return rows


def model_groups(matrices: Mapping[str, xr.DataArray], field: str = "objective") -> dict[str, str]:
    """model -> its group (the ``<field>_a`` coordinate of the matrices); a model labelled differently on two
    datasets is an error."""
    groups: dict[str, str] = {}
    for dataset, matrix in matrices.items():
        models = _check_matrix(matrix, f"the matrix of {dataset!r}")
        coord = f"{field}_a"
        if coord not in matrix.coords:
            raise ValueError(f"the matrix of {dataset!r} has no {coord!r} coordinate; give groups= explicitly")
        for m, g in zip(models, matrix[coord].values):
            if groups.setdefault(m, str(g)) != str(g):
                raise ValueError(f"model {m!r} has {field} {groups[m]!r} on one dataset and {str(g)!r} on {dataset!r}")
    return groups


def set_pair_name(group_a: str, group_b: str) -> str:
    """``"<g1> x <g2>"`` with the two groups in sorted order."""
    g1, g2 = sorted((str(group_a), str(group_b)))
    return f"{g1} x {g2}"


def model_set_pairs(groups: Mapping[str, str]) -> list[tuple[str, str]]:
    """Every unordered pair of groups (a group with itself included when it has >= 2 models) that has at
    least one model pair, sorted."""
    counts = pd.Series(list(groups.values())).value_counts()
    names = sorted(counts.index)
    return [(a, b) for a, b in itertools.combinations_with_replacement(names, 2) if a != b or counts[a] >= 2]


def upper_triangle(matrix: xr.DataArray, models: Sequence[str] | None = None) -> pd.Series:
    """The values above the diagonal of ``matrix`` (restricted to ``models``), indexed by (model_i, model_j)
    with ``model_i < model_j`` in sorted name order: label-matched, whatever the matrix's row order."""
    present = _check_matrix(matrix, "matrix")
    names = sorted(present if models is None else (str(m) for m in models))
    missing = [m for m in names if m not in present]
    if missing:
        raise ValueError(f"model(s) {missing} are not in the matrix; present: {sorted(present)}")
    values = np.asarray(matrix.sel(model_a=names, model_b=names).values, dtype=np.float64)
    i, j = np.triu_indices(len(names), k=1)
    index = pd.MultiIndex.from_arrays([[names[a] for a in i], [names[b] for b in j]], names=["model_i", "model_j"])
    return pd.Series(values[i, j], index=index, dtype=np.float64)


def correlations(x, y, *, min_pairs: int = 3) -> tuple[float, float]:
    """(Pearson, Spearman) of two equally long vectors; NaN when fewer than ``min_pairs`` finite pairs are
    left or either vector is constant."""
    from scipy.stats import rankdata

    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"x and y must be 1-D of the same length; got {x.shape} and {y.shape}")
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if x.size < max(int(min_pairs), 2) or np.ptp(x) == 0 or np.ptp(y) == 0:
        return np.nan, np.nan

    def pearson(a, b):
        a, b = a - a.mean(), b - b.mean()
        return float(np.clip(a @ b / np.sqrt((a @ a) * (b @ b)), -1.0, 1.0))

    return pearson(x, y), pearson(rankdata(x), rankdata(y))


def dataset_consistency(
    matrices: Mapping[str, xr.DataArray],
    *,
    groups: Mapping[str, str] | None = None,
    set_pairs: Sequence[tuple[str, str]] | None = None,
    missing: str = "intersect",
    min_pairs: int = 3,
) -> pd.DataFrame:
    """The consistency of model-to-model similarity across every pair of datasets.

    Parameters
    ----------
    matrices : dataset name -> model x model similarity matrix (:func:`similarity_matrix`).
    groups : model -> group (e.g. objective); default the matrices' ``objective`` labels (:func:`model_groups`).
    set_pairs : model-set pairs (group, group) to restrict to; default every pair of groups
        (:func:`model_set_pairs`). The unrestricted ``"all"`` row is always added.
    missing : ``"intersect"``: two datasets are compared on the models both hold; ``"error"``: a model that
        is missing from any dataset raises ``ValueError``.
    min_pairs : the fewest model pairs a correlation is computed from (else NaN).

    Returns
    -------
    pandas.DataFrame
        One row per (dataset_a, dataset_b, set_pair), ``dataset_a < dataset_b`` in the order given:
        ``metric``, ``dataset_a``, ``dataset_b``, ``set_pair``, ``group_a``, ``group_b`` (sorted; empty for
        ``all``), ``n_models`` (models shared by both datasets), ``n_pairs`` (finite model pairs used),
        ``pearson``, ``spearman``.
    """
    if missing not in MISSING:
        raise ValueError(f"missing={missing!r} is not known; allowed: {MISSING}")
    min_pairs = check_int(min_pairs, "min_pairs", minimum=2)
    datasets = list(matrices)
    if len(datasets) < 2:
        raise ValueError(f"consistency needs at least 2 datasets; got {datasets}")
    models = {d: _check_matrix(matrices[d], f"the matrix of {d!r}") for d in datasets}
    if missing == "error":
        every = sorted(set().union(*map(set, models.values())))
        for d in datasets:
            lacking = [m for m in every if m not in models[d]]
            if lacking:
                raise ValueError(f"dataset {d!r} lacks model(s) {lacking} that other datasets have "
                                 "(missing='intersect' compares each pair of datasets on their shared models)")
    groups = dict(groups) if groups is not None else model_groups(matrices)
    unlabelled = sorted(set().union(*map(set, models.values())) - set(groups))
    if unlabelled:
        raise ValueError(f"groups has no entry for model(s) {unlabelled}")
    wanted = list(set_pairs) if set_pairs is not None else model_set_pairs(groups)
    wanted = [tuple(sorted((str(a), str(b)))) for a, b in wanted]
    metrics = {str(matrices[d].attrs.get("metric", "")) for d in datasets}
    metric = metrics.pop() if len(metrics) == 1 else ""
    rows = []
    for da, db in itertools.combinations(datasets, 2):
        shared = sorted(set(models[da]) & set(models[db]))
        ta = upper_triangle(matrices[da], shared) if len(shared) >= 2 else pd.Series(dtype=np.float64)
        tb = upper_triangle(matrices[db], shared) if len(shared) >= 2 else pd.Series(dtype=np.float64)
        finite = np.isfinite(ta.to_numpy()) & np.isfinite(tb.to_numpy())
        pair_groups = [tuple(sorted((groups[i], groups[j]))) for i, j in ta.index]
        for name, ga, gb in [(ALL_PAIRS, "", ""), *((set_pair_name(a, b), a, b) for a, b in wanted)]:
            mask = finite.copy()
            if name != ALL_PAIRS:
                mask &= np.array([g == (ga, gb) for g in pair_groups], dtype=bool)
            pearson, spearman = correlations(ta.to_numpy()[mask], tb.to_numpy()[mask], min_pairs=min_pairs)
            rows.append({"metric": metric, "dataset_a": da, "dataset_b": db, "set_pair": name, "group_a": ga,
                         "group_b": gb, "n_models": len(shared), "n_pairs": int(mask.sum()), "pearson": pearson,
                         "spearman": spearman})
    return pd.DataFrame(rows, columns=CONSISTENCY_COLUMNS)


# ------------------------------------------------------------------------------------------ behaviour


def probe_accuracy(features, labels, *, seed: int = 0, n_splits: int = 5, inner_splits: int = 3,
                   Cs: Sequence[float] = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0), max_iter: int = 1000) -> float:
    """Cross-validated accuracy of a logistic-regression probe whose regularisation is chosen by inner CV.

    Nested cross-validation: an outer stratified ``n_splits``-fold split (shuffled with ``seed``); on each
    outer training fold the features are standardised and ``LogisticRegressionCV`` (multinomial, L2,
    lbfgs along a warm-started path of ``Cs``) picks the inverse strength ``C`` by mean accuracy over an
    inner stratified ``inner_splits``-fold split (same seed; ties to the smallest C, the strongest
    regularisation), refits with it on the whole training fold and is scored on the held-out fold.
    Returns the mean held-out accuracy. Every class needs at least ``n_splits`` stimuli.
    """
    import warnings

    from sklearn.decomposition import PCA
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    x = as_features(features, "features")
    y = np.asarray(labels)
    if y.ndim != 1 or y.size != x.shape[0]:
        raise ValueError(f"labels must be 1-D with one label per stimulus ({x.shape[0]}); got shape {y.shape}")
    if pd.isna(y).any():
        raise ValueError("labels hold missing values")
    n_splits = check_int(n_splits, "n_splits", minimum=2)
    inner_splits = check_int(inner_splits, "inner_splits", minimum=2)
    Cs = sorted(float(c) for c in Cs)
    if not Cs or Cs[0] <= 0:
        raise ValueError(f"Cs must be positive inverse regularisation strengths; got {Cs}")
    classes, counts = np.unique(y, return_counts=True)
    if classes.size < 2:
        raise ValueError("a linear probe needs at least 2 classes")
    if counts.min() < n_splits:
        raise ValueError(f"class {classes[counts.argmin()]!r} has {counts.min()} stimuli; n_splits={n_splits} "
                         "needs at least that many per class")
    inner = StratifiedKFold(n_splits=inner_splits, shuffle=True, random_state=seed)
    # the rotation onto the training fold's principal axes (all of them: d -> rank <= n) changes neither the
    # L2 penalty nor the fit, since the optimal weights lie in the span of the centred training features;
    # it only makes lbfgs work in at most n dimensions instead of d
    probe = Pipeline([("scale", StandardScaler()), ("rotate", PCA(svd_solver="full")),
                      ("probe", LogisticRegressionCV(Cs=Cs, cv=inner, scoring="accuracy", max_iter=max_iter))])
    outer = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        # an inner fold may hold a class fewer than inner_splits times after the outer split; the weakest
        # regularisation may stop at max_iter on separable folds; scikit-learn >= 1.8 announces API changes
        # of LogisticRegressionCV that do not touch this use: it warns, the score stands
        warnings.filterwarnings("ignore", message="The least populated class")
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", FutureWarning)
        return float(np.mean(cross_val_score(probe, x, y, cv=outer)))


def probe_table(
    stimuli: xr.Dataset,
    embeddings: Mapping[str, xr.Dataset],
    *,
    layers: Mapping[str, str] | None = None,
    preprocess: str = "l2",
    seed: int = 0,
    n_splits: int = 5,
    inner_splits: int = 3,
    model_labels: Mapping[str, Mapping[str, str]] | None = None,
) -> pd.DataFrame:
    """Probe accuracy of every model on one dataset's labels, at the layer the consistency analysis reads
    (``layers`` / last stored layer), features preprocessed as there. Classes with fewer than ``n_splits``
    stimuli are left out (``n_classes`` counts the rest, ``classes_dropped`` the others). Empty (with the
    columns) when the dataset has no labels or fewer than 2 usable classes."""
    from ..kernels import feature_var

    columns = ["model", "modality", "objective", "family", "layer", "accuracy", "n_stimuli", "n_classes",
               "classes_dropped"]
    if "label" not in stimuli:
        return pd.DataFrame(columns=columns)
    labels = pd.Series(np.asarray(stimuli["label"].values).astype(str),
                       index=[str(s) for s in stimuli["stimulus"].values])
    rows = []
    for name, ds in embeddings.items():
        kernel = layer_kernel(ds, (layers or {}).get(name), preprocess=preprocess, gram=False)
        layer = kernel.attrs["layers"][0]
        ids = [str(s) for s in kernel["stimulus"].values]
        y = labels.reindex(ids)
        if y.isna().any():
            raise ValueError(f"{int(y.isna().sum())} stimuli of {name!r} have no label in the stimulus store")
        counts = y.value_counts()
        keep = y.isin(counts.index[counts >= n_splits]).to_numpy()
        n_classes = int((counts >= n_splits).sum())
        if n_classes < 2:
            continue
        x = np.asarray(kernel[feature_var(layer)].values, dtype=np.float64)[keep]
        acc = probe_accuracy(x, y.to_numpy()[keep], seed=seed, n_splits=n_splits, inner_splits=inner_splits)
        rows.append({"model": name, **labels_of(ds, (model_labels or {}).get(name)), "layer": layer, "accuracy": acc,
                     "n_stimuli": int(keep.sum()), "n_classes": n_classes,
                     "classes_dropped": int((counts < n_splits).sum())})
    return pd.DataFrame(rows, columns=columns)


def behaviour_pairs(matrix: xr.DataArray, accuracy: Mapping[str, float] | pd.Series) -> pd.DataFrame:
    """One row per model pair (upper triangle, sorted names) of the models that have both a similarity and
    an accuracy: ``model_i``, ``model_j``, ``similarity``, ``accuracy_difference`` = |acc_i - acc_j|."""
    accuracy = pd.Series(accuracy, dtype=np.float64)
    present = _check_matrix(matrix, "matrix")
    models = sorted(m for m in present if m in accuracy.index and np.isfinite(accuracy[m]))
    tri = upper_triangle(matrix, models) if len(models) >= 2 else pd.Series(dtype=np.float64,
                                                                            index=pd.MultiIndex.from_tuples([], names=["model_i", "model_j"]))
    out = tri.rename("similarity").reset_index()
    out["accuracy_difference"] = [abs(accuracy[i] - accuracy[j]) for i, j in tri.index]
    return out


def behaviour_link(matrix: xr.DataArray, accuracy: Mapping[str, float] | pd.Series, *, n_permutations: int = 1000,
                   alternative: str = "less", seed: int = 0, min_pairs: int = 3) -> dict:
    """Spearman correlation between pairwise similarity and |difference in probe accuracy| over model pairs,
    with a permutation p-value.

    The null permutes which model carries which accuracy (a Mantel test: the similarity matrix, and so the
    dependence between pairs that share a model, is kept); ``alternative="less"`` (default) tests the
    study's direction, more similar models differing less in accuracy (a negative correlation). Draws come
    from ``rng_for(seed, *models)``. Returns ``rho``, ``null_mean``, ``null_std``, ``z_score``, ``p_value``,
    ``n_models``, ``n_pairs``, ``n_permutations``, ``alternative`` (NaN statistics with too few pairs).
    """
    from scipy.stats import rankdata

    if alternative not in ALTERNATIVES:
        raise ValueError(f"alternative={alternative!r} is not known; allowed: {ALTERNATIVES}")
    n_permutations = check_count(n_permutations, "n_permutations")
    accuracy = pd.Series(accuracy, dtype=np.float64)
    pairs = behaviour_pairs(matrix, accuracy)
    models = sorted(set(pairs["model_i"]) | set(pairs["model_j"]))
    out = {"rho": np.nan, "null_mean": np.nan, "null_std": np.nan, "z_score": np.nan, "p_value": np.nan,
           "n_models": len(models), "n_pairs": int(np.isfinite(pairs["similarity"]).sum()),
           "n_permutations": n_permutations, "alternative": alternative}
    sim = pairs["similarity"].to_numpy()
    ok = np.isfinite(sim)
    if ok.sum() < max(int(min_pairs), 2) or np.ptp(sim[ok]) == 0:
        return out
    position = {m: k for k, m in enumerate(models)}
    i = np.array([position[m] for m in pairs["model_i"]])[ok]
    j = np.array([position[m] for m in pairs["model_j"]])[ok]
    acc = accuracy.reindex(models).to_numpy()
    sim_ranks = rankdata(sim[ok])
    sim_ranks = (sim_ranks - sim_ranks.mean()) / np.linalg.norm(sim_ranks - sim_ranks.mean())

    def rho(perm: np.ndarray) -> float:
        a = acc[perm]
        diff = rankdata(np.abs(a[i] - a[j]))
        diff = diff - diff.mean()
        norm = np.linalg.norm(diff)
        return float(sim_ranks @ diff / norm) if norm > 0 else np.nan

    test = permutation_test(rho, len(models), n_permutations=n_permutations, alternative=alternative,
                            rng=rng_for(seed, "behaviour", *models))
    out.update(rho=test["observed"], **{k: test[k] for k in ("null_mean", "null_std", "z_score", "p_value")})
    return out


def behaviour_table(matrices: Mapping[str, xr.DataArray], probes: Mapping[str, pd.DataFrame],
                    domains: Mapping[str, str | None] | None = None, **kwargs) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`behaviour_link` for every dataset that has both a similarity matrix and a non-empty probe
    table. Returns (one row per dataset, one row per dataset and model pair). ``domains`` (dataset ->
    ``single``/``multi``, the datasets' ``domain`` config key) fills the ``domain`` column (empty if unknown)."""
    links, pairs = [], []
    for dataset, matrix in matrices.items():
        probe = probes.get(dataset)
        if probe is None or not len(probe):
            continue
        accuracy = pd.Series(probe["accuracy"].to_numpy(dtype=np.float64), index=probe["model"].astype(str))
        link = behaviour_link(matrix, accuracy, **kwargs)
        links.append({"metric": matrix.attrs.get("metric", ""), "dataset": dataset,
                      "domain": (domains or {}).get(dataset) or "", **link})
        table = behaviour_pairs(matrix, accuracy)
        table.insert(0, "dataset", dataset)
        pairs.append(table)
    link_columns = ["metric", "dataset", "domain", "rho", "null_mean", "null_std", "z_score", "p_value", "n_models", "n_pairs",
                    "n_permutations", "alternative"]
    pair_columns = ["dataset", "model_i", "model_j", "similarity", "accuracy_difference"]
    return (pd.DataFrame(links, columns=link_columns),
            pd.concat(pairs, ignore_index=True)[pair_columns] if pairs else pd.DataFrame(columns=pair_columns))
