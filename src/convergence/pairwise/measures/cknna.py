"""CKNNA over all layer pairs from cached neighbour lists and features (``metrics.cka.cknna``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...metrics import cknna_hsic, reciprocal_neighbors
from ...metrics._checks import check_int
from ..products import ModelProducts
from .base import (
    _BLOCK_BYTES,
    PairMetric,
    _batch_size,
    _code_finder,
    _inverse_perms,
    _normalise,
    _permuted_neighbours,
    _Prepared,
)



@dataclass
class _CknnaPrepared(_Prepared):
    nbrs: np.ndarray  # (L, n, k)
    values: np.ndarray  # (L, n, k): K[i, nbrs[i, p]] of the uncentred linear kernel
    recip: np.ndarray  # (L, n, k) bool
    self_hsic: np.ndarray  # (L,)
    # the (stimulus, neighbour) codes of all layers, i * n + j ("rows") and j * n + i ("columns"): each
    # layout's sorted distinct codes and, per (layer, i, p), the index of its code among them; built by
    # ``_layouts`` the first time ``_both_orders`` needs them
    row_codes: np.ndarray | None = None
    row_index: np.ndarray | None = None
    col_codes: np.ndarray | None = None
    col_index: np.ndarray | None = None


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
            for p in range(self.k):  # one neighbour rank at a time: never the (n, k, d) array x[nbrs]
                v[:, p] = np.einsum("id,id->i", x, x[nbrs[layer, :, p]])
            r = reciprocal_neighbors(nbrs[layer])
            values.append(v)
            recip.append(r)
            self_hsic.append(cknna_hsic(nbrs[layer], v, r, nbrs[layer], v, r))
        return _CknnaPrepared(model, len(model.layers), model.n, nbrs, np.stack(values), np.stack(recip),
                              np.asarray(self_hsic))

    def score_matrices(self, prepared: dict, pairs) -> dict:
        """Every layer pair of every requested model pair. Both orders of a model pair come from one pass
        (:func:`_both_orders`); where its padded arrays would not fit ``_BLOCK_BYTES``, the matched-pairs
        accumulation of :meth:`null_matrices` under the identity order is used instead (same values)."""
        wanted, out = set(pairs), {}
        for a, b in pairs:
            if (a, b) in out:
                continue
            pa, pb = prepared[a], prepared[b]
            both = _both_orders(pa, pb)
            if both is None:  # one matched-pairs pass per order, the reverse only when it was asked for
                ident = np.arange(pa.n, dtype=np.int64)[None]
                reverse = self._matched_hsic(pb, pa, ident)[0] if a != b and (b, a) in wanted else None
                both = (self._matched_hsic(pa, pb, ident)[0], reverse)
            out[(a, b)] = _normalise(both[0], pa.self_hsic, pb.self_hsic, f"cknna of {a!r} vs {b!r}")
            if a != b and (b, a) in wanted:
                out[(b, a)] = _normalise(both[1], pb.self_hsic, pa.self_hsic, f"cknna of {b!r} vs {a!r}")
        return {pair: out[pair] for pair in pairs}

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


def _layouts(p: _CknnaPrepared) -> None:
    """Fill ``p``'s code layouts (rows ``i n + j``, columns ``j n + i``) once."""
    if p.row_codes is None:
        stim = np.arange(p.n, dtype=np.int64)[None, :, None]
        p.row_codes, row_index = np.unique(stim * p.n + p.nbrs, return_inverse=True)
        p.col_codes, col_index = np.unique(p.nbrs * p.n + stim, return_inverse=True)
        p.row_index, p.col_index = row_index.reshape(p.nbrs.shape), col_index.reshape(p.nbrs.shape)


def _padded_bytes(n: int, la: int, lb: int, width: int) -> int:
    """Memory of :func:`_both_orders`: four float64 (n, L, width) arrays and two (n, L_a, L_b) per layout."""
    return 8 * n * (2 * (la + lb) * width + 4 * la * lb)


def _slots(codes_a, index_a, codes_b, index_b, n: int, row_of_a, row_of_b):
    """Lay the codes of two models (one layout) out by row: the distinct codes of both, grouped by their row
    (``code // n``), numbered 0 .. width - 1 within it. Returns each entry's slot (two arrays shaped like the
    index arrays) and the widest row's width."""
    union = np.concatenate([codes_a, codes_b])
    union.sort(kind="stable")  # two sorted runs: a merge
    keep = np.ones(union.size, dtype=bool)
    keep[1:] = union[1:] != union[:-1]
    union = union[keep]
    start = np.searchsorted(union, np.arange(n, dtype=np.int64) * n)  # first code of each row
    width = int(np.diff(np.append(start, union.size)).max(initial=0))
    slot_a = np.searchsorted(union, codes_a)[index_a] - start[row_of_a]
    slot_b = np.searchsorted(union, codes_b)[index_b] - start[row_of_b]
    return slot_a, slot_b, width


def _flat(n_layers: int, width: int, rows: np.ndarray, slots: np.ndarray) -> np.ndarray:
    """Flat positions in an (n, L, width) array of every (layer, i, p) entry at (row, layer, slot)."""
    layer = np.arange(n_layers, dtype=np.int64)[:, None, None]
    return ((rows * n_layers + layer) * width + slots).ravel()


def _padded(shape, flat: np.ndarray, values) -> np.ndarray:
    """(n, L, width) array, zero but at the entries' positions ``flat`` (``_flat``), which hold ``values``."""
    out = np.zeros(shape)
    out.reshape(-1)[flat] = np.ravel(values)
    return out


def _both_orders(pa: _CknnaPrepared, pb: _CknnaPrepared):
    """The unnormalised CKNNA HSIC of every layer pair in both orders, ``(HSIC(a, b) (L_a, L_b), HSIC(b, a)
    (L_b, L_a))``, by dense batched products; None when the padded arrays would exceed ``_BLOCK_BYTES``.

    The mask ``M[i, j] = 1`` iff j is a neighbour of i in layer la of model a and in layer lb of model b is
    shared by both orders. Laid out by row i (codes ``i n + j``), each stimulus's neighbour codes over all
    layers of both models get slots 0 .. w - 1; a layer's values (``K[i, j]``) and indicators sit in an
    ``(n, L, w)`` array, so for every i the sums over j of ``P = K_a o M`` and ``Q = K_b o M`` (their row
    sums) are one small matrix product ``(L_a, w) @ (w, L_b)`` (batched over i), as is the trace term
    ``sum K_a K_b M M^T`` (values times reciprocity). Laid out by column (codes ``j n + i``) the same
    products give the column sums. The unbiased HSIC needs only the trace, the totals and
    ``1^T P Q 1 = sum_j colsum(P)_j rowsum(Q)_j`` (``metrics.cknna_hsic``); the order (b, a) swaps P and Q."""
    n = pa.n
    la, lb = pa.n_layers, pb.n_layers
    # every row holds at least k codes, so a budget that k slots already exceed needs no layout to refuse
    if _padded_bytes(n, la, lb, pa.nbrs.shape[2]) > _BLOCK_BYTES:
        return None
    _layouts(pa)
    _layouts(pb)
    stim = np.arange(n, dtype=np.int64)[None, :, None]
    rows_a, rows_b = np.broadcast_to(stim, pa.nbrs.shape), np.broadcast_to(stim, pb.nbrs.shape)
    slot_ra, slot_rb, w_r = _slots(pa.row_codes, pa.row_index, pb.row_codes, pb.row_index, n, rows_a, rows_b)
    slot_ca, slot_cb, w_c = _slots(pa.col_codes, pa.col_index, pb.col_codes, pb.col_index, n, pa.nbrs, pb.nbrs)
    if _padded_bytes(n, la, lb, max(w_r, w_c)) > _BLOCK_BYTES:
        return None
    shape_a, shape_b = (n, la, w_r), (n, lb, w_r)
    flat_a, flat_b = _flat(la, w_r, rows_a, slot_ra), _flat(lb, w_r, rows_b, slot_rb)
    va, ia = _padded(shape_a, flat_a, pa.values), _padded(shape_a, flat_a, 1.0)
    vb, ib = _padded(shape_b, flat_b, pb.values), _padded(shape_b, flat_b, 1.0)
    row_p, row_q = va @ ib.transpose(0, 2, 1), ia @ vb.transpose(0, 2, 1)  # (n, L_a, L_b) row sums
    del ia, ib
    va.reshape(-1)[flat_a] *= pa.recip.ravel()
    vb.reshape(-1)[flat_b] *= pb.recip.ravel()
    trace = (va @ vb.transpose(0, 2, 1)).sum(axis=0)
    del va, vb
    shape_a, shape_b = (n, la, w_c), (n, lb, w_c)
    flat_a, flat_b = _flat(la, w_c, pa.nbrs, slot_ca), _flat(lb, w_c, pb.nbrs, slot_cb)
    va, ia = _padded(shape_a, flat_a, pa.values), _padded(shape_a, flat_a, 1.0)
    vb, ib = _padded(shape_b, flat_b, pb.values), _padded(shape_b, flat_b, 1.0)
    col_p, col_q = va @ ib.transpose(0, 2, 1), ia @ vb.transpose(0, 2, 1)  # (n, L_a, L_b) column sums
    sum_p, sum_q = row_p.sum(axis=0), row_q.sum(axis=0)
    pq_ab = np.einsum("jab,jab->ab", col_p, row_q)
    pq_ba = np.einsum("jab,jab->ab", col_q, row_p)

    def hsic(tr, sp, sq, pq):
        return (tr + sp * sq / ((n - 1) * (n - 2)) - 2.0 * pq / (n - 2)) / (n * (n - 3))

    return hsic(trace, sum_p, sum_q, pq_ab), hsic(trace, sum_q, sum_p, pq_ba).T
