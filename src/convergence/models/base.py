"""The one interface every model source implements.

An :class:`Encoder` turns a batch of stimuli into one pooled feature matrix per layer. Vision encoders take
images as a uint8 array of shape ``(batch, height, width, 3)`` (RGB); language encoders take a list of
strings. Sources (timm, Hugging Face, ONNX, the packaged offline zoo) differ only in how they load and in
what a "layer" is; the extraction loop in :mod:`convergence.embed` sees this interface alone.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F

MODALITIES = ("vision", "language")


class ModelLoadError(RuntimeError):
    """A model could not be loaded; the message says what to install or configure."""


def pick_device(requested: str = "auto") -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cpu``/``cuda``/``cuda:N`` are taken as given."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(requested)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError(f"device {requested!r} was requested but CUDA is not available here")
    return device


def to_device(tensor: torch.Tensor, device: torch.device | str) -> torch.Tensor:
    """``tensor`` (on the CPU) moved to ``device``. To a CUDA device the host tensor is first copied into
    page-locked (pinned) memory so the transfer runs asynchronously (``non_blocking``) on the current stream,
    ordered before the kernels that read it; to the CPU it is returned as is."""
    device = torch.device(device)
    if device.type != "cuda":
        return tensor.to(device)
    if not tensor.is_pinned():
        tensor = tensor.pin_memory()
    return tensor.to(device, non_blocking=True)


def relative_depths(n_layers: int, *, includes_input: bool = False) -> list[float]:
    """Relative depth of each of ``n_layers`` layers: 0 is the input, 1 the last layer.

    With ``includes_input`` the first layer *is* the input representation (e.g. a language model's
    embedding layer) and gets depth 0; otherwise layer ``i`` (0-based) gets ``(i + 1) / n_layers``.
    """
    if n_layers < 1:
        raise ValueError(f"a model needs at least one layer, got {n_layers}")
    if includes_input:
        if n_layers == 1:
            return [0.0]
        return [i / (n_layers - 1) for i in range(n_layers)]
    return [(i + 1) / n_layers for i in range(n_layers)]


@dataclass(frozen=True)
class ImagePreprocessing:
    """How raw uint8 RGB images become model input, applied to a whole batch at once on the device.

    Resize the shorter side to ``round(size / crop_pct)``, centre-crop ``size`` x ``size``, scale to
    [0, 1], then normalise with ``mean``/``std`` per channel. ``channel_order`` ``"BGR"`` flips channels
    after scaling (for Caffe-trained models); ``scale`` 255 keeps pixel units.
    """

    size: int = 224
    crop_pct: float = 0.875
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    interpolation: str = "bicubic"
    channel_order: str = "RGB"
    scale: float = 1.0

    def __call__(self, images: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
        """``images`` uint8 ``(B, H, W, 3)`` -> float32 ``(B, 3, size, size)`` on ``device``."""
        if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
            raise ValueError(
                f"images must be uint8 of shape (batch, height, width, 3); got {images.dtype} {images.shape}"
            )
        x = to_device(torch.from_numpy(np.ascontiguousarray(images)), device)
        x = x.permute(0, 3, 1, 2).float().div_(255.0)
        h, w = x.shape[-2:]
        short = max(1, round(self.size / self.crop_pct))
        if min(h, w) != short:
            scale = short / min(h, w)
            new_hw = (max(self.size, round(h * scale)), max(self.size, round(w * scale)))
            mode = self.interpolation if self.interpolation in ("bilinear", "bicubic", "nearest") else "bilinear"
            kwargs = {} if mode == "nearest" else {"align_corners": False, "antialias": True}
            x = F.interpolate(x, size=new_hw, mode=mode, **kwargs).clamp_(0.0, 1.0)
        h, w = x.shape[-2:]
        top, left = (h - self.size) // 2, (w - self.size) // 2
        x = x[..., top : top + self.size, left : left + self.size]
        if self.channel_order == "BGR":
            x = x.flip(1)
        x = x * self.scale
        mean = torch.tensor(self.mean, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
        return ((x - mean) / std).contiguous()

    def describe(self) -> dict:
        return {
            "pipeline": "convergence.models.base.ImagePreprocessing (torch resize on the device)",
            "size": self.size,
            "crop_pct": self.crop_pct,
            "mean": list(self.mean),
            "std": list(self.std),
            "interpolation": self.interpolation,
            "channel_order": self.channel_order,
            "scale": self.scale,
        }


class SourceTransform:
    """A model source's own image pipeline (timm's eval transform, open_clip's, a Hugging Face image
    processor), applied image by image on the CPU exactly as the source library applies it to a PIL image,
    then stacked and moved to the device. ``transform`` maps one RGB PIL image to a float tensor (3, H, W);
    ``facts`` describe it for the store (``pipeline`` names the library's function)."""

    def __init__(self, transform, facts: dict) -> None:
        self.transform = transform
        self.facts = {"pipeline": str(facts.get("pipeline", "source")), **facts}

    def __call__(self, images: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
        from PIL import Image

        if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
            raise ValueError(
                f"images must be uint8 of shape (batch, height, width, 3); got {images.dtype} {images.shape}"
            )
        batch = torch.stack([self.transform(Image.fromarray(np.ascontiguousarray(im), "RGB")) for im in images])
        return to_device(batch.float().contiguous(), device)

    def describe(self) -> dict:
        return dict(self.facts)


#: Config values of ``image_transform``: the source library's own pipeline, or the project's on-device one.
IMAGE_TRANSFORMS = ("source", "convergence")


@dataclass
class Encoder(abc.ABC):
    """A loaded model that maps a batch of stimuli to pooled features, one ``(batch, dim)`` array per layer.

    Attributes
    ----------
    name : the config name of the model (e.g. ``dinov2_small``).
    modality : ``"vision"`` or ``"language"``.
    layer_names : stored layer names, shallow to deep; valid as Zarr/xarray variable names.
    depths : relative depth of each layer in [0, 1] (0 = input, 1 = last layer).
    provenance : JSON-serialisable facts about what produced the features (source, weights hash, ...).
    """

    name: str
    modality: str
    layer_names: list[str]
    depths: list[float]
    provenance: dict = field(default_factory=dict)
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    #: Whether the forward pass is PyTorch code, so that ``torch.autocast`` (config ``precision``) acts on it;
    #: False for graphs run by another runtime (ONNX Runtime), which always compute in float32.
    autocast_capable: ClassVar[bool] = True

    def __post_init__(self) -> None:
        if self.modality not in MODALITIES:
            raise ValueError(f"modality must be one of {MODALITIES}, got {self.modality!r}")
        if len(self.layer_names) != len(self.depths):
            raise ValueError("layer_names and depths must have the same length")
        if len(set(self.layer_names)) != len(self.layer_names):
            raise ValueError(f"layer names must be unique, got {self.layer_names}")

    @abc.abstractmethod
    def encode(self, batch: np.ndarray | Sequence[str]) -> dict[str, np.ndarray]:
        """Pooled features of one batch: ``{layer_name: float32 array (batch, dim)}`` for every layer."""

    def bits_per_byte(self, texts: Sequence[str]) -> np.ndarray | None:
        """Per-text bits per UTF-8 byte under the model (causal LMs only); ``None`` when not defined."""
        return None

    def select_layers(self, wanted: str | Sequence[str] | None) -> None:
        """Restrict the stored layers: ``"all"``/``None`` (every layer), ``"last"``, or a list of names
        or integer indices (negative counts from the end)."""
        if wanted in (None, "all"):
            return
        names = list(self.layer_names)
        if wanted == "last":
            keep = [names[-1]]
        elif isinstance(wanted, str):
            raise ValueError(f"layers must be 'all', 'last' or a list of layer names/indices; got {wanted!r}")
        else:
            keep = []
            for item in wanted:
                if isinstance(item, int):
                    if not -len(names) <= item < len(names):
                        raise ValueError(f"layer index {item} out of range for {self.name} ({len(names)} layers)")
                    keep.append(names[item])
                elif item in names:
                    keep.append(item)
                else:
                    raise ValueError(f"model {self.name!r} has no layer {item!r}; its layers are {names}")
        idx = [names.index(k) for k in dict.fromkeys(keep)]
        self.layer_names = [names[i] for i in idx]
        self.depths = [self.depths[i] for i in idx]
        self._selected = set(self.layer_names)
