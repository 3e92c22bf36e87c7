"""The real path from images to alignment, measured job by job: wall time, images per second, peak memory.

Fashion-MNIST from Debian's ``dataset-fashion-mnist`` (all 70,000 images by default, ``--n`` fewer) goes
through the workflow's steps as the rules run them, each step a process of its own (as each job is):

- ``stimuli``: :func:`convergence.stimuli.write_stimuli` (listing, then decode and append 1,024 rows a chunk);
- ``ceiling <model>``: the bare forward pass on preprocessed tensors already in memory (``--ceiling-n``
  images; ``benchmarks/extract.py``'s ceiling), the upper bound of extraction's rate;
- ``embed <model>``: :func:`convergence.embed.extract_to_store` (the store read in blocks on a background
  thread, features appended one chunk at a time) for each of two packaged vision models;
- ``kernel <model>``: :func:`convergence.kernels.build_kernel` (neighbours and, up to ``gram_max_n``, Grams);
- ``alignment <metric>``: mutual k-NN and linear CKA between the two models (``--n-permutations``).

Then the image-folder case: ``--folder-n`` (20,000) PNGs at 224 px, generated once into the work folder,
through ``stimuli`` at 224 px. Peak memory is each process's maximum resident set size (getrusage). The
machine's load average is printed at the start and the end: on a shared machine the rates move with it.

Usage: python benchmarks/pipeline.py [--n 70000] [--folder-n 20000] [--models efficientnet_lite0 dinov2_small]
       [--work DIR] [--threads 2] [--ceiling-n 256] [--n-permutations 10] [--n-bootstrap 10]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes


def model_spec(name: str) -> dict:
    return {"source": "packaged", "name": name, "modality": "vision", "batch_size": 32, "seed": 0}


def child(args) -> dict:
    """One job, in this process; returns what it measured (torch is imported by the jobs that need it only,
    as in the workflow, so the stimuli job's peak memory is its own)."""
    if args.child[0] in ("ceiling", "embed"):
        import torch

        torch.set_num_threads(args.threads)
    work = Path(args.work)
    step, what = args.child[0], (args.child[1] if len(args.child) > 1 else "")
    t0 = time.perf_counter()
    if step == "stimuli":
        from convergence.stimuli import write_stimuli

        if what == "folder":
            spec = {"source": "image_folder", "path": str(work / "folder"), "image_size": 224}
            plan = write_stimuli("folder", spec, work / "folder.zarr")
        else:
            spec = {"source": "fashion_mnist", "seed": 0, **({"limit": args.n} if args.n < 70000 else {})}
            plan = write_stimuli("fashion_mnist", spec, work / "stimuli.zarr")
        n = plan.n
    elif step == "ceiling":
        import numpy as np
        import torch

        from convergence.models import load_encoder
        from convergence.store import open_store

        encoder = load_encoder(what, model_spec(what), device="cpu")
        images = np.asarray(open_store(work / "stimuli.zarr")["image"][: args.ceiling_n].values)
        inputs = [encoder.preprocessing(images[s : s + 32], encoder.device) for s in range(0, len(images), 32)]
        with torch.inference_mode():
            encoder.model(inputs[0])  # warm-up
            t0 = time.perf_counter()
            for x in inputs:
                encoder.model(x)
        n = len(images)
    elif step == "embed":
        from convergence.embed import extract_to_store
        from convergence.models import load_encoder

        encoder = load_encoder(what, model_spec(what), device="cpu")
        t0 = time.perf_counter()  # the model's load is not the extraction's rate
        ds = extract_to_store(encoder, work / "stimuli.zarr", work / f"emb_{what}.zarr", params=model_spec(what),
                              batch_size=32, progress=False)
        n = ds.sizes["stimulus"]
    elif step == "kernel":
        from convergence.kernels import build_kernel
        from convergence.store import open_store, write_store

        kernel = build_kernel(open_store(work / f"emb_{what}.zarr", load=True), k=10, gram=True, preprocess="prh",
                              gram_max_n=5000)
        write_store(kernel, work / f"kernel_{what}.zarr", chunk=1024)
        n = kernel.sizes["stimulus"]
    elif step == "alignment":
        from convergence.analyses.alignment import alignment
        from convergence.metrics.registry import METRICS
        from convergence.store import open_store

        kernels = {m: open_store(work / f"kernel_{m}.zarr") for m in args.models}
        scores = alignment(kernels, what, cache_dir=work / "pairs" / what, params=METRICS[what].defaults(),
                           n_permutations=args.n_permutations, n_bootstrap=args.n_bootstrap, seed=0,
                           log=lambda *a, **k: None)
        n = next(iter(kernels.values())).sizes["stimulus"]
        del scores
    else:
        raise SystemExit(f"unknown step {step!r}")
    return {"n": int(n), "seconds": time.perf_counter() - t0, "peak_mb": peak_mb()}


def run(args, *step: str) -> dict:
    cmd = [sys.executable, __file__, "--child", *step, "--work", args.work, "--n", str(args.n), "--threads",
           str(args.threads), "--ceiling-n", str(args.ceiling_n), "--n-permutations", str(args.n_permutations),
           "--n-bootstrap", str(args.n_bootstrap), "--models", *args.models]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(step)} failed:\n{proc.stderr[-3000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["wall"] = time.perf_counter() - t0  # the whole process: imports, model load, the job
    return out


def make_folder(root: Path, n: int, size: int = 224) -> None:
    """``n`` PNGs of smooth random colour in 10 class folders (written once; kept between runs)."""
    import numpy as np
    from PIL import Image

    done = root / f".complete-{n}"
    if done.exists():
        return
    rng = np.random.default_rng(0)
    for i in range(n):
        path = root / f"class_{i % 10}" / f"img_{i:06d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        coarse = rng.integers(0, 256, size=(size // 16, size // 16, 3), dtype=np.uint8)
        Image.fromarray(coarse).resize((size, size), Image.Resampling.BILINEAR).save(path, compress_level=1)
    done.touch()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=70000, help="Fashion-MNIST images (a seeded subset below 70,000)")
    parser.add_argument("--folder-n", type=int, default=20000, help="image-folder PNGs at 224 px (0: skip)")
    parser.add_argument("--models", nargs="+", default=["efficientnet_lite0", "dinov2_small"])
    parser.add_argument("--work", default="/tmp/convergence-pipeline-benchmark")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--ceiling-n", type=int, default=256)
    parser.add_argument("--n-permutations", type=int, default=10)
    parser.add_argument("--n-bootstrap", type=int, default=10)
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args)))
        return
    import shutil

    work = Path(args.work)
    for p in work.glob("*.zarr"):
        shutil.rmtree(p)
    shutil.rmtree(work / "pairs", ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    load0 = os.getloadavg()
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: Fashion-MNIST n = {args.n}, models {args.models}, "
          f"{args.threads} torch threads, {os.cpu_count()} cpus, load average {load0[0]:.1f} / {load0[1]:.1f}")
    rows = [("stimuli", run(args, "stimuli"))]
    rates = {}
    for m in args.models:
        rows.append((f"ceiling {m}", run(args, "ceiling", m)))
        rows.append((f"embed {m}", run(args, "embed", m)))
        rates[m] = (rows[-1][1]["n"] / rows[-1][1]["seconds"], rows[-2][1]["n"] / rows[-2][1]["seconds"])
    for m in args.models:
        rows.append((f"kernel {m}", run(args, "kernel", m)))
    for metric in ("mutual_knn", "cka_linear"):
        rows.append((f"alignment {metric}", run(args, "alignment", metric)))
    if args.folder_n:
        make_folder(work / "folder", args.folder_n)
        rows.append((f"stimuli image_folder 224 px", run(args, "stimuli", "folder")))
    print(f"{'job':<32} {'n':>7} {'job s':>9} {'process s':>10} {'images/s':>10} {'peak MB':>9}")
    for name, r in rows:
        print(f"{name:<32} {r['n']:>7} {r['seconds']:>9.1f} {r['wall']:>10.1f} {r['n'] / r['seconds']:>10.1f} "
              f"{r['peak_mb']:>9.0f}")
    stim_rate = rows[0][1]["n"] / rows[0][1]["seconds"]
    for m, (extract_rate, ceiling_rate) in rates.items():
        print(f"{m}: extraction / bare forward pass = {extract_rate / ceiling_rate:.2f}; "
              f"stimuli step / extraction = {stim_rate / extract_rate:.0f}x faster")
    load1 = os.getloadavg()
    print(f"load average at the end {load1[0]:.1f} / {load1[1]:.1f}; peak memory of the largest job "
          f"{max(r['peak_mb'] for _, r in rows):.0f} MB")


if __name__ == "__main__":
    main()
