"""From a dataset entry to a stimulus store: list, subsample on the listing, decode the kept rows chunk by chunk.

:func:`plan` lists the source (no pixels) and decides which rows are kept; :meth:`Plan.images` decodes any
range of the kept rows; :func:`write_stimuli` appends them to the store one chunk at a time, so the
``stimuli`` job holds one chunk of images (``chunk`` x size x size x 3 bytes) plus the listing (ids,
captions, labels: a few hundred bytes a stimulus) whatever the number of images. :func:`build_stimuli`
returns the whole set in memory (small sets, tests, notebooks).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import xarray as xr

from .images import StimulusError
from .registry import SOURCES, Listing, Source
from .subsample import subsample_indices
from .variations import render_rows, variation_params

#: Rows of one chunk of the stimulus store (and of one decode call), at most; fewer for large images, so
#: that a chunk holds about :data:`CHUNK_BYTES` of pixels (:func:`chunk_rows`).
STIMULI_CHUNK = 1024
CHUNK_BYTES = 64 << 20


def chunk_rows(spec: dict) -> int:
    """Rows of a chunk of this entry's stimulus store: :data:`STIMULI_CHUNK`, or fewer so that a chunk's
    images (``image_size`` squared x 3 bytes each) stay near :data:`CHUNK_BYTES` (445 rows at 224 px)."""
    size = int(spec.get("image_size", 128 if spec.get("source") == "emoji" else 224))
    return max(16, min(STIMULI_CHUNK, CHUNK_BYTES // (size * size * 3)))


@dataclass
class Plan:
    """The kept stimuli of one dataset entry, before any pixel is decoded."""

    name: str
    spec: dict
    source: Source
    listing: Listing
    rows: np.ndarray  # kept rows of the listing, in listing order
    n_variations: int = 0  # 0: no variations; else renderings per kept row
    variation: dict = field(default_factory=dict)
    _decode: object = None

    @property
    def n(self) -> int:
        return len(self.rows) * max(1, self.n_variations)

    def _expand(self, values):
        """Per-kept-row ``values`` repeated for every variation."""
        k = max(1, self.n_variations)
        return [values[i] for i in self.rows for _ in range(k)]

    @cached_property
    def ids(self) -> list[str]:
        ids = [str(i) for i in self.listing.ids]
        if not self.n_variations:
            return [ids[i] for i in self.rows]
        return [f"{ids[i]}~v{j}" for i in self.rows for j in range(self.n_variations)]

    @cached_property
    def variables(self) -> dict:
        """The per-stimulus variables other than ``image`` (name -> numpy array), in store order."""
        lst = self.listing
        out = {}
        if lst.captions is not None:
            out["caption"] = np.array(self._expand(lst.captions), dtype=object)
        if lst.labels is not None:
            out["label"] = np.array(self._expand(lst.labels), dtype=object)
        for var, values in lst.extra.items():
            out[var] = np.array(self._expand(values), dtype=object)
        if self.n_variations:
            out["concept"] = np.array(self._expand([str(i) for i in lst.ids]), dtype=object)
            out["variation"] = np.array([j for _ in self.rows for j in range(self.n_variations)], dtype=np.int64)
        return out

    @cached_property
    def attrs(self) -> dict:
        lst = self.listing
        return {
            "dataset": self.name,
            "source": self.source.name,
            "n_stimuli": int(self.n),
            "has_captions": lst.captions is not None,
            "has_labels": lst.labels is not None,
            "classes": sorted({lst.labels[i] for i in self.rows}) if lst.labels is not None else [],
            "spec": {k: v for k, v in self.spec.items()},
            **(lst.attrs or {}),
        }

    def images(self, start: int, stop: int) -> np.ndarray:
        """uint8 RGB images of kept stimuli ``start:stop`` (store order), decoded now; call in increasing order."""
        if self._decode is None and not self.n_variations:
            self._decode = self.source.decoder(self.spec)
        if not self.n_variations:
            refs = [self.listing.refs[i] for i in self.rows[start:stop]]
            return self._decode(refs)
        k = self.n_variations
        ids = [str(i) for i in self.listing.ids]
        items = [(self.listing.paths[self.rows[r // k]], ids[self.rows[r // k]], r % k) for r in range(start, stop)]
        return render_rows(items, int(self.spec.get("image_size", 224)), int(self.spec.get("seed", 0)), self.variation)

    def chunk(self, start: int, stop: int) -> xr.Dataset:
        """Kept stimuli ``start:stop`` as a Dataset (images decoded now)."""
        images = self.images(start, stop)
        data_vars = {"image": (("stimulus", "height", "width", "channel"), images)}
        for var, values in self.variables.items():
            data_vars[var] = ("stimulus", values[start:stop])
        return xr.Dataset(
            data_vars,
            coords={"stimulus": np.array(self.ids[start:stop], dtype=object),
                    "channel": np.array(["R", "G", "B"], dtype=object)},
            attrs=self.attrs,
        )


def _is_blank(value) -> bool:
    return value is None or (isinstance(value, float) and value != value) or not str(value).strip()


def _check_filled(name: str, spec: dict, ids: list[str], raw: dict) -> None:
    """Every stimulus of a labelled source has a label and every stimulus of a captioned source a caption:
    an empty cell is one error naming the dataset and the column, never a class named '' or a caption every
    language model scores NaN on."""
    source = spec.get("source")
    where = {"csv": (" (column 'label')", " (column 'caption')"),
             "huggingface": (f" (label_column {spec.get('label_column')!r})",
                             f" (caption_column {spec.get('caption_column')!r})")}.get(source, ("", ""))
    for values, what, column, fix in (
            (raw.get("labels"), "label", where[0], "fill them in, or leave the labels out to use the dataset without labels"),
            (raw.get("captions"), "caption", where[1], "fill them in or remove those stimuli")):
        if values is None:
            continue
        blank = [i for i, v in enumerate(values) if _is_blank(v)]
        if blank:
            scope = "every stimulus has" if len(blank) == len(values) else f"{len(blank)} of {len(values)} stimuli have"
            raise StimulusError(f"dataset {name!r}: {scope} an empty {what}{column} (first: {ids[blank[0]]!r}); {fix}")


def plan(name: str, spec: dict) -> Plan:
    """List the dataset entry ``spec`` (named ``name``) and decide its kept rows; nothing is decoded."""
    source = SOURCES.get(spec.get("source"))
    if source is None:
        raise StimulusError(f"dataset {name!r}: unknown source {spec.get('source')!r}; "
                            f"allowed sources are {list(SOURCES)}")
    listing = source.list_stimuli(spec)
    ids = [str(i) for i in listing.ids]
    if len(set(ids)) != len(ids):
        seen, dup = set(), set()
        for i in ids:
            (dup if i in seen else seen).add(i)
        raise StimulusError(f"dataset {name!r}: stimulus ids must be unique; duplicated: {sorted(dup)[:5]}")
    _check_filled(name, spec, ids, {"labels": listing.labels, "captions": listing.captions})
    rows = subsample_indices(
        len(ids), listing.labels, per_class=spec.get("per_class"), limit=spec.get("limit"),
        seed=int(spec.get("seed", 0)), per_class_cap=spec.get("per_class_cap"),
    )
    if len(rows) == 0:
        raise StimulusError(f"dataset {name!r}: no stimuli left after subsampling")
    out = Plan(name, spec, source, listing, rows)
    if spec.get("variations"):
        if not source.variations:
            allowed = [s for s, src in SOURCES.items() if src.variations]
            raise StimulusError(f"dataset {name!r}: variations apply to sources {allowed}, not {source.name!r}")
        out.variation = variation_params(spec["variations"])
        out.n_variations = int(out.variation["n"])
    return out


def iter_chunks(p: Plan, chunk: int = STIMULI_CHUNK):
    """The kept stimuli as consecutive Datasets of ``chunk`` rows (the last may be shorter)."""
    for start in range(0, p.n, chunk):
        yield p.chunk(start, min(start + chunk, p.n))


def build_stimuli(name: str, spec: dict) -> xr.Dataset:
    """Materialise the dataset entry ``spec`` (named ``name``) as one labelled in-memory Dataset (see the
    package doc); the workflow writes the same rows chunk by chunk with :func:`write_stimuli`."""
    p = plan(name, spec)
    return p.chunk(0, p.n)


def _describe(ref) -> str:
    """A row's reference as digest input: a file by its path, size and modification time; else its repr."""
    if isinstance(ref, Path):
        try:
            st = ref.stat()
        except OSError:
            return f"{ref}\tmissing"
        return f"{ref}\t{st.st_size}\t{st.st_mtime_ns}"
    return repr(ref)


def chunk_digests(p: Plan, chunk: int = STIMULI_CHUNK) -> list[str]:
    """One digest per chunk of the store of ``p``: its ids, labels and captions and where its pixels come
    from (files by path, size and modification time; for sources whose rows are not files, the content
    manifest of what the source reads). A chunk whose digest is unchanged holds the same stored rows, so an
    interrupted ``stimuli`` job keeps those chunks when it runs again (:class:`convergence.store.ChunkedStore`)."""
    import hashlib

    from .manifest import content_manifest

    k = max(1, p.n_variations)
    refs = p.listing.paths if p.n_variations else p.listing.refs
    files = all(isinstance(r, Path) for r in refs)
    common = "" if files else content_manifest(p.spec)["sha256"]
    variables = p.variables
    out = []
    for start in range(0, p.n, chunk):
        h = hashlib.blake2b(common.encode(), digest_size=16)
        for r in range(start, min(start + chunk, p.n)):
            h.update(f"{p.ids[r]}\t{_describe(refs[p.rows[r // k]])}".encode())
            for values in variables.values():
                h.update(f"\t{values[r]}".encode())
            h.update(b"\n")
        out.append(h.hexdigest())
    return out


def write_stimuli(name: str, spec: dict, path: str | Path, *, chunk: int | None = None) -> Plan:
    """Write the stimulus store of ``spec`` to ``path`` chunk by chunk, atomically (the store appears only
    when complete). ``chunk``: rows a chunk (default :func:`chunk_rows`: at most 1,024, about 64 MB of
    pixels). Peak memory: a few copies of one chunk of images (decoded, encoded, compressed) plus the listing. A job that fails or is killed part-way (an unreadable image deep in the
    set, a time limit) leaves its complete chunks in ``.<name>.partial-<key>`` beside ``path`` (``key``: the
    dataset's name, entry and chunk size); the next run keeps the leading chunks whose inputs did not change
    (:func:`chunk_digests`) and decodes from there. Returns the plan."""
    from ..store import ChunkedStore, job_key
    from ..versions import STEP_VERSIONS

    p = plan(name, spec)
    chunk = int(chunk or chunk_rows(spec))
    digests = chunk_digests(p, chunk)
    out = ChunkedStore(path, chunk=chunk, key=job_key("stimuli", name, spec, chunk, STEP_VERSIONS["stimuli"]),
                       digests=digests)
    if out.resumed:
        print(f"{name}: resuming after {out.rows} of {p.n} stimuli (complete chunks of an earlier run)")
    for i, start in enumerate(range(out.rows, p.n, chunk), start=out.rows // chunk):
        out.append(p.chunk(start, min(start + chunk, p.n)), digest=digests[i])
    out.finish(p.attrs)
    return p


def count_stimuli(name: str, spec: dict, cache: str | Path, manifest: str | Path | None = None) -> int:
    """How many stimuli the dataset entry keeps, from its listing (no pixel is decoded), remembered in the
    JSON file ``cache`` under a digest of the entry and of its content manifest (the file
    :func:`~convergence.stimuli.manifest.refresh_manifest` keeps), so it is listed again only when either
    changed. The workflow reads it while building the DAG to know a sharded dataset's shards."""
    import json

    from ..store import job_key, write_json

    content = Path(manifest).read_text() if manifest and Path(manifest).is_file() else ""
    key = job_key("count", name, spec, content)
    cache = Path(cache)
    try:
        known = json.loads(cache.read_text())
        if known.get("key") == key:
            return int(known["n"])
    except (OSError, ValueError, KeyError):
        pass
    n = plan(name, spec).n
    write_json({"key": key, "n": n}, cache)
    return n


def shard_rows(n: int, shard_size: int) -> list[tuple[int, int]]:
    """The row ranges ``[start, stop)`` of the shards of ``n`` stimuli: consecutive runs of ``shard_size`` rows
    of the stimulus store (the last may be shorter)."""
    if shard_size < 1:
        raise StimulusError(f"shard_size must be >= 1, got {shard_size}")
    return [(s, min(n, s + shard_size)) for s in range(0, n, shard_size)]
