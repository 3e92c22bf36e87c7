"""RSA over all layer pairs from standardised RDMs (``metrics.rsa``), by the blocked products of ``cka``."""

from __future__ import annotations

import numpy as np

from ...metrics import rdm, standardised_upper
from ...metrics._checks import check_choice
from ...metrics.rsa import RDM_COMPARISONS, RDM_DISTANCES
from .base import PairMetric, _weighted_quadratics
from .cka import _bulk_inner, _matrix_prepared, _permuted_inners

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
