"""Source ``digits``: scikit-learn's 1,797 8x8 handwritten digits (0-16 scaled to 0-255)."""

from __future__ import annotations

import numpy as np

from .images import gray_to_rgb
from .registry import Listing


def _load():
    from sklearn.datasets import load_digits as sk_digits

    return sk_digits()


def list_stimuli(spec: dict) -> Listing:
    d = _load()
    n = len(d.target)
    return Listing(ids=[f"digit-{i:04d}" for i in range(n)], refs=list(range(n)),
                   labels=[str(int(t)) for t in d.target])


def decoder(spec: dict):
    images = _load().images  # the whole set is 1,797 x 8 x 8 values

    def decode(refs) -> np.ndarray:
        imgs = np.clip(np.round(images[np.asarray(refs, dtype=np.int64)] * (255.0 / 16.0)), 0, 255).astype(np.uint8)
        return gray_to_rgb(imgs.reshape(len(refs), 8, 8))

    return decode


def content_files(spec: dict, here) -> list:
    return []  # the installed scikit-learn stands for the content
