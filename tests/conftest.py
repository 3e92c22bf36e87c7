import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# Converted packaged weights: the same cache the workflow uses (config.yaml's cache_dir), so `make test`
# and `make run` convert each model once between them.
os.environ.setdefault("CONVERGENCE_CACHE", str(ROOT / "resources" / "cache"))


# Small random-init models shared by the unit and workflow tests: fast on 2 CPU cores, no hub needed.
TINY_CNN = {
    "source": "timm", "name": "resnet18", "pretrained": False, "modality": "vision",
    "objective": "random", "family": "cnn", "batch_size": 16, "input_size": 64,
}
TINY_VIT = {
    "source": "timm", "name": "vit_tiny_patch16_224", "pretrained": False, "modality": "vision",
    "objective": "random", "family": "transformer", "batch_size": 16, "input_size": 64,
    "model_kwargs": {"img_size": 64},
}
TINY_BERT = {
    "source": "hf", "pretrained": False, "tokenizer": "bytes", "modality": "language", "objective": "random",
    "family": "transformer", "batch_size": 16,
    "config": {"model_type": "bert", "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
               "intermediate_size": 64, "vocab_size": 384},
}
TINY_GPT = {
    "source": "hf", "pretrained": False, "tokenizer": "bytes", "kind": "causal_lm", "modality": "language",
    "objective": "random", "family": "transformer", "batch_size": 16,
    "config": {"model_type": "gpt2", "n_embd": 32, "n_layer": 2, "n_head": 2, "vocab_size": 384,
               "bos_token_id": 1, "eos_token_id": 1},
}


@pytest.fixture(scope="session")
def tiny_specs():
    return {"cnn": dict(TINY_CNN), "vit": dict(TINY_VIT), "bert": dict(TINY_BERT), "gpt": dict(TINY_GPT)}


@pytest.fixture(scope="session")
def emoji_stimuli():
    from convergence.stimuli import build_stimuli

    return build_stimuli("emoji", {"source": "emoji", "limit": 24, "seed": 3, "image_size": 32})


@pytest.fixture(scope="session")
def digits_stimuli():
    from convergence.stimuli import build_stimuli

    return build_stimuli("digits", {"source": "digits", "per_class": 3, "seed": 0})
