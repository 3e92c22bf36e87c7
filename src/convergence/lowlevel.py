"""Low-level image statistics of every stimulus: what a layer could read out without knowing any object.

Per stimulus, from its uint8 RGB image (the stimulus store's ``image``, scaled to [0, 1]):

``luminance``
    mean luma ``Y = 0.2126 R + 0.7152 G + 0.0722 B`` (Rec. 709 weights on the stored, gamma-encoded values)
``contrast``
    RMS contrast: the standard deviation of ``Y`` over the pixels
``saturation``
    mean HSV saturation ``(max - min) / max`` over the pixels (0 where ``max`` is 0)
``high_frequency``
    high-spatial-frequency energy: the fraction of the power spectrum of ``Y - mean(Y)`` at radial
    frequencies above ``hf_cutoff`` times the Nyquist frequency (0.5 cycles per pixel); 0 for a uniform
    image (no energy at all)

This module imports numpy and xarray only; :func:`lowlevel_statistics` is what the ``lowlevel`` rule stores.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

STATISTICS = ("luminance", "contrast", "saturation", "high_frequency")
LUMA_WEIGHTS = (0.2126, 0.7152, 0.0722)


def _check_images(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"images must be uint8 of shape (n, height, width, 3); got {images.dtype} {images.shape}")
    return images


def image_statistics(images: np.ndarray, *, hf_cutoff: float = 0.5) -> dict[str, np.ndarray]:
    """The statistics of the module docstring for a batch of uint8 RGB images ``(n, height, width, 3)``:
    ``{name: float64 array (n,)}``."""
    images = _check_images(images)
    if not 0 < float(hf_cutoff) < 1:
        raise ValueError(f"hf_cutoff={hf_cutoff!r} must lie in (0, 1): a fraction of the Nyquist frequency")
    rgb = images.astype(np.float64) / 255.0
    y = rgb @ np.asarray(LUMA_WEIGHTS)
    hi, lo = rgb.max(axis=-1), rgb.min(axis=-1)
    sat = np.divide(hi - lo, hi, out=np.zeros_like(hi), where=hi > 0)
    h, w = y.shape[1:]
    power = np.abs(np.fft.fft2(y - y.mean(axis=(1, 2), keepdims=True))) ** 2
    radius = np.hypot(*np.meshgrid(np.fft.fftfreq(h), np.fft.fftfreq(w), indexing="ij"))
    high = radius > float(hf_cutoff) * 0.5
    total = power.sum(axis=(1, 2))
    hf = np.divide(power[:, high].sum(axis=1), total, out=np.zeros_like(total), where=total > 1e-12 * h * w)
    return {
        "luminance": y.mean(axis=(1, 2)),
        "contrast": y.std(axis=(1, 2)),
        "saturation": sat.mean(axis=(1, 2)),
        "high_frequency": hf,
    }


def lowlevel_statistics(stimuli: xr.Dataset, *, hf_cutoff: float = 0.5, batch: int = 256) -> xr.Dataset:
    """Every statistic for every stimulus of a stimulus store (read ``batch`` images at a time).

    Returns a Dataset with one float64 variable per statistic (dim ``stimulus``, the store's ids) and attrs
    describing each definition and ``hf_cutoff``.
    """
    if "image" not in stimuli:
        raise ValueError(f"stimulus store {stimuli.attrs.get('dataset', '?')!r} has no 'image' variable; "
                         "low-level statistics need images")
    n = stimuli.sizes["stimulus"]
    out = {name: np.empty(n) for name in STATISTICS}
    for start in range(0, n, batch):
        part = image_statistics(np.asarray(stimuli["image"][start : start + batch].values), hf_cutoff=hf_cutoff)
        for name in STATISTICS:
            out[name][start : start + batch] = part[name]
    ids = np.array([str(s) for s in np.asarray(stimuli["stimulus"].values).tolist()], dtype=object)
    ds = xr.Dataset({name: ("stimulus", values) for name, values in out.items()}, coords={"stimulus": ids})
    ds.attrs = {
        "dataset": str(stimuli.attrs.get("dataset", "")),
        "statistics": list(STATISTICS),
        "hf_cutoff": float(hf_cutoff),
        "definitions": {
            "luminance": "mean of Y = 0.2126 R + 0.7152 G + 0.0722 B, RGB in [0, 1] (stored gamma-encoded values)",
            "contrast": "standard deviation of Y over pixels (RMS contrast)",
            "saturation": "mean HSV saturation (max - min) / max over pixels, 0 where max = 0",
            "high_frequency": f"fraction of the power of Y - mean(Y) above {hf_cutoff} x Nyquist (0.5 cycles/pixel); "
                              "0 for a uniform image",
        },
    }
    return ds
