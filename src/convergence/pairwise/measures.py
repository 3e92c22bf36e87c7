"""Pairwise metrics over many models and layers, split into what one model gives alone and what needs two.

Every metric object

- ``prepare(model)`` -> per-layer products of one model (once per model per call; never per pair),
- ``score_matrices(prepared, pairs)`` -> for each (model_a, model_b) the (L_a, L_b) score matrix,
  vectorised over layers (and, for Gram-based metrics, over all models at once),
- ``null(pa, la, pb, lb, perms)`` -> the score of one layer pair with model b's stimulus order permuted,
- ``null_matrices(pa, pb, perms, valid)`` -> the scores of ALL layer pairs under each permutation (one
  permutation shared by every layer pair of a draw), shape (P, L_a, L_b): the null of a summary that
  searches over layer pairs (``best``). Vectorised over layer pairs: kNN (one sparse product per batch
  of permutations), CKNNA (only the neighbour pairs both models share), CKA and RSA with n x n kernels
  (flattened inner products against the permuted kernels of all layers). SVCCA, Procrustes and CKA in
  feature space call ``null`` per layer pair: each draw costs as much as the observed all-pairs scoring,
- ``bootstrap(pa, la, pb, lb, weights)`` -> the score of one layer pair on reweighted stimuli, one per row
  of ``weights`` (stimulus multiplicities: the 0/1 rows of the jackknife replicates of
  ``convergence.inference.jackknife_weights``, which leave a group of stimuli out, or resamples; a row may
  sum to less than n and every formula uses its own sum as the number of stimuli).

``make_metric(name, **params)`` builds one from its name. Which engine serves which measure, with its
name, parameters, direction and symmetry, is declared once in :mod:`convergence.metrics.registry`; the
engines reuse the pair functions' building blocks (``convergence.metrics``), so each measure has one
definition and this module only organises it over many models, layers, permutations and resamples.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from ..inference import resample_indices
from ..metrics import (
    KNN_KINDS,
    cknna_hsic,
    hsic_from_products,
    knn_terms,
    leading_components,
    principal_axes,
    procrustes_basis,
    procrustes_from_bases,
    rbf_sigma,
    rdm,
    reciprocal_neighbors,
    squared_distances,
    standardised_upper,
    svcca_basis,
    svcca_from_bases,
)
from ..metrics._checks import check_choice, check_fraction, check_int, check_positive
from ..metrics.registry import METRIC_NAMES, get_metric
from ..metrics.rsa import RDM_COMPARISONS, RDM_DISTANCES
from .products import ModelProducts

METRICS = METRIC_NAMES  # the names, from the registry

_BLOCK_BYTES = 256 * 2**20  # working memory of one block of the all-pairs matrix products
_KNN_LOOKUP_MAX = 2**25  # kNN nulls map neighbour codes (i * n + j) to columns by a table up to n^2 this big


class PairMetric:
    """Base class; see the module docstring. ``name``, ``symmetric`` and ``higher_is_better`` are set from
    the registry by ``make_metric``."""

    name: str = ""
    symmetric: bool = True
    higher_is_better: bool = True
    null_method = "the same metric with model_b's stimulus order permuted (model_a's kept)"
    bootstrap_method = "delete-a-group jackknife over stimuli; the metric recomputed on the stimuli kept"

    def params(self) -> dict:
        return {}

    def min_stimuli(self) -> int:
        return 3

    def max_stimuli(self) -> int | None:
        """Most stimuli the metric compares at once; above it ``pairwise`` uses a seeded subsample (None: any n)."""
        return None

    def prepare(self, model: ModelProducts):
        raise NotImplementedError

    def score_matrices(self, prepared: dict, pairs: Sequence[tuple[str, str]]) -> dict:
        return {(a, b): self._pair_matrix(prepared[a], prepared[b]) for a, b in pairs}

    def _pair_matrix(self, pa, pb) -> np.ndarray:
        out = np.empty((pa.n_layers, pb.n_layers))
        for i in range(pa.n_layers):
            for j in range(pb.n_layers):
                out[i, j] = self._pair_score(pa, i, pb, j)
        return out

    def _pair_score(self, pa, la, pb, lb) -> float:
        raise NotImplementedError

    def null(self, pa, la, pb, lb, perms: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def null_matrices(self, pa, pb, perms: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
        """Null scores of every layer pair, (P, L_a, L_b): draw t permutes model b's stimuli by ``perms[t]``
        for ALL layer pairs at once. Layer pairs where ``valid`` (L_a, L_b) is False may be skipped (NaN)."""
        out = np.full((perms.shape[0], pa.n_layers, pb.n_layers), np.nan)
        for i in range(pa.n_layers):
            for j in range(pb.n_layers):
                if valid is None or valid[i, j]:
                    out[:, i, j] = self.null(pa, i, pb, j, perms)
        return out

    def bootstrap(self, pa, la, pb, lb, weights: np.ndarray) -> np.ndarray:
        raise NotImplementedError


@dataclass
class _Prepared:
    model: ModelProducts
    n_layers: int
    n: int


def _inverse_perms(perms: np.ndarray) -> np.ndarray:
    inv = np.empty_like(perms)
    rows = np.arange(perms.shape[0])[:, None]
    inv[rows, perms] = np.arange(perms.shape[1])[None, :]
    return inv


def _permuted_inners(pa, pb, perms: np.ndarray) -> np.ndarray:
    """``<A_i, P_t B_j P_t^T>_F`` for the SYMMETRIC n x n kernels of every layer of two ``_GramPrepared``
    (their ``sources``) and every permutation ``perms[t]`` (``(P_t B P_t^T)[r, s] = B[perm[r], perm[s]]``):
    (P, L_a, L_b).

    The model with fewer layers is the one permuted (``<A, P B P^T> = <P^T A P, B>``) and held in memory
    (float32, as stored); the other is read in row blocks, each once. One matrix product per row block and
    permutation covers all layer pairs. Symmetry halves the work as in ``_flat_inner``: rows ``[s, e)``
    take the columns ``[s, n)`` only, those right of the block counted twice.
    """
    if pa.n_layers < pb.n_layers:
        return _permuted_inners(pb, pa, _inverse_perms(perms)).transpose(0, 2, 1)
    la, lb, n = pa.n_layers, pb.n_layers, pa.n
    stack_b = np.stack(pb.matrices) if pb.matrices is not None else np.stack([np.asarray(src(0, n))
                                                                              for src in pb.sources])
    out = np.zeros((perms.shape[0], la, lb))
    rows = max(1, min(n, (_BLOCK_BYTES // 4) // max(1, 8 * (la + lb) * n)))
    for start in range(0, n, rows):
        stop = min(n, start + rows)
        block_a = np.stack([np.asarray(src(start, stop))[:, start:] for src in pa.sources]).astype(np.float64)
        block_a[:, :, stop - start:] *= 2.0
        flat_a = block_a.reshape(la, -1)
        buf = np.empty((lb, stop - start, n - start))
        for t, perm in enumerate(perms):
            np.copyto(buf, np.take(np.take(stack_b, perm[start:stop], axis=1), perm[start:], axis=2))
            out[t] += flat_a @ buf.reshape(lb, -1).T
    return out


def _code_finder(space: np.ndarray, n: int) -> Callable:
    """``find(codes) -> (pos, hit)``: positions of neighbour codes ``i * n + j`` in the sorted ``space`` and
    whether each is there; by a table when n^2 <= ``_KNN_LOOKUP_MAX``, else by binary search."""
    if n * n <= _KNN_LOOKUP_MAX:
        table = np.full(n * n, -1, dtype=np.int32)
        table[space] = np.arange(space.size, dtype=np.int32)

        def find(codes):
            pos = table[codes]
            return pos, pos >= 0
    else:
        def find(codes):
            pos = np.minimum(np.searchsorted(space, codes), space.size - 1)
            return pos, space[pos] == codes
    return find


def _permuted_neighbours(nbrs: np.ndarray, perms: np.ndarray) -> np.ndarray:
    """Neighbour lists (L, n, k) of a model whose stimulus order is permuted by each of ``perms`` (P, n):
    (P, L, n, k). Stimulus i of the permuted model is its stimulus perm[i]; its neighbours are relabelled."""
    inv = _inverse_perms(perms)
    return inv[np.arange(perms.shape[0])[:, None, None, None], nbrs[:, perms].transpose(1, 0, 2, 3)]


def _batch_size(per_draw: int, budget: int = 4_000_000) -> int:
    return max(1, budget // max(1, per_draw))


# ----------------------------------------------------------------------------------------------- kNN


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


# ----------------------------------------------------------------------------------------- Gram-based


def _flat_inner(sources_a: Sequence[Callable], sources_b: Sequence[Callable] | None, n: int):
    """Frobenius inner products of SYMMETRIC n x n matrices given as row-block readers, in one block pass.

    Returns ``(inner (A, B), self_a (A,), self_b (B,))``; with ``sources_b=None`` model b is model a and the
    product is a symmetric rank update. Symmetry halves the work: a row block ``[s, e)`` contributes its
    square ``[s, e) x [s, e)`` once and the part right of it ``[s, e) x [e, n)`` twice (scaled by sqrt 2).
    Memory: one block of ``(A + B) * rows * n`` float64 values (``_BLOCK_BYTES``).
    """
    same = sources_b is None
    sources_b = sources_a if same else sources_b
    total = len(sources_a) + (0 if same else len(sources_b))
    rows = max(1, min(n, _BLOCK_BYTES // max(1, 8 * total * n)))
    inner = np.zeros((len(sources_a), len(sources_b)))
    self_a = np.zeros(len(sources_a))
    self_b = np.zeros(len(sources_b))
    root2 = np.sqrt(2.0)

    def fill(sources, start, stop):
        width = (stop - start) * (n - start)
        buf = np.empty((len(sources), width))
        sq = (stop - start) ** 2
        for r, src in enumerate(sources):
            block = np.asarray(src(start, stop))
            buf[r, :sq] = block[:, start:stop].ravel()
            right = buf[r, sq:].reshape(stop - start, n - stop)
            np.multiply(block[:, stop:], root2, out=right)
        return buf

    for start in range(0, n, rows):
        stop = min(n, start + rows)
        block_a = fill(sources_a, start, stop)
        if same:
            inner += block_a @ block_a.T
        else:
            block_b = fill(sources_b, start, stop)
            inner += block_a @ block_b.T
            self_a += np.einsum("ij,ij->i", block_a, block_a)
            self_b += np.einsum("ij,ij->i", block_b, block_b)
    if same:
        self_a = np.diag(inner).copy()
        self_b = self_a
    return inner, self_a, self_b


def _square_self_inner(xc: np.ndarray) -> float:
    """``||Xc Xc^T||_F^2`` the cheap way round."""
    if xc.shape[1] <= xc.shape[0]:
        return float(np.sum((xc.T @ xc) ** 2))
    return float(np.sum((xc @ xc.T) ** 2))


def _weighted_quadratics(weights: np.ndarray, matrices: Sequence[np.ndarray]) -> list[np.ndarray]:
    """``w^T M w`` for every row ``w`` of ``weights`` and every matrix (batched as matrix products)."""
    return [np.einsum("bi,bi->b", weights @ m, weights) for m in matrices]


@dataclass
class _GramPrepared(_Prepared):
    sources: list | None  # per layer: callable(start, stop) -> rows of the centred kernel; None: feature space
    diag: np.ndarray  # (L, n) diagonal of each centred kernel
    self_inner: np.ndarray | None = None  # (L,) <Kc, Kc>, filled by score_matrices or on demand
    matrices: list | None = None  # in-memory centred kernels (RBF, RSA), float32


class CkaMetric(PairMetric):
    """CKA with a linear or RBF kernel, biased or unbiased HSIC, from cached centred kernels.

    All layer pairs of all model pairs come from one blocked matrix product of the flattened centred
    kernels (``<Kc, Lc>_F`` for every pair); the HSIC needs only that and each kernel's diagonal
    (``metrics.hsic_from_products``). Linear: the stored centred Grams; without them (n above the store's
    ``gram_max_n``) the inner products come from features, ``||Xc^T Yc||_F^2``. RBF: each layer's centred
    kernel is built once from the stored features (needs n <= gram_max_n); a median-rule bandwidth is
    per layer and fixed at its full-set value for nulls and resamples.
    """

    bootstrap_method = (
        "delete-a-group jackknife over stimuli; CKA recomputed exactly on the stimuli kept (kernel rows and "
        "columns of the kept stimuli, re-centred; unbiased HSIC with their own count)"
    )

    def __init__(self, kernel: str = "linear", unbiased: bool = False, sigma: float | None = None,
                 sigma_factor: float | None = None):
        self.kernel = check_choice(kernel, ("linear", "rbf"), "kernel")
        self.unbiased = bool(unbiased)
        if kernel == "linear":
            if sigma is not None or sigma_factor is not None:
                raise ValueError("sigma and sigma_factor apply to cka_rbf only")
        else:
            if (sigma is None) == (sigma_factor is None):
                raise ValueError(f"cka_rbf needs exactly one of sigma (absolute) or sigma_factor (median rule); "
                                 f"got sigma={sigma!r}, sigma_factor={sigma_factor!r}")
            self.sigma = None if sigma is None else check_positive(sigma, "sigma")
            self.sigma_factor = None if sigma_factor is None else check_positive(sigma_factor, "sigma_factor")

    def params(self) -> dict:
        out = {"kernel": self.kernel, "unbiased": int(self.unbiased)}
        if self.kernel == "rbf":
            out.update({"sigma": self.sigma, "sigma_factor": self.sigma_factor})
        return {key: value for key, value in out.items() if value is not None}

    def min_stimuli(self) -> int:
        return 4 if self.unbiased else 3

    def prepare(self, model: ModelProducts) -> _GramPrepared:
        n, n_layers = model.n, len(model.layers)
        if self.kernel == "rbf":
            if n > model.gram_max_n:
                raise ValueError(f"cka_rbf builds n x n kernels; n={n} exceeds gram_max_n={model.gram_max_n} "
                                 f"of {model.name!r} (raise it or use cka_linear)")
            mats = []
            for layer in range(n_layers):
                x = model.features(layer)
                s = rbf_sigma(x, sigma=self.sigma, sigma_factor=self.sigma_factor)
                kc = np.exp(-squared_distances(x) / (2.0 * s**2))
                kc -= kc.mean(axis=0, keepdims=True)
                kc -= kc.mean(axis=1, keepdims=True)
                mats.append(kc.astype(np.float32))
            return _matrix_prepared(model, mats)
        diag = np.stack([np.einsum("ij,ij->i", xc, xc) for xc in map(model.centred_features, range(n_layers))])
        if model.stored_gram:
            sources = [(lambda s, e, l=layer: model.gram_rows(l, s, e)) for layer in range(n_layers)]
            return _GramPrepared(model, n_layers, n, sources, diag)
        if n <= model.gram_max_n:
            mats = [model.gram(layer).astype(np.float32) for layer in range(n_layers)]
            return _matrix_prepared(model, mats)
        self_inner = np.array([_square_self_inner(model.centred_features(layer)) for layer in range(n_layers)])
        return _GramPrepared(model, n_layers, n, None, diag, self_inner)

    def score_matrices(self, prepared: dict, pairs) -> dict:
        names = sorted({m for pair in pairs for m in pair})
        if all(prepared[m].sources is not None for m in names):
            inner = _bulk_inner(prepared, pairs)
        else:
            inner = {pair: self._feature_inner(prepared[pair[0]], prepared[pair[1]]) for pair in pairs}
            for m in names:
                p = prepared[m]
                if p.self_inner is None:
                    p.self_inner = np.array([_square_self_inner(p.model.centred_features(i))
                                             for i in range(p.n_layers)])
        return {(a, b): self._cka(prepared[a], prepared[b], inner[(a, b)]) for a, b in pairs}

    @staticmethod
    def _feature_inner(pa, pb) -> np.ndarray:
        xa = [pa.model.centred_features(i) for i in range(pa.n_layers)]
        xb = [pb.model.centred_features(j) for j in range(pb.n_layers)]
        return np.array([[np.sum((b.T @ a) ** 2) for b in xb] for a in xa])

    def _hsic(self, inner, da, db, n):
        return hsic_from_products(inner, da @ db.T, da.sum(axis=-1)[:, None], db.sum(axis=-1)[None, :], n,
                                  self.unbiased)

    def _cka(self, pa, pb, inner) -> np.ndarray:
        n = pa.n
        hab = self._hsic(inner, pa.diag, pb.diag, n)
        haa, hbb = (hsic_from_products(p.self_inner, np.sum(p.diag**2, axis=1), p.diag.sum(1), p.diag.sum(1), n,
                                       self.unbiased) for p in (pa, pb))
        return _normalise(hab, haa, hbb, f"{self.name} of {pa.model.name!r} vs {pb.model.name!r}")

    def _full(self, p, layer) -> np.ndarray:
        if p.sources is None:
            return None
        return np.asarray(p.sources[layer](0, p.n), dtype=np.float64)

    def _self_hsic(self, p, layer) -> float:
        if p.self_inner is None:
            if p.sources is not None:
                p.self_inner = np.array([np.sum(np.asarray(src(0, p.n), dtype=np.float64) ** 2) for src in p.sources])
            else:
                p.self_inner = np.array([_square_self_inner(p.model.centred_features(i)) for i in range(p.n_layers)])
        d = p.diag[layer]
        return float(hsic_from_products(p.self_inner[layer], d @ d, d.sum(), d.sum(), p.n, self.unbiased))

    def null(self, pa, la, pb, lb, perms):
        n = pa.n
        da, db = pa.diag[la], pb.diag[lb]
        denom = np.sqrt(self._self_hsic(pa, la) * self._self_hsic(pb, lb))
        ka, kb = self._full(pa, la), self._full(pb, lb)
        if ka is None or kb is None:
            xa, xb = pa.model.centred_features(la), pb.model.centred_features(lb)
        out = np.empty(perms.shape[0])
        for t, perm in enumerate(perms):
            inner = np.sum(ka * kb[np.ix_(perm, perm)]) if ka is not None and kb is not None \
                else np.sum((xb[perm].T @ xa) ** 2)
            out[t] = hsic_from_products(inner, da @ db[perm], da.sum(), db.sum(), n, self.unbiased) / denom
        return out

    def null_matrices(self, pa, pb, perms, valid=None):
        """With n x n kernels (stored Grams, RBF, or Grams built in memory): ``<Ka, P Kb P^T>`` of all layer
        pairs per permutation (``_permuted_inners``), then the HSIC and CKA elementwise. In feature space
        (no Gram; n > gram_max_n): per layer pair."""
        if pa.sources is None or pb.sources is None:
            return super().null_matrices(pa, pb, perms, valid)
        n = pa.n
        inner = _permuted_inners(pa, pb, perms)
        diag_dot = np.stack([pa.diag @ pb.diag[:, perm].T for perm in perms])
        hab = hsic_from_products(inner, diag_dot, pa.diag.sum(axis=1)[:, None], pb.diag.sum(axis=1)[None, :], n,
                                 self.unbiased)
        ha = np.array([self._self_hsic(pa, i) for i in range(pa.n_layers)])[:, None]
        hb = np.array([self._self_hsic(pb, j) for j in range(pb.n_layers)])[None, :]
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where((ha > 0) & (hb > 0), hab / np.sqrt(np.abs(ha * hb)), np.nan)

    def bootstrap(self, pa, la, pb, lb, weights):
        ka, kb = self._full(pa, la), self._full(pb, lb)
        if ka is None or kb is None:  # large n, no n x n matrices: recompute in feature space per resample
            from ..metrics import cka_linear_features

            xa, xb = pa.model.features(la), pb.model.features(lb)
            return np.array([_safe(lambda: cka_linear_features(xa[idx], xb[idx], self.unbiased))
                             for idx in map(resample_indices, weights)])
        w = np.asarray(weights, dtype=np.float64)
        n = w.sum(axis=1)  # stimuli per row (with multiplicity)
        qa, qb, qab, qaa, qbb = _weighted_quadratics(w, [ka, kb, ka * kb, ka * ka, kb * kb])
        ra, rb = w @ ka, w @ kb  # (B, n): row sums of the resampled kernels, per original stimulus
        dka, dkb = np.diag(ka), np.diag(kb)

        def hsic(q_xy, q_x, q_y, r_x, r_y, d_x, d_y):
            if not self.unbiased:
                rr = np.einsum("bi,bi->b", w * r_x, r_y)
                return (q_xy - 2.0 / n * rr + q_x * q_y / n**2) / (n - 1) ** 2
            tr = q_xy - w @ (d_x * d_y)
            sx, sy = q_x - w @ d_x, q_y - w @ d_y
            rr = np.einsum("bi,bi->b", w * (r_x - d_x), r_y - d_y)
            return (tr + sx * sy / ((n - 1) * (n - 2)) - 2.0 * rr / (n - 2)) / (n * (n - 3))

        hab = hsic(qab, qa, qb, ra, rb, dka, dkb)
        haa = hsic(qaa, qa, qa, ra, ra, dka, dka)
        hbb = hsic(qbb, qb, qb, rb, rb, dkb, dkb)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where((haa > 0) & (hbb > 0), hab / np.sqrt(np.abs(haa * hbb)), np.nan)


def _bulk_inner(prepared: dict, pairs) -> dict:
    """Frobenius inner products of every layer pair of every model pair from ``prepared[m].sources``, one
    blocked product over all models; also fills each model's ``self_inner``."""
    side_a = sorted({a for a, _ in pairs})
    side_b = sorted({b for _, b in pairs})
    same = side_a == side_b
    src_a = [s for m in side_a for s in prepared[m].sources]
    src_b = None if same else [s for m in side_b for s in prepared[m].sources]
    n = prepared[side_a[0]].n
    inner, self_a, self_b = _flat_inner(src_a, src_b, n)
    off_a = np.cumsum([0] + [prepared[m].n_layers for m in side_a])
    off_b = np.cumsum([0] + [prepared[m].n_layers for m in side_b])
    for i, m in enumerate(side_a):
        prepared[m].self_inner = self_a[off_a[i] : off_a[i + 1]]
    for j, m in enumerate(side_b):
        prepared[m].self_inner = self_b[off_b[j] : off_b[j + 1]]
    ia = {m: i for i, m in enumerate(side_a)}
    ib = {m: j for j, m in enumerate(side_b)}
    return {(a, b): inner[off_a[ia[a]] : off_a[ia[a] + 1], off_b[ib[b]] : off_b[ib[b] + 1]] for a, b in pairs}


def _matrix_prepared(model: ModelProducts, mats: list[np.ndarray]) -> _GramPrepared:
    sources = [(lambda s, e, m=m: m[s:e]) for m in mats]
    diag = np.stack([np.diag(m).astype(np.float64) for m in mats])
    return _GramPrepared(model, len(mats), model.n, sources, diag, matrices=mats)


def _normalise(num, left, right, what: str) -> np.ndarray:
    left = np.asarray(left, dtype=np.float64)[:, None]
    right = np.asarray(right, dtype=np.float64)[None, :]
    ok = (left > 0) & (right > 0)
    if not ok.all():
        warnings.warn(f"{what}: some layers have a non-positive self-similarity (constant across stimuli?); "
                      "their scores are NaN", stacklevel=3)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ok, num / np.sqrt(np.abs(left * right)), np.nan)


def _safe(fn) -> float:
    try:
        return fn()
    except ValueError:
        return np.nan


# ----------------------------------------------------------------------------------------------- CKNNA


@dataclass
class _CknnaPrepared(_Prepared):
    nbrs: np.ndarray  # (L, n, k)
    values: np.ndarray  # (L, n, k): K[i, nbrs[i, p]] of the uncentred linear kernel
    recip: np.ndarray  # (L, n, k) bool
    self_hsic: np.ndarray  # (L,)


class CknnaMetric(PairMetric):
    """CKNNA (``metrics.cknna``) from the cached neighbour lists and the features, O(n k^2) per layer pair.

    Not exactly symmetric (the masked kernels are not symmetric), so both orders are computed.
    """

    bootstrap_method = (
        "delete-a-group jackknife over stimuli; CKNNA recomputed on the stimuli kept with the neighbour "
        "relation of the full set held fixed (a pair (i, j) of kept stimuli is masked in iff j is a neighbour "
        "of i in both models)"
    )

    def __init__(self, k: int = 10):
        self.k = check_int(k, "k", minimum=2)

    def params(self) -> dict:
        return {"k": self.k}

    def min_stimuli(self) -> int:
        return max(4, self.k + 1)

    def prepare(self, model: ModelProducts) -> _CknnaPrepared:
        if self.k > model.k_max:
            raise ValueError(f"cknna with k={self.k} needs {self.k} neighbours per stimulus but the kernel store of "
                             f"{model.name!r} holds k={model.k_max}; rebuild the kernels with k >= {self.k}")
        nbrs = model.neighbors[:, :, : self.k].astype(np.int64)
        values, recip, self_hsic = [], [], []
        for layer in range(len(model.layers)):
            x = model.features(layer)
            v = np.einsum("id,ipd->ip", x, x[nbrs[layer]])
            r = reciprocal_neighbors(nbrs[layer])
            values.append(v)
            recip.append(r)
            self_hsic.append(cknna_hsic(nbrs[layer], v, r, nbrs[layer], v, r))
        return _CknnaPrepared(model, len(model.layers), model.n, nbrs, np.stack(values), np.stack(recip),
                              np.asarray(self_hsic))

    def _pair_matrix(self, pa, pb):
        """Every layer pair at once: the matched-pairs accumulation of :meth:`null_matrices` under the
        identity order (no per-layer-pair call), equal to ``metrics.cknna_hsic`` per pair to round-off."""
        num = self._matched_hsic(pa, pb, np.arange(pa.n, dtype=np.int64)[None])[0]
        return _normalise(num, pa.self_hsic, pb.self_hsic, f"cknna of {pa.model.name!r} vs {pb.model.name!r}")

    def null(self, pa, la, pb, lb, perms):
        args_a = (pa.nbrs[la], pa.values[la], pa.recip[la])
        nb, vb, rb = pb.nbrs[lb], pb.values[lb], pb.recip[lb]
        denom = np.sqrt(pa.self_hsic[la] * pb.self_hsic[lb])
        inv = _inverse_perms(perms)
        return np.array([cknna_hsic(*args_a, inv[t][nb[perm]], vb[perm], rb[perm]) / denom
                         for t, perm in enumerate(perms)])

    def null_matrices(self, pa, pb, perms, valid=None):
        """All layer pairs per permutation (see :meth:`_matched_hsic`), normalised by the layers' self-HSIC."""
        out = self._matched_hsic(pa, pb, perms)
        denom = np.sqrt(np.abs(pa.self_hsic[:, None] * pb.self_hsic[None, :]))
        ok = (pa.self_hsic[:, None] > 0) & (pb.self_hsic[None, :] > 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(ok[None], out / denom[None], np.nan)

    def _matched_hsic(self, pa, pb, perms) -> np.ndarray:
        """The unnormalised CKNNA HSIC of every layer pair under each permutation of model b, (P, L_a, L_b),
        from the MATCHES only: a pair (i, j) enters the masked kernels iff j is a neighbour of i in both
        models (about k^2 / n per stimulus and layer pair under a permutation). The (stimulus, neighbour)
        codes of every layer of model a are indexed once; each (permuted) layer of model b looks its codes
        up, and the terms of ``metrics.cknna_hsic`` (trace, sums, row and column sums) are accumulated per
        (draw, layer_a, layer_b) from the matched pairs with ``np.bincount``."""
        n, k, n_a, n_b = pa.n, self.k, pa.n_layers, pb.n_layers
        stim = np.arange(n, dtype=np.int64)[:, None]
        codes_a = (stim * n + pa.nbrs).ravel()  # (layer_a, i, p) flattened
        order = np.argsort(codes_a, kind="stable")
        space, first, per_code = np.unique(codes_a[order], return_index=True, return_counts=True)
        layer_a = (np.arange(codes_a.size) // (n * k))[order]  # entries grouped by code
        value_a, recip_a = pa.values.ravel()[order], pa.recip.ravel()[order]
        find = _code_finder(space, n)
        out = np.empty((perms.shape[0], n_a, n_b))
        step = _batch_size(n_a * n_b * n)
        for start in range(0, perms.shape[0], step):
            perm = perms[start : start + step]
            n_p = perm.shape[0]
            codes_b = stim[None, None] * n + _permuted_neighbours(pb.nbrs, perm)  # (draw, layer_b, i, q)
            pos, hit = find(codes_b)
            rows = np.flatnonzero(hit)  # flat (draw, layer_b, i, q) of b entries whose code model a has
            code = codes_b.ravel()[rows]
            value_b = pb.values[:, perm].transpose(1, 0, 2, 3).ravel()[rows]
            recip_b = pb.recip[:, perm].transpose(1, 0, 2, 3).ravel()[rows]
            # expand each b entry over the layers of model a that share its code
            at = pos[hit].astype(np.int64)
            count = per_code[at]
            rep = np.repeat(np.arange(rows.size), count)
            idx = np.repeat(first[at], count) + np.arange(rep.size) - np.repeat(np.cumsum(count) - count, count)
            group = (rows[rep] // (n * k)) * n_a + layer_a[idx]  # (draw, layer_b, layer_a)
            i, j = code[rep] // n, code[rep] % n
            p_val, q_val = value_a[idx], value_b[rep]
            both = recip_a[idx] & recip_b[rep]  # (j, i) is masked in as well
            size = n_p * n_b * n_a
            tr_pq = np.bincount(group, weights=p_val * q_val * both, minlength=size)
            sum_p = np.bincount(group, weights=p_val, minlength=size)
            sum_q = np.bincount(group, weights=q_val, minlength=size)
            col_p = np.bincount(group * n + j, weights=p_val, minlength=size * n)
            row_q = np.bincount(group * n + i, weights=q_val, minlength=size * n)
            pq = (col_p * row_q).reshape(size, n).sum(axis=1)
            hsic = (tr_pq + sum_p * sum_q / ((n - 1) * (n - 2)) - 2.0 * pq / (n - 2)) / (n * (n - 3))
            out[start : start + n_p] = hsic.reshape(n_p, n_b, n_a).transpose(0, 2, 1)
        return out

    def bootstrap(self, pa, la, pb, lb, weights):
        a = (pa.nbrs[la], pa.values[la], pa.recip[la])
        b = (pb.nbrs[lb], pb.values[lb], pb.recip[lb])
        out = np.empty(weights.shape[0])
        for t, w in enumerate(np.asarray(weights, dtype=np.float64)):
            kl, kk, ll = cknna_hsic(*a, *b, weights=w), cknna_hsic(*a, *a, weights=w), cknna_hsic(*b, *b, weights=w)
            out[t] = kl / np.sqrt(kk * ll) if kk > 0 and ll > 0 else np.nan
        return out


# -------------------------------------------------------------------------------- SVCCA and Procrustes


@dataclass
class _BasisPrepared(_Prepared):
    bases: list  # per layer (n, r)
    reduced: list  # per layer (n, rank): the centred features in their principal axes (for resampling)


class _BasisMetric(PairMetric):
    """A metric of two per-layer bases (``_BasisPrepared.bases``) scored by ``_score(a, b)``: one small SVD
    per layer pair, and per permutation of model b's rows for the null."""

    @staticmethod
    def _score(a, b) -> float:
        raise NotImplementedError

    def _pair_score(self, pa, la, pb, lb):
        return self._score(pa.bases[la], pb.bases[lb])

    def null(self, pa, la, pb, lb, perms):
        a, b = pa.bases[la], pb.bases[lb]
        return np.array([self._score(a, b[perm]) for perm in perms])


class SvccaMetric(_BasisMetric):
    """SVCCA (``metrics.svcca``): each layer's principal basis once per model, one small SVD per pair."""

    def __init__(self, variance: float = 0.99):
        self.variance = check_fraction(variance, "variance")

    def params(self) -> dict:
        return {"variance": self.variance}

    def min_stimuli(self) -> int:
        return 4

    def prepare(self, model):
        bases, reduced = [], []
        for i in range(len(model.layers)):
            if model.constant[i]:  # a placeholder: pairwise reports NaN for every pair with this layer
                bases.append(np.zeros((model.n, 1)))
                reduced.append(np.zeros((model.n, 1)))
                continue
            u, s = principal_axes(model.centred_features(i))
            if s.size == 0:
                raise ValueError(f"svcca: {model.name!r} layer {model.layers[i]!r} is constant across stimuli")
            bases.append(u[:, : leading_components(s, self.variance)])
            reduced.append(u * s)
        return _BasisPrepared(model, len(bases), model.n, bases, reduced)

    def score_matrices(self, prepared, pairs):
        widest = max(b.shape[1] for p in prepared.values() for b in p.bases)
        n = next(iter(prepared.values())).n
        if 2 * widest > n - 1:
            warnings.warn(f"svcca keeps up to {widest} components for n={n} stimuli; pairs of subspaces with "
                          "r_a + r_b > n - 1 share directions by construction (correlations of 1). Use more stimuli.",
                          stacklevel=3)
        return super().score_matrices(prepared, pairs)

    @staticmethod
    def _score(ua, ub) -> float:
        return svcca_from_bases(ua, ub, warn=False)

    def bootstrap(self, pa, la, pb, lb, weights):
        out = []
        for idx in map(resample_indices, weights):
            ra, rb = pa.reduced[la][idx], pb.reduced[lb][idx]
            out.append(_safe(lambda: self._score(svcca_basis(ra, self.variance), svcca_basis(rb, self.variance))))
        return np.asarray(out)


class ProcrustesMetric(_BasisMetric):
    """Angular Procrustes distance (``metrics.procrustes_distance``); lower is more similar."""

    def min_stimuli(self) -> int:
        return 3

    def prepare(self, model):
        # a constant layer gets a placeholder: pairwise reports NaN for every pair with it
        reduced = [np.zeros((model.n, 1)) if model.constant[i] else procrustes_basis(model.features(i), model.layers[i])
                   for i in range(len(model.layers))]
        return _BasisPrepared(model, len(reduced), model.n, reduced, reduced)

    _score = staticmethod(procrustes_from_bases)

    def bootstrap(self, pa, la, pb, lb, weights):
        return np.array([_safe(lambda: self._score(procrustes_basis(pa.bases[la][idx]), procrustes_basis(pb.bases[lb][idx])))
                         for idx in map(resample_indices, weights)])


# ------------------------------------------------------------------------------------------------ RSA


class RsaMetric(PairMetric):
    """RSA (``metrics.rsa``): each layer's standardised (ranked) RDM once per model (n x n, float32, needs
    n <= gram_max_n); all pairs from one blocked matrix product (Pearson of upper triangles = half the
    Frobenius inner product of the standardised symmetric matrices)."""

    bootstrap_method = (
        "delete-a-group jackknife over stimuli; the RDM correlation recomputed over the pairs of stimuli kept "
        "as a Pearson correlation of the full-set (ranked) dissimilarities; ranks are not recomputed"
    )

    #: RDMs are n x n: above this many stimuli ``pairwise`` compares a seeded subsample of this size.
    max_n = 5000

    def max_stimuli(self) -> int | None:
        return self.max_n

    def __init__(self, distance: str = "correlation", compare: str = "spearman"):
        self.distance = check_choice(distance, RDM_DISTANCES, "distance")
        self.compare = check_choice(compare, RDM_COMPARISONS, "compare")

    def params(self) -> dict:
        return {"distance": self.distance, "compare": self.compare}

    def min_stimuli(self) -> int:
        return 3

    def prepare(self, model):
        if model.n > model.gram_max_n:
            raise ValueError(f"rsa builds n x n RDMs; n={model.n} exceeds gram_max_n={model.gram_max_n} "
                             f"of {model.name!r}")
        mats = [np.zeros((model.n, model.n), np.float32) if model.constant[i]  # placeholder; pairwise: NaN
                else standardised_upper(rdm(model.features(i), self.distance, model.layers[i]), self.compare,
                                        f"RDM of {model.name}:{model.layers[i]}").astype(np.float32)
                for i in range(len(model.layers))]
        return _matrix_prepared(model, mats)

    def score_matrices(self, prepared, pairs):
        inner = _bulk_inner(prepared, pairs)
        return {pair: np.clip(0.5 * value, -1.0, 1.0) for pair, value in inner.items()}

    def null(self, pa, la, pb, lb, perms):
        za = pa.matrices[la].astype(np.float64)
        zb = pb.matrices[lb].astype(np.float64)
        return np.array([0.5 * np.sum(za * zb[np.ix_(perm, perm)]) for perm in perms])

    def null_matrices(self, pa, pb, perms, valid=None):
        return 0.5 * _permuted_inners(pa, pb, perms)

    def bootstrap(self, pa, la, pb, lb, weights):
        za = pa.matrices[la].astype(np.float64)
        zb = pb.matrices[lb].astype(np.float64)
        w = np.asarray(weights, dtype=np.float64)
        sa, sb, saa, sbb, sab = (0.5 * q for q in _weighted_quadratics(w, [za, zb, za * za, zb * zb, za * zb]))
        sw = 0.5 * (w.sum(axis=1) ** 2 - np.sum(w**2, axis=1))  # stimulus pairs (copies of one excluded)
        with np.errstate(invalid="ignore", divide="ignore"):
            return (sw * sab - sa * sb) / np.sqrt((sw * saa - sa**2) * (sw * sbb - sb**2))


# ------------------------------------------------------------------------------------------- registry


def make_metric(name: str, **params) -> PairMetric:
    """The all-pairs engine of metric ``name`` (a key of ``convergence.metrics.registry.METRICS``) with its
    parameters; its name, direction and symmetry come from the registry. Unknown names or parameters raise
    ``ValueError`` listing the allowed ones."""
    spec = get_metric(name)
    engine = spec.make_engine(**params)
    engine.name, engine.symmetric, engine.higher_is_better = spec.name, spec.symmetric, spec.higher_is_better
    return engine
