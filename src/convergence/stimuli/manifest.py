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


#: Files up to this size are keyed on a SHA-256 of their bytes in the manifest; larger ones on their status.
MANIFEST_HASH_LIMIT = 256 * 2**20


def _file_key(st) -> list[int]:
    """What ``cp -p`` (same size, same modification time, new bytes) cannot preserve as well as what it can:
    size, mtime and ctime (nanoseconds), inode and device."""
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev]


def content_manifest(spec: dict, base_dir: str | Path = ".", hashes: dict | None = None) -> dict:
    """A small, deterministic description of the content a dataset entry reads (:func:`content_files`):
    how many files, their total size, and a SHA-256 over every file's name and fingerprint.

    The rule: a file's fingerprint is the SHA-256 of its bytes when it is at most
    :data:`MANIFEST_HASH_LIMIT` bytes, else its status key (size, mtime, ctime, inode, device: replacing it,
    even by ``cp -p``, changes the ctime and, for a new file, the inode). So the manifest changes when a file
    is replaced, edited, added or removed, and only then; a file saved again with the same bytes, or the data
    copied elsewhere, changes nothing (of files within the limit). ``hashes`` (name -> status key and hash,
    updated in place) lets a caller keep the hashes between calls: a file whose status key is unchanged is
    not read again, so only new or changed files are hashed (the first call reads every file once).
    """
    import hashlib

    hashes = {} if hashes is None else hashes
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
        key = _file_key(st)
        if st.st_size > MANIFEST_HASH_LIMIT:
            fingerprint = "stat:" + ":".join(map(str, key))
        elif hashes.get(name, [None])[:-1] == key:
            fingerprint = hashes[name][-1]
        else:
            try:
                with open(path, "rb") as fh:
                    fingerprint = hashlib.file_digest(fh, "sha256").hexdigest()
            except OSError:  # unreadable: the stimulus job reports it
                fingerprint = "unreadable:" + ":".join(map(str, key))
            hashes[name] = [*key, fingerprint]
        digest.update(f"{name}\t{st.st_size}\t{fingerprint}\n".encode())
    for stale in set(hashes) - {name for name, _ in files}:
        del hashes[stale]
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
    rule ``stimuli``, evaluated while the DAG is built. The files' content hashes are kept beside it
    (``.<name>.hashes.json``), so each build reads only the files whose status changed."""
    import json

    path = Path(path)
    # the content hashes of the last call, by file (not an input of any rule: rewriting it reruns nothing)
    cache = path.with_name(f".{path.stem}.hashes.json")
    try:
        hashes = json.loads(cache.read_text())
    except (OSError, ValueError):
        hashes = {}
    before = json.dumps(hashes, sort_keys=True)
    write_manifest(content_manifest(spec, base_dir, hashes), path)
    if json.dumps(hashes, sort_keys=True) != before:
        write_manifest(hashes, cache)
    return str(path)
