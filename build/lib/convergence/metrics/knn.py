"""Nearest-neighbour alignment: mutual kNN, Jaccard kNN and cycle kNN.

Neighbours are taken by inner product of the given features (callers pass L2-normalised features, so this
is cosine similarity); a stimulus is never its own neighbour. ``N_X(i)`` is the set of the k stimuli with
the largest ``<x_i, x_j>``, ``j != i``; ties are broken towards the lower row index.
"""

from __future__ import annotations

import numpy as np

from ._checks import as_features, as_pair, check_choice, check_k

KNN_KINDS = ("mutual", "jaccard", "cycle")


def knn_indices(x, k: int, *, block_rows: int = 1024) -> np.ndarray:
    """The k nearest neighbours of every stimulus by inner product, self excluded.

    Parameters
    ----------
    x : array (n, d)
        Features (L2-normalised for cosine neighbours).
    k : int
        Number of neighbours, ``1 <= k <= n - 1``.
    block_rows : int
        Rows of the (block_rows, n) similarity block held at once: memory is ``8 * block_rows * n`` bytes,
        never n x n.

    Returns
    -------
    array (n, k) of int64
        Row indices, most similar first; ties go to the lower index.
    """
    x = as_features(x, "features")
    n = x.shape[0]
    k = check_k(k, n)
    out = np.empty((n, k), dtype=np.int64)
    for start in range(0, n, block_rows):
        stop = min(start + block_rows, n)
        sim = x[start:stop] @ x.T
        rows = np.arange(stop - start)
        sim[rows, rows + start] = -np.inf
        out[start:stop] = _top_k_rows(sim, k)
    return out


def _top_k_rows(sim: np.ndarray, k: int) -> np.ndarray:
    """Top-k column indices per row of ``sim``, by decreasing value, ties to the lower index."""
    n = sim.shape[1]
    threshold = np.partition(sim, n - k, axis=1)[:, n - k : n - k + 1]
    above = sim >= threshold
    counts = above.sum(axis=1)
    out = np.empty((sim.shape[0], k), dtype=np.int64)
    exact = counts == k
    if exact.any():
        cand = np.nonzero(above[exact])[1].reshape(-1, k)  # column order == index order
        vals = np.take_along_axis(sim[exact], cand, axis=1)
        order = np.argsort(-vals, axis=1, kind="stable")
        out[exact] = np.take_along_axis(cand, order, axis=1)
    for row in np.flatnonzero(~exact):  # ties straddling the k-th place: rare
        cand = np.flatnonzero(above[row])
        order = np.argsort(-sim[row, cand], kind="stable")
        out[row] = cand[order[:k]]
    return out


def _check_neighbors(nbrs_a, nbrs_b) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(nbrs_a)
    b = np.asarray(nbrs_b)
    if a.ndim != 2 or b.ndim != 2 or a.shape != b.shape:
        raise ValueError(f"neighbour lists must both be (n, k) with equal shapes; got {a.shape} and {b.shape}")
    if not (np.issubdtype(a.dtype, np.integer) and np.issubdtype(b.dtype, np.integer)):
        raise ValueError("neighbour lists must hold integer row indices")
    n = a.shape[0]
    for arr in (a, b):
        if arr.size and (arr.min() < 0 or arr.max() >= n):
            raise ValueError(f"neighbour indices must lie in [0, {n - 1}]")
    return a, b


def reciprocal_neighbors(nbrs) -> np.ndarray:
    """``r[i, p] = True`` iff ``i`` is itself among the neighbours of its neighbour ``nbrs[i, p]``.

    Parameters
    ----------
    nbrs : array (n, k) of int

    Returns
    -------
    array (n, k) of bool
    """
    nbrs = np.asarray(nbrs)
    return (nbrs[nbrs] == np.arange(nbrs.shape[0])[:, None, None]).any(axis=2)


def knn_terms(nbrs_a, nbrs_b, kind: str = "mutual") -> np.ndarray:
    """Per-stimulus terms whose mean is the kNN score.

    Parameters
    ----------
    nbrs_a, nbrs_b : arrays (n, k) of int
        Neighbour lists of the two representations (``knn_indices``), rows = the same stimuli.
    kind : {"mutual", "jaccard", "cycle"}
        ``mutual``: ``|N_A(i) ∩ N_B(i)| / k``; ``jaccard``: ``|N_A(i) ∩ N_B(i)| / |N_A(i) ∪ N_B(i)|``;
        ``cycle``: 1 if some ``j`` in ``N_B(i)`` has ``i`` in ``N_A(j)``, else 0.

    Returns
    -------
    array (n,) of float64
    """
    check_choice(kind, KNN_KINDS, "kind")
    a, b = _check_neighbors(nbrs_a, nbrs_b)
    n, k = a.shape
    if kind == "cycle":
        back = a[b]  # (n, k, k): A-neighbours of each B-neighbour of i
        return (back == np.arange(n)[:, None, None]).any(axis=(1, 2)).astype(np.float64)
    counts = (a[:, :, None] == b[:, None, :]).sum(axis=(1, 2)).astype(np.float64)
    if kind == "mutual":
        return counts / k
    return counts / (2 * k - counts)


def mutual_knn(x, y, k: int = 10) -> float:
    """Mutual k-nearest-neighbour alignment (Huh et al. 2024).

    ``score = mean_i |N_X(i) ∩ N_Y(i)| / k`` with neighbours by inner product, self excluded.
    Equal to 1 when both representations give the same neighbour sets; for independent representations
    its expectation is ``k / (n - 1)``.

    Parameters
    ----------
    x : array (n, d_x)
    y : array (n, d_y)
        The same n stimuli in the same order.
    k : int
        Neighbours per stimulus, ``1 <= k <= n - 1`` (10 in the PRH paper).

    Returns
    -------
    float in [0, 1]
    """
    x, y = as_pair(x, y)
    k = check_k(k, x.shape[0])
    return float(knn_terms(knn_indices(x, k), knn_indices(y, k), "mutual").mean())


def jaccard_knn(x, y, k: int = 10) -> float:
    """Jaccard kNN alignment: ``mean_i |N_X(i) ∩ N_Y(i)| / |N_X(i) ∪ N_Y(i)|``.

    With ``c_i = |N_X(i) ∩ N_Y(i)|`` the union has ``2k - c_i`` members, so each term is
    ``c_i / (2k - c_i)`` in [0, 1]. Shapes and ``k`` as in ``mutual_knn``.
    """
    x, y = as_pair(x, y)
    k = check_k(k, x.shape[0])
    return float(knn_terms(knn_indices(x, k), knn_indices(y, k), "jaccard").mean())


def cycle_knn(x, y, k: int = 10) -> float:
    """Cycle kNN alignment, as defined in the PRH code (``knn_A[knn_B]``).

    Start at stimulus i, step to each of its k neighbours ``j`` in ``y``, step back through the k
    neighbours of ``j`` in ``x``; the cycle closes when it returns to i:

    ``score = mean_i 1[ exists j in N_Y(i) with i in N_X(j) ]``.

    Not symmetric in (x, y). Equal to 1 for identical neighbour graphs whenever every stimulus is among the
    neighbours of one of its neighbours. Shapes and ``k`` as in ``mutual_knn``.
    """
    x, y = as_pair(x, y)
    k = check_k(k, x.shape[0])
    return float(knn_terms(knn_indices(x, k), knn_indices(y, k), "cycle").mean())
