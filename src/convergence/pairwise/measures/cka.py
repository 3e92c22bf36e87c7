"""CKA (linear, RBF; biased or unbiased HSIC) over all layer pairs from cached centred kernels or features
(``metrics.cka``), and the blocked Frobenius inner products of n x n kernels that RSA shares."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ...inference import resample_indices
from ...metrics import hsic_from_products, rbf_sigma, squared_distances
from ...metrics._checks import check_choice, check_positive
from ..products import ModelProducts
from .base import _BLOCK_BYTES, PairMetric, _inverse_perms, _normalise, _Prepared, _safe, _weighted_quadratics

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
    flat_b = stack_b.reshape(lb, n * n)
    out = np.zeros((perms.shape[0], la, lb))
    rows = max(1, min(n, (_BLOCK_BYTES // 4) // max(1, 8 * (la + lb) * n)))
    for start in range(0, n, rows):
        stop = min(n, start + rows)
        block_a = np.stack([np.asarray(src(start, stop))[:, start:] for src in pa.sources]).astype(np.float64)
        block_a[:, :, stop - start:] *= 2.0
        flat_a = block_a.reshape(la, -1)
        width = (stop - start) * (n - start)
        batch = max(1, (_BLOCK_BYTES // 4) // (8 * lb * width))  # permutations per matrix product
        for first in range(0, perms.shape[0], batch):
            group = perms[first : first + batch]
            # B[perm[r], perm[s]] at the block's cells (r, s), for every permutation of the batch: (lb, T, width)
            cells = (group[:, start:stop, None] * n + group[:, None, start:]).reshape(-1)
            gathered = np.take(flat_b, cells, axis=1).astype(np.float64).reshape(lb * group.shape[0], width)
            out[first : first + group.shape[0]] += (flat_a @ gathered.T).reshape(la, lb, -1).transpose(2, 0, 1)
    return out



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
        rows_here = stop - start
        buf = np.empty((len(sources), rows_here * (n - start)))
        sq = rows_here**2
        for r, src in enumerate(sources):
            block = np.asarray(src(start, stop))
            np.copyto(buf[r, :sq].reshape(rows_here, rows_here), block[:, start:stop])  # float32 -> float64
            np.multiply(block[:, stop:], root2, out=buf[r, sq:].reshape(rows_here, n - stop))
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
        if self.unbiased:
            diag = np.stack([np.einsum("ij,ij->i", xc, xc) for xc in map(model.centred_features, range(n_layers))])
        else:  # the biased HSIC, inner / (n - 1)^2, never reads the diagonal (metrics.hsic_from_products)
            diag = np.zeros((n_layers, n))
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
            from ...metrics import cka_linear_features

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
