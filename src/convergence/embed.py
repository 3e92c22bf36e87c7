"""Run a stimulus set through an encoder and collect every requested layer's pooled features.

The loop is bound by the model's forward pass: stimuli are read in batches (the next batch is read on a
background thread while the model runs), inference runs under ``torch.inference_mode()`` on the
encoder's device, and each layer's rows land in one preallocated float32 array. On CUDA, input batches are
copied through pinned memory without blocking (:func:`convergence.models.base.to_device`), and the forward
pass may run under ``torch.autocast`` in bfloat16 or float16 (``precision``); on the CPU it is float32.
The result is the embedding store of design.md: an :class:`xarray.Dataset` with one variable per layer
(dims ``stimulus``, ``feature_<layer>``), coordinate ``stimulus``, and provenance attrs.
"""

from __future__ import annotations

import platform
import time
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata

import numpy as np
import torch
import xarray as xr
from tqdm.auto import tqdm

from .models.base import Encoder


from .versions import STEP_VERSIONS

FORMAT_VERSION = STEP_VERSIONS["embed"]


class ExtractionError(RuntimeError):
    """Features could not be extracted as asked (no captions for a language model, NaN features, ...)."""


def library_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("convergence", "torch", "timm", "transformers", "numpy", "xarray", "zarr", "onnxruntime"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


#: Forward-pass precisions ``extract`` accepts (config key ``precision``).
PRECISIONS = ("float32", "bfloat16", "float16")


def effective_precision(precision: str, device: torch.device | str) -> str:
    """The precision the forward pass will use: ``precision`` on CUDA, float32 on any other device (autocast
    in reduced precision is applied on CUDA only). Raises ValueError for a name not in :data:`PRECISIONS`."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {list(PRECISIONS)}, got {precision!r}")
    return precision if torch.device(device).type == "cuda" else "float32"


def autocast(precision: str, device: torch.device | str):
    """A context manager running the forward pass in ``effective_precision(precision, device)``: autocast
    on CUDA for bfloat16/float16, nothing for float32 (or any non-CUDA device)."""
    import contextlib

    effective = effective_precision(precision, device)
    if effective == "float32":
        return contextlib.nullcontext()
    return torch.autocast(device_type="cuda", dtype=getattr(torch, effective))


def _batches(stimuli: xr.Dataset, modality: str, batch_size: int):
    """Yield (start, batch) with the next batch read ahead on a background thread."""
    n = stimuli.sizes["stimulus"]
    if modality == "vision":
        var = stimuli["image"]

        def read(start):
            return np.asarray(var[start : start + batch_size].values, dtype=np.uint8)
    else:
        if "caption" not in stimuli:
            raise ExtractionError(
                f"dataset {stimuli.attrs.get('dataset', '?')!r} has no captions, so language models cannot embed it"
            )
        captions = [str(c) for c in stimuli["caption"].values]

        def read(start):
            return captions[start : start + batch_size]

    starts = list(range(0, n, batch_size))
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(read, starts[0]) if starts else None
        for i, start in enumerate(starts):
            batch = pending.result()
            if i + 1 < len(starts):
                pending = pool.submit(read, starts[i + 1])
            yield start, batch


#: Bump when the fixed-text score's definition changes (start token, windows), so cached scores are not reused.
TEXT_BPB_VERSION = 1


def _text_cache_key(encoder: Encoder, text_sha: str, window: int) -> str | None:
    """A cache key for a fixed-text score: only for weights named by a content hash (packaged models)."""
    weights = encoder.provenance.get("source_sha256") or encoder.provenance.get("weights_sha256")
    if not weights or encoder.provenance.get("source") == "hf":
        return None
    import hashlib

    parts = [str(weights), str(encoder.provenance.get("converter_version", "")), text_sha, str(window),
             f"v{TEXT_BPB_VERSION}",
             type(encoder.model).__name__ if hasattr(encoder, "model") else ""]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:32]


def text_competence(encoder: Encoder, text_path, *, window: int = 1024) -> dict:
    """A causal LM's bits per byte on the fixed text at ``text_path`` (see
    :meth:`~convergence.models.hf_source.HFTextEncoder.text_bits_per_byte`), with the text's name and
    sha256. The score depends only on the weights and the text, so for weights named by a content hash it is
    computed once per machine and kept under the model cache (``<cache>/text_bpb/``)."""
    import hashlib
    import json
    from pathlib import Path

    from .models.cache import atomic_file, cache_root

    if not hasattr(encoder, "text_bits_per_byte") or not getattr(encoder, "causal", False):
        raise ExtractionError(f"model {encoder.name!r} is not a causal language model: no bits per byte on a text")
    path = Path(text_path)
    if not path.is_file():
        raise ExtractionError(f"competence text {path} does not exist")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ExtractionError(f"competence text {path} is not UTF-8: {err}") from err
    text_sha = hashlib.sha256(raw).hexdigest()
    key = _text_cache_key(encoder, text_sha, window)
    cached = cache_root() / "text_bpb" / f"{key}.json" if key else None
    if cached is not None and cached.is_file():
        result = json.loads(cached.read_text())
    else:
        t0 = time.perf_counter()
        result = encoder.text_bits_per_byte(text, window=window)
        result["seconds"] = round(time.perf_counter() - t0, 3)
        if cached is not None:
            with atomic_file(cached, suffix=".json") as tmp:
                tmp.write_text(json.dumps(result))
    return {**result, "text": path.name, "text_sha256": text_sha}


def extract(
    encoder: Encoder,
    stimuli: xr.Dataset,
    *,
    batch_size: int = 32,
    progress: bool = True,
    seed: int = 0,
    text=None,
    precision: str = "float32",
) -> xr.Dataset:
    """Features of every stimulus at every selected layer of ``encoder``.

    Returns a Dataset with one float32 variable per layer, dims ``("stimulus", f"feature_{layer}")``, the
    stimulus ids as coordinate, ``bits_per_byte`` (dim ``stimulus``) for causal language models, and attrs
    ``model, modality, layers, depths, provenance, versions, device, batch_size, dataset, seconds``. With
    ``text`` (a path) a causal LM also gets attr ``text_bits_per_byte``: its bits per byte on that fixed text
    and how they were measured (:func:`text_competence`); other models ignore ``text``. ``precision``
    (float32, bfloat16, float16) is the forward pass's arithmetic on CUDA (autocast; features are stored as
    float32 either way); on the CPU, and for ONNX graphs, the pass is float32 whatever is asked, and attr
    ``precision`` records what was used. Raises :class:`ExtractionError` on non-finite features.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    used_precision = effective_precision(precision, encoder.device)
    if not getattr(encoder, "autocast_capable", True):
        used_precision = "float32"
    # weights loaded in reduced precision (a Hugging Face model's `dtype`) compute in it on any device
    if encoder.provenance.get("weights_dtype") in ("bfloat16", "float16") and used_precision == "float32":
        used_precision = encoder.provenance["weights_dtype"]
    torch.manual_seed(seed)
    n = stimuli.sizes["stimulus"]
    if n == 0:
        raise ExtractionError("the stimulus set is empty")
    feats: dict[str, np.ndarray] = {}
    bpb = np.full(n, np.nan, dtype=np.float32)
    has_bpb = False
    t0 = time.perf_counter()
    bar = tqdm(total=n, desc=f"embed {encoder.name}", unit="stim", disable=not progress, mininterval=2.0)
    for start, batch in _batches(stimuli, encoder.modality, batch_size):
        with autocast(used_precision, encoder.device):
            if hasattr(encoder, "encode_with_bpb") and getattr(encoder, "causal", False):
                out, b = encoder.encode_with_bpb(batch)
                if b is not None:
                    bpb[start : start + len(batch)] = b
                    has_bpb = True
            else:
                out = encoder.encode(batch)
        for layer in encoder.layer_names:
            arr = out[layer]
            if layer not in feats:
                feats[layer] = np.empty((n, arr.shape[1]), dtype=np.float32)
            feats[layer][start : start + len(batch)] = arr
        bar.update(len(batch))
    bar.close()
    seconds = time.perf_counter() - t0

    for layer, arr in feats.items():
        bad = ~np.isfinite(arr).all(axis=1)
        if bad.any():
            ids = stimuli["stimulus"].values[bad][:5].tolist()
            raise ExtractionError(
                f"model {encoder.name!r}, layer {layer!r}: non-finite features for {int(bad.sum())} stimuli, e.g. {ids}"
            )
    data_vars = {layer: (("stimulus", f"feature_{layer}"), arr) for layer, arr in feats.items()}
    if has_bpb:
        data_vars["bits_per_byte"] = ("stimulus", bpb)
    ds = xr.Dataset(data_vars, coords={"stimulus": stimuli["stimulus"].values.astype(object)})
    ds.attrs = {
        "model": encoder.name,
        "modality": encoder.modality,
        "layers": list(encoder.layer_names),
        "depths": [float(d) for d in encoder.depths],
        "feature_dims": {layer: int(a.shape[1]) for layer, a in feats.items()},
        "provenance": encoder.provenance,
        "versions": library_versions(),
        "dtype": "float32",
        "device": str(encoder.device),
        "precision": used_precision,
        "batch_size": int(batch_size),
        "dataset": str(stimuli.attrs.get("dataset", "")),
        "n_stimuli": int(n),
        "seconds": round(seconds, 3),
        "format_version": FORMAT_VERSION,
    }
    if text is not None and getattr(encoder, "causal", False):
        ds.attrs["text_bits_per_byte"] = text_competence(encoder, text)
    return ds
