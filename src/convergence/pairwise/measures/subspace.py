"""SVCCA and the angular Procrustes distance over all layer pairs from per-layer bases (``metrics.subspace``)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from ...inference import resample_indices
from ...metrics import (
    leading_components,
    principal_axes,
    procrustes_basis,
    procrustes_from_bases,
    svcca_basis,
    svcca_from_bases,
)
from ...metrics._checks import check_fraction
from .base import PairMetric, _Prepared, _safe

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
