"""Mutual, Jaccard and cycle k-NN over all layer pairs from cached neighbour lists (``metrics.knn``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from ...metrics import KNN_KINDS, knn_terms
from ...metrics._checks import check_choice, check_int
from ..products import ModelProducts
from .base import PairMetric, _batch_size, _code_finder, _inverse_perms, _permuted_neighbours, _Prepared

@dataclass
class _KnnPrepared(_Prepared):
    nbrs: np.ndarray  # (L, n, k)


class KnnMetric(PairMetric):
    """mutual / Jaccard / cycle kNN from the cached neighbour lists (``metrics.knn`` for definitions).

    All layer pairs of a model pair come from ONE sparse product: the neighbour relation of every layer is
    a 0/1 matrix over (stimulus i, neighbour j) pairs, so ``S_a @ S_b^T`` with rows (layer, i) of model a
    and columns layers of model b counts ``|N_a(i) ∩ N_b(i)|`` for all layer pairs and stimuli at once
    (cycle kNN uses the transposed relation of model a). Nothing is sorted per pair.
    """

    bootstrap_method = (
        "query jackknife: the per-stimulus terms (overlap of stimulus i's neighbour sets) of the stimuli kept "
        "are averaged; the neighbour graphs stay those of the full stimulus set, because recomputing them on "
        "fewer stimuli would change n and with it the chance level k/(n-1)"
    )

    def __init__(self, kind: str, k: int = 10):
        self.kind = check_choice(kind, KNN_KINDS, "kind")
        self.k = check_int(k, "k", minimum=1)

    def params(self) -> dict:
        return {"k": self.k}

    def min_stimuli(self) -> int:
        return self.k + 1

    def prepare(self, model: ModelProducts) -> _KnnPrepared:
        if self.k > model.k_max:
            raise ValueError(
                f"{self.name} with k={self.k} needs {self.k} neighbours per stimulus but the kernel store of "
                f"{model.name!r} holds k={model.k_max}; rebuild the kernels with k >= {self.k}"
            )
        return _KnnPrepared(model, len(model.layers), model.n, model.neighbors[:, :, : self.k].astype(np.int64))

    def _codes(self, p: _KnnPrepared, transposed: bool) -> np.ndarray:
        i = np.arange(p.n, dtype=np.int64)[None, :, None]
        return p.nbrs * p.n + i if transposed else i * p.n + p.nbrs

    def score_matrices(self, prepared: dict, pairs) -> dict:
        side_a = sorted({a for a, _ in pairs})
        side_b = sorted({b for _, b in pairs})
        transposed_a = self.kind == "cycle"
        codes = [self._codes(prepared[m], transposed_a).ravel() for m in side_a]
        codes += [self._codes(prepared[m], False).ravel() for m in side_b]
        space = np.unique(np.concatenate(codes))  # compact column index: n^2 never materialises
        c = space.size
        rows_a, cols_b = {}, {}
        for m in side_a:
            p = prepared[m]
            row = (np.arange(p.n_layers)[:, None, None] * p.n + np.arange(p.n)[None, :, None])
            if transposed_a:  # row (l, i) holds pairs (i, j) with i in N_l(j)
                row = np.arange(p.n_layers)[:, None, None] * p.n + p.nbrs
            row = np.broadcast_to(row, p.nbrs.shape).ravel()
            col = np.searchsorted(space, self._codes(p, transposed_a).ravel())
            rows_a[m] = sp.csr_matrix((np.ones(row.size, np.float32), (row, col)), shape=(p.n_layers * p.n, c))
        for m in side_b:
            p = prepared[m]
            layer = np.broadcast_to(np.arange(p.n_layers)[:, None, None], p.nbrs.shape).ravel()
            col = np.searchsorted(space, self._codes(p, False).ravel())
            cols_b[m] = sp.csr_matrix((np.ones(layer.size, np.float32), (col, layer)), shape=(c, p.n_layers))
        out = {}
        for a, b in pairs:
            pa, pb = prepared[a], prepared[b]
            # exact integer counts; averaged in float64 like the null's, so that equal scores compare equal
            counts = (rows_a[a] @ cols_b[b]).toarray().astype(np.float64).reshape(pa.n_layers, pa.n, pb.n_layers)
            out[(a, b)] = self._from_counts(counts, axis=1)
        return out

    def _from_counts(self, counts: np.ndarray, axis: int) -> np.ndarray:
        k = self.k
        if self.kind == "mutual":
            return counts.mean(axis=axis) / k
        if self.kind == "jaccard":
            return (counts / (2 * k - counts)).mean(axis=axis)
        return (counts > 0).mean(axis=axis)

    def null(self, pa, la, pb, lb, perms):
        na, nb = pa.nbrs[la], pb.nbrs[lb]
        n, k = na.shape
        out = np.empty(perms.shape[0])
        step = max(1, int(2e7 // (n * k * k)))
        for start in range(0, perms.shape[0], step):
            perm = perms[start : start + step]
            inv = _inverse_perms(perm)
            # stimulus i of the permuted model b is its stimulus perm[i]; relabel its neighbours
            nbp = inv[np.arange(perm.shape[0])[:, None, None], nb[perm]]
            if self.kind == "cycle":
                back = na[nbp]  # (P, n, k, k)
                hit = (back == np.arange(n)[None, :, None, None]).any(axis=(2, 3))
                out[start : start + step] = hit.mean(axis=1)
            else:
                counts = (na[None, :, :, None] == nbp[:, :, None, :]).sum(axis=(2, 3))
                out[start : start + step] = self._from_counts(counts, axis=1)
        return out

    def null_matrices(self, pa, pb, perms, valid=None):
        """All layer pairs per permutation from sparse products, as ``score_matrices``: the neighbour codes of
        model a (all layers) are fixed, those of the permuted model b (all layers, a batch of permutations)
        form the rows of a sparse matrix, and ``B_perm @ A^T`` counts the shared neighbours of every
        (draw, layer_b, layer_a, stimulus); only stimuli with a shared neighbour appear in it."""
        n, k, n_a, n_b = pa.n, self.k, pa.n_layers, pb.n_layers
        transposed = self.kind == "cycle"
        codes_a = self._codes(pa, transposed)
        if transposed:  # row (l, j) holds pairs (j, i) with j in N_l(i)
            rows_a = np.arange(n_a)[:, None, None] * n + pa.nbrs
        else:
            rows_a = np.broadcast_to(np.arange(n_a)[:, None, None] * n + np.arange(n)[None, :, None], pa.nbrs.shape)
        space, pos_a = np.unique(codes_a.ravel(), return_inverse=True)
        c = space.size
        a_t = sp.csr_matrix((np.ones(pos_a.size, np.float32), (pos_a.ravel(), rows_a.ravel())), shape=(c, n_a * n))
        find = _code_finder(space, n)
        out = np.empty((perms.shape[0], n_a, n_b))
        step = _batch_size(n_b * n * k)
        stim = np.arange(n, dtype=np.int64)[None, None, :, None] * n
        for start in range(0, perms.shape[0], step):
            perm = perms[start : start + step]
            n_p = perm.shape[0]
            codes_b = (stim + _permuted_neighbours(pb.nbrs, perm)).reshape(n_p * n_b, n * k)  # rows (draw, layer)
            pos, hit = find(codes_b)
            indptr = np.concatenate([[0], np.cumsum(hit.sum(axis=1))])
            b_rows = sp.csr_matrix((np.ones(int(indptr[-1]), np.float32), pos[hit], indptr), shape=(n_p * n_b, c))
            shared = (b_rows @ a_t).tocsr()  # (draw, layer_b) x (layer_a, stimulus): neighbour counts
            row = np.repeat(np.arange(n_p * n_b), np.diff(shared.indptr))
            counts = shared.data.astype(np.float64)
            if self.kind == "mutual":
                value = counts / (n * k)
            elif self.kind == "jaccard":
                value = counts / (2 * k - counts) / n
            else:
                value = np.full(counts.size, 1.0 / n)
            key = row * n_a + shared.indices // n
            sums = np.bincount(key, weights=value, minlength=n_p * n_b * n_a)
            out[start : start + n_p] = sums.reshape(n_p, n_b, n_a).transpose(0, 2, 1)
        return out

    def bootstrap(self, pa, la, pb, lb, weights):
        terms = knn_terms(pa.nbrs[la], pb.nbrs[lb], self.kind)
        w = np.asarray(weights, dtype=np.float64)
        return w @ terms / w.sum(axis=1)
