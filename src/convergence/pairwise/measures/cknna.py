"""CKNNA over all layer pairs from cached neighbour lists and features (``metrics.cka.cknna``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...metrics import cknna_hsic, reciprocal_neighbors
from ...metrics._checks import check_int
from ..products import ModelProducts
from .base import PairMetric, _batch_size, _code_finder, _inverse_perms, _normalise, _permuted_neighbours, _Prepared

#: Stimuli per block of the neighbour inner products in ``prepare`` (memory ``8 _ROWS k d`` bytes).
_ROWS = 4096


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
            v = np.empty(nbrs[layer].shape)
            for start in range(0, model.n, _ROWS):  # x[nbrs] in row blocks: never the (n, k, d) array at once
                stop = min(model.n, start + _ROWS)
                v[start:stop] = np.einsum("id,ipd->ip", x[start:stop], x[nbrs[layer, start:stop]])
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
