"""Neighbour searches beyond the numpy tiles of :mod:`convergence.metrics.knn`.

- :func:`torch_tile_candidates`: the float32 candidates of the exact search by square tiles of ``X @ X.T``
  with torch, on CUDA or the CPU. ``knn_indices(backend="torch")`` re-ranks them in float64 exactly as it
  does the numpy tiles' candidates, so its neighbour lists are the exact path's, ties included.
- :func:`approximate_knn`: neighbours from a faiss IVF-Flat index (recall below 1, measured, never assumed), and
  :func:`recall_at_k`, the recall of such lists against the exact lists of a seeded sample of rows.

torch and faiss are imported inside the functions that need them: importing this module (as building the
workflow's DAG does) loads neither.
"""

from __future__ import annotations

import numpy as np

from ._checks import as_features, check_int, check_k

#: Stimuli per side of a torch tile: 4,096 on CUDA (a 64 MB tile), 2,048 on the CPU (the numpy path's best).
TORCH_TILE = {"cuda": 4096, "cpu": 2048}


def torch_device(device: str):
    """``torch.device(device)``; CUDA asked for but absent is an error, never a silent fallback."""
    import torch

    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"kernels.device={device!r} but torch sees no CUDA device; use device: cpu or run the "
                           "kernel job where a GPU is visible")
    if dev.type not in ("cuda", "cpu"):
        raise ValueError(f"device={device!r} is not supported; allowed: cpu, cuda, cuda:<index>")
    return dev


def torch_tile_candidates(x32: np.ndarray, m: int, tile: int | None = None, device: str = "cpu"
                          ) -> tuple[np.ndarray, np.ndarray]:
    """The m best (float32 value, index) of every row of ``x32`` against all rows, self included, by torch.

    Square tiles of ``X @ X.T`` on and above the diagonal only (the matrix is symmetric): a tile's top-m along
    its rows is merged into the running top-m of its row block, and, off the diagonal, its top-m along its
    columns into that of its column block, so each tile is multiplied once for both sides (about half the
    bare matmul's work). Every row ends with exactly its m largest float32 values (ties at the m-th place
    broken arbitrarily): any value left out is at most the smallest kept one, which is all the float64
    checks of ``knn_indices`` need. Float32 matrix products in IEEE float32 (TF32 switched off for the call),
    so the round-off bound of ``knn_indices`` holds. Memory on the device: the features (``4 n d`` bytes),
    one tile (``4 tile^2``) and the running lists (``12 n m``).
    """
    import torch

    dev = torch_device(device)
    n = x32.shape[0]
    tile = check_int(tile or TORCH_TILE[dev.type], "tile", minimum=1)
    edges = np.linspace(0, n, -(-n // tile) + 1).astype(np.int64)
    blocks = list(zip(edges[:-1].tolist(), edges[1:].tolist()))
    tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        with torch.no_grad():
            x = torch.from_numpy(np.ascontiguousarray(x32, dtype=np.float32)).to(dev)
            values = torch.full((n, m), -torch.inf, dtype=torch.float32, device=dev)
            cand = torch.full((n, m), -1, dtype=torch.int64, device=dev)

            def merge(start, stop, new_values, new_cand):
                pooled = torch.cat([values[start:stop], new_values], dim=1)
                best = torch.topk(pooled, m, dim=1)
                values[start:stop] = best.values
                cand[start:stop] = torch.gather(torch.cat([cand[start:stop], new_cand], dim=1), 1, best.indices)

            for a, (row_start, row_stop) in enumerate(blocks):
                rows = x[row_start:row_stop]
                for col_start, col_stop in blocks[a:]:
                    sim = rows @ x[col_start:col_stop].T
                    top = torch.topk(sim, min(m, sim.shape[1]), dim=1)
                    merge(row_start, row_stop, top.values, top.indices + col_start)
                    if col_start != row_start:
                        top = torch.topk(sim, min(m, sim.shape[0]), dim=0)
                        merge(col_start, col_stop, top.values.T, top.indices.T + row_start)
            return values.cpu().numpy().astype(np.float64), cand.cpu().numpy()
    finally:
        torch.backends.cuda.matmul.allow_tf32 = tf32


# ------------------------------------------------------------------------------------- approximate


#: Above this many dimensions the approximate search works in a PCA subspace of this size (then re-ranks).
PCA_DIM = 128


def ivf_parameters(n: int, k: int, d: int = PCA_DIM) -> dict:
    """The faiss parameters of the approximate search for ``n`` stimuli, ``k`` neighbours, ``d`` dimensions.

    - ``pca``: features with more than ``PCA_DIM`` = 128 dimensions are searched in their leading 128
      principal axes (faiss ``PCAMatrix``, fitted on the training sample): 6x fewer multiply-adds at 768-d;
    - ``nlist``: 4 sqrt(n) inverted lists rounded to a power of two (faiss's guideline 4 sqrt(n) ..
      16 sqrt(n)), at most n / 39; 1,024 at 100k, 4,096 at 1M. k-means (10 iterations) on a seeded sample of
      ``39 nlist`` rows (faiss's minimum per list), the PCA on the same sample;
    - ``nprobe`` = ``max(2 k, 16, nlist / 64)`` lists scanned per query (at least 1/64 of the lists: with a
      fixed 20 the recall@10 of clustered rows fell from 0.9999 at 100k to 0.98 at 1M; measured at 1M on
      one trained index, nprobe 20 / 32 / 48 / 64 gave 0.982 / 0.987 / 0.991 / 0.993, the search costing
      in proportion), and ``candidates`` = ``4 k`` results per query re-ranked by exact float64 inner
      products in the full space (so the PCA only has to bring the true neighbours into the 4 k, not order
      them).

    The recall this gives depends on the data (near 1 for clustered embeddings, low for isotropic noise of
    high intrinsic dimension: ``benchmarks/scale.py``); every store records its own, measured.
    """
    nlist = int(2 ** round(np.log2(max(4.0 * np.sqrt(max(n, 1)), 1.0))))
    nlist = max(1, min(nlist, n // 39, 65536))
    return {"nlist": nlist, "nprobe": int(min(nlist, max(2 * k, 16, nlist // 64))),
            "train_rows": int(min(n, 39 * nlist)), "niter": 10, "pca": int(PCA_DIM) if d > PCA_DIM else 0,
            "candidates": int(min(n - 1, 4 * k))}


def approximate_knn(x, k: int, *, seed: int = 0, threads: int | None = None) -> tuple[np.ndarray, dict]:
    """Approximate k nearest neighbours by inner product (self excluded) from a faiss IVF-Flat index.

    The index (parameters: :func:`ivf_parameters`) is searched for ``candidates + 1`` results per stimulus
    and they are re-ranked by exact float64 inner products, self excluded, ties to the lower index: what is found is
    in the exact order, what the probed lists miss is missed. Returns ``(neighbours (n, k) int64,
    parameters)``. Float32 input is used as is (no float64 copy of the features is made). Memory: the
    features, the index's copy (``4 n pca`` bytes, or ``4 n d`` without PCA), the ``(n, 4 k + 1)`` results.
    faiss runs on OpenMP threads (``threads``, default all): on a machine shared with other jobs set
    ``OMP_WAIT_POLICY=PASSIVE`` before Python starts, or its spinning threads run many times slower.
    """
    try:
        import faiss
    except ImportError:
        raise ImportError("approximate neighbours need faiss: pip install faiss-cpu") from None
    x = _features(x)
    n, d = x.shape
    k = check_k(k, n)
    params = ivf_parameters(n, k, d)
    if threads:
        faiss.omp_set_num_threads(int(threads))
    x32 = np.ascontiguousarray(x, dtype=np.float32)
    index, ivf = ivf_index(x32, params, seed=seed)
    ivf.nprobe = params["nprobe"]
    m = params["candidates"] + 1
    found = np.empty((n, m), dtype=np.int64)
    for start in range(0, n, 65536):
        _, labels = index.search(x32[start : start + 65536], m)
        found[start : start + labels.shape[0]] = labels
    del index, ivf
    out = np.empty((n, k), dtype=np.int64)
    for start in range(0, n, 512):  # re-ranking gathers 8 * 512 * (candidates + 1) * d bytes per block
        stop = min(n, start + 512)
        out[start:stop] = rerank(x, np.arange(start, stop), found[start:stop], k)
    params.update(method="faiss IndexIVFFlat (inner product; after PCA when pca > 0), results re-ranked in float64",
                  faiss_version=str(faiss.__version__), seed=int(seed))
    return out, params


def ivf_index(x32: np.ndarray, params: dict, *, seed: int = 0):
    """The trained and filled faiss index of :func:`approximate_knn` for float32 rows ``x32`` and
    :func:`ivf_parameters` ``params``: ``(index to search, its IndexIVFFlat)`` (set ``nprobe`` on the second).
    k-means and the PCA are fitted on a seeded sample of ``train_rows`` rows."""
    import faiss

    n, d = x32.shape
    train = x32[np.sort(np.random.default_rng(seed).choice(n, size=params["train_rows"], replace=False))]
    dim = params["pca"] or d
    quantizer = faiss.IndexFlatIP(dim)
    ivf = faiss.IndexIVFFlat(quantizer, dim, params["nlist"], faiss.METRIC_INNER_PRODUCT)
    ivf.cp.seed, ivf.cp.niter = int(seed), params["niter"]
    index = faiss.IndexPreTransform(faiss.PCAMatrix(d, dim), ivf) if params["pca"] else ivf
    index.train(train)
    index.add(x32)
    return index, ivf


def rerank(x: np.ndarray, rows: np.ndarray, cand: np.ndarray, k: int) -> np.ndarray:
    """The k best of each row's candidates ``cand`` (r, m) (faiss results, -1 for none) by exact float64 inner
    products, the row itself excluded, ties to the lower index; rows with fewer than k other candidates get
    their exact lists (:func:`exact_rows`). Returns (r, k) int64."""
    n = x.shape[0]
    ok = (cand >= 0) & (cand != rows[:, None])
    dots = np.einsum("id,ijd->ij", x[rows].astype(np.float64), x[np.maximum(cand, 0)].astype(np.float64))
    sims = np.where(ok, dots, -np.inf)
    ranked = np.lexsort((np.where(ok, cand, n), -sims), axis=1)[:, :k]
    picked = np.take_along_axis(cand, ranked, axis=1)
    short = ~np.take_along_axis(ok, ranked, axis=1).all(axis=1)
    if short.any():  # fewer than k others found (tiny lists): those rows by the exact path
        picked[short] = exact_rows(x, rows[short], k)
    return picked


def recall_at_k(found: np.ndarray, exact: np.ndarray) -> float:
    """Recall@k of neighbour lists ``found`` against the exact lists ``exact`` of the same rows, both (r, k):
    the share of the exact neighbours that ``found`` holds, ``sum_i |found_i ∩ exact_i| / (r k)``."""
    found, exact = np.asarray(found), np.asarray(exact)
    if found.shape != exact.shape or found.ndim != 2:
        raise ValueError(f"recall needs two (rows, k) lists of equal shape; got {found.shape} and {exact.shape}")
    hits = (found[:, :, None] == exact[:, None, :]).any(axis=2).sum()
    return float(hits / exact.size)


def sampled_recall(x, found: np.ndarray, *, sample: int = 2000, seed: int = 0) -> tuple[float, np.ndarray]:
    """Recall@k of the neighbour lists ``found`` (n, k) of ``x`` on a seeded sample of ``sample`` rows (all rows
    when n is smaller; ``np.random.default_rng(seed).choice(n, sample, replace=False)``), against their exact
    neighbours (:func:`exact_rows`). Returns ``(recall, sampled rows)``; cost ``sample * n * d``."""
    x = _features(x)
    n = x.shape[0]
    found = np.asarray(found)
    sample = check_int(sample, "recall_sample", minimum=1)
    rows = np.sort(np.random.default_rng(seed).choice(n, size=min(sample, n), replace=False))
    return recall_at_k(found[rows], exact_rows(x, rows, found.shape[1])), rows


def exact_rows(x: np.ndarray, rows: np.ndarray, k: int, *, chunk: int = 16384) -> np.ndarray:
    """The exact k nearest neighbours of the stimuli ``rows`` by float64 inner product, self excluded, ties to
    the lower index (as ``knn_indices``), from column chunks of ``chunk`` stimuli cast to float64 one at a
    time: memory ``8 (rows + d) chunk`` bytes, never a float64 copy of all of ``x``."""
    n = x.shape[0]
    rows = np.asarray(rows, dtype=np.int64)
    query = x[rows].astype(np.float64)
    best_v = np.full((rows.size, 0), -np.inf)
    best_i = np.empty((rows.size, 0), dtype=np.int64)
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        sims = query @ x[start:stop].astype(np.float64).T
        own = (rows >= start) & (rows < stop)
        sims[np.flatnonzero(own), rows[own] - start] = -np.inf
        cols = np.broadcast_to(np.arange(start, stop), sims.shape)
        if sims.shape[1] > k:  # the chunk's k best (ties at the k-th place all kept, then cut below)
            kth = np.partition(sims, sims.shape[1] - k, axis=1)[:, sims.shape[1] - k : sims.shape[1] - k + 1]
            keep = sims >= kth
            width = keep.sum(axis=1).max()
            order = np.argsort(~keep, axis=1, kind="stable")[:, :width]
            sims, cols = np.take_along_axis(sims, order, axis=1), np.take_along_axis(cols, order, axis=1)
        pooled_v = np.concatenate([best_v, sims], axis=1)
        pooled_i = np.concatenate([best_i, cols], axis=1)
        ranked = np.lexsort((pooled_i, -pooled_v), axis=1)[:, :k]
        best_v = np.take_along_axis(pooled_v, ranked, axis=1)
        best_i = np.take_along_axis(pooled_i, ranked, axis=1)
    return best_i


def _features(x) -> np.ndarray:
    """Finite (n, d) features, float32 kept as float32 (the approximate path never needs float64 copies)."""
    arr = np.asarray(x)
    return np.ascontiguousarray(arr) if arr.dtype == np.float32 and np.isfinite(arr).all() and arr.ndim == 2 \
        else as_features(arr, "features")
