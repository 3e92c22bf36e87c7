"""The all-pairs engine's base class and the helpers every metric family shares (permutations, neighbour
codes, normalisation)."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..products import ModelProducts

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


def _weighted_quadratics(weights: np.ndarray, matrices: Sequence[np.ndarray]) -> list[np.ndarray]:
    """``w^T M w`` for every row ``w`` of ``weights`` and every matrix (batched as matrix products)."""
    return [np.einsum("bi,bi->b", weights @ m, weights) for m in matrices]


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
