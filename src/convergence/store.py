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


# ------------------------------------------------------------------------------------------ chunked writes


def _zarr_chunks(ds: xr.Dataset, chunk: int, names) -> dict:
    """write_store's chunk rule (``chunk`` rows along ``stimulus``, one ``layer``, the rest whole) for ``names``."""
    encoding = {}
    for name in names:
        var = ds[name]
        chunks = tuple(
            min(chunk, n) if dim == "stimulus" else (min(1, n) if dim == "layer" else n) for dim, n in zip(var.dims, var.shape)
        )
        chunks = tuple(max(1, c) for c in chunks)
        if chunks:
            encoding[name] = {"chunks": chunks}
    return encoding


class ChunkedStore:
    """A store written along ``stimulus`` one chunk after the other, so a job holds one chunk in memory.

    The store grows in a work directory beside the target (``.<name>.tmp-XXXXXXXX``, or with ``key`` the
    resumable ``.<name>.partial-<key>``); every :meth:`append` adds ``chunk`` rows (the last may be shorter)
    and then records, atomically, how many rows are complete and a digest of each chunk's inputs
    (``progress.json``). :meth:`finish` writes the attrs and the consolidated metadata and renames the store
    into place: only then does the target exist, so nothing half-written is ever taken as finished.

    With ``key`` (a digest of the job's parameters) a killed job's work directory is found again by the next
    run with the same key and continued from its last complete chunk (:attr:`rows`): rows a killed append
    wrote past it are cut off, and with ``digests`` (the digest of each chunk's inputs as they are now) only
    the leading chunks whose recorded digest still matches are kept, so a chunk whose inputs changed is
    redone. Work directories of the same target under another key are stale (their job's parameters changed)
    and are removed. A chunk's rows must be computed from that chunk alone; then a resumed store holds the
    same values as one written in one go.
    """

    def __init__(self, path: str | Path, *, chunk: int = STIMULUS_CHUNK, key: str | None = None,
                 digests: list[str] | None = None):
        self.path = Path(path)
        self.chunk = int(chunk)
        if self.chunk < 1:
            raise ValueError(f"chunk must be >= 1, got {chunk}")
        _writable_folder(self.path)
        _remove_stale_temporaries(self.path)
        if key is None:
            self.work = self.path.with_name(f".{self.path.name}.tmp-{uuid.uuid4().hex[:8]}")
        else:
            if not re.fullmatch(r"[0-9a-f]{8,64}", key):
                raise ValueError(f"store key must be hex digits, got {key!r}")
            self.work = self.path.with_name(f".{self.path.name}.partial-{key}")
            for sibling in self.path.parent.glob(f".{self.path.name}.partial-*"):
                if sibling != self.work and sibling.is_dir():
                    shutil.rmtree(sibling, ignore_errors=True)
        self.store = self.work / "store.zarr"
        self.marker = self.work / "progress.json"
        self.rows = 0
        self.digests: list[str] = []
        self.info: dict = {}
        self.resumed_from = 0
        if key is not None and self.marker.is_file() and self.store.is_dir():
            import json

            done = json.loads(self.marker.read_text())
            kept = list(done.get("digests", []))
            if digests is not None:
                same = 0
                while same < min(len(kept), len(digests)) and kept[same] == digests[same]:
                    same += 1
                kept = kept[:same]
            rows = min(int(done["rows"]), len(kept) * self.chunk)
            if rows > 0:
                self.rows, self.digests, self.info = rows, kept[: -(-rows // self.chunk)], dict(done.get("info", {}))
                self._truncate(rows)
                self.resumed_from = rows
        if self.rows == 0 and self.work.exists():
            shutil.rmtree(self.work)
        self.work.mkdir(parents=True, exist_ok=True)

    @property
    def resumed(self) -> bool:
        return self.resumed_from > 0

    def _truncate(self, rows: int) -> None:
        """Cut every ``stimulus`` array back to ``rows`` (what a write killed after the last marker added)."""
        import zarr

        group = zarr.open_group(self.store, mode="r+", zarr_format=3)
        for _, array in group.arrays():
            dims = array.metadata.dimension_names or ()
            if dims and dims[0] == "stimulus" and array.shape[0] != rows:
                array.resize((rows, *array.shape[1:]))

    def _mark(self) -> None:
        import json

        tmp = self.marker.with_name(f".progress.tmp-{uuid.uuid4().hex[:8]}")
        tmp.write_text(json.dumps({"rows": int(self.rows), "digests": self.digests, "info": _jsonable(self.info)}))
        os.replace(tmp, self.marker)

    def append(self, ds: xr.Dataset, digest: str = "", **info) -> None:
        """Add the rows of ``ds`` (a Dataset along ``stimulus``, one chunk) after the complete ones; ``digest``
        identifies the chunk's inputs, ``info`` is kept with the progress (e.g. seconds spent)."""
        n = ds.sizes["stimulus"]
        if n == 0:
            return
        if self.rows % self.chunk or n > self.chunk:
            raise ValueError(f"{self.path}: chunks are {self.chunk} rows; {n} rows appended after {self.rows}")
        ds = ds.copy()
        for name in ds.variables:
            ds[name].attrs = _jsonable(dict(ds[name].attrs))
            ds[name].encoding = {}
        ds.attrs = _jsonable(dict(ds.attrs))  # (an append writes the group's attrs again: the same ones)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*[Cc]onsolidated.*")
            if self.rows == 0:
                names = [*ds.data_vars, *(c for c in ds.coords if "stimulus" in ds[c].dims)]
                ds.to_zarr(self.store, mode="w", zarr_format=3, consolidated=False,
                           encoding=_zarr_chunks(ds, self.chunk, names))
            else:
                fixed = [v for v in ds.variables if "stimulus" not in ds[v].dims]
                ds.drop_vars(fixed).to_zarr(self.store, mode="a", append_dim="stimulus", zarr_format=3,
                                            consolidated=False)
        self.rows += n
        self.digests.append(str(digest))
        self.info.update(info)
        self._mark()

    def finish(self, attrs: Mapping | None = None) -> Path:
        """Write ``attrs`` (when given; else the first chunk's stay) and the consolidated metadata, rename the
        store into place (replacing an older one only now), and remove the work directory."""
        import zarr

        if self.rows == 0:
            raise ValueError(f"{self.path}: no rows were written")
        group = zarr.open_group(self.store, mode="r+", zarr_format=3)
        if attrs is not None:
            group.attrs.put(_jsonable(dict(attrs)))
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*[Cc]onsolidated.*")
            zarr.consolidate_metadata(self.store, zarr_format=3)
        if self.path.exists():
            old = self.path.with_name(f".{self.path.name}.old-{uuid.uuid4().hex[:8]}")
            os.replace(self.path, old)
            os.replace(self.store, self.path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(self.store, self.path)
        shutil.rmtree(self.work, ignore_errors=True)
        return self.path

    def abandon(self) -> None:
        """Remove the work directory (a failed write that cannot be resumed)."""
        shutil.rmtree(self.work, ignore_errors=True)


def job_key(*parts) -> str:
    """A 16-hex-digit digest of a job's parameters (JSON-serialisable ``parts``): the name of its resumable work."""
    import hashlib
    import json

    return hashlib.sha256(json.dumps(_jsonable(list(parts)), sort_keys=True, default=str).encode()).hexdigest()[:16]
