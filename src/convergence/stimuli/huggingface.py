"""Source ``huggingface``: a Hugging Face dataset (``name``, ``revision``, ``split``, ``image_column``,
``caption_column``, ``label_column``, ``id_column``), or one saved with ``save_to_disk`` (``path``).

The Arrow files are memory-mapped: listing reads the id, caption and label columns only, and the decoder
reads the image column of the kept rows, one row range (chunk) at a time. With ``streaming: true`` (a hub
set too large to download whole) the rows are streamed twice, first without the image column (the listing),
then with the images left as bytes, decoding only the kept rows."""

from __future__ import annotations

import io

import numpy as np

from .images import DEFAULT_BACKGROUND, StimulusError, _decode_error, fit_square, parse_background
from .registry import Listing


def _where(spec: dict) -> str:
    return spec.get("path") or f"{spec.get('name')}@{spec.get('revision') or 'main'}"


def open_dataset(spec: dict):
    """The split as a ``datasets.Dataset`` (memory-mapped) or, with ``streaming: true``, an ``IterableDataset``."""
    return _open(spec)[0]


def _open(spec: dict):
    """(the split, the facts that identify it: the hub's resolved commit and fingerprint, or the saved copy's
    fingerprint). Offline, a hub dataset is the prepared copy of the named revision
    (:func:`convergence.hubcache.load_hub_dataset`), never merely the newest cached one."""
    try:
        import datasets
    except ImportError as err:
        raise StimulusError("the huggingface source needs the 'datasets' package: pip install datasets") from err
    streaming = bool(spec.get("streaming", False))
    facts = None
    if streaming and spec.get("path"):
        raise StimulusError("huggingface: streaming applies to hub datasets (name), not to a saved one (path)")
    try:
        if spec.get("path"):
            data = datasets.load_from_disk(spec["path"])
            if isinstance(data, datasets.DatasetDict):
                data = data[spec.get("split", "train")]
        elif streaming:
            data = datasets.load_dataset(spec["name"], revision=spec.get("revision"), split=spec.get("split", "train"),
                                         streaming=True)
        else:
            from ..hubcache import load_hub_dataset

            data, facts = load_hub_dataset(spec["name"], spec.get("revision"), spec.get("split", "train"))
    except Exception as err:
        raise StimulusError(f"cannot load Hugging Face dataset {_where(spec)}: {err}") from err
    columns = data.column_names if data.column_names is not None else list(data.features or {})
    for col in (spec.get("image_column", "image"), spec.get("caption_column"), spec.get("label_column"),
                spec.get("id_column")):
        if col and col not in columns:
            raise StimulusError(f"Hugging Face dataset has no column {col!r}; columns are {columns}")
    if facts is None:
        facts = {"fingerprint": str(getattr(data, "_fingerprint", ""))}
        return data, facts
    return data, {"hub_dataset": facts}


def _caption(c) -> str:
    """The first caption of a list; a missing caption is empty (an error in :func:`~convergence.stimuli.build.plan`)."""
    return (c[0] if c else "") if isinstance(c, (list, tuple)) else ("" if c is None else str(c))


def list_stimuli(spec: dict) -> Listing:
    parse_background(spec.get("background", DEFAULT_BACKGROUND))
    data, facts = _open(spec)
    cap, lab, key = spec.get("caption_column"), spec.get("label_column"), spec.get("id_column")
    wanted = [c for c in (cap, lab, key) if c]
    names = getattr((data.features or {}).get(lab), "names", None) if lab else None
    if spec.get("streaming"):
        columns = {c: [] for c in wanted}
        n = 0
        for row in data.select_columns(wanted) if wanted else data.remove_columns(list(data.column_names)):
            for c in wanted:
                columns[c].append(row[c])
            n += 1
    else:
        n = len(data)
        columns = {c: data[c] for c in wanted}  # column reads of the memory-mapped table: no image is decoded
    captions = [_caption(c) for c in columns[cap]] if cap else None
    labels = ["" if v is None else names[int(v)] if names else str(v) for v in columns[lab]] if lab else None
    ids = [str(v) for v in columns[key]] if key else [f"{i:06d}" for i in range(n)]
    return Listing(ids=ids, refs=list(range(n)), captions=captions, labels=labels, attrs=facts)


def decoder(spec: dict):
    size = int(spec.get("image_size", 224))
    background = spec.get("background", DEFAULT_BACKGROUND)
    image_col = spec.get("image_column", "image")
    where = _where(spec)
    data = open_dataset(spec).select_columns([image_col])

    def fit(image, row):
        try:
            return np.asarray(fit_square(image, size, background), np.uint8)
        except StimulusError:
            raise
        except Exception as err:
            raise _decode_error(f"{image_col!r} of row {row} of the Hugging Face dataset {where}", err) from err

    if not spec.get("streaming"):

        def decode(refs) -> np.ndarray:
            out = np.zeros((len(refs), size, size, 3), np.uint8)
            rows = [int(r) for r in refs]
            try:
                images = data[rows][image_col] if rows else []  # only these rows' images are decoded
            except Exception as err:
                raise _decode_error(f"{image_col!r} of rows {rows[0]}-{rows[-1]} of the Hugging Face dataset {where}",
                                    err) from err
            for i, (row, image) in enumerate(zip(rows, images)):
                out[i] = fit(image, row)
            return out

        return decode

    import datasets
    from PIL import Image

    stream = iter(enumerate(data.cast_column(image_col, datasets.Image(decode=False))))

    def decode_streamed(refs) -> np.ndarray:
        out = np.zeros((len(refs), size, size, 3), np.uint8)
        for i, want in enumerate(int(r) for r in refs):
            for row, item in stream:  # forward only: chunks come in row order
                if row == want:
                    break
            else:
                raise StimulusError(f"Hugging Face dataset {where}: the stream ended before row {want}")
            raw = item[image_col]
            try:
                image = Image.open(io.BytesIO(raw["bytes"]) if raw.get("bytes") else raw["path"])
                image.load()
            except Exception as err:
                raise _decode_error(f"{image_col!r} of row {row} of the Hugging Face dataset {where}", err) from err
            out[i] = fit(image, row)
        return out

    return decode_streamed


def content_files(spec: dict, here) -> list:
    if not spec.get("path"):
        return []  # a hub dataset: its pinned revision stands for the content
    root = here(spec["path"])
    return [(f.relative_to(root).as_posix(), f) for f in sorted(root.rglob("*")) if f.is_file()]
