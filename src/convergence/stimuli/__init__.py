"""Stimulus sets: images (uint8 RGB), captions and labels, each row named by a stable stimulus id.

A dataset entry of the config becomes an :class:`xarray.Dataset` with coordinate ``stimulus`` (string
ids) and variables ``image`` (``stimulus, height, width, channel``, uint8), ``caption`` and ``label``
(strings) where the source has them. Each source is one module and one entry of the source registry
(:mod:`convergence.stimuli.registry`): it first *lists* its stimuli (ids, labels, captions, where each
image is: no pixels), subsampling is decided on that listing, and only the kept images are decoded, one
chunk at a time (:mod:`convergence.stimuli.build`). The sources:

``emoji``
    Every glyph of Debian's ``fonts-noto-color-emoji`` rendered with Pillow; caption = the code point's
    Unicode name in lower case; id = ``U+XXXX``. Glyphs the font lacks are skipped.
``fashion_mnist``
    Debian's ``dataset-fashion-mnist`` (70,000 28x28 images, 10 named classes).
``digits``
    scikit-learn's 1,797 8x8 handwritten digits.
``image_folder``
    A folder of images, either in class sub-folders (label = folder name) or flat (no labels). Symbolic
    links are followed, to folders and to files alike (a link back to a folder above it, a cycle, and a
    link to nothing are errors): see :func:`image_folder_files`.
``csv``
    A CSV with a ``path`` column (relative to the CSV's folder) and optional ``caption``, ``label``, ``id``.
``huggingface``
    A Hugging Face dataset (``name``, ``revision``, ``split``, ``image_column``, ``caption_column``,
    ``label_column``), or one saved with ``save_to_disk`` (``path``); read by row ranges of the
    memory-mapped Arrow files, or with ``streaming: true`` from the hub without downloading it whole.
``tuxpaint``
    Debian's ``tuxpaint-stamps-default`` clip art with captions (:mod:`convergence.stimuli.tuxpaint`).
``openclipart``
    Debian's ``openclipart-png`` with SVG titles as captions (:mod:`convergence.stimuli.openclipart`).

Image files (``image_folder``, ``csv``, ``huggingface``, ``tuxpaint``, ``openclipart``) may be in any mode
Pillow reads: transparency is composited on the dataset's ``background`` (default white), 16-bit greyscale
is scaled to 8 bits, palette and greyscale images become RGB (:func:`to_rgb`); an image that cannot be
decoded is one error naming it; an EXIF orientation is applied (:func:`upright`).

Empty cells are no value: a labelled source whose label is empty for some stimulus (a blank ``label``
cell of a CSV, a missing Hugging Face label), or a captioned source with an empty caption, is one error naming
the dataset and the column (never a class named ``''``, never a caption every language model scores NaN).

Every source then takes ``per_class`` (a per-class subsample, seeded) or ``limit`` (a seeded subsample of
that many stimuli). Row order is the source's own order, so results are deterministic for a fixed seed.

``variations`` (sources ``tuxpaint``, ``image_folder``, ``csv``): after subsampling, each image is rendered
``n`` times with seeded changes (:func:`render_variation`: scale, position, horizontal flip, small rotation,
background colour); ids become ``<id>~v<j>``, variable ``concept`` holds the source id and ``variation`` the
index ``j``; captions and labels are copied to every variation.

Importing this package is cheap (the workflow calls :func:`refresh_manifest` while building the DAG):
Pillow, pandas, fontTools, scikit-learn and ``datasets`` are imported when a set is listed or decoded.
"""

from .build import STIMULI_CHUNK, Plan, build_stimuli, count_stimuli, iter_chunks, plan, shard_rows, write_stimuli
from .csv_table import csv_image_paths
from .emoji import EMOJI_FONT, EMOJI_FONT_SIZE, emoji_codepoints
from .fashion_mnist import FASHION_MNIST_CLASSES, FASHION_MNIST_DIR
from .image_folder import image_folder_files
from .images import (
    DEBIAN_PACKAGES,
    DEFAULT_BACKGROUND,
    IMAGE_SUFFIXES,
    StimulusError,
    decode_file,
    fit_square,
    gray_to_rgb,
    parse_background,
    to_rgb,
    upright,
)
from .manifest import content_files, content_manifest, refresh_manifest, write_manifest
from .openclipart import (
    OPENCLIPART_CAPTION_FILTER,
    OPENCLIPART_MAX_SHARED_TITLE,
    OPENCLIPART_PNG,
    OPENCLIPART_SVG,
    openclipart_caption,
    openclipart_index,
    svg_title,
)
from .registry import SOURCES, Listing, Source
from .subsample import subsample_indices
from .tuxpaint import TUXPAINT_DIR, TUXPAINT_EXCLUDED, tuxpaint_index
from .variations import VARIATION_DEFAULTS, VARIATION_SOURCES, render_variation, render_variations, variation_params

__all__ = [
    "DEBIAN_PACKAGES", "DEFAULT_BACKGROUND", "EMOJI_FONT", "EMOJI_FONT_SIZE", "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_DIR", "IMAGE_SUFFIXES", "OPENCLIPART_CAPTION_FILTER", "OPENCLIPART_MAX_SHARED_TITLE",
    "OPENCLIPART_PNG", "OPENCLIPART_SVG", "SOURCES", "STIMULI_CHUNK", "TUXPAINT_DIR", "TUXPAINT_EXCLUDED",
    "VARIATION_DEFAULTS", "VARIATION_SOURCES", "Listing", "Plan", "Source", "StimulusError", "build_stimuli", "count_stimuli",
    "content_files", "content_manifest", "csv_image_paths", "decode_file", "emoji_codepoints", "fit_square",
    "gray_to_rgb", "image_folder_files", "iter_chunks", "openclipart_caption", "openclipart_index",
    "parse_background", "plan", "refresh_manifest", "render_variation", "render_variations", "shard_rows", "subsample_indices",
    "svg_title", "to_rgb", "tuxpaint_index", "upright", "variation_params", "write_stimuli", "write_manifest",
]
