"""timm image models: hub weights, a local weights file, or random initialisation.

Layers come from timm's ``forward_intermediates``: every transformer block of a ViT (pooled as the CLS
token or the mean of the patch tokens, before the final norm) or every feature stage of a CNN (global
average pool). With ``granularity: blocks`` a CNN exposes every block instead (every residual block of a
ResNet, every MBConv/depthwise-separable block of an EfficientNet/MobileNet, every block of a ConvNeXt or
RegNet stage), read with forward hooks and globally average-pooled; a ViT's layers are its blocks either
way. The model's own data config decides resize, crop and normalisation.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..hubcache import file_sha256
from .base import IMAGE_TRANSFORMS, Encoder, ImagePreprocessing, ModelLoadError, SourceTransform, relative_depths

POOLINGS = ("auto", "cls", "mean")
#: What a CNN exposes as layers: its feature stages (timm ``feature_info``) or every block of every stage.
GRANULARITIES = ("stages", "blocks")


def is_token_model(model: torch.nn.Module) -> bool:
    """True for models whose intermediates are token sequences (ViT-like), False for CNN feature maps."""
    return hasattr(model, "num_prefix_tokens") and hasattr(model, "blocks")


def has_class_token(model: torch.nn.Module) -> bool:
    """Whether a token model has a class token (timm puts it first among the prefix tokens, before any register
    tokens). Prefix tokens alone do not tell: a ViT with ``class_token=False, reg_tokens=4`` has four prefix
    tokens and no class token; SigLIP ViTs have no prefix token at all."""
    flag = getattr(model, "has_class_token", None)
    if flag is not None:
        return bool(flag)
    return getattr(model, "cls_token", None) is not None


def _has_conv(module: torch.nn.Module) -> bool:
    """Whether ``module`` holds a convolution or linear layer below it (a block, not a norm/act wrapper)."""
    return any(isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)) for m in module.modules())


def _block_container(stage: torch.nn.Module) -> list[tuple[str, torch.nn.Module]] | None:
    """The blocks of one CNN stage: its ``blocks`` child (ConvNeXt-like) or its own children when every child
    contains a convolution (ResNet layers, EfficientNet stages, RegNet stages); ``None`` for stems and other
    non-containers (a conv+norm+act wrapper has a bare conv child, which is not a block)."""
    inner = getattr(stage, "blocks", None)
    if isinstance(inner, (torch.nn.Sequential, torch.nn.ModuleList)) and len(inner):
        return [(f"blocks.{name}", child) for name, child in inner.named_children()]
    children = list(stage.named_children())
    if children and all(any(True for _ in child.children()) and _has_conv(child) for _, child in children):
        return children
    return None


def cnn_blocks(model: torch.nn.Module) -> list[tuple[str, torch.nn.Module]]:
    """Every block of a timm CNN, shallow to deep, as (layer name, module).

    The stages are the modules of timm's ``feature_info``; when these are ``blocks.<i>`` entries of a
    ``blocks`` sequence of stages (EfficientNet, MobileNet; ``feature_info`` skips stages that keep the
    resolution), every stage of that sequence is used. Names are module paths with ``.`` replaced by ``_``
    (``layer1_0``, ``blocks_3_2``). Raises :class:`ModelLoadError` when no stage holds blocks.
    """
    paths = [str(info["module"]) for info in model.feature_info]
    modules = dict(model.named_modules())
    seq = getattr(model, "blocks", None)
    if isinstance(seq, torch.nn.Sequential) and any(p.startswith("blocks.") for p in paths):
        stages = [(f"blocks.{name}", child) for name, child in seq.named_children()]
    else:
        stages = [(p, modules[p]) for p in paths if p in modules]
    out = []
    for path, stage in stages:
        blocks = _block_container(stage)
        if blocks is None:
            continue
        out += [(f"{path}.{name}".replace(".", "_"), block) for name, block in blocks]
    if not out:
        raise ModelLoadError(
            f"{type(model).__name__}: found no blocks inside its feature stages {paths}; "
            "use granularity 'stages' for this architecture"
        )
    return out


def preprocessing_from_timm(model: torch.nn.Module, input_size: int | None = None) -> ImagePreprocessing:
    """Resize/crop/normalisation from the model's pretrained data config (``input_size`` overrides)."""
    import timm.data

    cfg = timm.data.resolve_model_data_config(model)
    size = int(input_size or cfg["input_size"][-1])
    return ImagePreprocessing(
        size=size,
        crop_pct=float(cfg.get("crop_pct", 0.875) or 1.0),
        mean=tuple(float(v) for v in cfg["mean"]),
        std=tuple(float(v) for v in cfg["std"]),
        interpolation=str(cfg.get("interpolation", "bicubic")),
    )


def hub_weights(cfg: dict) -> dict:
    """Which file timm's hub load read for pretrained config ``cfg`` (its ``hf_hub_filename``, else
    ``model.safetensors``, which timm prefers, else ``pytorch_model.bin``), found in the local hub cache: the
    repo, the commit it resolved to and the file's sha256. Empty when the weights came from elsewhere (a URL)."""
    repo = cfg.get("hf_hub_id")
    if not repo:
        return {}
    from huggingface_hub import try_to_load_from_cache

    from ..hubcache import snapshot_commit

    for filename in [cfg.get("hf_hub_filename"), "model.safetensors", "open_clip_model.safetensors",
                     "pytorch_model.bin"]:
        if not filename:
            continue
        path = try_to_load_from_cache(repo, filename)
        if isinstance(path, str) and Path(path).is_file():
            return {"hub_repo": repo, "hub_commit": snapshot_commit(path) or "unknown", "weights_file": filename,
                    "weights_sha256": file_sha256(path)}
    return {"hub_repo": repo, "hub_commit": "unknown"}


def timm_transform(model: torch.nn.Module, input_size: int | None = None) -> SourceTransform:
    """timm's own eval transform for ``model``: ``resolve_data_config`` + ``create_transform`` (PIL resize
    of the shorter side to ``floor(size / crop_pct)``, centre crop, ``ToTensor``, normalise), at
    ``input_size`` when given."""
    import timm.data

    cfg = timm.data.resolve_data_config(model=model)
    if input_size:
        cfg["input_size"] = (3, int(input_size), int(input_size))
    transform = timm.data.create_transform(**cfg, is_training=False)
    facts = {"pipeline": "timm.data.create_transform(**resolve_data_config(model), is_training=False)",
             "input_size": list(cfg["input_size"]), "crop_pct": float(cfg.get("crop_pct") or 1.0),
             "crop_mode": str(cfg.get("crop_mode", "center")), "interpolation": str(cfg.get("interpolation")),
             "mean": [float(v) for v in cfg["mean"]], "std": [float(v) for v in cfg["std"]]}
    return SourceTransform(transform, facts)


def image_transform_choice(spec: dict, pretrained: bool) -> str:
    """The config's ``image_transform``; by default the source's own pipeline for pretrained weights and the
    project's on-device one for random init (which has no source pipeline to be faithful to, and whose
    stored features stay as they were)."""
    choice = spec.get("image_transform") or ("source" if pretrained else "convergence")
    if choice not in IMAGE_TRANSFORMS:
        raise ValueError(f"image_transform must be one of {IMAGE_TRANSFORMS}, got {choice!r}")
    return choice


class TimmEncoder(Encoder):
    """Wraps any timm model that implements ``forward_intermediates``.

    Layers: a ViT's blocks (``block_00`` ...), pooled as the CLS token or the mean of patch tokens, before
    the final norm; a CNN's feature stages (``granularity="stages"``, named after their modules) or every
    block of every stage (``granularity="blocks"``, see :func:`cnn_blocks`), globally average-pooled, plus
    ``pre_logits`` (the pooled input of the classifier) where the network widens its last stage with a
    head convolution. Relative depths are ``(i + 1) / n`` over the n layers (0 = the input).
    """

    def __init__(
        self,
        name: str,
        model: torch.nn.Module,
        preprocessing: ImagePreprocessing | SourceTransform,
        *,
        pooling: str = "auto",
        granularity: str = "stages",
        device: torch.device | str = "cpu",
        provenance: dict | None = None,
    ) -> None:
        if pooling not in POOLINGS:
            raise ValueError(f"pooling for timm models must be one of {POOLINGS}, got {pooling!r}")
        if granularity not in GRANULARITIES:
            raise ValueError(f"{name}: granularity must be one of {GRANULARITIES}, got {granularity!r}")
        if not hasattr(model, "forward_intermediates"):
            raise ModelLoadError(
                f"timm model {type(model).__name__} has no forward_intermediates(); "
                "choose an architecture that supports it (timm >= 1.0: ViTs, ResNets, EfficientNets, ConvNeXts, ...)"
            )
        self.model = model.eval().to(device)
        self.tokens = is_token_model(model)
        self.granularity = "blocks" if self.tokens else granularity  # a ViT's layers are its blocks anyway
        self._blocks: list[tuple[str, torch.nn.Module]] = []
        if self.tokens:
            n = len(model.blocks)
            names = [f"block_{i:02d}" for i in range(n)]
            if pooling == "auto":  # the class token where there is one, else the mean of the patch tokens
                pooling = "cls" if has_class_token(model) else "mean"
            self.pooling = pooling
            if self.pooling == "cls" and not has_class_token(model):
                raise ModelLoadError(
                    f"model {name!r}: pooling 'cls' needs a class token and {type(model).__name__} "
                    f"({getattr(model, 'num_prefix_tokens', 0)} prefix tokens) has none; use pooling: mean "
                    "(the mean of the patch tokens)"
                )
        else:
            if pooling == "cls":
                raise ValueError(f"{name}: pooling 'cls' applies to transformers only; CNN stages are average-pooled")
            self.pooling = "mean"
            if self.granularity == "blocks":
                self._blocks = cnn_blocks(model)
                names = [n for n, _ in self._blocks]
            else:
                names = [info["module"].replace(".", "_") for info in model.feature_info]
            # Some CNNs (EfficientNets, MobileNets) widen the last stage with a 1x1 head conv before pooling:
            # that pooled vector (what the classifier sees) is a layer of its own.
            self.has_head = int(getattr(model, "num_features", 0)) != int(model.feature_info[-1]["num_chs"])
            if self.has_head:
                names.append("pre_logits")
        self.preprocessing = preprocessing
        prov = {"pooling": self.pooling, "granularity": self.granularity, "preprocessing": preprocessing.describe(),
                **(provenance or {})}
        super().__init__(
            name=name,
            modality="vision",
            layer_names=names,
            depths=relative_depths(len(names)),
            provenance=prov,
            device=torch.device(device),
        )
        self._all_names = list(names)

    @torch.inference_mode()
    def encode(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        x = self.preprocessing(batch, self.device)
        wanted = [self._all_names.index(n) for n in self.layer_names]
        if self.tokens:
            cls = self.pooling == "cls"
            feats = self.model.forward_intermediates(
                x, indices=wanted, return_prefix_tokens=cls, output_fmt="NLC", norm=False, intermediates_only=True
            )
            # Without return_prefix_tokens (or with no prefix token) timm returns the patch tokens alone, one
            # (B, L, D) tensor per block; with it, (patches, prefix) pairs.
            if cls:
                pooled = [prefix[:, 0] for _patches, prefix in feats]
            else:
                pooled = [f.mean(dim=1) for f in feats]
        elif self._blocks:
            pooled = self._encode_blocks(x, wanted)
        else:
            stages = [i for i in wanted if self._all_names[i] != "pre_logits"]
            head = len(stages) != len(wanted)
            if head:
                final, feats = self.model.forward_intermediates(x, indices=stages or [0])
                feats = feats if stages else []
            else:
                feats = self.model.forward_intermediates(x, indices=stages, intermediates_only=True)
            pooled = [f.mean(dim=(-2, -1)) for f in feats]
            if head:
                pooled.append(self.model.forward_head(final, pre_logits=True))
        return {n: p.float().cpu().numpy() for n, p in zip(self.layer_names, pooled, strict=True)}

    def _encode_blocks(self, x: torch.Tensor, wanted: list[int]) -> list[torch.Tensor]:
        """Pooled outputs of the wanted blocks (forward hooks on one ``forward_features`` pass) and, when
        wanted, ``pre_logits``."""
        captured: dict[int, torch.Tensor] = {}
        handles = []
        for i in wanted:
            if self._all_names[i] == "pre_logits":
                continue

            def hook(_module, _inputs, output, i=i):
                out = output[0] if isinstance(output, (tuple, list)) else output
                captured[i] = out.mean(dim=(-2, -1))

            handles.append(self._blocks[i][1].register_forward_hook(hook))
        try:
            final = self.model.forward_features(x)
        finally:
            for handle in handles:
                handle.remove()
        out = []
        for i in wanted:
            if self._all_names[i] == "pre_logits":
                out.append(self.model.forward_head(final, pre_logits=True))
            else:
                out.append(captured[i])
        return out


def load(name: str, spec: dict, device: torch.device) -> TimmEncoder:
    """Build ``timm:<spec['name']>`` from the hub (``pretrained: true``), a local ``weights`` file, or random
    init (``pretrained: false``, seeded by ``seed``); ``granularity`` (``stages``, the default, or
    ``blocks``) picks a CNN's layers."""
    try:
        import timm
    except ImportError as err:  # pragma: no cover - timm is a core dependency
        raise ModelLoadError("timm is not installed: pip install 'timm>=1.0'") from err

    arch = spec["name"]
    kwargs = dict(spec.get("model_kwargs") or {})
    weights = spec.get("weights")
    pretrained = bool(spec.get("pretrained", True))
    provenance = {"source": "timm", "architecture": arch, "timm_version": timm.__version__}
    base_arch = arch.split(".")[0]  # "vit_base_patch16_224.augreg_in21k" -> architecture + pretrained tag
    if base_arch not in timm.list_models():
        close = timm.list_models(f"*{base_arch[:8]}*")[:8]
        raise ModelLoadError(f"model {name!r}: timm has no architecture {arch!r}; similar names: {close}")
    if weights:
        path = Path(weights)
        if not path.is_file():
            raise ModelLoadError(f"model {name!r}: weights file {path} does not exist")
        kwargs["pretrained_cfg_overlay"] = {**kwargs.get("pretrained_cfg_overlay", {}), "file": str(path)}
        pretrained = True
        provenance.update(weights_file=str(path), weights_sha256=file_sha256(path))
    elif not pretrained:
        torch.manual_seed(int(spec.get("seed", 0)))
        provenance.update(weights="random-init", init_seed=int(spec.get("seed", 0)))
    size = spec.get("input_size")
    default_cfg = timm.models.get_pretrained_cfg(arch)
    if size and "img_size" not in kwargs and default_cfg is not None and default_cfg.fixed_input_size:
        # a ViT's patch grid is fixed when it is built: build it at the asked size (timm resamples the
        # pretrained position embeddings), else every input of that size fails in the patch embedding
        kwargs["img_size"] = int(size)
    try:
        model = timm.create_model(arch, pretrained=pretrained, num_classes=0, **kwargs)
    except Exception as err:  # hub failures surface as OSError/LocalEntryNotFoundError/RuntimeError
        from ..hubcache import explain_hub_error

        hub_id = (default_cfg.hf_hub_id if default_cfg is not None else None) or arch
        why = explain_hub_error(err, hub_id) if pretrained and not weights else None
        if why:
            raise ModelLoadError(f"model {name!r}: timm weights {arch!r}: {why}. Without a hub, set "
                                 "`weights: /path/to/weights.safetensors` or `pretrained: false`.") from err
        raise ModelLoadError(
            f"model {name!r}: could not create timm model {arch!r} (pretrained={pretrained}): {err}. "
            "Without a model hub, set `weights: /path/to/weights.safetensors` or `pretrained: false`."
        ) from err
    cfg = getattr(model, "pretrained_cfg", {}) or {}
    if pretrained and not weights:
        provenance.update(weights=str(cfg.get("hf_hub_id") or cfg.get("url") or "timm-hub"), tag=str(cfg.get("tag", "")))
        provenance.update(hub_weights(cfg))
    provenance["parameters"] = int(sum(p.numel() for p in model.parameters()))
    if image_transform_choice(spec, pretrained) == "source":
        preprocessing = timm_transform(model, spec.get("input_size"))
    else:
        preprocessing = preprocessing_from_timm(model, spec.get("input_size"))
    return TimmEncoder(name, model, preprocessing, pooling=spec.get("pooling", "auto"),
                       granularity=spec.get("granularity") or "stages", device=device, provenance=provenance)
