"""Kernel building and all-pairs scoring at n = 1k, 10k and 50k stimuli: time and peak memory per case.

Synthetic features: each model a noisy view of one shared 64-d latent, 768-d, rows L2-normalised (what the
kernel rule stores with ``preprocess: prh``). Each case runs in a fresh subprocess, which reports its wall
time and its peak resident memory (``ru_maxrss``, including the features it generated), so cases do not
share caches or memory. Cases, per n:

- ``floor``: the bare float32 similarity matmul ``X @ X.T`` in blocks of 1,024 rows, results discarded:
  the least any exact neighbour search must do;
- ``neighbours``: ``convergence.metrics.knn_indices(x, 10)`` as ``build_kernel`` calls it (exact float64
  blocks up to 8,192 stimuli; above, float32 candidates from the symmetric tiles + float64 re-ranking);
- ``faiss``: the same with ``backend="faiss"`` (faiss's exact ``IndexFlatIP`` finds the candidates), when
  faiss is installed;
- ``naive``: the float64 blocked path forced at every n (where it fits the time budget: n <= 10k);
- ``kernel``: ``build_kernel`` for one model and one layer (one kernel job: preprocessing, neighbours, the
  centred Gram up to 5,000 stimuli);
- ``all pairs``: 3 models' kernels built (not timed), then all-pairs linear CKA (feature space when no Gram
  is stored) and mutual k-NN (one alignment job without null and bootstrap).

Ratios are printed against the floor of the same n, from one run. Usage:
python benchmarks/scale.py [--sizes 1000 10000 50000] [--dim 768] [--naive-max 10000]

``--large`` runs the large-n table instead (n = 100k, 300k, 1M by default, k = 10), each case in its own
process with ``OMP_WAIT_POLICY=PASSIVE`` (faiss's OpenMP threads otherwise spin on a shared machine):

- ``exact``: ``knn_indices`` as the kernel rule calls it (numpy tiles + float64 checks). When the n^2 trend
  of the largest measured n predicts more than ``--exact-limit`` seconds (600), it is not run and the
  prediction is printed, marked "extrapolated";
- ``approximate``: ``metrics.search.approximate_knn`` (faiss PCA + IVF-Flat, float64 re-ranking) plus the
  recall@10 measurement on 2,000 seeded rows, as one approximate kernel job does; its recall printed;
- on two kinds of unit rows: ``latent`` (the table above's: a 64-d Gaussian latent plus isotropic noise, a
  hard case for any index: neighbours are barely closer than the rest) and ``clustered`` (the same, the
  latent drawn around n / 100 cluster centres, like class-structured embeddings);
- ``torch``: the exact search with ``backend="torch"`` on the CPU against the numpy tiles at 50k (ratio).

The machine's load average is printed before and after each case.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time


def features(n: int, dim: int, seed: int):
    import numpy as np

    # float32, made in blocks of rows so that generating them does not set the process's peak memory
    rng = np.random.default_rng(seed)
    mixing = rng.normal(size=(64, dim))
    latent_rng = np.random.default_rng(0)
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 4096):
        rows = min(4096, n - start)
        x = latent_rng.normal(size=(rows, 64)) @ mixing + 2.0 * rng.normal(size=(rows, dim))
        out[start : start + rows] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def clustered_features(n: int, dim: int, seed: int, spread: float = 0.6):
    """Unit rows from a latent drawn around n / 100 cluster centres (class-like structure), else as
    ``features``."""
    import numpy as np

    rng = np.random.default_rng(seed)
    mixing = rng.normal(size=(64, dim))
    latent_rng = np.random.default_rng(0)
    centres = latent_rng.normal(size=(max(10, n // 100), 64))
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 4096):
        rows = min(4096, n - start)
        z = centres[latent_rng.integers(0, centres.shape[0], size=rows)] + spread * latent_rng.normal(size=(rows, 64))
        x = z @ mixing + 2.0 * rng.normal(size=(rows, dim))
        out[start : start + rows] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def run_large_case(case: str, n: int, dim: int, data: str) -> dict:
    """One case of the large-n table in this process."""
    import resource

    import numpy as np

    x = (clustered_features if data == "clustered" else features)(n, dim, 1)
    out = {}
    t0 = time.perf_counter()
    if case == "exact":
        from convergence.metrics import knn_indices

        knn_indices(x.astype(np.float64), 10)
    elif case in ("torch", "numpy"):
        from convergence.metrics import knn_indices

        knn_indices(x.astype(np.float64), 10, backend=case)
    elif case == "approximate":
        from convergence.metrics.search import approximate_knn, sampled_recall

        found, params = approximate_knn(x, 10)
        out["search_seconds"] = time.perf_counter() - t0
        out["recall"], _ = sampled_recall(x, found, sample=2000)
        out["params"] = {key: params[key] for key in ("nlist", "nprobe", "pca", "candidates")}
    out.update(seconds=time.perf_counter() - t0, peak_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return out


def large_table(sizes, dim: int, exact_limit: float, kinds=("latent", "clustered"), exact: bool = True,
                torch: bool = True) -> None:
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE")

    def case(name, n, data):
        before = os.getloadavg()[0]
        proc = subprocess.run([sys.executable, __file__, "--dim", str(dim), "--large-case", name, str(n), data],
                              capture_output=True, text=True, check=True, env=env)
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        result["load"] = f"{before:.1f}/{os.getloadavg()[0]:.1f}"
        return result

    print(f"d={dim}, k=10, cpus: {os.cpu_count()}, OMP_WAIT_POLICY=PASSIVE; load average (1 min) before/after each case")
    print(f"{'n':>8} {'data':<10} {'case':<12} {'seconds':>9} {'peak MB':>8} {'recall@10':>9}  {'load':<10} note")
    measured = None  # (n, seconds) of the largest exact case run
    for n in sizes:
        for data in kinds:
            if data == kinds[0] and exact:
                predicted = measured[1] * (n / measured[0]) ** 2 if measured else None
                if predicted is not None and predicted > exact_limit:
                    print(f"{n:>8} {data:<10} {'exact':<12} {predicted:9.0f} {'-':>8} {'1':>9}  {'-':<10} "
                          f"extrapolated: {measured[1]:.0f} s at n={measured[0]} x (n/{measured[0]})^2 "
                          f"> --exact-limit {exact_limit:.0f} s, not run", flush=True)
                else:
                    r = case("exact", n, data)
                    measured = (n, r["seconds"])
                    print(f"{n:>8} {data:<10} {'exact':<12} {r['seconds']:9.1f} {r['peak_mb']:8.0f} {'1':>9}  "
                          f"{r['load']:<10} measured", flush=True)
            r = case("approximate", n, data)
            print(f"{n:>8} {data:<10} {'approximate':<12} {r['seconds']:9.1f} {r['peak_mb']:8.0f} {r['recall']:9.4f}  "
                  f"{r['load']:<10} search {r['search_seconds']:.1f} s + recall on 2,000 rows; {r['params']}",
                  flush=True)
    times = {}
    for name in ("numpy", "torch") if torch else ():
        r = case(name, 50000, "latent")
        times[name] = r["seconds"]
        print(f"{50000:>8} {'latent':<10} {'exact ' + name:<12} {r['seconds']:9.1f} {r['peak_mb']:8.0f} {'1':>9}  "
              f"{r['load']:<10}", flush=True)
    if times:
        print(f"torch backend on the CPU / numpy tiles at n=50,000: {times['torch'] / times['numpy']:.2f}x")


def run_case(case: str, n: int, dim: int) -> dict:
    """One case in this process: returns seconds (the timed part only) and peak RSS in MB."""
    import resource
    import warnings

    import numpy as np

    x = features(n, dim, 1)
    if case in ("neighbours", "faiss", "naive"):
        x = x.astype(np.float64)  # what build_kernel passes to knn_indices
    t0 = time.perf_counter()
    if case == "floor":
        x32 = x
        for start in range(0, n, 1024):
            x32[start : start + 1024] @ x32.T
    elif case in ("neighbours", "faiss", "naive"):
        from convergence.metrics import knn_indices

        knn_indices(x, 10, **{"neighbours": {}, "faiss": {"backend": "faiss"}, "naive": {"exact_max_n": n}}[case])
    elif case in ("kernel", "all pairs"):
        import xarray as xr

        from convergence.kernels import build_kernel
        from convergence.pairwise import pairwise

        ids = np.array([f"s{i:06d}" for i in range(n)], dtype=object)

        def kernel(m):
            data = x if m == 0 else features(n, dim, m + 1)
            store = xr.Dataset({"layer": (("stimulus", "feature_layer"), data)}, coords={"stimulus": ids},
                               attrs={"model": f"m{m}", "modality": "vision", "layers": ["layer"], "depths": [1.0]})
            return build_kernel(store, k=10, preprocess="l2")

        if case == "kernel":
            kernel(0)
        else:
            kernels = {f"m{m}": kernel(m) for m in range(3)}
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                for metric in ("cka_linear", "mutual_knn"):
                    pairwise(kernels, metric, params={"k": 10} if metric == "mutual_knn" else None,
                             summaries=("last",), n_permutations=0, n_bootstrap=0)
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 50000])
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--naive-max", type=int, default=10000, help="largest n the forced float64 path runs at")
    parser.add_argument("--case", nargs=2, help=argparse.SUPPRESS)  # internal: run one case, print JSON
    parser.add_argument("--large", action="store_true", help="the large-n table (exact, approximate, torch)")
    parser.add_argument("--large-sizes", type=int, nargs="+", default=[100_000, 300_000, 1_000_000])
    parser.add_argument("--exact-limit", type=float, default=600.0,
                        help="largest predicted seconds an exact case is run for (else extrapolated)")
    parser.add_argument("--data", nargs="+", default=["latent", "clustered"], choices=["latent", "clustered"])
    parser.add_argument("--no-exact", action="store_true", help="large table: leave out the exact cases")
    parser.add_argument("--no-torch", action="store_true", help="large table: leave out torch vs numpy at 50k")
    parser.add_argument("--large-case", nargs=3, help=argparse.SUPPRESS)  # internal
    args = parser.parse_args()
    if args.case:
        print(json.dumps(run_case(args.case[0], int(args.case[1]), args.dim)))
        return
    if args.large_case:
        print(json.dumps(run_large_case(args.large_case[0], int(args.large_case[1]), args.dim, args.large_case[2])))
        return
    if args.large:
        large_table(args.large_sizes, args.dim, args.exact_limit, tuple(args.data), not args.no_exact,
                    not args.no_torch)
        return
    try:
        import faiss

        faiss_version = f"faiss {faiss.__version__}"
    except ImportError:
        faiss_version = None
    print(f"d={args.dim}, k=10, cpus: {os.cpu_count()}, faiss case: {faiss_version or 'skipped, not installed'}; "
          f"load before: {os.getloadavg()[0]:.2f}")
    print(f"{'n':>7} {'case':<14} {'seconds':>9} {'peak MB':>8} {'x floor':>8}")
    for n in args.sizes:
        floor = None
        for case in ("floor", "neighbours", "faiss", "naive", "kernel", "all pairs"):
            if case == "faiss" and faiss_version is None:
                continue
            if case == "naive" and n > args.naive_max:
                print(f"{n:>7} {case:<14} {'skipped (n > --naive-max)':>27}")
                continue
            out = subprocess.run([sys.executable, __file__, "--dim", str(args.dim), "--case", case, str(n)],
                                 capture_output=True, text=True, check=True)
            result = json.loads(out.stdout.strip().splitlines()[-1])
            floor = result["seconds"] if case == "floor" else floor
            print(f"{n:>7} {case:<14} {result['seconds']:9.2f} {result['peak_mb']:8.0f} "
                  f"{result['seconds'] / floor:7.2f}x", flush=True)


if __name__ == "__main__":
    main()
