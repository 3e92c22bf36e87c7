"""Language models against a plain reference: for each causal-LM architecture of the studies (BLOOM, LLaMA,
Qwen3; tiny random models with a tokenizer of each repo's kind, from convergence.testing.hub) and BERT, pooled
hidden states of padded batches of mixed lengths (mean and last pooling, left and right padding) equal an
unpadded one-text-at-a-time forward pass, and bits per byte equal a computation from the logits by hand."""
import math

import numpy as np
import pytest
import torch
import transformers

from convergence.models.hf_source import HFTextEncoder
from convergence.testing.hub import HF_ARCHITECTURES, HF_TINY, _tokenizer

TEXTS = ["a photo of the sea", "the kite", "two dogs on a beach in the rain, then the tram in the snowy street",
         "é!"]
REPOS = {"bloom": "bigscience/bloomz-560m", "llama": "huggyllama/llama-7b", "qwen3": "Qwen/Qwen3-1.7B",
         "bert": "sentence-transformers/all-MiniLM-L6-v2"}


def tiny(arch: str):
    model_type, cls, tok_kind, tok_class = HF_ARCHITECTURES[next(p for p in HF_ARCHITECTURES
                                                                 if REPOS[arch].startswith(p))]
    tok = _tokenizer(tok_kind, tok_class)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token or tok.unk_token
    fields = {**HF_TINY[model_type], "vocab_size": len(tok)}
    torch.manual_seed(0)
    model = getattr(transformers, cls)(transformers.AutoConfig.for_model(model_type, **fields)).eval()
    return model, tok, cls.endswith("ForCausalLM")


def reference(model, tok, text: str, pooling: str, causal: bool):
    """Every hidden state of one unpadded text, pooled; and its bits per byte from the logits."""
    enc = tok([text], return_tensors="pt")
    with torch.inference_mode():
        out = model(**enc, output_hidden_states=True)
    pooled = [h[0].mean(0) if pooling == "mean" else h[0, -1] for h in out.hidden_states]
    bpb = None
    if causal:
        ids = enc["input_ids"][0]
        nll = torch.nn.functional.cross_entropy(out.logits[0, :-1].float(), ids[1:], reduction="sum")
        bpb = float(nll) / math.log(2) / len(text.encode("utf-8"))
    return pooled, bpb


@pytest.mark.parametrize("arch", list(REPOS))
@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize("pooling", ["mean", "last"])
def test_padded_batches_equal_one_text_at_a_time(arch, side, pooling):
    model, tok, causal = tiny(arch)
    tok.padding_side = side
    enc = HFTextEncoder("m", model, tok, causal=causal, pooling=pooling, max_length=128)
    feats, bpb = enc.encode_with_bpb(TEXTS)
    lengths = {len(tok(t)["input_ids"]) for t in TEXTS}
    assert len(lengths) > 1  # mixed lengths: the batch is padded
    for i, text in enumerate(TEXTS):
        ref, ref_bpb = reference(model, tok, text, pooling, causal)
        for name, r in zip(enc.layer_names, ref, strict=True):
            np.testing.assert_allclose(feats[name][i], r.numpy(), rtol=1e-5, atol=1e-5, err_msg=f"{text!r} {name}")
        if causal:
            assert bpb[i] == pytest.approx(ref_bpb, rel=1e-5)
