"""The stimulus-source registry: every source declared once, like the metric registry.

A :class:`Source` names the module that implements it, the dataset fields it reads (beyond the common
``source``, ``per_class``, ``per_class_cap``, ``limit``, ``seed``, ``variations``), and whether it takes
``variations``. Its module provides three functions:

``list_stimuli(spec) -> Listing``
    The cheap index: ids, labels, captions and further per-stimulus labels, and for every row a reference
    (a path, a row number, a code point) that says where its pixels are. No pixels are decoded here.
``decoder(spec) -> decode``
    A function ``decode(refs) -> uint8 array (len(refs), size, size, 3)`` that decodes the given rows (one
    chunk at a time; it may keep a file open between calls, so chunks should come in row order).
``content_files(spec, here) -> [(name, path), ...]``
    The files the stimuli are read from (the content manifest, :mod:`convergence.stimuli.manifest`).

Subsampling is decided on the listing (:func:`convergence.stimuli.build.plan`), so only kept images are
ever decoded. This module imports only the standard library: the workflow reads it while building the DAG.

Adding a source: one module with those three functions and one :class:`Source` entry below.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Listing:
    """What a source lists before decoding anything: one entry per stimulus, in the source's own order."""

    ids: list[str]
    refs: list[Any]  # per row, what the decoder needs (a path, a row number, a code point)
    labels: list[str] | None = None
    captions: list[str] | None = None
    extra: dict[str, list] = field(default_factory=dict)  # further per-stimulus labels (e.g. subcategory)
    attrs: dict = field(default_factory=dict)  # store attrs the source adds (counts, filters)
    paths: list | None = None  # per row, the image file (sources that take ``variations``)

    def __post_init__(self):
        n = len(self.ids)
        for name, values in (("refs", self.refs), ("labels", self.labels), ("captions", self.captions),
                             ("paths", self.paths), *self.extra.items()):
            if values is not None and len(values) != n:
                raise ValueError(f"listing: {len(values)} {name} for {n} ids")


@dataclass(frozen=True)
class Source:
    name: str
    module: str
    options: tuple[str, ...]
    doc: str
    variations: bool = False

    def _impl(self):
        return importlib.import_module(self.module)

    def list_stimuli(self, spec: dict) -> Listing:
        return self._impl().list_stimuli(spec)

    def decoder(self, spec: dict):
        return self._impl().decoder(spec)

    def content_files(self, spec: dict, here) -> list:
        return self._impl().content_files(spec, here)


#: Fields every dataset entry may have, whatever its source.
COMMON_OPTIONS = ("source", "per_class", "per_class_cap", "limit", "seed", "variations", "shard_size", "models", "domain")

_P = "convergence.stimuli."
SOURCES: dict[str, Source] = {
    s.name: s
    for s in (
        Source("emoji", _P + "emoji", ("image_size", "background"),
               "every glyph of Debian's fonts-noto-color-emoji; caption = Unicode name; id = U+XXXX"),
        Source("fashion_mnist", _P + "fashion_mnist", ("path", "split"),
               "Debian's dataset-fashion-mnist (70,000 28x28 images, 10 named classes)"),
        Source("digits", _P + "digits", (), "scikit-learn's 1,797 8x8 handwritten digits"),
        Source("image_folder", _P + "image_folder", ("path", "image_size", "background"),
               "a folder of images, in class sub-folders (label = folder) or flat", variations=True),
        Source("csv", _P + "csv_table", ("path", "image_size", "background"),
               "a CSV with a path column and optional caption, label, id", variations=True),
        Source("huggingface", _P + "huggingface",
               ("name", "revision", "split", "path", "streaming", "image_column", "caption_column", "label_column",
                "id_column", "image_size", "background"),
               "a Hugging Face dataset (hub name + revision, or saved with save_to_disk), read by row ranges"),
        Source("tuxpaint", _P + "tuxpaint", ("path", "image_size", "background"),
               "Debian's tuxpaint-stamps-default clip art with its captions", variations=True),
        Source("openclipart", _P + "openclipart",
               ("path", "svg_path", "captions", "captioned_only", "image_size", "background"),
               "Debian's openclipart-png, captions from openclipart-svg titles"),
    )
}


def get_source(name) -> Source:
    from .images import StimulusError

    if name not in SOURCES:
        raise StimulusError(f"unknown source {name!r}; allowed sources are {list(SOURCES)}")
    return SOURCES[name]
