"""What the local Hugging Face caches say about a repo, read without the network (and, at module level,
without importing datasets, transformers or torch, so that config checks can use it while the DAG is built).

The hub cache (``HF_HUB_CACHE``, default ``$HF_HOME/hub``) holds ``<kind>s--<org>--<name>/refs/<revision>``
(the commit a branch or tag resolved to when it was downloaded) and ``snapshots/<commit>/<files>``. The
datasets cache (``HF_DATASETS_CACHE``, default ``$HF_HOME/datasets``) holds each prepared dataset as
``<org>___<name>/<config>/<version>/<hash>/`` where, for a Hub dataset, the hash is the commit of the revision
it was prepared from. Offline, ``datasets.load_dataset`` ignores ``revision`` and loads the newest prepared copy;
:func:`load_hub_dataset` loads the copy of the named revision or says why it cannot.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

_COMMIT = re.compile(r"^[0-9a-f]{40}$")


class HubCacheError(RuntimeError):
    """The caches cannot give what was asked (a revision that cannot be verified offline, a missing copy)."""


def hf_home() -> Path:
    return Path(os.environ.get("HF_HOME") or Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser()
                / "huggingface").expanduser()


def hub_cache() -> Path:
    return Path(os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE") or hf_home() / "hub")


def datasets_cache() -> Path:
    return Path(os.environ.get("HF_DATASETS_CACHE") or hf_home() / "datasets")


def offline() -> bool:
    true = ("1", "ON", "YES", "TRUE")
    return any(os.environ.get(k, "").upper() in true for k in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


def repo_dir(kind: str, repo_id: str) -> Path:
    return hub_cache() / f"{kind}s--{repo_id.replace('/', '--')}"


def resolved_commit(kind: str, repo_id: str, revision: str | None) -> str | None:
    """The commit ``revision`` (branch, tag or commit; None = main) of repo ``repo_id`` resolved to when it was
    cached: the revision itself when it is a commit, else the content of ``refs/<revision>``; None if unknown."""
    rev = revision or "main"
    if _COMMIT.match(rev):
        return rev
    ref = repo_dir(kind, repo_id) / "refs" / rev
    try:
        return ref.read_text().strip() or None
    except OSError:
        return None


def snapshot_commit(path: str | Path) -> str | None:
    """The commit of a file inside a hub snapshot (``.../snapshots/<commit>/<file>``), else None."""
    parts = Path(path).parts
    if "snapshots" in parts:
        i = len(parts) - 1 - parts[::-1].index("snapshots")
        if i + 1 < len(parts) and _COMMIT.match(parts[i + 1]):
            return parts[i + 1]
    return None


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def prepared_copies(repo_id: str) -> list[Path]:
    """Every prepared copy of hub dataset ``repo_id`` in the datasets cache (``<config>/<version>/<hash>``)."""
    org, _, name = repo_id.rpartition("/")
    snake = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()  # datasets' camelcase_to_snakecase
    root = datasets_cache() / (f"{org}___{snake}" if org else snake)
    return sorted(p for p in root.glob("*/*/*") if p.is_dir() and (p / "dataset_info.json").is_file())


def cached_columns(repo_id: str, revision: str | None = None) -> dict[str, list[str]] | None:
    """{split: column names} of the prepared copy of ``repo_id`` at ``revision`` (when the hub ref names its
    commit; else the newest copy), read from its ``dataset_info.json``; None when no copy is cached."""
    copies = prepared_copies(repo_id)
    commit = resolved_commit("dataset", repo_id, revision)
    mine = [p for p in copies if p.name == commit] or copies
    if not mine:
        return None
    info = json.loads((max(mine, key=lambda p: p.stat().st_mtime) / "dataset_info.json").read_text())
    columns = list((info.get("features") or {}).keys())
    return {split: columns for split in (info.get("splits") or {"": None})}


def load_hub_dataset(repo_id: str, revision: str | None, split: str):
    """``datasets.load_dataset(repo_id, revision=revision, split=split)``, and offline the prepared copy of
    that revision's commit, not merely the newest one. Returns (dataset, facts: repo, revision, commit, config,
    fingerprint, cache directory). Offline, a revision whose commit no hub ref records, or whose copy is not
    prepared, raises :class:`HubCacheError` naming the copies there are."""
    import datasets

    if not offline():
        data = datasets.load_dataset(repo_id, revision=revision, split=split)
        where = Path(data.cache_files[0]["filename"]).parent if data.cache_files else None
        commit = where.name if where is not None and _COMMIT.match(where.name) else None
        return data, _facts(repo_id, revision, commit, where, data)
    copies = prepared_copies(repo_id)
    if not copies:
        raise HubCacheError(f"dataset {repo_id!r} is not in the datasets cache {datasets_cache()} and the hub is "
                            "offline (HF_HUB_OFFLINE/HF_DATASETS_OFFLINE): load it once with network access")
    commit = resolved_commit("dataset", repo_id, revision)
    found = ", ".join(f"{p.parts[-3]}@{p.name[:12]}" for p in copies)
    if commit is None:
        raise HubCacheError(
            f"dataset {repo_id!r}: revision {revision or 'main'!r} cannot be verified offline: no hub ref "
            f"{repo_dir('dataset', repo_id) / 'refs' / (revision or 'main')} records its commit, and offline "
            f"datasets would load the newest cached copy whatever the revision (cached: {found}). Load it once "
            "with network access, or name the commit as `revision`")
    mine = [p for p in copies if p.name == commit]
    if not mine:
        raise HubCacheError(
            f"dataset {repo_id!r}: revision {revision or 'main'!r} is commit {commit[:12]}, which is not in the "
            f"datasets cache (cached: {found}); offline, another copy would be loaded instead. Load it once "
            "with network access")
    path = max(mine, key=lambda p: p.stat().st_mtime)
    config, version = path.parts[-3], path.parts[-2]
    from datasets.packaged_modules.cache.cache import Cache

    builder = Cache(cache_dir=str(datasets_cache()), dataset_name=path.parent.parent.parent.name.split("___")[-1],
                    repo_id=repo_id, config_name=config, version=version, hash=commit)
    data = builder.as_dataset(split=split)
    return data, _facts(repo_id, revision, commit, path, data)


def _facts(repo_id, revision, commit, where, data) -> dict:
    return {"repo": repo_id, "revision": str(revision or "main"), "commit": commit or "unknown",
            "config": where.parts[-3] if where is not None and len(where.parts) >= 3 else "",
            "fingerprint": str(getattr(data, "_fingerprint", "")), "cache_dir": str(where or "")}


def explain_hub_error(err: BaseException, repo: str, revision: str | None = None) -> str | None:
    """One sentence saying what went wrong with hub repo ``repo`` and what to do, from the huggingface_hub
    error anywhere in ``err``'s cause chain (gated, missing repo or revision, offline and not cached, no
    network); None when the failure is no hub failure."""
    seen, chain = set(), []
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        chain.append(err)
        err = err.__cause__ or err.__context__
    names = {t.__name__ for e in chain for t in type(e).__mro__}
    rev = revision or "main"
    if "GatedRepoError" in names:
        return (f"{repo!r} is a gated repo: accept its terms on https://huggingface.co/{repo} and log in "
                "(`hf auth login`, or set HF_TOKEN) on the machine that runs the job")
    if "RevisionNotFoundError" in names:
        return f"{repo!r} has no revision {rev!r}: name an existing branch, tag or commit as `revision`"
    if "RepositoryNotFoundError" in names:
        return (f"{repo!r} does not exist on the hub (or is private: log in with `hf auth login` or HF_TOKEN); "
                "check the name")
    if "LocalEntryNotFoundError" in names or "OfflineModeIsEnabled" in names:
        return (f"{repo!r}@{rev} is not in the local Hugging Face cache ({hub_cache()}) and the hub cannot be "
                "reached (HF_HUB_OFFLINE is set, or no network): download it once where there is network "
                f"(`hf download {repo}`) and copy the cache, or unset HF_HUB_OFFLINE")
    if "EntryNotFoundError" in names:
        return f"{repo!r}@{rev} lacks a file its loader needs (an incomplete download or another format)"
    if {"ConnectionError", "ConnectTimeout", "ReadTimeout", "ConnectError"} & names:
        return f"the hub could not be reached for {repo!r}: check the network or set HF_HUB_OFFLINE=1 with a cache"
    return None
