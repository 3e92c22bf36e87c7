"""Images per second of a packaged vision model: the real extraction path against its bare forward pass.

For each model (default: the packaged EfficientNet-Lite0 and DINOv2 ViT-S/14 of the offline zoo) and each
device (the CPU, and CUDA when present), one run times three things on the same synthetic images:

- ceiling: the network's plain forward pass (``model(x)``) over batches of inputs that were preprocessed
  and moved to the device beforehand, so nothing but the forward pass is timed;
- input only: reading the stimulus store (Zarr, on disk) and preprocessing each batch (uint8 -> device,
  resize, crop, normalise), no model;
- extraction: ``convergence.embed.extract`` as the ``embed`` rule runs it: the store read ahead on a
  background thread, preprocessing, the forward pass through every stored layer, pooling, copying the
  features back into float32 arrays.

On CUDA each precision in ``--precision`` is timed (float32, and bfloat16 / float16 under autocast, the
``precision`` config option); the CPU always runs float32. Each measurement is repeated ``--repeats``
times, alternating the paths so that load on a shared machine hits them alike, and the best repeat is
kept. The ratio extraction / ceiling is the share of the bare forward pass's throughput that the real
path reaches (1.0 = no overhead; pooling every stored layer can cost a few percent by itself).

Usage: python benchmarks/extract.py [--models efficientnet_lite0 dinov2_small] [--n 128] [--batch-size 32]
       [--image-size 224] [--threads 2] [--repeats 3] [--precision float32 bfloat16] [--devices cpu cuda]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import xarray as xr

from convergence.embed import autocast, extract
from convergence.models import load_encoder
from convergence.store import open_store, write_store


def make_stimuli(path: Path, n: int, size: int, seed: int = 0) -> xr.Dataset:
    """A stimulus store of ``n`` smooth random RGB images (``size`` x ``size``), written and reopened as the
    ``embed`` rule reads it."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, size=(n, size // 8, size // 8, 3), dtype=np.uint8)
    images = coarse.repeat(8, axis=1).repeat(8, axis=2)
    ids = np.array([f"img_{i:05d}" for i in range(n)], dtype=object)
    ds = xr.Dataset({"image": (("stimulus", "height", "width", "channel"), images)},
                    coords={"stimulus": ids}, attrs={"dataset": "synthetic"})
    write_store(ds, path)
    return open_store(path)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_ceiling(encoder, inputs: list[torch.Tensor], precision: str) -> float:
    """Seconds for the plain forward pass over preprocessed batches already on the device."""
    sync(encoder.device)
    t0 = time.perf_counter()
    with torch.inference_mode(), autocast(precision, encoder.device):
        for x in inputs:
            encoder.model(x)
    sync(encoder.device)
    return time.perf_counter() - t0


def time_input(encoder, stimuli: xr.Dataset, batch_size: int) -> float:
    """Seconds to read every batch from the store and preprocess it on the device (no model)."""
    n = stimuli.sizes["stimulus"]
    sync(encoder.device)
    t0 = time.perf_counter()
    for start in range(0, n, batch_size):
        batch = np.asarray(stimuli["image"][start : start + batch_size].values, dtype=np.uint8)
        encoder.preprocessing(batch, encoder.device)
    sync(encoder.device)
    return time.perf_counter() - t0


def time_extract(encoder, stimuli: xr.Dataset, batch_size: int, precision: str) -> float:
    t0 = time.perf_counter()
    extract(encoder, stimuli, batch_size=batch_size, progress=False, precision=precision)
    return time.perf_counter() - t0


def bench(name: str, device: str, precision: str, stimuli: xr.Dataset, args) -> dict:
    encoder = load_encoder(name, {"source": "packaged", "name": name, "modality": "vision"}, device=device)
    n = stimuli.sizes["stimulus"]
    images = np.asarray(stimuli["image"].values, dtype=np.uint8)
    inputs = [encoder.preprocessing(images[s : s + args.batch_size], encoder.device)
              for s in range(0, n, args.batch_size)]
    # warm-up: first calls allocate, pick kernels, fill caches
    time_ceiling(encoder, inputs[:1], precision)
    extract(encoder, stimuli.isel(stimulus=slice(0, args.batch_size)), batch_size=args.batch_size,
            progress=False, precision=precision)
    best = {"ceiling": np.inf, "input": np.inf, "extraction": np.inf}
    for _ in range(args.repeats):
        best["ceiling"] = min(best["ceiling"], time_ceiling(encoder, inputs, precision))
        best["extraction"] = min(best["extraction"], time_extract(encoder, stimuli, args.batch_size, precision))
        best["input"] = min(best["input"], time_input(encoder, stimuli, args.batch_size))
    del inputs, encoder
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    return {key: n / seconds for key, seconds in best.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["efficientnet_lite0", "dinov2_small"])
    parser.add_argument("--n", type=int, default=None, help="images (default 128 on the CPU, 2048 with CUDA)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--image-size", type=int, default=224, help="side of the stored images")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--precision", nargs="+", default=["float32", "bfloat16", "float16"],
                        help="precisions timed on CUDA (the CPU runs float32 only)")
    parser.add_argument("--devices", nargs="+", default=None, help="default: cpu, and cuda when available")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    devices = args.devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    n = args.n or (2048 if "cuda" in devices else 128)
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    print(f"{n} images of {args.image_size}x{args.image_size}, batch {args.batch_size}, torch {torch.__version__}, "
          f"{args.threads} threads, {os.cpu_count()} cpus, GPU: {gpu}; best of {args.repeats} repeats")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        stimuli = make_stimuli(Path(tmp) / "stimuli.zarr", n, args.image_size)
        for device in devices:
            precisions = ["float32"] if device == "cpu" else [p for p in args.precision]
            for name in args.models:
                for precision in precisions:
                    rate = bench(name, device, precision, stimuli, args)
                    rows.append((name, device, precision, rate))
    header = (f"{'model':<18} {'device':<6} {'precision':<9} {'ceiling img/s':>13} {'input-only img/s':>16} "
              f"{'extraction img/s':>16} {'extraction/ceiling':>18}")
    print(header)
    print("-" * len(header))
    for name, device, precision, r in rows:
        print(f"{name:<18} {device:<6} {precision:<9} {r['ceiling']:13.1f} {r['input']:16.1f} "
              f"{r['extraction']:16.1f} {r['extraction'] / r['ceiling']:18.2f}")
    base = {(name, device): r["extraction"] for name, device, p, r in rows if p == "float32"}
    for name, device, precision, r in rows:
        if precision != "float32" and (name, device) in base:
            print(f"{name} on {device}: {precision} extraction is {r['extraction'] / base[name, device]:.2f}x "
                  f"the float32 extraction")


if __name__ == "__main__":
    main()
