"""open_clip image-text models: the image tower or the text tower of one model (``source: open_clip``).

Comparing an image-text model's image side with its own text side is the point, so one config entry per
tower, sharing ``name`` and ``pretrained``::

    clip_b32_image: {source: open_clip, name: ViT-B-32, pretrained: openai, tower: image, modality: vision,
                     objective: image-text, family: transformer}
    clip_b32_text:  {source: open_clip, name: ViT-B-32, pretrained: openai, tower: text, modality: language,
                     objective: image-text, family: transformer}

``pretrained`` is an open_clip tag (``openai``, ``laion2b_s34b_b79k``, ...; downloaded from the hub), a local
checkpoint file, or ``false`` for random weights (``seed``). ``model_config`` (a dict in open_clip's config
format) registers a custom architecture under ``name`` first. Layers, via forward hooks
(:class:`~convergence.models.module_source.ModuleEncoder`): the image tower's transformer blocks
(``block_00`` ...; ViTs: the class token, or the mean of tokens with ``pooling: mean``) or a ResNet's four
stages (``layer1`` ... ``layer4``, average-pooled), the text tower's transformer blocks (mean over the
tokens up to and including the end token, or ``pooling: last``: the end token, which is what CLIP itself
pools), and in both towers ``embedding``: the model's own projected image or text embedding. Images are
resized and centre-cropped to the model's size with its mean/std (stimuli are already RGB on white).

Tested here with random weights only: no image-text weights are reachable without a model hub.
"""

from __future__ import annotations

import torch

from .base import Encoder, ImagePreprocessing, ModelLoadError, SourceTransform
from .module_source import OUTPUT, ModuleEncoder

TOWERS = ("image", "text")


def _register_config(name: str, cfg: dict) -> None:
    import json
    import tempfile
    from pathlib import Path

    import open_clip

    if not isinstance(cfg, dict) or "vision_cfg" not in cfg or "text_cfg" not in cfg:
        raise ModelLoadError(f"open_clip model_config for {name!r} needs embed_dim, vision_cfg and text_cfg")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{name}.json"
        path.write_text(json.dumps(cfg))
        open_clip.add_model_config(path)


def _blocks(module: torch.nn.Module, prefix: str) -> dict[str, str]:
    names = dict(module.named_modules())
    out = {}
    i = 0
    while f"{prefix}.{i}" in names:
        out[f"block_{i:02d}"] = f"{prefix}.{i}"
        i += 1
    return out


def load(name: str, spec: dict, device: torch.device) -> Encoder:
    try:
        import open_clip
    except ImportError as err:
        raise ModelLoadError("source 'open_clip' needs open_clip_torch: pip install open_clip_torch "
                             "(or pip install 'convergence[hub]')") from err
    tower = spec.get("tower")
    if tower not in TOWERS:
        raise ModelLoadError(f"model {name!r}: open_clip needs `tower`: one of {list(TOWERS)}, got {tower!r}")
    want = "vision" if tower == "image" else "language"
    if spec.get("modality", want) != want:
        raise ModelLoadError(f"model {name!r}: tower {tower!r} is modality {want!r}, the config says {spec['modality']!r}")
    arch = spec.get("name")
    if spec.get("model_config") is not None:
        _register_config(arch, spec["model_config"])
    if arch not in open_clip.list_models():
        import difflib

        close = difflib.get_close_matches(str(arch), open_clip.list_models(), n=3)
        raise ModelLoadError(f"model {name!r}: open_clip has no model {arch!r}" + (f" (did you mean {close}?)" if close else ""))
    pretrained = spec.get("pretrained", True)
    if pretrained is True:
        raise ModelLoadError(f"model {name!r}: open_clip needs `pretrained`: a tag such as 'openai' (see "
                             f"open_clip.list_pretrained_tags_by_model({arch!r})), a checkpoint file, or false")
    torch.manual_seed(int(spec.get("seed", 0)))
    try:
        model = open_clip.create_model(arch, pretrained=pretrained or None, device="cpu")
    except Exception as err:
        raise ModelLoadError(f"model {name!r}: open_clip could not build {arch!r} with pretrained={pretrained!r}: {err}") from err
    prov = {"source": "open_clip", "architecture": arch, "tower": tower,
            "weights": str(pretrained) if pretrained else "random-init", "init_seed": int(spec.get("seed", 0)),
            "open_clip_version": getattr(open_clip, "__version__", "")}
    pooling = spec.get("pooling", "auto")
    if tower == "image":
        visual = model.visual
        layers = _blocks(model, "visual.transformer.resblocks")
        if not layers:
            layers = {f"layer{i}": f"visual.layer{i}" for i in range(1, 5) if hasattr(visual, f"layer{i}")}
        layers["embedding"] = OUTPUT
        size = visual.image_size
        size = int(size[0] if isinstance(size, (tuple, list)) else size)
        cfg = getattr(visual, "preprocess_cfg", {}) or {}
        choice = spec.get("image_transform") or ("source" if pretrained else "convergence")
        if choice == "source":  # open_clip's own validation transform (what create_model_and_transforms returns)
            from open_clip.transform import PreprocessCfg, image_transform_v2

            known = {k: v for k, v in cfg.items() if k in PreprocessCfg.__dataclass_fields__}
            pcfg = PreprocessCfg(**{"size": size, **known})
            pre = SourceTransform(image_transform_v2(pcfg, is_train=False),
                                  {"pipeline": "open_clip.transform.image_transform_v2(visual.preprocess_cfg, "
                                   "is_train=False)", **{k: (list(v) if isinstance(v, tuple) else v)
                                                         for k, v in vars(pcfg).items()}})
        else:
            pre = ImagePreprocessing(size=size, crop_pct=1.0,
                                     mean=tuple(cfg.get("mean", open_clip.OPENAI_DATASET_MEAN)),
                                     std=tuple(cfg.get("std", open_clip.OPENAI_DATASET_STD)),
                                     interpolation=str(cfg.get("interpolation", "bicubic")))
        batch_first = getattr(getattr(visual, "transformer", None), "batch_first", True)
        if pooling == "cls" and not getattr(visual, "class_embedding", None) is not None:
            raise ModelLoadError(f"model {name!r}: pooling 'cls' needs a class token; {arch!r} has none, use mean")
        return ModuleEncoder(name, model, layers, modality="vision", preprocessing=pre,
                             run=lambda m, x: m.encode_image(x), pooling=pooling,
                             token_layout="BTD" if batch_first else "TBD", device=device, provenance=prov)
    tokenizer = open_clip.get_tokenizer(arch)
    prefix = "text.transformer.resblocks" if hasattr(model, "text") else "transformer.resblocks"
    layers = _blocks(model, prefix)
    layers["embedding"] = OUTPUT
    transformer = model.text.transformer if hasattr(model, "text") else model.transformer
    batch_first = getattr(transformer, "batch_first", True)
    eos = getattr(tokenizer, "eot_token_id", None)

    def tokenize(texts):
        ids = tokenizer(texts)
        # valid tokens: the start token up to and including the end token (padding is 0 after it)
        if eos is not None:
            ends = (ids == eos).int().argmax(dim=1)
            mask = (torch.arange(ids.shape[1])[None, :] <= ends[:, None]).long()
        else:
            mask = (ids != 0).long()
        return ids, mask

    return ModuleEncoder(name, model, layers, modality="language", tokenize=tokenize,
                         run=lambda m, t: m.encode_text(t), pooling=pooling,
                         token_layout="BTD" if batch_first else "TBD", device=device, provenance=prov)
