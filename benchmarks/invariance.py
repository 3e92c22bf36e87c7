"""Which extraction settings change the stored features, per model backend: batch size and thread count.

Each model extracts the same stimuli (emoji, with captions) at several batch sizes and torch thread counts
on the CPU in float32; every result is compared with the reference (the first batch size, one thread) over
all stored layers: ``identical`` when every float32 is bit-for-bit equal, else the largest absolute
difference relative to the layer's largest absolute value. The workflow's rule parameters follow these
measurements (convergence.config.extraction_params): a setting that changes no stored number is no rerun
trigger.

Models: the tiny random-init test models (timm CNN and ViT, HF BERT and GPT-2 with the bytes tokenizer),
and with ``--packaged`` the default run's packaged models (converted weights in $CONVERGENCE_CACHE).

Usage: python benchmarks/invariance.py [--n 24] [--batch-sizes 32 1 7] [--threads 1 2] [--packaged]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from convergence.embed import extract
from convergence.models import load_encoder
from convergence.stimuli import build_stimuli

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from conftest import TINY_BERT, TINY_CNN, TINY_GPT, TINY_VIT  # noqa: E402

PACKAGED = {
    "efficientnet_lite0": {"source": "packaged", "name": "efficientnet_lite0", "modality": "vision"},
    "open_nsfw": {"source": "packaged", "name": "open_nsfw", "modality": "vision"},
    "dinov2_small": {"source": "packaged", "name": "dinov2_small", "modality": "vision"},
    "hed_edges": {"source": "packaged", "name": "hed_edges", "modality": "vision"},
    "all_minilm_l6": {"source": "packaged", "name": "all_minilm_l6", "modality": "language"},
    "paraphrase_minilm_l3": {"source": "packaged", "name": "paraphrase_minilm_l3", "modality": "language"},
    "smollm2_135m": {"source": "packaged", "name": "smollm2_135m", "modality": "language", "pooling": "mean"},
}


def features(spec: dict, name: str, stimuli, batch_size: int, threads: int) -> dict[str, np.ndarray]:
    torch.set_num_threads(threads)
    encoder = load_encoder(name, spec, device="cpu")
    ds = extract(encoder, stimuli, batch_size=batch_size, progress=False, seed=spec.get("seed", 0))
    return {layer: ds[layer].values for layer in ds.attrs["layers"]}


def compare(ref: dict[str, np.ndarray], other: dict[str, np.ndarray]) -> str:
    worst = 0.0
    for layer, a in ref.items():
        b = other[layer]
        if not np.array_equal(a.view(np.uint32), b.view(np.uint32)):
            worst = max(worst, float(np.abs(a - b).max() / max(np.abs(a).max(), 1e-30)))
    return "identical" if worst == 0.0 else f"{worst:.1e}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=24)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 1, 7])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--packaged", action="store_true")
    args = parser.parse_args()
    stimuli = build_stimuli("emoji", {"source": "emoji", "limit": args.n, "seed": 3, "image_size": 64})
    models = {"timm_cnn": TINY_CNN, "timm_vit": TINY_VIT, "hf_bert": TINY_BERT, "hf_gpt2": TINY_GPT}
    if args.packaged:
        models.update(PACKAGED)
    settings = [(b, t) for t in args.threads for b in args.batch_sizes]
    print(f"{args.n} emoji stimuli, CPU float32; reference: batch {settings[0][0]}, {settings[0][1]} thread(s)")
    print("model".ljust(22) + "".join(f"b{b}/t{t}".rjust(12) for b, t in settings[1:]))
    for name, spec in models.items():
        ref = features(spec, name, stimuli, *settings[0])
        row = [compare(ref, features(spec, name, stimuli, b, t)) for b, t in settings[1:]]
        print(name.ljust(22) + "".join(c.rjust(12) for c in row), flush=True)


if __name__ == "__main__":
    main()
