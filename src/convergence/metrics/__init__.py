"""Representational similarity metrics for ONE pair of representations (numpy, float64 inside).

Every function takes feature matrices of the same n stimuli in the same row order (join on stimulus ids
before calling) and raises ``ValueError`` naming the bad value for bad input: NaN/Inf features, mismatched
row counts, ``k`` outside ``[1, n - 1]``, unknown options, and a representation constant across stimuli
(the same message for every measure). Features are scaled by an exact power of two before anything is
squared, so a scale-invariant measure gives the same value for features scaled by 1e200 or 1e-200 (see
``_checks`` for both conventions; the all-pairs engines score a constant layer NaN instead of raising).

- ``preprocess``: the PRH outlier clamp and per-stimulus L2 normalisation (``prh_preprocess``).
- ``knn``: neighbour lists and the kNN scores ``mutual_knn``, ``jaccard_knn``, ``cycle_knn``.
- ``search``: the torch tiles of the exact neighbour search (CUDA or CPU) and the approximate search
  (faiss IVF-Flat) with its measured recall; imports neither torch nor faiss until called.
- ``cka``: ``hsic`` (biased, unbiased), ``cka`` (linear, RBF), ``cka_linear_features``, ``cknna``.
- ``subspace``: ``svcca``, ``procrustes_distance``.
- ``rsa``: ``rdm``, ``rsa``.
- ``registry``: every measure declared once (``METRICS``, ``get_metric``): its pair function here, its
  all-pairs engine, what it reads from a kernel store, parameters, range and direction.

All-pairs computation over many models and layers from cached per-model products lives in
``convergence.pairwise``; it reuses the building blocks exported here.
"""

from .cka import (
    KERNELS,
    centre_gram,
    cka,
    cka_from_grams,
    cka_linear_features,
    cknna,
    cknna_hsic,
    hsic,
    hsic_from_products,
    linear_kernel,
    median_sigma,
    rbf_kernel,
    rbf_sigma,
    squared_distances,
)
from .knn import KNN_KINDS, cycle_knn, jaccard_knn, knn_indices, knn_terms, mutual_knn, reciprocal_neighbors
from .preprocess import PREPROCESSING, l2_normalise, outlier_clip_value, preprocess_layers, prh_preprocess
from .rsa import RDM_COMPARISONS, RDM_DISTANCES, rdm, rsa, standardised_upper
from .subspace import (
    leading_components,
    principal_axes,
    procrustes_basis,
    procrustes_distance,
    procrustes_from_bases,
    svcca,
    svcca_basis,
    svcca_from_bases,
)
from .registry import METRIC_NAMES, METRICS, Metric, get_metric

__all__ = [
    "KERNELS",
    "KNN_KINDS",
    "METRICS",
    "METRIC_NAMES",
    "Metric",
    "PREPROCESSING",
    "RDM_COMPARISONS",
    "RDM_DISTANCES",
    "centre_gram",
    "cka",
    "cka_from_grams",
    "cka_linear_features",
    "cknna",
    "cknna_hsic",
    "cycle_knn",
    "get_metric",
    "hsic",
    "hsic_from_products",
    "jaccard_knn",
    "knn_indices",
    "knn_terms",
    "leading_components",
    "l2_normalise",
    "linear_kernel",
    "median_sigma",
    "mutual_knn",
    "outlier_clip_value",
    "principal_axes",
    "preprocess_layers",
    "prh_preprocess",
    "procrustes_basis",
    "procrustes_distance",
    "procrustes_from_bases",
    "rbf_kernel",
    "rbf_sigma",
    "rdm",
    "reciprocal_neighbors",
    "rsa",
    "squared_distances",
    "standardised_upper",
    "svcca",
    "svcca_basis",
    "svcca_from_bases",
]
