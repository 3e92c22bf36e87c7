"""Seeded subsamples of a listing: ``per_class`` rows of each label, ``per_class_cap``, or ``limit`` rows."""

from __future__ import annotations

import numpy as np

from .images import StimulusError


def subsample_indices(n: int, labels: list[str] | None, *, per_class: int | None, limit: int | None, seed: int,
                      per_class_cap: int | None = None) -> np.ndarray:
    """Sorted row indices of a seeded subsample: ``per_class`` rows of each label, or ``limit`` rows.

    ``per_class_cap`` (Ciernik et al.'s rule): when ``n`` exceeds it, keep ``ceil(per_class_cap / n_classes)``
    rows of each label (all rows of a smaller class); a source of at most ``per_class_cap`` rows is kept whole.
    An explicit ``per_class`` takes precedence."""
    rng = np.random.default_rng(seed)
    if per_class is None and per_class_cap is not None and n > per_class_cap:
        if labels is None:
            raise StimulusError("per_class_cap subsampling needs a labelled source")
        per_class = -(-int(per_class_cap) // len(set(labels)))
    if per_class is not None:
        if labels is None:
            raise StimulusError("per_class subsampling needs a labelled source")
        labels_arr = np.asarray(labels, dtype=object)
        picks = []
        for cls in sorted(set(labels)):
            rows = np.flatnonzero(labels_arr == cls)
            picks.append(rows if len(rows) <= per_class else rng.choice(rows, per_class, replace=False))
        idx = np.sort(np.concatenate(picks))
    else:
        idx = np.arange(n)
    if limit is not None and limit < len(idx):
        idx = np.sort(rng.choice(idx, limit, replace=False))
    return idx
