"""Representational similarity analysis: representational dissimilarity matrices and their correlation."""

from __future__ import annotations

import numpy as np

from ._checks import as_features, as_pair, as_scaled_features, check_choice, power_of_two_scaled

RDM_DISTANCES = ("correlation", "euclidean", "sqeuclidean")
RDM_COMPARISONS = ("spearman", "pearson")


def rdm(x, distance: str = "correlation", name: str = "X") -> np.ndarray:
    """Representational dissimilarity matrix (n, n), zero diagonal.

    Parameters
    ----------
    x : array (n, d)
    distance : {"correlation", "euclidean", "sqeuclidean"}
        ``correlation``: ``1 - pearson(x_i, x_j)`` across features (needs d >= 2 and no constant row);
        ``euclidean``: ``||x_i - x_j||``; ``sqeuclidean``: ``||x_i - x_j||^2 / d``, the squared distance per
        feature, which is what rsatoolbox calls "euclidean". Spearman comparisons of the two agree (one is a
        monotone function of the other); Pearson comparisons do not.
    """
    check_choice(distance, RDM_DISTANCES, "distance")
    x, e = power_of_two_scaled(as_features(x, name))  # exact; scaled back below (correlation: no scale)
    if distance == "correlation":
        if x.shape[1] < 2:
            raise ValueError(f"{name}: the correlation distance needs at least 2 features; got {x.shape[1]}")
        z = x - x.mean(axis=1, keepdims=True)
        norms = np.linalg.norm(z, axis=1, keepdims=True)
        flat = np.flatnonzero(norms[:, 0] == 0)
        if flat.size:
            raise ValueError(f"{name}: {flat.size} stimulus vectors are constant (first: row {int(flat[0])}); "
                             "their correlation distance is undefined")
        z = z / norms
        d = 1.0 - z @ z.T
    else:
        sq = np.einsum("ij,ij->i", x, x)
        d = np.maximum(sq[:, None] + sq[None, :] - 2.0 * (x @ x.T), 0.0)
        d = np.ldexp(np.sqrt(d), e) if distance == "euclidean" else np.ldexp(d, 2 * e) / x.shape[1]
    np.fill_diagonal(d, 0.0)
    return d


def standardised_upper(d: np.ndarray, compare: str = "spearman", name: str = "RDM") -> np.ndarray:
    """The upper triangle of a dissimilarity matrix, ranked (Spearman) or not, centred and unit-norm.

    Returns the full symmetric (n, n) matrix ``Z`` with zero diagonal whose upper triangle holds the
    standardised values, so that the Pearson correlation of two upper triangles is ``<Z_a, Z_b>_F / 2``.
    """
    check_choice(compare, RDM_COMPARISONS, "compare")
    n = d.shape[0]
    iu = np.triu_indices(n, k=1)
    v = d[iu].astype(np.float64)
    if compare == "spearman":
        from scipy.stats import rankdata  # imported here: building the workflow's DAG imports this package

        v = rankdata(v)
    v = v - v.mean()
    norm = np.linalg.norm(v)
    if norm == 0:
        raise ValueError(f"{name} is constant across stimulus pairs; its correlation with another RDM is undefined")
    z = np.zeros((n, n))
    z[iu] = v / norm
    return z + z.T


def rsa(x, y, *, distance: str = "correlation", compare: str = "spearman") -> float:
    """Representational similarity analysis (Kriegeskorte et al. 2008).

    Build each representation's RDM (``rdm``) and correlate their upper triangles (i < j):
    ``spearman`` (ranks, ties averaged) or ``pearson``.

    Parameters
    ----------
    x : array (n, d_x)
    y : array (n, d_y)
    distance : {"correlation", "euclidean"}
    compare : {"spearman", "pearson"}

    Returns
    -------
    float in [-1, 1]
        1 for representations with the same dissimilarity ordering.
    """
    x, y = as_pair(x, y)
    x, y = as_scaled_features(x, "X", "RSA"), as_scaled_features(y, "Y", "RSA")  # RSA ignores the scale
    za = standardised_upper(rdm(x, distance, "X"), compare, "RDM of X")
    zb = standardised_upper(rdm(y, distance, "Y"), compare, "RDM of Y")
    return float(np.clip(0.5 * np.sum(za * zb), -1.0, 1.0))
