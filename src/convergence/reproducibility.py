"""What decides an extraction's stored numbers, read from the config while the DAG is built (no torch).

Rule: a setting is a parameter Snakemake sees (so that changing it reruns the job) exactly when it can change
the stored numbers, and every such setting is recorded in the store's attrs. For rule ``embed`` that is the
model entry (minus its labels), and:

- ``device``: the device the forward pass runs on, resolved here (``auto``: CUDA when ``embed_gpus`` > 0 or
  this machine shows an NVIDIA GPU, else the CPU); the job runs on exactly that device. CPU and CUDA
  kernels give different float32 results.
- ``precision``: the effective one, float32 on the CPU whatever is asked (autocast is applied on CUDA
  only), so asking for bfloat16 on a CPU-only run reruns nothing.
- ``threads`` (CPU only): ``embed_threads``, the number of threads torch and onnxruntime compute with. The
  kernels split their sums by thread count, so features differ in the last bits between counts (measured
  up to 2e-7 relative on the packaged EfficientNet-Lite0, ``benchmarks/invariance.py``); the job computes
  with exactly this many threads even when Snakemake's ``--cores`` grants fewer.
- ``batch_size`` (part of the entry): it stays a trigger. Padding to a batch's longest caption changes
  language models' matrix shapes (1.3e-7 relative, tiny BERT and GPT-2) and oneDNN picks convolution
  algorithms by batch size (8.5e-7 on EfficientNet-Lite0, 1.7e-7 on the ONNX open_nsfw), although timm's
  ResNet and ViT and the packaged DINOv2 measured bit-identical at 1, 7 and 32.

A store computed under one set of these values is what a clean run of that config gives on the same kind
of machine; the CPU's instruction set (recorded as ``cpu_capability``) can still change the last bits
between machines of different kinds (README, "Reproducibility").
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

#: The driver's entry in /proc: present on a machine whose NVIDIA GPU processes may use.
NVIDIA_DRIVER = Path("/proc/driver/nvidia/version")


def cuda_visible() -> bool:
    """Whether this machine shows an NVIDIA GPU to processes (the driver is loaded and
    ``CUDA_VISIBLE_DEVICES`` does not hide every device), without importing torch."""
    hidden = os.environ.get("CUDA_VISIBLE_DEVICES")
    return NVIDIA_DRIVER.exists() and hidden not in ("", "-1")


def extraction_device(cfg: Mapping) -> str:
    """The device extraction runs on: ``device`` as configured, with ``auto`` resolved to ``cuda`` when the
    scheduler gives each embed job a GPU (``embed_gpus`` > 0) or this machine shows one, else ``cpu``."""
    device = str(cfg.get("device", "auto"))
    if device != "auto":
        return device
    return "cuda" if int(cfg.get("embed_gpus", 0)) > 0 or cuda_visible() else "cpu"


def extraction_settings(cfg: Mapping) -> dict:
    """The run-wide settings that decide an extraction's numbers (module docstring): ``device``,
    ``precision`` (effective) and, on the CPU, ``threads``."""
    device = extraction_device(cfg)
    cuda = device.startswith("cuda")
    out = {"device": device, "precision": str(cfg.get("precision", "float32")) if cuda else "float32"}
    if not cuda:
        out["threads"] = int(cfg.get("embed_threads", 1))
    return out
