"""All-pairs alignment from cached per-model products vs naive per-pair recomputation.

16 models x 12 layers x 1024 stimuli, d = 384 random features (each model a noisy view of one shared
latent, so neighbour lists overlap as in real data). Both sides score mutual kNN (k = 10) and linear CKA for
every ordered (model_a, model_b) pair and every (layer_a, layer_b) pair: 16 * 16 * 12 * 12 = 36,864 layer
pairs per metric.

- cached: ``convergence.kernels.build_kernel`` once per model (neighbour lists, centred Grams), then
  ``convergence.pairwise`` (sparse neighbour-overlap products, one blocked Gram product).
- naive: for every (model pair, layer pair), both models' similarity matrices, full argsort neighbours and
  centred Grams recomputed, then the two scores. Too slow to run in full on a laptop, so a measured subset
  of layer pairs is timed and the total extrapolated linearly (each layer pair costs the same).

Usage: python benchmarks/alignment.py [--models 16] [--layers 12] [--n 1024] [--dim 384] [--naive-pairs 48]
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

import numpy as np
import xarray as xr

from convergence.kernels import build_kernel
from convergence.pairwise import pairwise


def make_stores(n_models: int, n_layers: int, n: int, dim: int, seed: int = 0) -> dict[str, xr.Dataset]:
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=(n, 32))
    ids = np.array([f"stim_{i:05d}" for i in range(n)], dtype=object)
    stores = {}
    for m in range(n_models):
        layers = [f"block_{i:02d}" for i in range(n_layers)]
        data = {}
        for i, layer in enumerate(layers):
            x = latent @ rng.normal(size=(32, dim)) + (0.5 + 0.2 * i) * rng.normal(size=(n, dim))
            data[layer] = (("stimulus", f"feature_{layer}"), x.astype(np.float32))
        name = f"model_{m:02d}"
        stores[name] = xr.Dataset(data, coords={"stimulus": ids}, attrs={
            "model": name, "modality": "vision", "layers": layers,
            "depths": [float(d) for d in np.linspace(0, 1, n_layers)]})
    return stores


def naive_layer_pair(xa: np.ndarray, xb: np.ndarray, k: int) -> tuple[float, float]:
    """What a per-pair script does: neighbours by a full argsort and Grams, for BOTH models, every time."""
    out = []
    grams = []
    nbrs = []
    for x in (xa, xb):
        sim = x @ x.T
        np.fill_diagonal(sim, -np.inf)
        nbrs.append(np.argsort(-sim, axis=1)[:, :k])
        g = x @ x.T
        g -= g.mean(axis=0, keepdims=True)
        g -= g.mean(axis=1, keepdims=True)
        grams.append(g)
    overlap = (nbrs[0][:, :, None] == nbrs[1][:, None, :]).sum(axis=(1, 2))
    out.append(overlap.mean() / k)
    ka, kb = grams
    out.append(np.sum(ka * kb) / np.sqrt(np.sum(ka * ka) * np.sum(kb * kb)))
    return out[0], out[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=int, default=16)
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--n", type=int, default=1024)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--naive-pairs", type=int, default=48, help="layer pairs timed on the naive side")
    args = parser.parse_args()

    stores = make_stores(args.models, args.layers, args.n, args.dim)
    names = list(stores)
    total_pairs = len(names) ** 2 * args.layers**2
    print(f"{args.models} models x {args.layers} layers x {args.n} stimuli, d={args.dim}, k={args.k}; "
          f"{total_pairs} (model pair, layer pair) combinations per metric; "
          f"threads: {os.environ.get('OMP_NUM_THREADS', 'default')}, cpus: {os.cpu_count()}")

    # features as the naive side sees them: the same preprocessing the kernel rule applies
    t0 = time.perf_counter()
    kernels = {m: build_kernel(stores[m], k=args.k, preprocess="prh") for m in names}
    t_kernel = time.perf_counter() - t0
    feats = {m: [kernels[m][f"features_{layer}"].values.astype(np.float64) for layer in kernels[m].attrs["layers"]]
             for m in names}

    timings = {}
    results = {}
    for metric in ("mutual_knn", "cka_linear"):
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            results[metric] = pairwise(kernels, metric, params={"k": args.k} if metric == "mutual_knn" else None,
                                       summaries=("best",), n_permutations=0, n_bootstrap=0)
        timings[metric] = time.perf_counter() - t0
    t_cached = sum(timings.values())

    rng = np.random.default_rng(1)
    sample = [(names[rng.integers(len(names))], names[rng.integers(len(names))],
               int(rng.integers(args.layers)), int(rng.integers(args.layers))) for _ in range(args.naive_pairs)]
    t0 = time.perf_counter()
    naive = [naive_layer_pair(feats[a][i], feats[b][j], args.k) for a, b, i, j in sample]
    t_naive_sample = time.perf_counter() - t0
    worst = 0.0
    for (a, b, i, j), (knn, cka) in zip(sample, naive):
        at = dict(model_a=a, model_b=b, layer_a=i, layer_b=j)
        worst = max(worst, abs(knn - float(results["mutual_knn"]["score"].sel(at))),
                    abs(cka - float(results["cka_linear"]["score"].sel(at))))
    t_naive = t_naive_sample / len(sample) * total_pairs

    print(f"kernel stores (once per model, {args.models} models): {t_kernel:8.2f} s")
    for metric, t in timings.items():
        print(f"cached all-pairs {metric:<11}: {t:8.2f} s")
    print(f"cached all-pairs, both metrics : {t_cached:8.2f} s")
    print(f"naive, measured on {len(sample)} random layer pairs: {t_naive_sample:.2f} s "
          f"({1000 * t_naive_sample / len(sample):.1f} ms per layer pair, both metrics)")
    print(f"naive, extrapolated to all {total_pairs} layer pairs: {t_naive:8.1f} s")
    print(f"max |naive - cached| over the measured pairs: {worst:.2e}")
    print(f"speed-up, all-pairs only           : {t_naive / t_cached:8.1f}x")
    print(f"speed-up, including kernel building: {t_naive / (t_cached + t_kernel):8.1f}x")


if __name__ == "__main__":
    main()
