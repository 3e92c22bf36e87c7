"""Content manifests: what the files a dataset entry reads look like (names, sizes, modification times), so
the workflow reruns a stimulus set exactly when its content changed."""

from __future__ import annotations

from pathlib import Path

from .registry import SOURCES


def content_files(spec: dict, base_dir: str | Path = ".") -> list[tuple[str, Path]]:
    """(name, path) of every file the dataset entry ``spec`` reads its stimuli from, in a fixed order.

    ``image_folder``: its image files (named relative to the folder); ``csv``: the CSV, then every image
    its ``path`` column names (named as written there); ``huggingface`` with ``path``: every file of the
    saved dataset; ``emoji``: the font; ``fashion_mnist``: the IDX files of the split; ``digits`` and hub
    datasets: none (the installed package or the pinned ``revision`` stands for their content). Relative
    config paths are taken from ``base_dir`` (the workflow's working directory). Files that do not exist
    are listed all the same (the stimulus job reports them). Each source's module says which
    (``content_files`` in the source registry).
    """
    source = SOURCES.get(spec.get("source"))
    if source is None:
        return []

    def here(p) -> Path:
        p = Path(p)
        return p if p.is_absolute() else Path(base_dir) / p

    return source.content_files(spec, here)


def content_manifest(spec: dict, base_dir: str | Path = ".") -> dict:
    """A small, deterministic description of the content a dataset entry reads (:func:`content_files`):
    how many files, their total size, and a SHA-256 over every file's name, size and modification time
    (nanoseconds). It changes when a file is replaced, edited, touched, added or removed, and only then.
    """
    import hashlib

    digest = hashlib.sha256()
    total, missing = 0, []
    files = content_files(spec, base_dir)
    for name, path in files:
        try:
            st = path.stat()
        except OSError:
            missing.append(name)
            digest.update(f"{name}\tmissing\n".encode())
            continue
        total += st.st_size
        digest.update(f"{name}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
    return {
        "source": str(spec.get("source")),
        "path": str(spec.get("path", "")),
        "n_files": len(files),
        "total_bytes": total,
        "missing": missing[:20],
        "sha256": digest.hexdigest(),
    }


def write_manifest(manifest: dict, path: str | Path) -> bool:
    """Write ``manifest`` as JSON to ``path`` only if its content differs from what is there (atomically);
    an unchanged manifest keeps its modification time, so a workflow that uses it as an input reruns only
    when the content it describes changed. Returns whether the file was (re)written."""
    import json
    import os
    import uuid

    path = Path(path)
    text = json.dumps(manifest, indent=1, sort_keys=True) + "\n"
    try:
        if path.read_text() == text:
            return False
    except OSError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    tmp.write_text(text)
    os.replace(tmp, path)
    return True


def refresh_manifest(spec: dict, path: str | Path, base_dir: str | Path = ".") -> str:
    """Bring the manifest file ``path`` of the dataset entry ``spec`` up to date (rewritten only when the
    content changed, see :func:`write_manifest`) and return ``path``: the workflow's input function for
    rule ``stimuli``, evaluated while the DAG is built."""
    write_manifest(content_manifest(spec, base_dir), path)
    return str(path)
