"""Labelled Zarr (v3) stores written atomically.

Every product of the workflow that holds arrays is an :class:`xarray.Dataset` written here. A store is
first written beside its target under a temporary name, then renamed into place, so a killed job never
leaves a store that looks complete; an existing target is replaced only after the new one is whole. The
temporaries a killed write leaves behind (``.<name>.tmp-XXXXXXXX``, ``.<name>.old-XXXXXXXX``) are removed
by the next write of the same target.

Stores carry consolidated metadata (one ``zarr.json`` lists every array), so a plain
``xarray.open_zarr(path)`` opens them without warnings and without listing the directory: Snakemake's
``.snakemake_timestamp`` file inside a ``directory()`` output is then never mistaken for a Zarr member.
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import xarray as xr

STIMULUS_CHUNK = 4096


def _jsonable(value):
    """Attrs must survive a JSON round trip (Zarr v3 metadata): numpy scalars/arrays become Python types."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return value


def _remove_stale_temporaries(path: Path) -> None:
    """Remove what an interrupted write of ``path`` left beside it (only that target's temporaries)."""
    pattern = re.compile(rf"\.{re.escape(path.name)}\.(tmp|old)-[0-9a-f]{{8}}")
    for sibling in path.parent.iterdir():
        if pattern.fullmatch(sibling.name):
            if sibling.is_dir() and not sibling.is_symlink():
                shutil.rmtree(sibling, ignore_errors=True)
            else:
                sibling.unlink(missing_ok=True)


class OutputNotWritable(PermissionError):
    """An output's folder cannot be written: raised before the work that would produce the output."""


def check_writable(paths) -> None:
    """Make sure every output in ``paths`` (one path or several, e.g. a Snakemake job's ``output``) can be
    written: its folder exists or can be made, and a file can be created and removed there (the atomic
    writes below create their temporaries beside the target). Called at the start of every workflow job
    (:func:`convergence.runtime.logged`), so an unwritable output folder is one clear error before an
    extraction, not a ``PermissionError`` on a temporary name after it."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    for target in paths:
        _writable_folder(Path(target))


def _writable_folder(path: Path) -> Path:
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".{path.name}.probe-{uuid.uuid4().hex[:8]}"
        probe.touch()
        probe.unlink()
    except OSError as err:
        raise OutputNotWritable(
            f"cannot write {path}: its folder {folder} is not writable ({err.strerror or err}); fix the "
            "folder's permissions, free the disk, or run the workflow in a writable directory") from None
    return folder


def write_store(ds: xr.Dataset, path: str | Path, *, chunk: int = STIMULUS_CHUNK) -> Path:
    """Write ``ds`` to the Zarr v3 store ``path`` atomically.

    Chunks: at most ``chunk`` rows along ``stimulus``, one entry along ``layer`` (so one layer of an
    n x n Gram is read without the others), every other dimension whole.
    """
    path = Path(path)
    _writable_folder(path)
    _remove_stale_temporaries(path)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    ds = ds.copy()
    ds.attrs = _jsonable(dict(ds.attrs))
    for name in ds.variables:
        ds[name].attrs = _jsonable(dict(ds[name].attrs))
        ds[name].encoding = {}
    encoding = {}
    for name, var in ds.data_vars.items():
        chunks = tuple(
            min(chunk, n) if dim == "stimulus" else (min(1, n) if dim == "layer" else n)
            for dim, n in zip(var.dims, var.shape)
        )
        chunks = tuple(max(1, c) for c in chunks)
        if chunks:
            encoding[name] = {"chunks": chunks}
    try:
        with warnings.catch_warnings():
            # "Consolidated metadata is currently not part in the Zarr format 3 specification": zarr-python and
            # xarray read it (and fall back to the per-array zarr.json files where a reader does not).
            warnings.filterwarnings("ignore", message=".*[Cc]onsolidated.*")
            ds.to_zarr(tmp, mode="w", zarr_format=3, consolidated=True, encoding=encoding)
        if path.exists():
            old = path.with_name(f".{path.name}.old-{uuid.uuid4().hex[:8]}")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return path


def open_store(path: str | Path, *, load: bool = False) -> xr.Dataset:
    """Open a store written by :func:`write_store`; string coordinates come back as Python ``str`` objects."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no store at {path}")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*consolidated.*")
        # Snakemake drops a .snakemake_timestamp file into directory() outputs; it is not part of the store.
        warnings.filterwarnings("ignore", message=".*snakemake_timestamp.*")
        ds = xr.open_zarr(path, zarr_format=3)  # consolidated when written here; older stores fall back
    for name, var in ds.variables.items():
        if var.dtype.kind in ("T", "U", "O"):
            values = np.asarray(var.values).astype(object)
            if name in ds.coords:
                ds = ds.assign_coords({name: (var.dims, values)})
            else:
                ds[name] = (var.dims, values, var.attrs)
    return ds.load() if load else ds


def write_table(df, path: str | Path) -> Path:
    """Write a tidy pandas table (CSV) atomically."""
    path = Path(path)
    _writable_folder(path)
    _remove_stale_temporaries(path)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    df.to_csv(tmp, index=False)
    os.replace(tmp, path)
    return path



def write_json(obj, path: str | Path) -> Path:
    """Write a small JSON document (numbers a figure reads besides a table) atomically."""
    import json

    path = Path(path)
    _writable_folder(path)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    tmp.write_text(json.dumps(_jsonable(obj), indent=2, sort_keys=True, allow_nan=True) + "\n")
    os.replace(tmp, path)
    return path
