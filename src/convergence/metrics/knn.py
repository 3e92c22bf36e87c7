"""Nearest-neighbour alignment: mutual kNN, Jaccard kNN and cycle kNN.

Neighbours are taken by inner product of the given features (callers pass L2-normalised features, so this
is cosine similarity); a stimulus is never its own neighbour. ``N_X(i)`` is the set of the k stimuli with
the largest ``<x_i, x_j>``, ``j != i``; ties are broken towards the lower row index.
"""

from __future__ import annotations

import numpy as np

from ._checks import as_features, as_pair, as_scaled_features, check_choice, check_int, check_k, power_of_two_scaled

KNN_KINDS = ("mutual", "jaccard", "cycle")


#: Above this many stimuli :func:`knn_indices` searches candidates in float32 (see there).
EXACT_MAX_N = 8192
#: Extra float32 candidates per stimulus beyond k, re-ranked in float64.
CANDIDATE_MARGIN = 16
#: Stimuli per side of the float32 similarity tiles of the candidate search.
TILE = 2048


#: The float32 candidate searches of :func:`knn_indices` above ``exact_max_n``.
BACKENDS = ("numpy", "torch", "faiss")


def knn_indices(x, k: int, *, block_rows: int = 1024, exact_max_n: int = EXACT_MAX_N, tile: int | None = None,
                backend: str = "numpy", device: str = "cpu") -> np.ndarray:
    """The k nearest neighbours of every stimulus by inner product, self excluded.

    Up to ``exact_max_n`` stimuli, float64 similarities in row blocks and an exact partial sort. Above it,
    the same neighbours faster: the ``k + CANDIDATE_MARGIN`` best candidates of every stimulus by float32
    inner products, from square tiles of ``X @ X.T`` on and above the diagonal only (the matrix is
    symmetric, so each tile serves its rows and its columns: about half the bare matmul's work) merged under
    a rising per-row threshold; with ``backend="torch"``, from the same symmetric tiles with a per-tile top-k
    in torch on ``device`` (a GPU when the job has one; ``metrics.search.torch_tile_candidates``); with
    ``backend="faiss"``, from ``faiss.IndexFlatIP`` (exact, but it computes the whole matrix). A float32 inner product differs from the exact one by at most
    ``bound = gamma |x_i| max_j |x_j|``, ``gamma = (d + 2) u / (1 - (d + 2) u)``, ``u = 2^-24``. So (1) a row
    whose k + 1 best float32 values are all more than two bounds apart has the exact neighbours in the exact
    order; (2) any other row is re-ranked by float64 inner products of its candidates and kept when its k-th
    value beats the best excluded candidate's float32 value by more than the bounds, with no near-tie at the
    k-th place; (3) the rest (ties, duplicated stimuli) are recomputed by the exact float64 path. The
    neighbour lists are therefore always the exact path's, ties included.

    Parameters
    ----------
    x : array (n, d)
        Features (L2-normalised for cosine neighbours).
    k : int
        Number of neighbours, ``1 <= k <= n - 1``.
    block_rows : int
        Rows of the (block_rows, n) float64 similarity block of the exact path: memory is
        ``8 * block_rows * n`` bytes, never n x n.
    exact_max_n : int
        Largest n searched by the float64 path alone.
    tile : int, optional
        Stimuli per side of the float32 tiles above ``exact_max_n`` (``4 * tile**2`` bytes each; numpy: 2,048,
        a 16 MB tile, was the fastest measured at 50,000 stimuli; torch: 4,096 on CUDA, 2,048 on the CPU).
    backend : "numpy", "torch" or "faiss"
        The float32 candidate search above ``exact_max_n``; the neighbour lists are the same for all three.
        "faiss" needs ``faiss-cpu`` (the ``faiss`` extra); on 2 cores it took 1.6x the time of the symmetric
        tiles (``benchmarks/scale.py``).
    device : str
        The torch backend's device: "cpu", "cuda" or "cuda:<index>" (an error when CUDA is absent).

    Returns
    -------
    array (n, k) of int64
        Row indices, most similar first; ties go to the lower index.
    """
    x = power_of_two_scaled(as_features(x, "features"))[0]  # exact: the order of inner products is kept
    n = x.shape[0]
    k = check_k(k, n)
    check_choice(backend, BACKENDS, "backend")
    tile = None if tile is None else check_int(tile, "tile", minimum=1)
    if n > exact_max_n and k + CANDIDATE_MARGIN < n - 1:
        return _knn_by_candidates(x, k, block_rows=block_rows, tile=tile, backend=backend, device=device)
    return _knn_exact(x, k, np.arange(n), block_rows=block_rows)


def _knn_exact(x: np.ndarray, k: int, rows: np.ndarray, *, block_rows: int = 1024) -> np.ndarray:
    """The float64 path for the stimuli ``rows`` (all of x are candidates)."""
    out = np.empty((rows.size, k), dtype=np.int64)
    for start in range(0, rows.size, block_rows):
        block = rows[start : start + block_rows]
        sim = x[block] @ x.T
        sim[np.arange(block.size), block] = -np.inf
        out[start : start + block.size] = _top_k_rows(sim, k)
    return out


def _float32_candidates(x32: np.ndarray, m: int, backend: str, tile: int | None, device: str = "cpu"
                        ) -> tuple[np.ndarray, np.ndarray]:
    """The m best (float32 value, index) of every row of x32 against all rows, self included."""
    if backend == "torch":
        from .search import torch_tile_candidates

        return torch_tile_candidates(x32, m, tile, device)
    if backend == "faiss":
        try:
            import faiss
        except ImportError:
            raise ImportError("knn_indices(backend='faiss') needs faiss: pip install faiss-cpu") from None
        index = faiss.IndexFlatIP(x32.shape[1])
        index.add(x32)
        values, cand = index.search(x32, m)
        return values.astype(np.float64), cand.astype(np.int64)
    return _symmetric_tile_candidates(x32, m, tile or TILE)


def _symmetric_tile_candidates(x32: np.ndarray, m: int, tile: int) -> tuple[np.ndarray, np.ndarray]:
    """``_float32_candidates`` by square tiles of ``X @ X.T``, each computed once for both of its sides.

    The similarity matrix is symmetric, so only the tiles on and above the diagonal are multiplied (about
    half the bare matmul's work). Every row keeps its m best (value, index) so far and, as its threshold, the
    smallest of them; a tile's entries above the threshold of their row (or, seen from the tile below the
    diagonal, of their column) are merged in. A diagonal tile first sets its rows' thresholds just below their
    m-th best value within the tile, so later tiles pass few entries. Thresholds only rise, so any entry left
    out is at most the final smallest kept value: what the float32 bound checks of ``_knn_by_candidates``
    rely on.
    """
    n = x32.shape[0]
    edges = np.linspace(0, n, -(-n // tile) + 1).astype(np.int64)
    tiles = list(zip(edges[:-1], edges[1:]))
    values = np.full((n, m), -np.inf, dtype=np.float32)
    cand = np.full((n, m), -1, dtype=np.int64)
    threshold = np.full(n, -np.inf, dtype=np.float32)
    # the diagonal tiles first, so that every row has a threshold before the first tile off the diagonal
    pairs = [(a, a) for a in range(len(tiles))] + [(a, b) for a in range(len(tiles)) for b in range(a + 1, len(tiles))]
    for a, b in pairs:
        (row_start, row_stop), (col_start, col_stop) = tiles[a], tiles[b]
        sim = x32[row_start:row_stop] @ x32[col_start:col_stop].T
        if a == b and sim.shape[1] > m:
            mth = np.partition(sim, sim.shape[1] - m, axis=1)[:, sim.shape[1] - m]
            threshold[row_start:row_stop] = np.nextafter(mth, np.float32(-np.inf))
        # one pass over the tile with a scalar bound, then the per-row and per-column thresholds
        lowest = min(threshold[row_start:row_stop].min(), threshold[col_start:col_stop].min())
        flat = np.flatnonzero(sim > lowest)
        rows, cols = np.divmod(flat, sim.shape[1])
        rows += row_start
        cols += col_start
        sims = sim.ravel()[flat]
        keep = sims > threshold[rows]
        _merge_candidates(values, cand, threshold, rows[keep], cols[keep], sims[keep])
        if a != b:
            keep = sims > threshold[cols]
            _merge_candidates(values, cand, threshold, cols[keep], rows[keep], sims[keep])
    return values.astype(np.float64), cand


def _merge_candidates(values, cand, threshold, rows, cols, sims) -> None:
    """Merge the entries ``(rows, cols, sims)`` into every row's m best (``values``, ``cand``), in place."""
    if rows.size == 0:
        return
    order = np.argsort(rows, kind="stable")
    rows, cols, sims = rows[order], cols[order], sims[order]
    touched, starts, counts = np.unique(rows, return_index=True, return_counts=True)
    m = values.shape[1]
    width = m + counts.max()
    pooled = np.full((touched.size, width), -np.inf, dtype=np.float32)
    pooled_idx = np.full((touched.size, width), -1, dtype=np.int64)
    pooled[:, :m] = values[touched]
    pooled_idx[:, :m] = cand[touched]
    slot = m + np.arange(rows.size) - np.repeat(starts, counts)
    owner = np.repeat(np.arange(touched.size), counts)
    pooled[owner, slot] = sims
    pooled_idx[owner, slot] = cols
    best = np.argpartition(pooled, width - m, axis=1)[:, width - m :]
    values[touched] = np.take_along_axis(pooled, best, axis=1)
    cand[touched] = np.take_along_axis(pooled_idx, best, axis=1)
    threshold[touched] = values[touched].min(axis=1)


def _knn_by_candidates(x: np.ndarray, k: int, *, block_rows: int, tile: int | None, backend: str,
                       device: str = "cpu") -> np.ndarray:
    n, d = x.shape
    m = k + CANDIDATE_MARGIN + 1  # + 1: the stimulus itself is among its own candidates
    x32 = np.ascontiguousarray(x, dtype=np.float32)
    values32, cand = _float32_candidates(x32, m, backend, tile, device)
    del x32
    norms = np.linalg.norm(x, axis=1)
    u = 2.0**-24
    gamma = (d + 2) * u / (1 - (d + 2) * u)
    bound = gamma * norms * norms.max()  # per row: the largest |float32 - exact| of its inner products
    is_self = cand == np.arange(n)[:, None]
    # Tier 1: a row whose k + 1 best float32 values are all more than 2 bounds apart has the exact order
    # (and no non-candidate, at most the (k+1)-th value + bound, can reach its k-th place)
    v = np.where(is_self, -np.inf, values32)
    ranked = np.lexsort((cand, -v), axis=1)
    top = np.take_along_axis(v, ranked[:, : k + 1], axis=1)
    clear = ((top[:, :-1] - top[:, 1:]) > 2 * bound[:, None]).all(axis=1) & is_self.any(axis=1)
    out = np.take_along_axis(cand, ranked[:, :k], axis=1)
    rest = np.flatnonzero(~clear)
    if rest.size:
        out[rest] = _rerank_float64(x, k, rest, cand[rest], values32[rest], is_self[rest], bound[rest], block_rows)
    return out


def _rerank_float64(x, k, rows, cand, values32, is_self, bound, block_rows) -> np.ndarray:
    """Tier 2 for ``rows``: candidates re-ranked by float64 inner products; a row is kept when its k-th value
    beats the best excluded candidate's float32 value by more than the bounds and has no near-tie at the
    k-th place, else (tier 3) recomputed by the exact float64 path."""
    excluded_best = values32.min(axis=1)  # the best float32 value any non-candidate can have
    exact64 = np.where(is_self, -np.inf, _rowwise_dots(x, cand, rows=rows))
    ranked = np.lexsort((cand, -exact64), axis=1)  # by value, ties to the lower index
    out = np.take_along_axis(cand, ranked[:, :k], axis=1)
    kth = np.take_along_axis(exact64, ranked[:, k - 1 : k], axis=1)[:, 0]
    next_value = np.take_along_axis(exact64, ranked[:, k : k + 1], axis=1)[:, 0]
    doubtful = ~(kth - bound > excluded_best + bound)
    # a (near-)tie at the k-th place among the candidates: the float64 path's own rounding decides it
    doubtful |= kth - next_value <= 1e-12 * np.maximum(np.abs(kth), 1.0)
    # rows whose self was not a candidate (duplicates fill its place) are doubtful too
    doubtful |= ~is_self.any(axis=1)
    if doubtful.any():
        out[doubtful] = _knn_exact(x, k, rows[doubtful], block_rows=block_rows)
    return out


def _rowwise_dots(x: np.ndarray, cand: np.ndarray, *, rows: np.ndarray, block: int = 256) -> np.ndarray:
    """``out[r, j] = <x_rows[r], x_cand[r, j]>`` in float64, in blocks of rows (memory ``8 block m d`` bytes)."""
    out = np.empty(cand.shape)
    for start in range(0, rows.size, block):
        stop = min(start + block, rows.size)
        out[start:stop] = np.einsum("id,ijd->ij", x[rows[start:stop]], x[cand[start:stop]])
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


def _knn_pair(x, y, measure: str) -> tuple[np.ndarray, np.ndarray]:
    """Two feature matrices of the same stimuli, each varying across stimuli and safely scaled: neighbours by
    inner product do not change when a representation is multiplied by a positive number."""
    x, y = as_pair(x, y)
    return as_scaled_features(x, "X", measure), as_scaled_features(y, "Y", measure)


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
    x, y = _knn_pair(x, y, "mutual k-NN")
    k = check_k(k, x.shape[0])
    return float(knn_terms(knn_indices(x, k), knn_indices(y, k), "mutual").mean())


def jaccard_knn(x, y, k: int = 10) -> float:
    """Jaccard kNN alignment: ``mean_i |N_X(i) ∩ N_Y(i)| / |N_X(i) ∪ N_Y(i)|``.

    With ``c_i = |N_X(i) ∩ N_Y(i)|`` the union has ``2k - c_i`` members, so each term is
    ``c_i / (2k - c_i)`` in [0, 1]. Shapes and ``k`` as in ``mutual_knn``.
    """
    x, y = _knn_pair(x, y, "Jaccard k-NN")
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
    x, y = _knn_pair(x, y, "cycle k-NN")
    k = check_k(k, x.shape[0])
    return float(knn_terms(knn_indices(x, k), knn_indices(y, k), "cycle").mean())
