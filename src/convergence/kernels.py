"""Per-model cached products: everything a pairwise metric needs from ONE model, computed once.

The ``kernel`` rule runs ``build_kernel`` once per (dataset, model). Pairwise aggregates
(``convergence.pairwise``) then combine these products and never recompute a model's neighbours or
Gram matrix for a pair.

Layout of a kernel store (``xarray.Dataset``), for a model with layers ``l_1 .. l_L`` on n stimuli:

- coordinates: ``stimulus`` (n,) the stimulus ids (strings, the embedding store's order);
  ``layer`` (L,) layer names, shallow to deep; ``depth`` (layer) relative depth in [0, 1];
  ``neighbor`` (k,) neighbour rank 0 .. k-1; ``stimulus_j`` (n,) the same ids (column index of the Gram).
- ``features_<layer>`` (stimulus, feature_<layer>) float32: the preprocessed features.
- ``neighbors`` (layer, stimulus, neighbor) int32: for each stimulus the row positions (into ``stimulus``)
  of its k nearest neighbours by inner product of the preprocessed features, most similar first, itself
  excluded, ties to the lower position.
- ``gram`` (layer, stimulus, stimulus_j) float32: the centred linear Gram matrix ``H X X^T H`` of the
  preprocessed features; present only when ``n <= gram_max_n`` and ``gram`` (some configured metric reads
  it; otherwise metrics work in feature space and nothing n x n is stored).
- attrs: the embedding store's provenance, unchanged, plus ``kernel_*`` entries recording how the
  products were made (k, preprocessing, clamp value, gram threshold, ``kernel_search``: exact or approximate;
  for approximate lists also ``kernel_recall`` (per layer), ``kernel_recall_min``, ``kernel_recall_sample``
  and ``kernel_search_params``: recall@k against the exact lists of a seeded sample of rows, measured when
  the store was built) and ``kernel_constant_layers``: the
  layers whose preprocessed features are constant across stimuli (``is_constant``). Their neighbour lists
  are pure ties (lowest positions) and their Grams are zero, so every pairwise score involving such a
  layer is NaN (``convergence.pairwise``); the list is empty for a healthy model. ``fingerprint`` and
  ``fingerprint_features``: content hashes of what metrics read (``kernel_fingerprint``), so that cached
  pair results are keyed by content (``convergence.pairwise.cache``).
"""

from __future__ import annotations

import hashlib
import json
import warnings

import numpy as np
import xarray as xr

from .metrics import PREPROCESSING, knn_indices, preprocess_layers
from .metrics._checks import check_choice, check_fraction, check_int, check_k
from .metrics.preprocess import is_constant

DEFAULT_GRAM_MAX_N = 5000
#: ``neighbours`` modes of :func:`build_kernel` (config ``kernels.neighbours``).
NEIGHBOUR_MODES = ("exact", "approximate", "auto")
#: ``auto``: the search is approximate above this many stimuli (config ``kernels.approximate_above``). At
#: 200,000 stimuli x 768-d the exact search takes about 16x the 50k one (minutes on 2 cores per layer).
APPROXIMATE_ABOVE = 200_000
#: Rows whose exact neighbours measure an approximate search's recall (config ``kernels.recall_sample``).
RECALL_SAMPLE = 2000


def neighbour_mode(neighbours: str, n: int, approximate_above: int | None = None) -> str:
    """``"exact"`` or ``"approximate"``: the search ``build_kernel`` runs for ``n`` stimuli."""
    check_choice(neighbours, NEIGHBOUR_MODES, "neighbours")
    if neighbours == "auto":
        above = APPROXIMATE_ABOVE if approximate_above is None else check_int(approximate_above, "approximate_above",
                                                                              minimum=1)
        return "approximate" if n > above else "exact"
    return neighbours


def feature_var(layer: str) -> str:
    """Name of the preprocessed-features variable of ``layer`` in a kernel store."""
    return f"features_{layer}"


def _layers_of(embeddings: xr.Dataset) -> list[str]:
    layers = embeddings.attrs.get("layers")
    if layers is None or isinstance(layers, str) or len(layers) == 0:
        raise ValueError(
            f"embedding store of model {embeddings.attrs.get('model', '?')!r} has no attrs['layers'] "
            "(the list of layer variables, shallow to deep)"
        )
    layers = [str(name) for name in layers]
    missing = [name for name in layers if name not in embeddings.data_vars]
    if missing:
        raise ValueError(f"attrs['layers'] names variables that the store lacks: {missing}; "
                         f"variables present: {sorted(map(str, embeddings.data_vars))}")
    return layers


def stimulus_ids(store: xr.Dataset) -> np.ndarray:
    """The ``stimulus`` coordinate as an object array of Python strings (whatever string dtype the store
    was read with: object, fixed-width unicode or numpy's StringDType from Zarr v3)."""
    return np.array([str(s) for s in np.asarray(store["stimulus"].values).tolist()], dtype=object)


def _stimulus_ids(embeddings: xr.Dataset) -> np.ndarray:
    if "stimulus" not in embeddings.coords:
        raise ValueError("embedding store has no 'stimulus' coordinate (the stimulus ids)")
    ids = stimulus_ids(embeddings)
    uniq, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        raise ValueError(f"stimulus ids must be unique; repeated: {uniq[counts > 1][:5].tolist()}")
    return ids


def _layer_array(embeddings: xr.Dataset, layer: str, ids: np.ndarray) -> np.ndarray:
    var = embeddings[layer]
    if var.ndim != 2 or var.dims[0] != "stimulus":
        raise ValueError(f"layer {layer!r} must have dims ('stimulus', 'feature_{layer}'); got {var.dims}")
    x = np.asarray(var.values, dtype=np.float64)
    bad = ~np.isfinite(x)
    if bad.any():
        rows = np.flatnonzero(bad.any(axis=1))
        raise ValueError(
            f"model {embeddings.attrs.get('model', '?')!r}, layer {layer!r}: {int(bad.sum())} NaN/Inf feature values "
            f"in {rows.size} stimuli (first: {ids[rows[0]]!r}); fix the embedding before computing kernels"
        )
    return x


def _depths(embeddings: xr.Dataset, n_layers: int) -> tuple[np.ndarray, str]:
    depths = embeddings.attrs.get("depths")
    if depths is None:
        return np.linspace(0.0, 1.0, n_layers) if n_layers > 1 else np.ones(1), "evenly spaced (store had none)"
    depths = np.asarray(depths, dtype=np.float64)
    if depths.shape != (n_layers,):
        raise ValueError(f"attrs['depths'] has {depths.size} entries for {n_layers} layers")
    return depths, "embedding store"


def build_kernel(
    embeddings: xr.Dataset,
    *,
    k: int = 10,
    preprocess: str = "prh",
    gram_max_n: int = DEFAULT_GRAM_MAX_N,
    gram: bool = True,
    clip_quantile: float = 0.95,
    block_rows: int = 1024,
    neighbours: str = "exact",
    approximate_above: int | None = None,
    recall_sample: int | None = None,
    backend: str = "numpy",
    device: str = "cpu",
) -> xr.Dataset:
    """Compute one model's cached products from its embedding store.

    Parameters
    ----------
    embeddings : xarray.Dataset
        One variable per layer named in ``attrs['layers']`` with dims ``("stimulus", "feature_<layer>")``,
        coordinate ``stimulus``; other variables (e.g. ``bits_per_byte``) are ignored.
    k : int
        Neighbours stored per stimulus: the LARGEST k any kNN metric will ask for (a metric may use a
        prefix of the list). ``1 <= k <= n - 1``.
    preprocess : {"prh", "l2", "none"}
        ``prh``: clamp every value to +/- one per-model scalar (the mean over stimuli of the
        ``clip_quantile`` quantile of |x| over all layers and dims), then L2-normalise each stimulus vector
        per layer. ``l2``: only the normalisation. ``none``: raw features.
    gram_max_n : int
        Store the n x n centred Gram per layer only when ``n <= gram_max_n`` (memory ``4 L n^2`` bytes).
    gram : bool
        Whether any metric reads the stored Gram (``metrics.registry.kernel_needs``); without it none is
        stored whatever n is.
    clip_quantile : float
        The quantile of the PRH clamp.
    block_rows : int
        Rows per block of the neighbour search (memory ``8 block_rows n`` bytes).
    neighbours : {"exact", "approximate", "auto"}
        exact: ``knn_indices`` (the exact lists, ties to the lower position). approximate: a faiss IVF-Flat
        search (``metrics.search.approximate_knn``) whose recall@k against the exact lists of a seeded sample
        of ``recall_sample`` rows is measured per layer and stored. auto: approximate when
        ``n > approximate_above`` (default ``APPROXIMATE_ABOVE``).
    recall_sample : int, optional
        Rows of the recall measurement (default ``RECALL_SAMPLE``; cost ``recall_sample * n * d`` per layer).
    backend, device : str
        The exact search's float32 candidate search (``knn_indices``: numpy, torch or faiss; torch on
        ``device``, e.g. "cuda"). Every backend gives the same lists.

    Returns
    -------
    xarray.Dataset
        See the module docstring for the layout.
    """
    if not isinstance(embeddings, xr.Dataset):
        raise ValueError(f"embeddings must be an xarray.Dataset; got {type(embeddings).__name__}")
    check_choice(preprocess, PREPROCESSING, "preprocess")
    check_fraction(clip_quantile, "clip_quantile")
    check_int(gram_max_n, "gram_max_n", minimum=0)
    model = str(embeddings.attrs.get("model", "?"))
    layers = _layers_of(embeddings)
    ids = _stimulus_ids(embeddings)
    n = ids.size
    k = check_k(k, n, what="k")
    mode = neighbour_mode(neighbours, n, approximate_above)
    recall_sample = RECALL_SAMPLE if recall_sample is None else check_int(recall_sample, "recall_sample", minimum=1)
    depths, depth_source = _depths(embeddings, len(layers))

    raw = {layer: _layer_array(embeddings, layer, ids) for layer in layers}
    try:
        processed, clip = preprocess_layers(raw, preprocess, q=clip_quantile)
    except ValueError as err:
        raise ValueError(f"model {model!r}: {err}") from None
    del raw

    with_gram = bool(gram) and n <= gram_max_n
    data_vars: dict[str, xr.Variable] = {}
    neighbors = np.empty((len(layers), n, k), dtype=np.int32)
    grams = np.empty((len(layers), n, n), dtype=np.float32) if with_gram else None
    constant: list[str] = []
    recalls: list[float] = []
    search_params: dict = {}
    for i, layer in enumerate(layers):
        x32 = processed[layer].astype(np.float32)
        x = x32.astype(np.float64)  # neighbours and Gram from exactly the stored values
        zero = np.flatnonzero(~x.any(axis=1)) if preprocess != "none" else np.empty(0, int)
        if 0 < zero.size < n:
            warnings.warn(f"model {model!r}, layer {layer!r}: {zero.size} stimulus vector(s) are zero "
                          f"(first: {ids[zero[0]]!r}); left as zero by the normalisation (no direction, no neighbours)",
                          stacklevel=2)
        if is_constant(x):
            constant.append(layer)
            warnings.warn(f"model {model!r}, layer {layer!r} is constant across stimuli; "
                          "its alignment scores will be NaN (every metric; it never wins a 'best' summary)",
                          stacklevel=2)
        if mode == "exact":
            neighbors[i] = knn_indices(x, k, block_rows=block_rows, backend=backend, device=device)
        else:
            from .metrics.search import approximate_knn, sampled_recall

            neighbors[i], search_params = approximate_knn(x, k, seed=i)
            recalls.append(sampled_recall(x, neighbors[i], sample=recall_sample, seed=i)[0])
        if with_gram:
            xc = x - x.mean(axis=0)
            grams[i] = xc @ xc.T
            del xc
        del x
        data_vars[feature_var(layer)] = xr.Variable(("stimulus", f"feature_{layer}"), x32)
    data_vars["neighbors"] = xr.Variable(("layer", "stimulus", "neighbor"), neighbors)
    coords = {
        "stimulus": ("stimulus", ids),
        "layer": ("layer", np.asarray(layers, dtype=object)),
        "depth": ("layer", depths),
        "neighbor": ("neighbor", np.arange(k)),
    }
    if with_gram:
        data_vars["gram"] = xr.Variable(("layer", "stimulus", "stimulus_j"), grams)
        coords["stimulus_j"] = ("stimulus_j", ids.copy())

    attrs = dict(embeddings.attrs)
    attrs.update(
        layers=list(layers),
        depths=[float(d) for d in depths],
        kernel_k=int(k),
        kernel_preprocess=preprocess,
        kernel_clip_quantile=float(clip_quantile),
        kernel_gram_max_n=int(gram_max_n),
        kernel_has_gram=int(with_gram),
        kernel_neighbors="inner product of the preprocessed features; self excluded; most similar first; "
                         "ties to the lower stimulus position",
        kernel_gram="centred linear Gram H X X^T H of the preprocessed features" if with_gram
                    else (f"not stored (n={n} > gram_max_n={gram_max_n}); metrics use feature space" if gram
                          else "not stored (no configured metric reads it)"),
        kernel_depth_source=depth_source,
        kernel_constant_layers=list(constant),
        kernel_search=mode,
    )
    if mode == "approximate":
        attrs.update(kernel_recall=[float(r) for r in recalls], kernel_recall_min=float(min(recalls)),
                     kernel_recall_sample=int(min(recall_sample, n)),
                     kernel_search_params=json.dumps(search_params, sort_keys=True),
                     kernel_neighbors="approximate (faiss IVF-Flat, results re-ranked by float64 inner products); "
                                      "self excluded; most similar first; recall@k per layer in kernel_recall")
    if clip is not None:
        attrs["kernel_clip_value"] = float(clip)
    return with_fingerprints(xr.Dataset(data_vars, coords=coords, attrs=attrs))


def kernel_fingerprint(kernel: xr.Dataset, *, neighbours: bool = True) -> str:
    """Content hash of what pairwise metrics read from a kernel store: ids, layers, preprocessed features
    and, with ``neighbours``, the top-k neighbour lists (so changing k invalidates kNN results only)."""
    digest = hashlib.sha256()
    layers = [str(x) for x in kernel.attrs["layers"]]
    header = {
        "ids": [str(s) for s in kernel["stimulus"].values],
        "layers": layers,
        "preprocess": str(kernel.attrs.get("kernel_preprocess", "")),
    }
    if neighbours:
        header["k"] = int(kernel.attrs["kernel_k"])
    digest.update(json.dumps(header, sort_keys=True).encode())
    for layer in layers:
        digest.update(np.ascontiguousarray(kernel[feature_var(layer)].values, dtype=np.float32).tobytes())
    if neighbours:
        digest.update(np.ascontiguousarray(kernel["neighbors"].values, dtype=np.int32).tobytes())
    return digest.hexdigest()


def with_fingerprints(kernel: xr.Dataset) -> xr.Dataset:
    """The kernel with its content fingerprints in attrs: ``fingerprint`` (features and neighbours) and
    ``fingerprint_features`` (features only); computed once, when the kernel is built."""
    kernel.attrs["fingerprint"] = kernel_fingerprint(kernel, neighbours=True)
    kernel.attrs["fingerprint_features"] = kernel_fingerprint(kernel, neighbours=False)
    return kernel


def fingerprint(kernel: xr.Dataset, *, neighbours: bool) -> str:
    """The stored fingerprint a metric depends on (recomputed for a store written without one)."""
    stored = kernel.attrs.get("fingerprint" if neighbours else "fingerprint_features")
    return str(stored or kernel_fingerprint(kernel, neighbours=neighbours))


def check_kernel(kernel: xr.Dataset, name: str = "?") -> None:
    """Raise ``ValueError`` unless ``kernel`` has the layout ``build_kernel`` writes."""
    if not isinstance(kernel, xr.Dataset):
        raise ValueError(f"kernel store {name!r} must be an xarray.Dataset; got {type(kernel).__name__}")
    needed = ["neighbors"] + [feature_var(layer) for layer in kernel.attrs.get("layers", [])]
    missing = [v for v in needed if v not in kernel.data_vars]
    if "layers" not in kernel.attrs or "kernel_k" not in kernel.attrs or missing:
        raise ValueError(f"{name!r} is not a kernel store (from convergence.kernels.build_kernel); "
                         f"missing: {missing or 'attrs layers/kernel_k'}")


def neighbour_recall(kernel: xr.Dataset) -> float:
    """The smallest recall@k of a kernel store's neighbour lists over its layers: 1.0 for exact lists (and for
    stores written before approximate search existed, all of which are exact)."""
    if str(kernel.attrs.get("kernel_search", "exact")) != "approximate":
        return 1.0
    return float(kernel.attrs["kernel_recall_min"])


def has_gram(kernel: xr.Dataset) -> bool:
    """Whether the store holds the n x n centred Gram matrices."""
    return "gram" in kernel.data_vars
