"""The analyses: one module per analysis rule, each pure Python (stores in, labelled xarray/pandas out).

``alignment``
    every model pair on one dataset and metric, every layer pair, with nulls and intervals
``crossmodal``
    the vision x language block of an alignment result
``competence``
    how good each model is on its own (probe accuracy, bits per byte)
``prh``
    alignment to a reference model against competence (the Platonic Representation Hypothesis plot)

Each builds on the layers below it (``pairwise``, ``kernels``, ``metrics``, ``inference``, ``store``) and
none imports Snakemake; the workflow's scripts only adapt the ``snakemake`` object to these functions.
Model labels (modality, objective, family) come from the config when the workflow passes them, else
from a store's provenance: :func:`labels_of` is the one place that reads them.
"""

from __future__ import annotations

from collections.abc import Mapping

import xarray as xr

from ..config import MODEL_FIELDS


def labels_of(store: xr.Dataset, overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """``modality``, ``objective`` and ``family`` of the model behind an embedding or kernel store: from
    ``overrides`` (the config's labels) where set, else from the store's attrs and provenance."""
    prov = store.attrs.get("provenance") or {}
    out = {"modality": str(store.attrs.get("modality", prov.get("modality", ""))),
           **{f: str(prov.get(f, "")) for f in MODEL_FIELDS if f != "modality"}}
    out.update({f: str(v) for f, v in (overrides or {}).items() if v and f in MODEL_FIELDS})
    return out


__all__ = ["MODEL_FIELDS", "labels_of"]
