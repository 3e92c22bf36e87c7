"""All-pairs comparison of models from cached per-model products (kernel stores).

- ``pairwise(kernels, metric, ...)``: every layer pair of every model pair, best/last/named layer
  summaries, permutation null and bootstrap CI per summary (layout in ``scores``'s module docstring).
- ``pair_scores`` / ``combine_pairs``: the same for one pair from two kernel stores, and the merge of
  per-pair results into the full matrix; ``cached_pairwise``: all pairs with each pair's result cached
  by content (``cache``).
- ``make_metric``: the all-pairs engine of a registry metric (``measures``), split into a per-model
  ``prepare`` and a per-pair combination.
- ``ModelProducts`` / ``common_stimuli``: a kernel store mapped onto the stimuli a comparison uses.

Analyses (``convergence.analyses``) build on this; nothing here imports them.
"""

from .cache import cached_pairwise, metric_fingerprint
from .measures import METRICS, PairMetric, make_metric
from .products import ModelProducts, common_stimuli, stimulus_digest
from .scores import SUMMARIES, combine_pairs, pair_q_values, pair_scores, pairwise

__all__ = [
    "METRICS",
    "SUMMARIES",
    "ModelProducts",
    "PairMetric",
    "cached_pairwise",
    "combine_pairs",
    "common_stimuli",
    "make_metric",
    "metric_fingerprint",
    "pair_q_values",
    "pair_scores",
    "pairwise",
    "stimulus_digest",
]
