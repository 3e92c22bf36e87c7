"""Run a stimulus set through an encoder and collect every requested layer's pooled features.

The loop is bound by the model's forward pass: stimuli are read from their store one block of rows at a
time on a background thread (a bounded queue of batches, so reading and decompressing overlap the forward
pass), inference runs under ``torch.inference_mode()`` on the encoder's device, and features are collected
one chunk of ``chunk`` stimuli at a time (:func:`iter_features`). :func:`extract_to_store` appends each
chunk to the embedding store as soon as it is complete, so the ``embed`` job holds one chunk of features
(``chunk`` x the sum of the layers' widths x 4 bytes) and at most three blocks of input whatever the number of
stimuli, and a killed job resumes from its last complete chunk (:class:`convergence.store.ChunkedStore`).
Batches never straddle a chunk boundary, so a chunk's features depend on that chunk alone: a resumed, a
sharded and an uninterrupted run store the same bits. On CUDA, input batches are
copied through pinned memory without blocking (:func:`convergence.models.base.to_device`), and the forward
pass may run under ``torch.autocast`` in bfloat16 or float16 (``precision``); on the CPU it is float32.
The result is the embedding store of design.md: an :class:`xarray.Dataset` with one variable per layer
(dims ``stimulus``, ``feature_<layer>``), coordinate ``stimulus``, and provenance attrs.
"""

from __future__ import annotations

import platform
import time
from importlib import metadata

import numpy as np
import torch
import xarray as xr
from tqdm.auto import tqdm

from .models.base import Encoder
from .store import STIMULUS_CHUNK
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


#: Rows read from the stimulus store at once (its own chunk: one decompression per stored chunk).
READ_ROWS = 1024


def _reader(stimuli: xr.Dataset, modality: str):
    """``read(start, stop)``: the model inputs of stimuli ``start:stop`` (uint8 images or caption strings)."""
    if modality == "vision":
        var = stimuli["image"]

        def read(start, stop):
            return np.asarray(var[start:stop].values, dtype=np.uint8)

        return read
    if "caption" not in stimuli:
        raise ExtractionError(
            f"dataset {stimuli.attrs.get('dataset', '?')!r} has no captions, so language models cannot embed it"
        )
    var = stimuli["caption"]

    def read_text(start, stop):
        return [str(c) for c in var[start:stop].values]

    return read_text


def _batches(stimuli: xr.Dataset, modality: str, batch_size: int, start: int = 0, stop: int | None = None,
             chunk: int | None = None, read_rows: int = READ_ROWS):
    """Yield (row, batch) for stimuli ``start:stop``: batches of ``batch_size`` that restart at every multiple of
    ``chunk`` (so no batch straddles two chunks), read in blocks of ``read_rows`` rows on a background thread
    that keeps up to two blocks ahead of the forward pass."""
    import queue
    import threading

    n = stimuli.sizes["stimulus"] if stop is None else stop
    chunk = chunk or max(n, 1)
    read = _reader(stimuli, modality)
    q: queue.Queue = queue.Queue(maxsize=max(2, 2 * read_rows // max(batch_size, 1)))
    done = object()
    cancelled = threading.Event()

    def produce():
        try:
            row = start
            while row < n and not cancelled.is_set():
                block_stop = min(n, row + read_rows)
                block = read(row, block_stop)
                b0 = row
                while b0 < block_stop:
                    b1 = min(block_stop, b0 + batch_size, (b0 // chunk + 1) * chunk)
                    q.put((b0, block[b0 - row : b1 - row]))
                    b0 = b1
                row = block_stop
            q.put(done)
        except BaseException as err:  # handed to the consumer
            q.put(err)

    thread = threading.Thread(target=produce, name="stimulus-reader", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        cancelled.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            try:
                q.get_nowait()
            except queue.Empty:
                thread.join(timeout=0.05)


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


def _check_finite(layer: str, arr: np.ndarray, ids, model: str) -> None:
    bad = ~np.isfinite(arr).all(axis=1)
    if bad.any():
        raise ExtractionError(
            f"model {model!r}, layer {layer!r}: non-finite features for {int(bad.sum())} stimuli, e.g. "
            f"{list(np.asarray(ids)[bad][:5])}"
        )


def iter_features(encoder: Encoder, stimuli: xr.Dataset, *, batch_size: int = 32, chunk: int = STIMULUS_CHUNK,
                  start: int = 0, stop: int | None = None, precision: str = "float32", progress: bool = True):
    """Yield ``(row, features, bits_per_byte)`` for every chunk of stimuli ``start:stop`` (``start`` a multiple of
    ``chunk``): ``features`` maps each layer to a float32 (rows, width) array, ``bits_per_byte`` is a float32
    array for causal language models (else None). Raises :class:`ExtractionError` on non-finite features,
    naming the stimuli."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if start % chunk:
        raise ValueError(f"start {start} is not a multiple of chunk {chunk}")
    used_precision = effective_precision(precision, encoder.device)
    if not getattr(encoder, "autocast_capable", True):
        used_precision = "float32"
    n = stimuli.sizes["stimulus"] if stop is None else stop
    ids = stimuli["stimulus"].values
    bar = tqdm(total=n, initial=start, desc=f"embed {encoder.name}", unit="stim", disable=not progress,
               mininterval=2.0)
    with_bpb = hasattr(encoder, "encode_with_bpb") and getattr(encoder, "causal", False)
    feats: dict[str, np.ndarray] = {}
    bpb = None
    c0 = start

    def flush(c0, c1):
        for layer in encoder.layer_names:
            _check_finite(layer, feats[layer][: c1 - c0], ids[c0:c1], encoder.name)
        return c0, {layer: feats[layer][: c1 - c0].copy() for layer in encoder.layer_names}, (
            None if bpb is None else bpb[: c1 - c0].copy())

    for row, batch in _batches(stimuli, encoder.modality, batch_size, start, n, chunk=chunk):
        if row >= c0 + chunk:  # the previous chunk is complete
            yield flush(c0, c0 + chunk)
            c0 += chunk
        with autocast(used_precision, encoder.device):
            if with_bpb:
                out, b = encoder.encode_with_bpb(batch)
            else:
                out, b = encoder.encode(batch), None
        rows = min(chunk, n - c0)
        for layer in encoder.layer_names:
            arr = out[layer]
            if layer not in feats:
                feats[layer] = np.empty((rows, arr.shape[1]), dtype=np.float32)
            feats[layer][row - c0 : row - c0 + len(batch)] = arr
        if b is not None:
            if bpb is None:
                bpb = np.full(min(chunk, n - c0), np.nan, dtype=np.float32)
            bpb[row - c0 : row - c0 + len(batch)] = b
        bar.update(len(batch))
    if n > c0:
        yield flush(c0, n)
    bar.close()


def _attrs(encoder: Encoder, stimuli: xr.Dataset, feature_dims: dict, *, batch_size: int, precision: str,
           seconds: float, n: int) -> dict:
    return {
        "model": encoder.name,
        "modality": encoder.modality,
        "layers": list(encoder.layer_names),
        "depths": [float(d) for d in encoder.depths],
        "feature_dims": {layer: int(d) for layer, d in feature_dims.items()},
        "provenance": encoder.provenance,
        "versions": library_versions(),
        "dtype": "float32",
        "device": str(encoder.device),
        "precision": precision,
        "batch_size": int(batch_size),
        # what else decides the last bits on the CPU: the thread count and the instruction set of the kernels
        "threads": int(torch.get_num_threads()),
        "cpu_capability": str(torch.backends.cpu.get_cpu_capability()),
        "dataset": str(stimuli.attrs.get("dataset", "")),
        "n_stimuli": int(n),
        "seconds": round(seconds, 3),
        "format_version": FORMAT_VERSION,
    }


def _used_precision(encoder: Encoder, precision: str) -> str:
    """The arithmetic the forward pass actually ran in: autocast's on CUDA, float32 on the CPU and for ONNX
    graphs, and the weights' own dtype when they were loaded in reduced precision (a Hugging Face model's
    ``dtype``), which computes in it on any device."""
    used = effective_precision(precision, encoder.device)
    if not getattr(encoder, "autocast_capable", True):
        used = "float32"
    if encoder.provenance.get("weights_dtype") in ("bfloat16", "float16") and used == "float32":
        used = encoder.provenance["weights_dtype"]
    return used


def _chunk_dataset(encoder: Encoder, ids, feats: dict, bpb) -> xr.Dataset:
    data_vars = {layer: (("stimulus", f"feature_{layer}"), arr) for layer, arr in feats.items()}
    if bpb is not None:
        data_vars["bits_per_byte"] = ("stimulus", bpb)
    return xr.Dataset(data_vars, coords={"stimulus": np.asarray(ids).astype(object)})


def extract(
    encoder: Encoder,
    stimuli: xr.Dataset,
    *,
    batch_size: int = 32,
    progress: bool = True,
    seed: int = 0,
    text=None,
    precision: str = "float32",
    chunk: int = STIMULUS_CHUNK,
) -> xr.Dataset:
    """Features of every stimulus at every selected layer of ``encoder``, as one in-memory Dataset (the
    ``embed`` rule writes the same rows chunk by chunk with :func:`extract_to_store`).

    Returns a Dataset with one float32 variable per layer, dims ``("stimulus", f"feature_{layer}")``, the
    stimulus ids as coordinate, ``bits_per_byte`` (dim ``stimulus``) for causal language models, and attrs
    ``model, modality, layers, depths, provenance, versions, device, batch_size, dataset, seconds``. With
    ``text`` (a path) a causal LM also gets attr ``text_bits_per_byte``: its bits per byte on that fixed text
    and how they were measured (:func:`text_competence`); other models ignore ``text``. ``precision``
    (float32, bfloat16, float16) is the forward pass's arithmetic on CUDA (autocast; features are stored as
    float32 either way); on the CPU, and for ONNX graphs, the pass is float32 whatever is asked, and attr
    ``precision`` records what was used, ``threads`` and ``cpu_capability`` how the CPU computed. Raises
    :class:`ExtractionError` on non-finite features.
    """
    torch.manual_seed(seed)
    n = stimuli.sizes["stimulus"]
    if n == 0:
        raise ExtractionError("the stimulus set is empty")
    t0 = time.perf_counter()
    parts = [_chunk_dataset(encoder, stimuli["stimulus"].values[r : r + len(next(iter(f.values())))], f, b)
             for r, f, b in iter_features(encoder, stimuli, batch_size=batch_size, chunk=chunk, precision=precision,
                                          progress=progress)]
    ds = parts[0] if len(parts) == 1 else xr.concat(parts, dim="stimulus")
    ds.attrs = _attrs(encoder, stimuli, {layer: ds[layer].shape[1] for layer in encoder.layer_names},
                      batch_size=batch_size, precision=_used_precision(encoder, precision),
                      seconds=time.perf_counter() - t0, n=n)
    if text is not None and getattr(encoder, "causal", False):
        ds.attrs["text_bits_per_byte"] = text_competence(encoder, text)
    return ds


def stimuli_fingerprint(path) -> str:
    """A digest of a stimulus store as written (every file's name, size and modification time): a rebuilt
    store never matches an older one, so extraction work on the old one is never resumed on the new."""
    import hashlib
    from pathlib import Path

    root = Path(path)
    h = hashlib.sha256()
    for f in sorted(root.rglob("*")):
        if f.is_file() and f.name != ".snakemake_timestamp":
            st = f.stat()
            h.update(f"{f.relative_to(root).as_posix()}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


#: Environment variable for tests: the extraction kills its own process (SIGKILL) after writing this many
#: chunks, as a time limit or a preemption would.
KILL_AFTER_CHUNKS = "CONVERGENCE_TEST_KILL_AFTER_CHUNKS"


def extract_to_store(
    encoder: Encoder,
    stimuli_path,
    path,
    *,
    params=None,
    batch_size: int = 32,
    progress: bool = True,
    seed: int = 0,
    text=None,
    precision: str = "float32",
    chunk: int = STIMULUS_CHUNK,
    start: int = 0,
    stop: int | None = None,
) -> xr.Dataset:
    """Extract the stimuli of the store ``stimuli_path`` (rows ``start:stop``, default all) and write the
    embedding store ``path`` chunk by chunk; returns the finished store, opened lazily.

    The work grows in ``.<name>.partial-<key>`` beside ``path``, ``key`` a digest of ``params`` (the job's
    parameters: the model entry), the encoder's provenance and layers, the batch size, precision, chunk,
    row range, format version and :func:`stimuli_fingerprint` of the stimulus store; a rerun with the same
    key (the job was killed) continues after the last complete chunk, while any change starts afresh. The
    store appears at ``path`` only when complete (atomic rename). Peak memory: one chunk of features plus
    at most three blocks of :data:`READ_ROWS` inputs (two queued, one being read), whatever the number of stimuli.
    """
    import os
    import signal

    from .store import ChunkedStore, job_key, open_store

    stimuli = open_store(stimuli_path)
    n_all = stimuli.sizes["stimulus"]
    stop = n_all if stop is None else min(stop, n_all)
    if stop <= start:
        raise ExtractionError("the stimulus set is empty")
    sub = stimuli.isel(stimulus=slice(start, stop)) if (start, stop) != (0, n_all) else stimuli
    used_precision = _used_precision(encoder, precision)
    key = job_key("embed", params, encoder.name, encoder.provenance, list(encoder.layer_names), batch_size,
                  used_precision, chunk, start, stop, seed, FORMAT_VERSION, stimuli_fingerprint(stimuli_path))
    out = ChunkedStore(path, chunk=chunk, key=key)
    if out.resumed:
        print(f"{encoder.name}: resuming after {out.rows} of {stop - start} stimuli (complete chunks of an earlier run)")
    torch.manual_seed(seed)
    seconds = float(out.info.get("seconds", 0.0))
    dims = dict(out.info.get("feature_dims", {}))
    kill_after = int(os.environ.get(KILL_AFTER_CHUNKS, "0") or 0)
    written = 0
    t0 = time.perf_counter()
    for row, feats, bpb in iter_features(encoder, sub, batch_size=batch_size, chunk=chunk, start=out.rows,
                                         precision=precision, progress=progress):
        rows = len(next(iter(feats.values())))
        dims = {layer: int(a.shape[1]) for layer, a in feats.items()}
        now = time.perf_counter()
        seconds += now - t0
        t0 = now
        out.append(_chunk_dataset(encoder, sub["stimulus"].values[row : row + rows], feats, bpb),
                   seconds=seconds, feature_dims=dims)
        written += 1
        if kill_after and written >= kill_after:
            os.kill(os.getpid(), signal.SIGKILL)
    seconds += time.perf_counter() - t0
    attrs = _attrs(encoder, stimuli, dims, batch_size=batch_size, precision=used_precision, seconds=seconds,
                   n=stop - start)
    if (start, stop) != (0, n_all):
        attrs["rows"] = [int(start), int(stop)]
    if out.resumed:
        attrs["resumed_after"] = int(out.resumed_from)
    if text is not None and getattr(encoder, "causal", False):
        attrs["text_bits_per_byte"] = text_competence(encoder, text)
    out.finish(attrs)
    return open_store(path)


def join_shards(shards, path, *, chunk: int = STIMULUS_CHUNK) -> xr.Dataset:
    """Join the embedding stores ``shards`` (consecutive row ranges of one stimulus store, in order) into
    the one store ``path``, chunk by chunk (one chunk in memory), atomically; its rows, chunks and attrs are
    those of the unsharded extraction, with ``seconds`` the shards' sum and ``shards`` their row ranges."""
    from .store import ChunkedStore, open_store

    parts = [open_store(p) for p in shards]
    if not parts:
        raise ExtractionError("no shards to join")
    ranges = [tuple(p.attrs.get("rows", (0, p.sizes["stimulus"]))) for p in parts]
    for (a0, a1), (b0, _), where in zip(ranges, ranges[1:], shards[1:]):
        if a1 != b0:
            raise ExtractionError(f"shard {where} starts at row {b0}, not where the previous one ends ({a1})")
    first = parts[0].attrs
    for p, where in zip(parts, shards):
        if p.attrs.get("layers") != first.get("layers") or p.attrs.get("provenance") != first.get("provenance"):
            raise ExtractionError(f"shard {where} is not of the same model and layers as {shards[0]}")
    sizes = [p.sizes["stimulus"] for p in parts]
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    n = int(offsets[-1])
    out = ChunkedStore(path, chunk=chunk)
    try:
        for start in range(0, n, chunk):
            stop = min(n, start + chunk)
            pieces = []
            for i, p in enumerate(parts):
                lo, hi = max(start, offsets[i]), min(stop, offsets[i + 1])
                if lo < hi:
                    pieces.append(p.isel(stimulus=slice(int(lo - offsets[i]), int(hi - offsets[i]))).load())
            block = pieces[0] if len(pieces) == 1 else xr.concat(pieces, dim="stimulus")
            block.attrs = {}
            out.append(block)
        attrs = {k: v for k, v in first.items() if k not in ("rows", "resumed_after")}
        attrs.update(n_stimuli=n, seconds=round(sum(float(p.attrs.get("seconds", 0)) for p in parts), 3),
                     shards=[list(r) for r in ranges])
        out.finish(attrs)
    except BaseException:
        out.abandon()
        raise
    return open_store(path)
