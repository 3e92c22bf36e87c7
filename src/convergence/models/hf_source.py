"""Hugging Face transformers models: text encoders, causal LMs and vision backbones.

Text layers are every hidden state (the embedding layer included), mean-pooled over valid tokens (the
attention mask) or, with ``pooling: last``, the hidden state of each text's last non-padding token (what a
causal LM has read the whole text at). Causal LMs also give each text's bits per UTF-8 byte, and
:meth:`HFTextEncoder.text_bits_per_byte` scores one long fixed text (the competence measure). Vision models give every hidden
state, pooled as the CLS token (transformers) or a global average (CNN feature maps).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence

import numpy as np
import torch

from .base import Encoder, ImagePreprocessing, ModelLoadError, SourceTransform, relative_depths, to_device

KINDS = ("auto", "text_encoder", "causal_lm", "vision")
#: Token poolings of text models: ``mean`` over the attention mask, or the ``last`` non-padding token.
TEXT_POOLINGS = ("mean", "last")


def text_pooling(value: str | None, name: str = "?") -> str:
    """The config's ``pooling`` for a text model: ``auto`` (= ``mean``), ``mean`` or ``last``."""
    if value in (None, "auto"):
        return "mean"
    if value not in TEXT_POOLINGS:
        raise ValueError(
            f"model {name!r}: pooling {value!r} is not defined for text models; allowed: auto (= mean), "
            f"{', '.join(TEXT_POOLINGS)}"
        )
    return value


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``hidden`` (B, T, D) over the positions where ``mask`` (B, T) is 1."""
    m = mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * m).sum(dim=1) / m.sum(dim=1).clamp_min(1.0)


def last_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``hidden`` (B, T, D) at each row's last position where ``mask`` (B, T) is 1 (right or left padding)."""
    positions = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
    last = torch.where(mask.bool(), positions, torch.full_like(positions, -1)).max(dim=1).values
    if (last < 0).any():
        raise ValueError("a text has no token to pool (empty attention mask)")
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]


class HFTextEncoder(Encoder):
    """Every hidden state of a transformers text model, pooled over tokens (``pooling``: ``mean`` over the
    attention mask, or the ``last`` non-padding token).

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
        pooling: str = "mean",
        provenance: dict | None = None,
    ) -> None:
        self.model = model.eval().to(device)
        self.tokenizer = tokenizer
        self.causal = causal
        self.max_length = int(max_length)
        self.pooling = text_pooling(pooling, name)
        n_hidden = int(model.config.get_text_config().num_hidden_layers) + 1
        names = [f"hidden_{i:02d}" for i in range(n_hidden)]
        described = "mean over attention mask" if self.pooling == "mean" else "last non-padding token"
        prov = {"pooling": described, "max_length": self.max_length, **(provenance or {})}
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
        return {k: to_device(v, self.device) for k, v in enc.items() if k in ("input_ids", "attention_mask")}

    def _forward(self, texts: Sequence[str]):
        enc = self._tokens(texts)
        extra = {}
        if self._absolute_positions and bool((enc["attention_mask"][:, 0] == 0).any()):
            # left padding and absolute position embeddings (BERT, GPT-2, ...): each text's own positions start
            # at 0 at its first token, as unpadded (rotary and ALiBi models depend on relative positions only)
            extra["position_ids"] = (enc["attention_mask"].long().cumsum(1) - 1).clamp_min(0)
        out = self.model(**enc, **extra, output_hidden_states=True, return_dict=True)
        return enc, out

    @property
    def _absolute_positions(self) -> bool:
        import inspect

        cfg = self.model.config.get_text_config()
        rotary = any(getattr(cfg, k, None) is not None for k in ("rope_theta", "rope_parameters", "rope_scaling"))
        accepts = "position_ids" in inspect.signature(self.model.forward).parameters
        return accepts and not rotary and getattr(cfg, "model_type", "") not in ("bloom", "falcon", "mpt")

    def _pooled(self, enc: dict, hidden) -> dict[str, np.ndarray]:
        if len(hidden) != len(self._all_names):
            raise RuntimeError(f"{self.name}: expected {len(self._all_names)} hidden states, got {len(hidden)}")
        pool = mean_pool if self.pooling == "mean" else last_pool
        mask = enc["attention_mask"]
        return {n: pool(hidden[self._all_names.index(n)].float(), mask).cpu().numpy() for n in self.layer_names}

    @torch.inference_mode()
    def encode(self, batch: Sequence[str]) -> dict[str, np.ndarray]:
        enc, out = self._forward(batch)
        return self._pooled(enc, out.hidden_states)

    @torch.inference_mode()
    def encode_with_bpb(self, batch: Sequence[str]) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
        """Features and bits-per-byte from ONE forward pass (extraction uses this for causal LMs)."""
        enc, out = self._forward(batch)
        feats = self._pooled(enc, out.hidden_states)
        bpb = self._bpb(batch, enc, out.logits) if self.causal else None
        return feats, bpb

    def _window_nll(self, input_ids: torch.Tensor, slice_len: int = 128) -> float:
        """Summed next-token negative log-likelihood (nats) of one unpadded window ``(1, T)``.

        The decoder runs once; its output layer (and Gemma's final logit soft-capping) runs on ``slice_len``
        positions at a time, so a 262k-token vocabulary never materialises a (T, vocab) float32 matrix twice.
        """
        base = getattr(self.model, "base_model", None)
        head = self.model.get_output_embeddings() if hasattr(self.model, "get_output_embeddings") else None
        if base is None or base is self.model or head is None:
            logits = self.model(input_ids=input_ids, return_dict=True).logits[0, :-1].float()
            return float(-torch.log_softmax(logits, -1).gather(-1, input_ids[0, 1:, None]).sum())
        hidden = base(input_ids=input_ids, return_dict=True).last_hidden_state[0, :-1]
        targets = input_ids[0, 1:]
        cap = getattr(self.model.config.get_text_config(), "final_logit_softcapping", None)
        total = 0.0
        for i in range(0, hidden.shape[0], slice_len):
            logits = head(hidden[i : i + slice_len]).float()
            if cap:
                logits = torch.tanh(logits / cap) * cap
            picked = logits.gather(-1, targets[i : i + slice_len, None]).squeeze(-1)
            total += float((torch.logsumexp(logits, -1) - picked).sum())
        return total

    def start_token(self) -> tuple[int, str]:
        """The token prepended to every window of a fixed text: the document separator ``<|endoftext|>`` when
        the vocabulary has it (GPT-2, Qwen, SmolLM2 pretraining), else the tokenizer's BOS (Gemma's ``<bos>``),
        else its EOS. Chat markers such as SmolLM2's BOS ``<|im_start|>`` would announce a chat turn instead."""
        tok = self.tokenizer
        vocab = tok.get_vocab() if hasattr(tok, "get_vocab") else {}
        if "<|endoftext|>" in vocab:
            return int(vocab["<|endoftext|>"]), "document separator '<|endoftext|>'"
        for attr in ("bos_token", "eos_token"):
            token, token_id = getattr(tok, attr, None), getattr(tok, f"{attr}_id", None)
            if token is not None and token_id is not None:
                return int(token_id), f"{attr} {token!r}"
        raise ValueError(f"{self.name}: the tokenizer has neither <|endoftext|>, a BOS nor an EOS token to start "
                         "a text with")

    @torch.inference_mode()
    def text_bits_per_byte(self, text: str, *, window: int = 1024) -> dict:
        """Bits per UTF-8 byte of one long text: the competence measure of a causal LM.

        The text is tokenised once without special tokens and cut into consecutive windows of
        ``window - 1`` tokens; each window gets the model's start token (:meth:`start_token`) prepended, so
        every token of the text is predicted (the first token of a window from the start token alone). The
        summed negative log2-likelihood of all text tokens is divided by the text's UTF-8 byte count.
        Returns ``bits_per_byte``, ``bits``, ``bytes``, ``tokens``, ``windows``, ``window``, ``start_token``.
        """
        if not self.causal:
            raise ValueError(f"{self.name}: bits per byte need a causal language model")
        if not isinstance(text, str) or not text.strip():
            raise ValueError("the competence text must be a non-empty string")
        if isinstance(window, bool) or not isinstance(window, int) or window < 2:
            raise ValueError(f"window must be an integer >= 2 (tokens per forward pass); got {window!r}")
        limit = getattr(self.model.config.get_text_config(), "max_position_embeddings", None)
        if limit is not None and window > int(limit):
            window = int(limit)
        start_id, start_desc = self.start_token()
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        if not ids:
            raise ValueError("the competence text tokenises to nothing")
        step = window - 1
        chunks = [[start_id, *ids[i : i + step]] for i in range(0, len(ids), step)]
        bits = 0.0
        for chunk in chunks:  # one window at a time, the output layer in slices: memory stays small
            input_ids = torch.tensor([chunk], dtype=torch.long, device=self.device)
            bits += self._window_nll(input_ids) / math.log(2.0)
        nbytes = len(text.encode("utf-8"))
        return {
            "bits_per_byte": bits / nbytes,
            "bits": bits,
            "bytes": nbytes,
            "tokens": len(ids),
            "windows": len(chunks),
            "window": window,
            "start_token": start_desc,
        }

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


def resolved_source(name: str, revision: str | None, config) -> dict:
    """What ``from_pretrained(name, revision=...)`` read: for a hub repo the commit the revision resolved to
    (transformers' ``config._commit_hash``, else the snapshot the cached ``config.json`` lies in); for a local
    directory the sha256 of each weights file in it."""
    from pathlib import Path

    from ..hubcache import file_sha256, snapshot_commit

    local = Path(str(name))
    if local.is_dir():
        files = sorted(p for p in local.iterdir() if p.suffix in (".safetensors", ".bin", ".pt", ".pth"))
        return {"weights_files": {p.name: file_sha256(p) for p in files}}
    commit = getattr(config, "_commit_hash", None)
    if not commit:
        from huggingface_hub import try_to_load_from_cache

        path = try_to_load_from_cache(str(name), "config.json", revision=revision)
        commit = snapshot_commit(path) if isinstance(path, str) else None
    return {"commit": str(commit or "unknown")}


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
    if kind == "vision":
        if spec.get("pooling", "auto") not in ("auto", "cls", "mean"):
            raise ValueError(
                f"model {name!r}: pooling {spec['pooling']!r} is not defined for vision models; allowed: auto, cls, mean"
            )
    else:
        text_pooling(spec.get("pooling", "auto"), name)  # fail before loading weights
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
        from ..hubcache import explain_hub_error

        why = explain_hub_error(err, str(spec.get("name")), spec.get("revision")) if pretrained else None
        if why:
            raise ModelLoadError(f"model {name!r}: {why}") from err
        raise ModelLoadError(
            f"model {name!r}: could not load transformers model {spec.get('name')!r}: {err}. "
            "Without a model hub, point `name` at a local directory saved with save_pretrained()."
        ) from err
    provenance["parameters"] = int(sum(p.numel() for p in model.parameters()))
    provenance["weights_dtype"] = str(next(model.parameters()).dtype).replace("torch.", "")
    if pretrained:
        provenance.update(resolved_source(spec["name"], spec.get("revision"), getattr(model, "config", None)))
    if kind == "vision":
        from transformers import AutoImageProcessor

        try:
            proc = AutoImageProcessor.from_pretrained(spec["name"], revision=spec.get("revision"))
            if (spec.get("image_transform") or "source") == "source":  # the processor's own pipeline
                pre = SourceTransform(lambda im: proc(images=im, return_tensors="pt")["pixel_values"][0],
                                      {"pipeline": f"transformers {type(proc).__name__}(images=..., "
                                       "return_tensors='pt')", **json.loads(proc.to_json_string())})
                return HFVisionEncoder(name, model, pre, pooling=spec.get("pooling", "auto"), device=device,
                                       provenance=provenance)
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
        max_length=int(spec.get("max_length", 128)), pooling=text_pooling(spec.get("pooling", "auto"), name),
        provenance=provenance,
    )
