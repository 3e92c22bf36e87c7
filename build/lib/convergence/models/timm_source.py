"""timm image models: hub weights, a local weights file, or random initialisation.

Layers come from timm's ``forward_intermediates``: every transformer block of a ViT (pooled as the CLS
token or the mean of the patch tokens, before the final norm) or every feature stage of a CNN (global
average pool). The model's own data config decides resize, crop and normalisation.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch

from .base import Encoder, ImagePreprocessing, ModelLoadError, relative_depths

POOLINGS = ("auto", "cls", "mean")


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def is_token_model(model: torch.nn.Module) -> bool:
    """True for models whose intermediates are token sequences (ViT-like), False for CNN feature maps."""
    return hasattr(model, "num_prefix_tokens") and hasattr(model, "blocks")


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


class TimmEncoder(Encoder):
    """Wraps any timm model that implements ``forward_intermediates``.

    Layers: a ViT's blocks (``block_00`` ...), pooled as the CLS token or the mean of patch tokens, before
    the final norm; a CNN's feature stages (named after their modules), globally average-pooled, plus
    ``pre_logits`` (the pooled input of the classifier) where the network widens its last stage with a
    head convolution.
    """

    def __init__(
        self,
        name: str,
        model: torch.nn.Module,
        preprocessing: ImagePreprocessing,
        *,
        pooling: str = "auto",
        device: torch.device | str = "cpu",
        provenance: dict | None = None,
    ) -> None:
        if pooling not in POOLINGS:
            raise ValueError(f"pooling for timm models must be one of {POOLINGS}, got {pooling!r}")
        if not hasattr(model, "forward_intermediates"):
            raise ModelLoadError(
                f"timm model {type(model).__name__} has no forward_intermediates(); "
                "choose an architecture that supports it (timm >= 1.0: ViTs, ResNets, EfficientNets, ConvNeXts, ...)"
            )
        self.model = model.eval().to(device)
        self.tokens = is_token_model(model)
        if self.tokens:
            n = len(model.blocks)
            names = [f"block_{i:02d}" for i in range(n)]
            self.pooling = "cls" if pooling == "auto" else pooling
            if self.pooling == "cls" and getattr(model, "num_prefix_tokens", 0) == 0:
                raise ValueError(f"{name}: pooling 'cls' needs a class token, this model has none; use 'mean'")
        else:
            if pooling == "cls":
                raise ValueError(f"{name}: pooling 'cls' applies to transformers only; CNN stages are average-pooled")
            self.pooling = "mean"
            names = [info["module"].replace(".", "_") for info in model.feature_info]
            # Some CNNs (EfficientNets, MobileNets) widen the last stage with a 1x1 head conv before pooling:
            # that pooled vector (what the classifier sees) is a layer of its own.
            self.has_head = int(getattr(model, "num_features", 0)) != int(model.feature_info[-1]["num_chs"])
            if self.has_head:
                names.append("pre_logits")
        self.preprocessing = preprocessing
        prov = {"pooling": self.pooling, "preprocessing": preprocessing.describe(), **(provenance or {})}
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
            feats = self.model.forward_intermediates(
                x, indices=wanted, return_prefix_tokens=True, output_fmt="NLC", norm=False, intermediates_only=True
            )
            pooled = [(prefix[:, 0] if self.pooling == "cls" else patches.mean(dim=1)) for patches, prefix in feats]
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


def load(name: str, spec: dict, device: torch.device) -> TimmEncoder:
    """Build ``timm:<spec['name']>`` from the hub (``pretrained: true``), a local ``weights`` file, or random
    init (``pretrained: false``, seeded by ``seed``)."""
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
    try:
        model = timm.create_model(arch, pretrained=pretrained, num_classes=0, **kwargs)
    except Exception as err:  # hub failures surface as OSError/LocalEntryNotFoundError/RuntimeError
        raise ModelLoadError(
            f"model {name!r}: could not create timm model {arch!r} (pretrained={pretrained}): {err}. "
            "Without a model hub, set `weights: /path/to/weights.safetensors` or `pretrained: false`."
        ) from err
    cfg = getattr(model, "pretrained_cfg", {}) or {}
    if pretrained and not weights:
        provenance.update(weights=str(cfg.get("hf_hub_id") or cfg.get("url") or "timm-hub"), tag=str(cfg.get("tag", "")))
    provenance["parameters"] = int(sum(p.numel() for p in model.parameters()))
    preprocessing = preprocessing_from_timm(model, spec.get("input_size"))
    return TimmEncoder(name, model, preprocessing, pooling=spec.get("pooling", "auto"), device=device, provenance=provenance)
