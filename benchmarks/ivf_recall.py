"""Recall@k of the approximate (faiss IVF-Flat) neighbour search against nprobe, from ONE trained index.

``benchmarks/scale.py``'s clustered rows (n x 768, unit norm), the index built by the code
``convergence.metrics.search.approximate_knn`` builds it with (``ivf_index`` with ``ivf_parameters``: PCA to
128-d, nlist lists, k-means on a seeded sample), then for each nprobe only a seeded sample of query rows is
searched, their 4k + 1 results re-ranked as the real search does (``rerank``), and compared with the rows'
exact lists (``recall_at_k``).
Each query is searched independently, so the sample's recall is the full search's recall on those rows.

Usage: python benchmarks/ivf_recall.py [--n 1000000] [--k 10] [--sample 2000] [--nprobe 20 32 48 64]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from scale import clustered_features


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--sample", type=int, default=2000)
    parser.add_argument("--nprobe", type=int, nargs="+", default=[20, 32, 48, 64])
    args = parser.parse_args()

    from convergence.metrics.search import exact_rows, ivf_index, ivf_parameters, recall_at_k, rerank

    n, d, k = args.n, args.dim, args.k
    t0 = time.perf_counter()
    x = clustered_features(n, d, 1)
    p = ivf_parameters(n, k, d)
    print(f"n={n}, d={d}, k={k}; {p}; load average {os.getloadavg()[0]:.2f}", flush=True)
    index, ivf = ivf_index(x, p, seed=0)
    rows = np.sort(np.random.default_rng(1).choice(n, size=args.sample, replace=False))
    exact = exact_rows(x, rows, k)
    print(f"data, index and {args.sample} exact lists: {time.perf_counter() - t0:.0f} s", flush=True)
    for nprobe in args.nprobe:
        ivf.nprobe = nprobe
        t = time.perf_counter()
        _, cand = index.search(x[rows], p["candidates"] + 1)
        seconds = time.perf_counter() - t
        recall = recall_at_k(rerank(x, rows, cand, k), exact)
        print(f"nprobe {nprobe:4d}: recall@{k} {recall:.4f}; search of {args.sample} queries {seconds:.2f} s", flush=True)
    print(f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
