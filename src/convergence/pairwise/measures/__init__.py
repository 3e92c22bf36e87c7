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
definition and this package only organises it over many models, layers, permutations and resamples.

One module per metric family, mirroring :mod:`convergence.metrics`: ``knn`` (mutual, Jaccard, cycle),
``cka`` (linear and RBF CKA, and the blocked n x n inner products), ``cknna``, ``subspace`` (SVCCA,
Procrustes), ``rsa``; ``base`` holds the base class and the shared helpers.
"""

from __future__ import annotations

from ...metrics.registry import METRIC_NAMES, get_metric
from .base import PairMetric
from .cka import CkaMetric
from .cknna import CknnaMetric
from .knn import KnnMetric
from .rsa import RsaMetric
from .subspace import ProcrustesMetric, SvccaMetric

METRICS = METRIC_NAMES  # the names, from the registry

__all__ = ["METRICS", "CkaMetric", "CknnaMetric", "KnnMetric", "PairMetric", "ProcrustesMetric", "RsaMetric",
           "SvccaMetric", "make_metric"]


def make_metric(name: str, **params) -> PairMetric:
    """The all-pairs engine of metric ``name`` (a key of ``convergence.metrics.registry.METRICS``) with its
    parameters; its name, direction and symmetry come from the registry. Unknown names or parameters raise
    ``ValueError`` listing the allowed ones."""
    spec = get_metric(name)
    engine = spec.make_engine(**params)
    engine.name, engine.symmetric, engine.higher_is_better = spec.name, spec.symmetric, spec.higher_is_better
    return engine
