"""All-pairs alignment between models from cached per-model products (kernel stores).

- ``pairwise(kernels, metric, ...)``: every layer pair of every model pair, best/last/named layer
  summaries, permutation null and bootstrap CI per summary (layout in ``pairwise``'s module docstring).
- ``pair_scores`` / ``combine_pairs``: the same for one pair from two kernel stores, and the merge of
  cached per-pair results into the full matrix.
- ``make_metric`` / ``METRICS``: the pairwise metrics, each split into a per-model ``prepare`` and a
  per-pair combination (``measures``).
- Competence: ``knn_accuracy``, ``linear_probe_accuracy``, ``mean_bits_per_byte``,
  ``alignment_vs_competence``, ``linear_fit``.
"""

from .competence import alignment_vs_competence, knn_accuracy, linear_fit, linear_probe_accuracy, mean_bits_per_byte
from .measures import METRICS, PairMetric, make_metric
from .pairwise import SUMMARIES, combine_pairs, pair_scores, pairwise
from .products import ModelProducts, common_stimuli

__all__ = [
    "METRICS",
    "SUMMARIES",
    "ModelProducts",
    "PairMetric",
    "alignment_vs_competence",
    "combine_pairs",
    "common_stimuli",
    "knn_accuracy",
    "linear_fit",
    "linear_probe_accuracy",
    "make_metric",
    "mean_bits_per_byte",
    "pair_scores",
    "pairwise",
]
