"""The ``competence`` analysis: how good each model is at its own job, to set against its alignment.

:func:`competence_table` (the rule's numbers): per model, k-NN and linear-probe accuracy of the last layer
on labelled stimuli; for causal language models the bits per byte on the one fixed text of the embed step
(``text_bits_per_byte``: the competence measure, the same text for every model) and the mean bits per byte
on the captions (``bits_per_byte``: noisy on 3-6-token captions, shown beside it).

A labelled dataset with a single class has nothing to classify: its vision models get no accuracy rows and
a warning says so; a ``k`` of at least the number of stimuli is an error (never silently clipped).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import xarray as xr

from ..metrics._checks import as_features, check_k
from . import MODEL_FIELDS, labels_of


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


def text_bits_per_byte(embeddings: xr.Dataset) -> float | None:
    """A causal LM's bits per byte on the fixed competence text (attr ``text_bits_per_byte`` of its embedding
    store, written by :func:`convergence.embed.extract`); ``None`` when the store has none."""
    info = embeddings.attrs.get("text_bits_per_byte")
    if info is None:
        return None
    if not isinstance(info, Mapping) or "bits_per_byte" not in info:
        raise ValueError(f"the embedding store of {embeddings.attrs.get('model', '?')!r} has a malformed "
                         f"'text_bits_per_byte' attr (expected a mapping with 'bits_per_byte'): {info!r}")
    value = float(info["bits_per_byte"])
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"text bits per byte must be finite and positive; got {value}")
    return value


def competence_table(
    stimuli: xr.Dataset,
    stores: Mapping[str, xr.Dataset],
    *,
    k: int = 10,
    seed: int = 0,
    model_labels: Mapping[str, Mapping[str, str]] | None = None,
) -> pd.DataFrame:
    """Per model: k-NN and linear-probe accuracy of its last layer on labelled stimuli (vision); bits per byte
    on the fixed text (``text_bits_per_byte``) and mean bits per byte on the captions (causal LMs). Tidy: one row per (model, measure). Model labels come
    from ``model_labels`` where given, else from the store's provenance (``labels_of``)."""
    rows, one_class = [], []
    labels = stimuli["label"].to_series() if "label" in stimuli else None
    for name, ds in stores.items():
        info = {"model": name, **labels_of(ds, (model_labels or {}).get(name))}
        layer = ds.attrs["layers"][-1]
        if labels is not None and info["modality"] == "vision":
            x = ds[layer].values
            y = labels.reindex([str(s) for s in ds["stimulus"].values]).values
            counts = pd.Series(y).value_counts()
            if len(counts) < 2:  # one class: nothing to classify
                one_class.append(name)
                continue
            if not 1 <= k <= len(y) - 1:
                raise ValueError(f"competence k={k}: the k-NN classifier needs more than k stimuli, but dataset "
                                 f"{stimuli.attrs.get('dataset', '?')!r} has {len(y)}; allowed: 1 <= k <= "
                                 f"{len(y) - 1} (config competence.k)")
            smallest = int(counts.min())
            rows.append({**info, "measure": "knn_accuracy", "layer": layer,
                         "value": knn_accuracy(x, y, k=k)})
            if smallest >= 2:  # stratified folds need every class at least twice; 5 folds when classes allow
                rows.append({**info, "measure": "linear_probe_accuracy", "layer": layer,
                             "value": linear_probe_accuracy(x, y, seed=seed, n_splits=min(5, smallest))})
        text_bpb = text_bits_per_byte(ds)
        if text_bpb is not None:
            rows.append({**info, "measure": "text_bits_per_byte", "layer": "", "value": text_bpb})
        if "bits_per_byte" in ds.data_vars:
            rows.append({**info, "measure": "bits_per_byte", "layer": "", "value": mean_bits_per_byte(ds)})
    if one_class:
        import warnings

        classes = sorted(set(labels.values.tolist()))
        warnings.warn(f"competence: dataset {stimuli.attrs.get('dataset', '?')!r} has one class ({classes}), so "
                      f"no k-NN or probe accuracy is computed for its vision models {one_class}; give it at least "
                      "two classes (image_folder: two or more class sub-folders) to measure competence",
                      stacklevel=2)
    return pd.DataFrame(rows, columns=["model", *MODEL_FIELDS, "measure", "layer", "value"])
