"""All-pairs alignment from cached per-model products vs naive per-pair recomputation.

16 models x 12 layers x 1024 stimuli, d = 384 random features (each model a noisy view of one shared
latent, so neighbour lists overlap as in real data). Both sides score mutual kNN (k = 10), linear CKA and
CKNNA (k = 10) for every ordered (model_a, model_b) pair and every (layer_a, layer_b) pair: 16 * 16 * 12 * 12
= 36,864 layer pairs per metric.

- cached: ``convergence.kernels.build_kernel`` once per model (neighbour lists, centred Grams), then
  ``convergence.pairwise`` (sparse neighbour-overlap products, one blocked Gram product, CKNNA from the
  neighbour pairs both models share, accumulated for all layer pairs of a model pair at once).
- naive: for every (model pair, layer pair), what a per-pair script such as the PRH reference code does:
  both models' similarity matrices, full argsort neighbours and centred Grams recomputed, then the score
  (CKNNA: the n x n masked kernels and their unbiased HSICs). Too slow to run in full on a laptop, so a
  measured subset of layer pairs is timed per metric and the total extrapolated linearly (each layer pair
  costs the same). Each metric's speed-up is printed on its own.

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


def _similarity_and_neighbours(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    sim = x @ x.T
    masked = sim.copy()
    np.fill_diagonal(masked, -np.inf)
    return sim, np.argsort(-masked, axis=1)[:, :k]


def naive_mutual_knn(xa: np.ndarray, xb: np.ndarray, k: int) -> float:
    na, nb = (_similarity_and_neighbours(x, k)[1] for x in (xa, xb))
    return float((na[:, :, None] == nb[:, None, :]).sum(axis=(1, 2)).mean() / k)


def naive_cka_linear(xa: np.ndarray, xb: np.ndarray, k: int) -> float:
    grams = []
    for x in (xa, xb):
        g = x @ x.T
        g -= g.mean(axis=0, keepdims=True)
        g -= g.mean(axis=1, keepdims=True)
        grams.append(g)
    ka, kb = grams
    return float(np.sum(ka * kb) / np.sqrt(np.sum(ka * ka) * np.sum(kb * kb)))


def _unbiased_hsic(k: np.ndarray, l: np.ndarray) -> float:
    n = k.shape[0]
    k, l = k.copy(), l.copy()
    np.fill_diagonal(k, 0.0)
    np.fill_diagonal(l, 0.0)
    term = np.sum(k * l.T) + k.sum() * l.sum() / ((n - 1) * (n - 2)) - 2.0 * (k.sum(axis=0) @ l.sum(axis=1)) / (n - 2)
    return float(term / (n * (n - 3)))


def naive_cknna(xa: np.ndarray, xb: np.ndarray, k: int) -> float:
    """The dense n x n computation: K and L masked to the pairs that are neighbours in both models."""
    (ka, na), (kb, nb) = (_similarity_and_neighbours(x, k) for x in (xa, xb))
    n = xa.shape[0]
    rows = np.arange(n)[:, None]
    mask_a, mask_b = np.zeros((n, n)), np.zeros((n, n))
    mask_a[rows, na] = 1.0
    mask_b[rows, nb] = 1.0
    both = mask_a * mask_b
    kl = _unbiased_hsic(ka * both, kb * both)
    kk = _unbiased_hsic(ka * mask_a, ka * mask_a)
    ll = _unbiased_hsic(kb * mask_b, kb * mask_b)
    return kl / np.sqrt(kk * ll)


NAIVE = {"mutual_knn": naive_mutual_knn, "cka_linear": naive_cka_linear, "cknna": naive_cknna}


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
          f"threads: {os.environ.get('OMP_NUM_THREADS', 'default')}, cpus: {os.cpu_count()}; "
          f"load average (1/5/15 min) at the start: {'/'.join(f'{v:.2f}' for v in os.getloadavg())}")

    # features as the naive side sees them: the same preprocessing the kernel rule applies
    t0 = time.perf_counter()
    kernels = {m: build_kernel(stores[m], k=args.k, preprocess="prh") for m in names}
    t_kernel = time.perf_counter() - t0
    feats = {m: [kernels[m][f"features_{layer}"].values.astype(np.float64) for layer in kernels[m].attrs["layers"]]
             for m in names}

    timings, results = {}, {}
    for metric in NAIVE:
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            results[metric] = pairwise(kernels, metric, params=None if metric == "cka_linear" else {"k": args.k},
                                       summaries=("best",), n_permutations=0, n_bootstrap=0)
        timings[metric] = time.perf_counter() - t0

    rng = np.random.default_rng(1)
    sample = [(names[rng.integers(len(names))], names[rng.integers(len(names))],
               int(rng.integers(args.layers)), int(rng.integers(args.layers))) for _ in range(args.naive_pairs)]
    naive_time, worst = {}, {}
    for metric, fn in NAIVE.items():
        t0 = time.perf_counter()
        values = [fn(feats[a][i], feats[b][j], args.k) for a, b, i, j in sample]
        naive_time[metric] = (time.perf_counter() - t0) / len(sample) * total_pairs
        cached = [float(results[metric]["score"].sel(model_a=a, model_b=b, layer_a=i, layer_b=j))
                  for a, b, i, j in sample]
        worst[metric] = float(np.max(np.abs(np.asarray(values) - np.asarray(cached))))

    print(f"kernel stores (once per model, {args.models} models): {t_kernel:8.2f} s")
    print(f"naive side: {len(sample)} random layer pairs timed per metric, extrapolated to all {total_pairs}")
    print(f"{'metric':<11} {'cached s':>9} {'naive s':>10} {'speed-up':>9} {'max |naive - cached|':>21}")
    for metric in NAIVE:
        print(f"{metric:<11} {timings[metric]:9.2f} {naive_time[metric]:10.1f} "
              f"{naive_time[metric] / timings[metric]:8.0f}x {worst[metric]:21.1e}")
    t_cached, t_naive = sum(timings.values()), sum(naive_time.values())
    print(f"{'all three':<11} {t_cached:9.2f} {t_naive:10.1f} {t_naive / t_cached:8.0f}x")
    print(f"all three, including kernel building: {t_naive / (t_cached + t_kernel):.0f}x")
    load = os.getloadavg()
    shared = load[1] > (os.cpu_count() or 1)
    print(f"load average (1/5/15 min) at the end: {'/'.join(f'{v:.2f}' for v in load)}"
          + (f" (above the {os.cpu_count()} cpus: the machine was shared, every time is inflated)" if shared else ""))


if __name__ == "__main__":
    main()
