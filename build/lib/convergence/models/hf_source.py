"""Hugging Face transformers models: text encoders, causal LMs and vision backbones.

Text layers are every hidden state (the embedding layer included), mean-pooled over valid tokens (the
attention mask). Causal LMs also give each text's bits per UTF-8 byte. Vision models give every hidden
state, pooled as the CLS token (transformers) or a global average (CNN feature maps).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from .base import Encoder, ImagePreprocessing, ModelLoadError, relative_depths

KINDS = ("auto", "text_encoder", "causal_lm", "vision")


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``hidden`` (B, T, D) over the positions where ``mask`` (B, T) is 1."""
    m = mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * m).sum(dim=1) / m.sum(dim=1).clamp_min(1.0)


class HFTextEncoder(Encoder):
    """Every hidden state of a transformers text model, mean-pooled over the attention mask.

    With ``causal=True`` the model must be a ``*ForCausalLM``; :meth:`bits_per_byte` then gives, per text,
    the summed next-token negative log-likelihood in bits divided by the text's UTF-8 byte count (tokens
    the model cannot predict, i.e. the first one when the tokenizer adds no BOS, are not counted; a text
    cut at ``max_length`` tokens counts the bytes of its kept part only).
    """

    def __init__(
        self,
        name: str,
        model: torch.nn.Module,
        tokenizer,
        *,
        causal: bool,
        device: torch.device | str = "cpu",
        max_length: int = 128,
        provenance: dict | None = None,
    ) -> None:
        self.model = model.eval().to(device)
        self.tokenizer = tokenizer
        self.causal = causal
        self.max_length = int(max_length)
        n_hidden = int(model.config.get_text_config().num_hidden_layers) + 1
        names = [f"hidden_{i:02d}" for i in range(n_hidden)]
        prov = {"pooling": "mean over attention mask", "max_length": self.max_length, **(provenance or {})}
        super().__init__(
            name=name,
            modality="language",
            layer_names=names,
            depths=relative_depths(n_hidden, includes_input=True),
            provenance=prov,
            device=torch.device(device),
        )
        self._all_names = list(names)

    def _tokens(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        if not texts or not all(isinstance(t, str) for t in texts):
            raise ValueError("language models take a non-empty list of strings")
        enc = self.tokenizer(
            list(texts), return_tensors="pt", padding=True, truncation=True, max_length=self.max_length
        )
        return {k: v.to(self.device) for k, v in enc.items() if k in ("input_ids", "attention_mask")}

    def _forward(self, texts: Sequence[str]):
        enc = self._tokens(texts)
        out = self.model(**enc, output_hidden_states=True, return_dict=True)
        return enc, out

    @torch.inference_mode()
    def encode(self, batch: Sequence[str]) -> dict[str, np.ndarray]:
        enc, out = self._forward(batch)
        hidden = out.hidden_states
        if len(hidden) != len(self._all_names):
            raise RuntimeError(f"{self.name}: expected {len(self._all_names)} hidden states, got {len(hidden)}")
        mask = enc["attention_mask"]
        return {
            n: mean_pool(hidden[self._all_names.index(n)].float(), mask).cpu().numpy() for n in self.layer_names
        }

    @torch.inference_mode()
    def encode_with_bpb(self, batch: Sequence[str]) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
        """Features and bits-per-byte from ONE forward pass (extraction uses this for causal LMs)."""
        enc, out = self._forward(batch)
        mask = enc["attention_mask"]
        feats = {
            n: mean_pool(out.hidden_states[self._all_names.index(n)].float(), mask).cpu().numpy()
            for n in self.layer_names
        }
        bpb = self._bpb(batch, enc, out.logits) if self.causal else None
        return feats, bpb

    def _bpb(self, texts: Sequence[str], enc: dict, logits: torch.Tensor) -> np.ndarray:
        ids, mask = enc["input_ids"], enc["attention_mask"]
        logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
        target = ids[:, 1:]
        nll = -logp.gather(-1, target.unsqueeze(-1)).squeeze(-1)  # nats, (B, T-1)
        valid = (mask[:, 1:] * mask[:, :-1]).to(nll.dtype)
        bits = (nll * valid).sum(dim=1) / math.log(2.0)
        # Divide by the bytes the model actually saw: a caption cut at max_length counts only its kept part.
        full_lengths = [len(x) for x in self.tokenizer(list(texts), truncation=False)["input_ids"]]
        seen = []
        for text, n_full, row, m in zip(texts, full_lengths, ids, mask):
            if n_full > self.max_length:
                text = self.tokenizer.decode(row[m.bool()].tolist(), skip_special_tokens=True)
            seen.append(max(1, len(text.encode("utf-8"))))
        nbytes = torch.tensor(seen, device=bits.device, dtype=bits.dtype)
        return (bits / nbytes).cpu().numpy()

    @torch.inference_mode()
    def bits_per_byte(self, texts: Sequence[str]) -> np.ndarray | None:
        if not self.causal:
            return None
        enc, out = self._forward(texts)
        return self._bpb(texts, enc, out.logits)


class HFVisionEncoder(Encoder):
    """Every hidden state of a transformers vision backbone (CLS token or global average pool)."""

    def __init__(self, name, model, preprocessing: ImagePreprocessing, *, pooling="auto", device="cpu", provenance=None):
        self.model = model.eval().to(device)
        self.preprocessing = preprocessing
        self.pooling = pooling
        n = int(getattr(model.config, "num_hidden_layers", 0) or len(getattr(model.config, "depths", []))) + 1
        names = [f"hidden_{i:02d}" for i in range(n)]
        super().__init__(
            name=name,
            modality="vision",
            layer_names=names,
            depths=relative_depths(n, includes_input=True),
            provenance={"pooling": pooling, "preprocessing": preprocessing.describe(), **(provenance or {})},
            device=torch.device(device),
        )
        self._all_names = list(names)

    @torch.inference_mode()
    def encode(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        x = self.preprocessing(batch, self.device)
        hidden = self.model(pixel_values=x, output_hidden_states=True, return_dict=True).hidden_states
        out = {}
        for n in self.layer_names:
            h = hidden[self._all_names.index(n)].float()
            if h.ndim == 4:  # CNN feature map (B, C, H, W)
                out[n] = h.mean(dim=(-2, -1)).cpu().numpy()
            elif self.pooling == "mean":
                out[n] = h[:, 1:].mean(dim=1).cpu().numpy()
            else:
                out[n] = h[:, 0].cpu().numpy()
        return out


def _tokenizer(spec: dict, source_dir: str | None):
    from transformers import AutoTokenizer

    tok_name = spec.get("tokenizer") or source_dir or spec["name"]
    if tok_name == "bytes":
        from transformers import ByT5Tokenizer

        tok = ByT5Tokenizer()
    else:
        tok = AutoTokenizer.from_pretrained(tok_name, revision=spec.get("revision"))
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token or tok.unk_token
    return tok


def _guess_text_kind(spec: dict) -> str:
    """``causal_lm`` when the model's config names a ``*ForCausalLM`` architecture, else ``text_encoder``."""
    from transformers import AutoConfig

    if spec.get("pretrained", True):
        try:
            archs = AutoConfig.from_pretrained(spec["name"], revision=spec.get("revision")).architectures or []
        except Exception:
            return "text_encoder"  # the real load below reports the problem
    else:
        archs = (spec.get("config") or {}).get("architectures") or []
    return "causal_lm" if any(a.endswith("ForCausalLM") for a in archs) else "text_encoder"


def load(name: str, spec: dict, device: torch.device) -> Encoder:
    """``hf:<name>`` from the hub or a local directory, or a random model from ``config`` (a dict of
    transformers config fields with ``model_type``) when ``pretrained: false``."""
    try:
        import transformers
        from transformers import AutoConfig, AutoModel, AutoModelForCausalLM
    except ImportError as err:  # pragma: no cover
        raise ModelLoadError("transformers is not installed: pip install 'transformers>=5'") from err

    kind = spec.get("kind", "auto")
    if kind not in KINDS:
        raise ValueError(f"model {name!r}: kind must be one of {KINDS}, got {kind!r}")
    modality = spec["modality"]
    if kind == "auto":
        kind = "vision" if modality == "vision" else _guess_text_kind(spec)
    trust = bool(spec.get("trust_remote_code", False))
    provenance = {"source": "hf", "transformers_version": transformers.__version__, "kind": kind}
    pretrained = bool(spec.get("pretrained", True))
    try:
        if pretrained:
            repo = spec["name"]
            provenance.update(repo=repo, revision=str(spec.get("revision") or "main"))
            loader = AutoModelForCausalLM if kind == "causal_lm" else AutoModel
            model = loader.from_pretrained(
                repo, revision=spec.get("revision"), trust_remote_code=trust, dtype=getattr(torch, spec.get("dtype", "float32"))
            )
        else:
            cfg_fields = dict(spec.get("config") or {})
            if "model_type" not in cfg_fields:
                raise ModelLoadError(f"model {name!r}: pretrained: false needs a `config` with a model_type")
            cfg = AutoConfig.for_model(**cfg_fields)
            torch.manual_seed(int(spec.get("seed", 0)))
            model = (AutoModelForCausalLM if kind == "causal_lm" else AutoModel).from_config(cfg)
            provenance.update(weights="random-init", config=cfg_fields, init_seed=int(spec.get("seed", 0)))
    except ModelLoadError:
        raise
    except Exception as err:
        raise ModelLoadError(
            f"model {name!r}: could not load transformers model {spec.get('name')!r}: {err}. "
            "Without a model hub, point `name` at a local directory saved with save_pretrained()."
        ) from err
    provenance["parameters"] = int(sum(p.numel() for p in model.parameters()))
    provenance["weights_dtype"] = str(next(model.parameters()).dtype).replace("torch.", "")
    if kind == "vision":
        from transformers import AutoImageProcessor

        try:
            proc = AutoImageProcessor.from_pretrained(spec["name"], revision=spec.get("revision"))
            resize = proc.size.get("shortest_edge") or proc.size.get("height") or 224
            crop = proc.crop_size["height"] if getattr(proc, "do_center_crop", False) and proc.crop_size else resize
            pre = ImagePreprocessing(
                size=int(crop), crop_pct=float(crop) / float(resize), mean=tuple(proc.image_mean), std=tuple(proc.image_std)
            )
        except Exception:
            pre = ImagePreprocessing(size=int(spec.get("input_size", 224)))
        return HFVisionEncoder(name, model, pre, pooling=spec.get("pooling", "auto"), device=device, provenance=provenance)
    tokenizer = _tokenizer(spec, None)
    return HFTextEncoder(
        name, model, tokenizer, causal=(kind == "causal_lm"), device=device,
        max_length=int(spec.get("max_length", 128)), provenance=provenance,
    )
