"""All-pairs results cached per pair, by content.

Adding a model to a study must not recompute the scores of pairs that already exist. Snakemake reruns
an aggregate job (one per dataset and metric) whenever a kernel is added, so the pair results themselves
are cached: each (model_a, model_b) result is stored under a key that hashes everything it depends on
(both kernels' content fingerprints and names, the metric and its parameters, the null and bootstrap
settings, the stimuli, the step version). A rerun then computes only the pairs whose key is new; the rest
is bookkeeping. A stale entry can never be read back, since any change that would alter it changes its key.

Entries are pickled Datasets (``<key>.pkl``), written to a temporary name and renamed, so an interrupted write
leaves no entry. The cache is internal (results a user reads are the aggregate stores and tables) and written
only by this workflow; a Zarr store per pair cost about 0.3 s to write (some thirty arrays, each with its
metadata), a pickle a few milliseconds, which on a dataset with 14 models (196 ordered pairs) was a minute
of every alignment job.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

import xarray as xr

from ..kernels import fingerprint
from ..metrics.registry import get_metric
from ..store import _writable_folder
from ..versions import STEP_VERSIONS
from .products import common_stimuli, stimulus_digest
from .scores import combine_pairs, pairwise


def metric_fingerprint(kernel: xr.Dataset, metric: str) -> str:
    """The part of a kernel store ``metric`` reads, hashed: features and neighbours for neighbour-based
    measures, features alone for the others (the registry's ``needs``), so a new k reruns kNN pairs only."""
    return fingerprint(kernel, neighbours=get_metric(metric).needs == "neighbors")


def cached_pairwise(
    kernels: Mapping[str, xr.Dataset],
    metric: str,
    *,
    cache_dir: str | Path,
    params: Mapping | None = None,
    models_a: Sequence[str] | None = None,
    models_b: Sequence[str] | None = None,
    n_permutations: int = 100,
    n_bootstrap: int = 100,
    alpha: float = 0.05,
    seed: int = 0,
    summaries: Sequence[str] = ("best", "last"),
    named_layers: Mapping[str, str] | None = None,
    log=print,
) -> xr.Dataset:
    """:func:`~convergence.pairwise.pairwise` over ``models_a`` x ``models_b``, reusing cached pair results.

    Every pair is scored on the stimuli shared by ALL models given, so cached pairs combine. With
    ``named_layers`` (model -> layer name; unlisted models use their last layer) a ``named`` summary is
    added to ``summaries``. Each pair computed here adds one entry (a pickled Dataset) to ``cache_dir``.
    """
    models = list(kernels)
    models_a = list(models_a or models)
    models_b = list(models_b or models)
    ids = common_stimuli(kernels, models)
    named = None
    if named_layers:
        named = {m: str(named_layers.get(m) or kernels[m].attrs["layers"][-1]) for m in models}
        summaries = tuple(dict.fromkeys([*summaries, "named"]))
    fingerprints = {m: metric_fingerprint(kernels[m], metric) for m in models}
    settings = json.dumps(
        {
            "metric": metric,
            "params": dict(params or {}),
            "n_permutations": int(n_permutations),
            "n_bootstrap": int(n_bootstrap),
            "alpha": float(alpha),
            "seed": int(seed),
            "summaries": list(summaries),
            "stimuli": stimulus_digest(ids),
            "version": STEP_VERSIONS["alignment"],
        },
        sort_keys=True,
    )
    cache = Path(cache_dir)

    def entry(a: str, b: str) -> Path:
        # named layers enter per pair (only the two models' own), so adding a model keeps other pairs' keys
        na, nb = (named or {}).get(a, ""), (named or {}).get(b, "")
        key = hashlib.sha256(f"{settings}|{a}|{fingerprints[a]}|{na}|{b}|{fingerprints[b]}|{nb}".encode()).hexdigest()[:32]
        return cache / f"{key}.pkl"

    results: dict[tuple[str, str], xr.Dataset] = {}
    missing: dict[str, list[str]] = {}
    for a in models_a:
        for b in models_b:
            path = entry(a, b)
            if path.exists():
                results[(a, b)] = _read_entry(path)
            else:
                missing.setdefault(a, []).append(b)
    n_missing = sum(len(v) for v in missing.values())
    log(f"{metric}: {len(models_a) * len(models_b) - n_missing} pair(s) from the cache, {n_missing} to compute")

    options = dict(params=params, stimuli=ids, summaries=summaries, n_permutations=n_permutations,
                   n_bootstrap=n_bootstrap, alpha=alpha, seed=seed, named_layers=named)
    if n_missing == len(models_a) * len(models_b):
        groups = [(models_a, models_b)]  # nothing cached: one all-pairs call prepares each model once
    else:
        groups = [([a], bs) for a, bs in missing.items()]
    for rows, cols in groups:
        scores = pairwise(kernels, metric, models_a=rows, models_b=cols, **options)
        for i, a in enumerate(rows):
            for j, b in enumerate(cols):
                part = scores.isel(model_a=[i], model_b=[j])
                _write_entry(part, entry(a, b))
                results[(a, b)] = part
    return combine_pairs([results[(a, b)] for a in models_a for b in models_b])


def _write_entry(ds: xr.Dataset, path: Path) -> None:
    _writable_folder(path)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        with open(tmp, "wb") as f:
            pickle.dump(ds.load(), f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _read_entry(path: Path) -> xr.Dataset:
    with open(path, "rb") as f:  # written by _write_entry in this workflow's own results folder
        ds = pickle.load(f)
    if not isinstance(ds, xr.Dataset):
        raise ValueError(f"{path} is not a pair-cache entry; delete it (the cache is rebuilt as needed)")
    return ds
