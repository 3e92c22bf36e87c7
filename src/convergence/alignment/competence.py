"""Model competence (how good a model is at its own job), to set against its alignment (the PRH plot)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import xarray as xr

from ..metrics._checks import as_features, check_k


def _labels(labels, n: int) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.size != n:
        raise ValueError(f"labels must be a 1-D array with one label per stimulus ({n}); got shape {labels.shape}")
    if pd.isna(labels).any():
        raise ValueError("labels hold missing values")
    return labels


def knn_accuracy(features, labels, k: int = 10) -> float:
    """Leave-one-out k-nearest-neighbour classification accuracy.

    Each stimulus is classified by a majority vote of its k nearest other stimuli by cosine similarity
    (features are L2-normalised here); a tied vote goes to the tied label whose nearest member ranks
    highest.

    Parameters
    ----------
    features : array (n, d)
    labels : array (n,)
    k : int
        ``1 <= k <= n - 1``.

    Returns
    -------
    float in [0, 1]
    """
    from ..metrics import knn_indices, l2_normalise

    x = l2_normalise(as_features(features, "features"), "features")
    y = _labels(labels, x.shape[0])
    k = check_k(k, x.shape[0])
    classes, codes = np.unique(y, return_inverse=True)
    nbrs = knn_indices(x, k)
    votes = np.zeros((x.shape[0], classes.size))
    rank_bonus = (k - np.arange(k)) / (k * (k + 1))  # < 1 in total: breaks ties toward nearer neighbours
    np.add.at(votes, (np.arange(x.shape[0])[:, None], codes[nbrs]), 1.0 + rank_bonus[None, :])
    return float(np.mean(votes.argmax(axis=1) == codes))


def linear_probe_accuracy(features, labels, seed: int = 0, *, n_splits: int = 5, C: float = 1.0) -> float:
    """Cross-validated accuracy of a multinomial logistic-regression probe on frozen features.

    Stratified ``n_splits``-fold split (shuffled with ``seed``); features standardised on each training
    fold; L2-regularised logistic regression (inverse strength ``C``). Returns the mean held-out accuracy.
    Every class needs at least ``n_splits`` stimuli.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = as_features(features, "features")
    y = _labels(labels, x.shape[0])
    classes, counts = np.unique(y, return_counts=True)
    if classes.size < 2:
        raise ValueError("a linear probe needs at least 2 classes")
    if isinstance(n_splits, bool) or not isinstance(n_splits, (int, np.integer)) or n_splits < 2:
        raise ValueError(f"n_splits must be an integer >= 2; got {n_splits!r}")
    if counts.min() < n_splits:
        raise ValueError(f"class {classes[counts.argmin()]!r} has {counts.min()} stimuli; n_splits={n_splits} "
                         "needs at least that many per class")
    probe = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=2000))
    folds = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    return float(np.mean(cross_val_score(probe, x, y, cv=folds)))


def mean_bits_per_byte(embeddings: xr.Dataset) -> float:
    """Mean bits-per-byte of a causal language model on the stimuli (variable ``bits_per_byte`` of its
    embedding store); competence is ``1 - bits_per_byte``."""
    if "bits_per_byte" not in embeddings.data_vars:
        raise ValueError(f"the embedding store of {embeddings.attrs.get('model', '?')!r} has no 'bits_per_byte' "
                         "variable (only causal language models record it)")
    values = np.asarray(embeddings["bits_per_byte"].values, dtype=np.float64)
    if not np.isfinite(values).all():
        raise ValueError("bits_per_byte holds NaN/Inf values")
    return float(values.mean())


def alignment_vs_competence(scores: xr.Dataset, competence: Mapping[str, float] | pd.Series, reference: str,
                            summary: str = "best") -> pd.DataFrame:
    """One row per model: its alignment to ``reference`` and its competence (the PRH plot's numbers).

    ``reference`` may be a ``model_a`` (the models are then the ``model_b`` entries) or a ``model_b``.
    Columns: model, competence, alignment, ci_low, ci_high, null_mean, p_value. Models without a
    competence value are left out; the reference itself is left out.
    """
    competence = pd.Series(competence, dtype=np.float64)
    if reference in scores["model_a"].values:
        sub = scores.sel(model_a=reference, summary=summary)
        models = [str(m) for m in sub["model_b"].values]
        dim = "model_b"
    elif reference in scores["model_b"].values:
        sub = scores.sel(model_b=reference, summary=summary)
        models = [str(m) for m in sub["model_a"].values]
        dim = "model_a"
    else:
        raise ValueError(f"reference {reference!r} is not a model of these scores")
    rows = []
    for m in models:
        if m == reference or m not in competence.index:
            continue
        at = sub.sel({dim: m})
        rows.append({"model": m, "competence": float(competence[m]), "alignment": float(at["summary_score"]),
                     "ci_low": float(at["ci_low"]), "ci_high": float(at["ci_high"]),
                     "null_mean": float(at["null_mean"]), "p_value": float(at["p_value"])})
    return pd.DataFrame(rows, columns=["model", "competence", "alignment", "ci_low", "ci_high", "null_mean", "p_value"])


def linear_fit(x, y) -> dict:
    """Least-squares line ``y = slope x + intercept`` and Pearson r of finite pairs (needs >= 2 points)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 2 or np.ptp(x[ok]) == 0:
        raise ValueError(f"a line needs at least 2 points with distinct x; got {int(ok.sum())}")
    slope, intercept = np.polyfit(x[ok], y[ok], 1)
    r = float(np.corrcoef(x[ok], y[ok])[0, 1]) if np.ptp(y[ok]) > 0 else np.nan
    return {"slope": float(slope), "intercept": float(intercept), "r": r, "n": int(ok.sum())}
