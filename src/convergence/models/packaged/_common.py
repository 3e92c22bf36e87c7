"""What every weight carrier's loader shares: locating packages, the converted-weights cache, strict loading.

Nothing here imports a deep-learning library beyond torch; packages are found with
:func:`importlib.util.find_spec`, never imported.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from collections.abc import Callable
from pathlib import Path

import torch

from ..base import ModelLoadError
from ..cache import atomic_file, entry_dir, sweep_stale
from ...hubcache import file_sha256

#: Bump when a conversion changes, so caches made by older code are never reused.
CONVERTER_VERSION = 1


# -- locating packages --------------------------------------------------------------------------------------
def pip_hint(entry: dict) -> str:
    return "pip install " + " ".join(dict.fromkeys(p[2] for p in entry["packages"]))


def package_dir(module: str, entry: dict, key: str) -> Path:
    """The installed folder of ``module`` (found without importing it), or a ModelLoadError with the fix."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        needed = next((p[2] for p in entry["packages"] if p[1] == module), pip_hint(entry))
        raise ModelLoadError(
            f"packaged model {key!r} needs the Python package providing {module!r}, which is not installed: "
            f"pip install {needed}"
        )
    return Path(list(spec.submodule_search_locations)[0])


def package_version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def one_file(folder: Path, pattern: str, key: str) -> Path:
    found = sorted(folder.glob(pattern))
    if len(found) != 1:
        raise ModelLoadError(f"packaged model {key!r}: expected one file {pattern!r} under {folder}, found {found}")
    return found[0]


# -- the converted-weights cache ----------------------------------------------------------------------------
def cached_state_dict(
    key: str, entry: dict, source: Path, convert: Callable[[Path], dict[str, torch.Tensor]]
) -> tuple[dict[str, torch.Tensor], dict]:
    """Converted tensors from the cache, converting (and caching atomically) on first use."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    dist = entry["packages"][0][0]
    folder = entry_dir("packaged", dist, package_version(dist), CONVERTER_VERSION)
    target = folder / f"{key}.safetensors"
    if not target.is_file():
        sweep_stale(folder)
        tensors = convert(source)
        meta = {
            "packaged_model": key,
            "package": dist,
            "package_version": package_version(dist),
            "source_file": source.name,
            "source_sha256": file_sha256(source),
            "converter_version": str(CONVERTER_VERSION),
        }
        with atomic_file(target, suffix=".safetensors") as tmp:
            save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp), metadata=meta)
    with safe_open(str(target), framework="pt") as fh:
        meta = dict(fh.metadata() or {})
    meta.update(converted_file=str(target), converted_sha256=file_sha256(target))
    return load_file(str(target)), meta


def load_strict(model: torch.nn.Module, state: dict[str, torch.Tensor], key: str) -> None:
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise ModelLoadError(
            f"packaged model {key!r}: converted weights do not fit the model (missing {missing[:5]}, "
            f"unexpected {unexpected[:5]}); delete the cache entry and retry"
        )



def map_in_order(source: Path, arch: str, described: str | None = None, **create_kwargs) -> dict[str, torch.Tensor]:
    """The state dict in ``source`` mapped tensor by tensor, in order, onto timm ``arch``'s (built with
    ``create_kwargs``; ``described`` names it in messages), ``num_batches_tracked`` skipped on both sides:
    the counts and every pair's shapes must agree, else :class:`ModelLoadError`. Tensors become float32."""
    import timm

    src_sd = torch.load(str(source), map_location="cpu", weights_only=True)
    src = [(k, v) for k, v in src_sd.items() if not k.endswith("num_batches_tracked")]
    reference = timm.create_model(arch, pretrained=False, **create_kwargs).state_dict()
    dst = [(k, v) for k, v in reference.items() if not k.endswith("num_batches_tracked")]
    if len(src) != len(dst):
        raise ModelLoadError(
            f"{source.name}: {len(src)} tensors, but timm {described or arch} has {len(dst)}; not the expected model"
        )
    out = {}
    for (sk, sv), (dk, dv) in zip(src, dst, strict=True):
        if tuple(sv.shape) != tuple(dv.shape):
            raise ModelLoadError(
                f"{source.name}: tensor {sk} has shape {tuple(sv.shape)} but its timm counterpart {dk} "
                f"has {tuple(dv.shape)}; the checkpoint does not map onto {arch}"
            )
        out[dk] = sv.detach().to(torch.float32).clone()
    return out
