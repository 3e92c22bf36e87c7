"""Stimulus sets: images (uint8 RGB), captions and labels, each row named by a stable stimulus id.

:func:`build_stimuli` turns one dataset entry of the config into an :class:`xarray.Dataset` with
coordinate ``stimulus`` (string ids) and variables ``image`` (``stimulus, height, width, channel``,
uint8), ``caption`` and ``label`` (strings) where the source has them. Sources:

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
    ``label_column``), or one saved with ``save_to_disk`` (``path``).
``tuxpaint``
    Debian's ``tuxpaint-stamps-default`` clip art: every ``<category>/<subcategory>/.../<name>.png`` outside
    the ``symbols`` category (letters and signs, not objects) that has a ``<name>.txt`` beside it; caption =
    the first line of that file ("A red kangaroo."); ``label`` = the category (animals, food, ...),
    ``subcategory`` = ``<category>/<first folder below it>`` (``animals/mammals``; the category alone for
    stamps directly in it); transparency composited on the ``background`` (white); id = the path without
    ``.png``.
``openclipart``
    Debian's ``openclipart-png`` (public domain): every distinct PNG (symlinked duplicates resolved to one
    file), ``label`` = top-level folder, ``subcategory`` = the full folder path; transparency composited on
    the ``background``. Captions are the SVG titles of ``openclipart-svg`` that pass
    :func:`openclipart_caption` (see there); with ``captioned_only: true`` only images with such a caption are
    kept (then language models run on it), otherwise every image is kept without captions (vision-only).
    Images Pillow refuses as decompression bombs (over twice ``Image.MAX_IMAGE_PIXELS``) are skipped with a
    warning naming them. ``limit``/``per_class`` are applied before any image is decoded.

Image files (``image_folder``, ``csv``, ``huggingface``, ``tuxpaint``, ``openclipart``) may be in any mode Pillow reads: transparency is
composited on the dataset's ``background`` (default white), 16-bit greyscale is scaled to 8 bits, palette
and greyscale images become RGB (:func:`to_rgb`); an image that cannot be decoded is one error naming it.

Empty cells are no value: a labelled source whose label is empty for some stimulus (a blank ``label``
cell of a CSV, a missing Hugging Face label), or a captioned source with an empty caption, is one error naming
the dataset and the column (never a class named ``''``, never a caption every language model scores NaN).

Every source then takes ``per_class`` (a per-class subsample, seeded) or ``limit`` (a seeded subsample of
that many stimuli). Row order is the source's own order, so results are deterministic for a fixed seed.

``variations`` (sources ``tuxpaint``, ``image_folder``, ``csv``): after subsampling, each image is rendered
``n`` times with seeded changes (:func:`render_variation`: scale, position, horizontal flip, small rotation,
background colour); ids become ``<id>~v<j>``, variable ``concept`` holds the source id and ``variation`` the
index ``j``; captions and labels are copied to every variation.
"""

from __future__ import annotations

import gzip
import re
import unicodedata
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import xarray as xr

SOURCES = ("emoji", "fashion_mnist", "digits", "image_folder", "csv", "huggingface", "tuxpaint", "openclipart")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}

EMOJI_FONT = Path("/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf")
EMOJI_FONT_SIZE = 109  # Noto Color Emoji is a bitmap (CBDT) font with this one strike
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = (
    "t-shirt/top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot",
)
TUXPAINT_DIR = Path("/usr/share/tuxpaint/stamps")
#: tuxpaint categories left out: ``symbols`` holds letters, digits and signs, not depictions of objects.
TUXPAINT_EXCLUDED = ("symbols",)
OPENCLIPART_PNG = Path("/usr/share/openclipart/png")
OPENCLIPART_SVG = Path("/usr/share/openclipart/svg")
#: A title shared by more files than this is a collection or theme name ("gramastar", "Lemon SVG theme"),
#: not a description of one image.
OPENCLIPART_MAX_SHARED_TITLE = 3
DEBIAN_PACKAGES = {
    "emoji": "fonts-noto-color-emoji",
    "fashion_mnist": "dataset-fashion-mnist",
    "tuxpaint": "tuxpaint-stamps-default",
    "openclipart": "openclipart-png",
    "openclipart_svg": "openclipart-svg",
}


class StimulusError(ValueError):
    """A stimulus source is missing, malformed or misconfigured."""


def _missing_debian(source: str, path: Path) -> StimulusError:
    pkg = DEBIAN_PACKAGES[source]
    return StimulusError(f"stimulus source {source!r} needs {path}, which is missing: apt-get install {pkg}")


# ---------------------------------------------------------------------------------------------- images


DEFAULT_BACKGROUND = "white"
_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")


def parse_background(value=DEFAULT_BACKGROUND) -> tuple[int, int, int]:
    """The dataset field ``background`` as an RGB triple: a colour name Pillow knows (``"white"``,
    ``"black"``, ``"grey"``, ...), a ``"#rrggbb"`` string, or a list of three integers 0-255."""
    from PIL import ImageColor

    allowed = 'a colour name (e.g. "white", "black", "grey"), "#rrggbb", or [r, g, b] with integers 0-255'
    if isinstance(value, str):
        try:
            rgb = ImageColor.getrgb(value)
        except ValueError:
            raise StimulusError(f"background {value!r} is not a colour; allowed: {allowed}") from None
        return tuple(int(c) for c in rgb[:3])
    if (isinstance(value, (list, tuple)) and len(value) == 3
            and all(isinstance(c, (int, np.integer)) and not isinstance(c, bool) and 0 <= c <= 255 for c in value)):
        return tuple(int(c) for c in value)
    raise StimulusError(f"background {value!r} is not a colour; allowed: {allowed}")


_EXIF_ORIENTATION = 0x0112


def upright(image):
    """A PIL image turned the way its EXIF orientation tag says it is displayed (Pillow's
    ``ImageOps.exif_transpose``); the image itself when it has no such tag (or the tag says "as stored")."""
    from PIL import ImageOps

    if image.getexif().get(_EXIF_ORIENTATION, 1) in (1, None):
        return image
    return ImageOps.exif_transpose(image)


def to_rgb(image, background=DEFAULT_BACKGROUND):
    """A PIL image of any mode as 8-bit RGB, the way it looks on screen.

    - 16-bit greyscale (``I;16*``) and 32-bit integer (``I``) images are read as 0-65535 and scaled to
      0-255 (``round(v / 257)``), not clipped at 255 (Pillow's own conversion saturates them).
    - Transparency (RGBA, LA, PA, palette or greyscale with a transparent entry) is composited onto
      ``background`` (see :func:`parse_background`), so fully transparent pixels take the background colour
      whatever colour they store.
    - Greyscale, bilevel, palette, CMYK and the rest: Pillow's conversion to RGB.
    - An EXIF orientation (a camera's JPEG stored sideways with a "rotate on display" tag) is applied
      (:func:`upright`), so the pixels are the ones a viewer shows.
    """
    from PIL import Image

    rgb_background = parse_background(background)
    image = upright(image)
    if image.mode in _SIXTEEN_BIT_MODES:
        values = np.asarray(image, dtype=np.float64)
        image = Image.fromarray(np.clip(np.round(values / 257.0), 0, 255).astype(np.uint8), "L")
    elif image.mode == "F":
        image = image.convert("L")  # float images: Pillow's reading, values clipped to 0-255
    has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info
    if not has_alpha:
        return image.convert("RGB")
    rgba = image.convert("RGBA")
    canvas = Image.new("RGBA", rgba.size, (*rgb_background, 255))
    return Image.alpha_composite(canvas, rgba).convert("RGB")


def fit_square(image, size: int, background=DEFAULT_BACKGROUND):
    """Resize a PIL image so its shorter side is ``size``, centre-crop to ``size`` x ``size``, as RGB
    (any mode; transparency composited on ``background``, see :func:`to_rgb`)."""
    from PIL import Image

    image = to_rgb(image, background)
    w, h = image.size
    scale = size / min(w, h)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    if (nw, nh) != (w, h):
        image = image.resize((nw, nh), Image.Resampling.BICUBIC)
    left, top = (nw - size) // 2, (nh - size) // 2
    return image.crop((left, top, left + size, top + size))


def _decode_error(where, err: Exception) -> StimulusError:
    from PIL import Image

    if isinstance(err, Image.DecompressionBombError):
        return StimulusError(f"cannot read image {where}: it has more pixels than Pillow's decompression-bomb "
                             f"limit allows (PIL.Image.MAX_IMAGE_PIXELS = {Image.MAX_IMAGE_PIXELS}); "
                             f"shrink the image or remove it from the dataset ({err})")
    return StimulusError(f"cannot read image {where}: {type(err).__name__}: {err}")


def _load_images(paths: Iterable[Path], size: int, background=DEFAULT_BACKGROUND) -> np.ndarray:
    from PIL import Image

    parse_background(background)  # a bad colour is one error, before any image is read
    out = []
    for p in paths:
        try:
            with Image.open(p) as im:
                out.append(np.asarray(fit_square(im, size, background), dtype=np.uint8))
        except StimulusError:
            raise
        except Exception as err:  # Pillow raises OSError, SyntaxError, ValueError, DecompressionBombError, ...
            raise _decode_error(p, err) from err
    return np.stack(out) if out else np.zeros((0, size, size, 3), np.uint8)


def gray_to_rgb(images: np.ndarray) -> np.ndarray:
    """(N, H, W) uint8 -> (N, H, W, 3) uint8."""
    return np.repeat(images[..., None], 3, axis=-1)


# --------------------------------------------------------------------------------------------- sources


def emoji_codepoints(font_path: Path = EMOJI_FONT) -> list[int]:
    """Single code points that the font maps to a glyph and that are pictographs (not letters, digits,
    modifiers, joiners, variation selectors or regional-indicator letters)."""
    from fontTools.ttLib import TTFont

    with TTFont(str(font_path), lazy=True) as font:
        cmap = font.getBestCmap() or {}
    keep = []
    for cp in sorted(cmap):
        ch = chr(cp)
        if cp < 0xA9 or 0x1F1E6 <= cp <= 0x1F1FF:  # ASCII (keycap bases) and regional indicators
            continue
        if unicodedata.category(ch) in ("Mn", "Me", "Cf", "Cc", "Zs", "Sk", "Nd", "Lu", "Ll"):
            continue
        if not unicodedata.name(ch, ""):
            continue
        keep.append(cp)
    return keep


def load_emoji(image_size: int = 128, background=DEFAULT_BACKGROUND) -> dict:
    from PIL import Image, ImageDraw, ImageFont

    if not EMOJI_FONT.is_file():
        raise _missing_debian("emoji", EMOJI_FONT)
    font = ImageFont.truetype(str(EMOJI_FONT), EMOJI_FONT_SIZE)
    fill = (*parse_background(background), 255)
    ids, captions, images = [], [], []
    for cp in emoji_codepoints():
        ch = chr(cp)
        canvas = Image.new("RGBA", (160, 160), (255, 255, 255, 0))
        ImageDraw.Draw(canvas).text((80, 80), ch, font=font, embedded_color=True, anchor="mm")
        bbox = canvas.getbbox()
        if bbox is None:  # the font has no visible glyph for it
            continue
        rgb = Image.alpha_composite(Image.new("RGBA", canvas.size, fill), canvas).convert("RGB").resize((image_size, image_size), Image.Resampling.LANCZOS)
        ids.append(f"U+{cp:04X}")
        captions.append(unicodedata.name(ch).lower())
        images.append(np.asarray(rgb, dtype=np.uint8))
    return {"ids": ids, "images": np.stack(images), "captions": captions, "labels": None}


def _read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as fh:
        data = fh.read()
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def load_fashion_mnist(root: Path = FASHION_MNIST_DIR, split: str = "all") -> dict:
    splits = {"train": ("train",), "test": ("t10k",), "all": ("train", "t10k")}
    if split not in splits:
        raise StimulusError(f"fashion_mnist split must be one of {sorted(splits)}, got {split!r}")
    ids, images, labels = [], [], []
    for prefix in splits[split]:
        img_path, lab_path = root / f"{prefix}-images-idx3-ubyte.gz", root / f"{prefix}-labels-idx1-ubyte.gz"
        for p in (img_path, lab_path):
            if not p.is_file():
                raise _missing_debian("fashion_mnist", p)
        imgs, labs = _read_idx(img_path), _read_idx(lab_path)
        name = "train" if prefix == "train" else "test"
        ids += [f"{name}-{i:05d}" for i in range(len(labs))]
        images.append(imgs)
        labels += [FASHION_MNIST_CLASSES[int(c)] for c in labs]
    return {"ids": ids, "images": gray_to_rgb(np.concatenate(images)), "captions": None, "labels": labels}


def load_digits() -> dict:
    from sklearn.datasets import load_digits as sk_digits

    d = sk_digits()
    imgs = np.clip(np.round(d.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)
    return {
        "ids": [f"digit-{i:04d}" for i in range(len(d.target))],
        "images": gray_to_rgb(imgs),
        "captions": None,
        "labels": [str(int(t)) for t in d.target],
    }


def image_folder_files(root: Path) -> list[Path]:
    """The image files an ``image_folder`` source reads, sorted (by suffix; other files are ignored).

    Symbolic links are followed wherever they point, links to folders (a class folder linked in from
    elsewhere) as well as links to files; a folder link that leads back to a folder above it (a cycle) and
    a link to nothing are errors naming the link. Each image is named by its path inside ``root`` (the link's
    path, not its target's)."""
    import os

    root = Path(root)
    out: list[Path] = []

    def walk(folder: Path, above: frozenset) -> None:
        with os.scandir(folder) as entries:
            listing = sorted(entries, key=lambda e: e.name)
        for entry in listing:
            path = Path(entry.path)
            if entry.is_dir(follow_symlinks=True):
                real = os.path.realpath(path)
                if real in above:
                    raise StimulusError(f"image_folder {root}: the folder link {path} leads back to {real}, a "
                                        "folder above it (a cycle); remove the link or point it elsewhere")
                walk(path, above | {real})
            elif path.suffix.lower() in IMAGE_SUFFIXES:
                if entry.is_file(follow_symlinks=True):
                    out.append(path)
                elif entry.is_symlink():
                    raise StimulusError(f"image_folder {root}: {path} is a link to {os.readlink(path)!r}, which "
                                        "does not exist; remove the link or restore its target")

    walk(root, frozenset({os.path.realpath(root)}))
    return sorted(out)


def load_image_folder(path: str | Path, image_size: int = 224, background=DEFAULT_BACKGROUND) -> dict:
    root = Path(path)
    if not root.is_dir():
        raise StimulusError(f"image_folder path {root} is not a directory")
    files = image_folder_files(root)
    if not files:
        raise StimulusError(f"image_folder {root} holds no images ({sorted(IMAGE_SUFFIXES)})")
    nested = any(p.parent != root for p in files)
    if nested and any(p.parent == root for p in files):
        raise StimulusError(f"image_folder {root} mixes images at the top level with class sub-folders; use one layout")
    labels = [p.parent.relative_to(root).as_posix() for p in files] if nested else None
    ids = [p.relative_to(root).with_suffix("").as_posix() for p in files]
    return {"ids": ids, "images": _load_images(files, image_size, background), "captions": None, "labels": labels,
            "paths": files}


def csv_image_paths(csv_path: Path, column: Iterable[str]) -> list[Path]:
    """The image files a ``csv`` source's ``path`` column names (relative to the CSV's folder)."""
    return [(csv_path.parent / p) if not Path(p).is_absolute() else Path(p) for p in column]


def load_csv(path: str | Path, image_size: int = 224, background=DEFAULT_BACKGROUND) -> dict:
    import pandas as pd

    path = Path(path)
    if path.is_dir():
        raise StimulusError(f"csv path {path} is a directory, not a CSV file (source image_folder reads a folder)")
    if not path.is_file():
        raise StimulusError(f"csv file {path} does not exist")
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise StimulusError(f"csv {path} is not UTF-8 text ({err.reason} at byte {err.start}); save it as UTF-8") from None
    table.columns = [str(c).strip() for c in table.columns]
    if "path" not in table.columns:
        raise StimulusError(f"csv {path} needs a 'path' column; it has {list(table.columns)} (optional: caption, label, id)")
    if table.empty:
        raise StimulusError(f"csv {path} has a header but no rows; list one image per row")
    files = csv_image_paths(path, table["path"])
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise StimulusError(f"csv {path}: {len(missing)} image path(s) do not exist, e.g. {missing[:3]}")
    ids = list(table["id"]) if "id" in table.columns else [Path(p).with_suffix("").as_posix() for p in table["path"]]
    return {
        "ids": ids,
        "images": _load_images(files, image_size, background),
        "captions": list(table["caption"]) if "caption" in table.columns else None,
        "labels": list(table["label"]) if "label" in table.columns else None,
        "paths": files,
    }


def load_huggingface(spec: dict, image_size: int = 224) -> dict:
    try:
        import datasets
    except ImportError as err:
        raise StimulusError("the huggingface source needs the 'datasets' package: pip install datasets") from err
    where = spec.get("path") or f"{spec.get('name')}@{spec.get('revision') or 'main'}"
    try:
        if spec.get("path"):
            data = datasets.load_from_disk(spec["path"])
            if isinstance(data, datasets.DatasetDict):
                data = data[spec.get("split", "train")]
        else:
            data = datasets.load_dataset(spec["name"], revision=spec.get("revision"), split=spec.get("split", "train"))
    except Exception as err:
        raise StimulusError(f"cannot load Hugging Face dataset {where}: {err}") from err
    image_col = spec.get("image_column", "image")
    for col in (image_col, spec.get("caption_column"), spec.get("label_column"), spec.get("id_column")):
        if col and col not in data.column_names:
            raise StimulusError(f"Hugging Face dataset has no column {col!r}; columns are {data.column_names}")
    background = spec.get("background", DEFAULT_BACKGROUND)
    parse_background(background)
    images = []
    for i in range(len(data)):
        try:
            images.append(np.asarray(fit_square(data[i][image_col], image_size, background), np.uint8))
        except StimulusError:
            raise
        except Exception as err:
            raise _decode_error(f"{image_col!r} of row {i} of the Hugging Face dataset {where}", err) from err
    images = np.stack(images) if images else np.zeros((0, image_size, image_size, 3), np.uint8)
    captions = None
    if spec.get("caption_column"):
        captions = [(c[0] if c else "") if isinstance(c, (list, tuple)) else ("" if c is None else str(c))
                    for c in data[spec["caption_column"]]]  # a missing caption is empty (an error below)
    labels = None
    if spec.get("label_column"):
        raw = data[spec["label_column"]]
        feature = data.features[spec["label_column"]]
        names = getattr(feature, "names", None)
        labels = ["" if v is None else names[int(v)] if names else str(v) for v in raw]
    ids = [str(v) for v in data[spec["id_column"]]] if spec.get("id_column") else [f"{i:06d}" for i in range(len(data))]
    return {"ids": ids, "images": images, "captions": captions, "labels": labels}


def tuxpaint_index(root: Path = TUXPAINT_DIR) -> list[dict]:
    """Every usable tuxpaint stamp (see the module doc), sorted by id: ``id``, ``path``, ``caption``,
    ``category``, ``subcategory``. Stamps without a caption file (or with an empty first line) are left out."""
    if not root.is_dir():
        raise _missing_debian("tuxpaint", root)
    rows = []
    for png in sorted(root.rglob("*.png")):
        rel = png.relative_to(root)
        if len(rel.parts) < 2 or rel.parts[0] in TUXPAINT_EXCLUDED:
            continue
        txt = png.with_suffix(".txt")
        if not txt.is_file():
            continue
        lines = txt.read_text(encoding="utf-8", errors="replace").splitlines()
        caption = lines[0].strip() if lines else ""
        if not caption:
            continue
        category = rel.parts[0]
        sub = f"{category}/{rel.parts[1]}" if len(rel.parts) > 2 else category
        rows.append({"id": rel.with_suffix("").as_posix(), "path": png, "caption": caption,
                     "category": category, "subcategory": sub})
    if not rows:
        raise StimulusError(f"tuxpaint: no captioned stamps under {root} outside {list(TUXPAINT_EXCLUDED)}")
    return rows


def load_tuxpaint(root: str | Path = TUXPAINT_DIR, image_size: int = 224, background=DEFAULT_BACKGROUND) -> dict:
    rows = tuxpaint_index(Path(root))
    return {
        "ids": [r["id"] for r in rows],
        "images": _load_images([r["path"] for r in rows], image_size, background),
        "captions": [r["caption"] for r in rows],
        "labels": [r["category"] for r in rows],
        "extra": {"subcategory": [r["subcategory"] for r in rows]},
        "paths": [r["path"] for r in rows],
    }


_SVG_AGENT_BLOCKS = re.compile(r"<dc:(publisher|creator|rights|contributor)\b.*?</dc:\1>", re.S)
_SVG_WORK = re.compile(r"<cc:Work\b.*?</cc:Work>", re.S)
_SVG_TITLE = re.compile(r"<dc:title>(.*?)</dc:title>", re.S)
_CAPTION_OK = re.compile(r"^[A-Za-z0-9 ,.'()&!?:;-]+$")
_FILE_NAME_LIKE = re.compile(r"_|\.(svg|png|jpe?g|eps|ai|wmf|gif)\b|\b(?=\w*[A-Za-z])(?=\w*\d)\w+\b", re.I)


def svg_title(path: Path) -> str | None:
    """The work's own ``dc:title`` in an SVG's metadata (not its publisher's or creator's), entity-decoded and
    whitespace-collapsed; ``None`` when absent. Only the first 256 KiB are read (the metadata is near the top)."""
    import html

    try:
        with open(path, "rb") as fh:
            head = fh.read(1 << 18).decode("utf-8", errors="replace")
    except OSError:
        return None
    work = _SVG_WORK.search(head)
    if work is None:
        return None
    m = _SVG_TITLE.search(_SVG_AGENT_BLOCKS.sub("", work.group(0)))
    if m is None:
        return None
    title = " ".join(html.unescape(m.group(1)).split())
    return title or None


OPENCLIPART_CAPTION_FILTER = (
    "SVG dc:title kept when: ASCII letters, digits, spaces and plain punctuation only; 2 to 12 words, at least 2 "
    "with letters; no underscores, file extensions or letter-digit words; shared by at most "
    f"{OPENCLIPART_MAX_SHARED_TITLE} images"
)


def openclipart_caption(title: str | None, shared_by: int = 1) -> str | None:
    """The caption filter of the ``openclipart`` source: ``title`` when it looks like a description of the
    image, else ``None``. Kept: ASCII letters, digits, spaces and plain punctuation only (drops non-English
    and mangled-entity titles), at least two words with letters, at most 12 words, nothing file-name-like
    (underscores, file extensions, words mixing letters and digits such as ``crawfish1``), and a title used by
    at most :data:`OPENCLIPART_MAX_SHARED_TITLE` images (``shared_by``; shared titles name collections)."""
    if not title or shared_by > OPENCLIPART_MAX_SHARED_TITLE:
        return None
    if not _CAPTION_OK.match(title) or _FILE_NAME_LIKE.search(title):
        return None
    words = [w for w in title.split() if any(c.isalpha() for c in w)]
    if not 2 <= len(title.split()) <= 12 or len(words) < 2:
        return None
    return title


def openclipart_index(png_root: Path = OPENCLIPART_PNG, svg_root: Path | None = OPENCLIPART_SVG) -> tuple[list[dict], list[str]]:
    """Every distinct, decodable openclipart PNG, sorted by id: ``id`` (path of the real file without
    ``.png``), ``path``, ``label`` (top folder), ``subcategory`` (folder path), ``title`` (raw SVG title or
    None) and ``caption`` (:func:`openclipart_caption`). Also returns the skipped decompression bombs.
    ``svg_root`` None: no titles."""
    import warnings

    from PIL import Image

    if not png_root.is_dir():
        raise _missing_debian("openclipart", png_root)
    real_root = png_root.resolve()
    seen: dict[Path, Path] = {}
    for png in sorted(png_root.rglob("*.png")):
        real = png.resolve()
        if real.is_file() and real not in seen:
            try:
                real.relative_to(real_root)
            except ValueError:  # a link out of the tree: keep the link's own place
                seen[real] = png
                continue
            seen[real] = real
    rows, bombs = [], []
    for real, where in sorted(seen.items(), key=lambda kv: kv[1]):
        rel = where.relative_to(real_root if where == real else png_root)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                with Image.open(real) as im:
                    w, h = im.size
        except Image.DecompressionBombError:
            w = h = None
        except OSError as err:
            raise StimulusError(f"cannot read image {real}: {err}") from err
        if w is None:  # Pillow refuses it (over twice MAX_IMAGE_PIXELS); between 1x and 2x it only warns
            bombs.append(str(real))
            continue
        rows.append({"id": rel.with_suffix("").as_posix(), "path": real, "label": rel.parts[0] if len(rel.parts) > 1 else "",
                     "subcategory": rel.parent.as_posix(), "title": None})
    if bombs:
        warnings.warn(f"openclipart: skipped {len(bombs)} image(s) that Pillow refuses as decompression bombs "
                      f"(over {2 * Image.MAX_IMAGE_PIXELS} pixels): {bombs}", stacklevel=2)
    if svg_root is not None:
        if not svg_root.is_dir():
            raise _missing_debian("openclipart_svg", svg_root)
        for r in rows:
            r["title"] = svg_title(svg_root / f"{r['id']}.svg")
    counts: dict[str, int] = {}
    for r in rows:
        if r["title"]:
            counts[r["title"]] = counts.get(r["title"], 0) + 1
    for r in rows:
        r["caption"] = openclipart_caption(r["title"], counts.get(r["title"] or "", 0))
    return rows, bombs


def load_openclipart(spec: dict, image_size: int = 224, background=DEFAULT_BACKGROUND) -> dict:
    png_root = Path(spec.get("path", OPENCLIPART_PNG))
    svg_root = Path(spec.get("svg_path", OPENCLIPART_SVG)) if spec.get("captions", True) else None
    rows, bombs = openclipart_index(png_root, svg_root)
    n_all, n_captioned = len(rows), sum(r["caption"] is not None for r in rows)
    captioned_only = bool(spec.get("captioned_only", False))
    if captioned_only:
        if svg_root is None:
            raise StimulusError("openclipart: captioned_only needs captions (captions: true)")
        rows = [r for r in rows if r["caption"] is not None]
    if not rows:
        raise StimulusError(f"openclipart: no images left under {png_root}")
    # subsample before decoding (build_stimuli's own subsample is then a no-op: same rule, fewer rows)
    idx = subsample_indices(len(rows), [r["label"] for r in rows], per_class=spec.get("per_class"),
                            limit=spec.get("limit"), seed=int(spec.get("seed", 0)))
    rows = [rows[i] for i in idx]
    return {
        "ids": [r["id"] for r in rows],
        "images": _load_images([r["path"] for r in rows], image_size, background),
        "captions": [r["caption"] for r in rows] if captioned_only else None,
        "labels": [r["label"] for r in rows],
        "extra": {"subcategory": [r["subcategory"] for r in rows]},
        "attrs": {"distinct_images": n_all, "with_caption": n_captioned, "skipped_bombs": bombs,
                  "caption_filter": OPENCLIPART_CAPTION_FILTER},
    }


# ------------------------------------------------------------------------------------------- manifests


def content_files(spec: dict, base_dir: str | Path = ".") -> list[tuple[str, Path]]:
    """(name, path) of every file the dataset entry ``spec`` reads its stimuli from, in a fixed order.

    ``image_folder``: its image files (named relative to the folder); ``csv``: the CSV, then every image
    its ``path`` column names (named as written there); ``huggingface`` with ``path``: every file of the
    saved dataset; ``emoji``: the font; ``fashion_mnist``: the IDX files of the split; ``digits`` and hub
    datasets: none (the installed package or the pinned ``revision`` stands for their content). Relative
    config paths are taken from ``base_dir`` (the workflow's working directory). Files that do not exist
    are listed all the same (the stimulus job reports them).
    """
    import pandas as pd

    source = spec.get("source")

    def here(p) -> Path:
        p = Path(p)
        return p if p.is_absolute() else Path(base_dir) / p

    if source == "image_folder":
        root = here(spec["path"])
        return [(f.relative_to(root).as_posix(), f) for f in image_folder_files(root)] if root.is_dir() else []
    if source == "csv":
        csv = here(spec["path"])
        out = [(csv.name, csv)]
        try:
            table = pd.read_csv(csv, dtype=str, keep_default_na=False, encoding="utf-8-sig")
            table.columns = [str(c).strip() for c in table.columns]
        except (OSError, ValueError):  # missing or unreadable: the stimulus job says so
            return out
        if "path" in table.columns:
            out += [(str(name), f) for name, f in zip(table["path"], csv_image_paths(csv, table["path"]))]
        return out
    if source == "huggingface" and spec.get("path"):
        root = here(spec["path"])
        return [(f.relative_to(root).as_posix(), f) for f in sorted(root.rglob("*")) if f.is_file()]
    if source == "emoji":
        return [(str(EMOJI_FONT), EMOJI_FONT)]
    if source == "openclipart":
        roots = [here(spec.get("path", OPENCLIPART_PNG))]
        if spec.get("captions", True):
            roots.append(here(spec.get("svg_path", OPENCLIPART_SVG)))
        return [(str(f), f) for root in roots if root.is_dir() for f in sorted(root.rglob("*")) if f.is_file()]
    if source == "tuxpaint":
        root = here(spec.get("path", TUXPAINT_DIR))
        if not root.is_dir():
            return []
        return [(f.relative_to(root).as_posix(), f) for f in sorted(root.rglob("*"))
                if f.suffix in (".png", ".txt") and f.relative_to(root).parts[0] not in TUXPAINT_EXCLUDED]
    if source == "fashion_mnist":
        root = here(spec.get("path", FASHION_MNIST_DIR))
        prefixes = {"train": ("train",), "test": ("t10k",)}.get(spec.get("split", "all"), ("train", "t10k"))
        return [(str(root / f"{p}-{kind}-idx{d}-ubyte.gz"), root / f"{p}-{kind}-idx{d}-ubyte.gz")
                for p in prefixes for kind, d in (("images", 3), ("labels", 1))]
    return []


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


# ------------------------------------------------------------------------------------------ subsampling


def subsample_indices(n: int, labels: list[str] | None, *, per_class: int | None, limit: int | None, seed: int,
                      per_class_cap: int | None = None) -> np.ndarray:
    """Sorted row indices of a seeded subsample: ``per_class`` rows of each label, or ``limit`` rows.

    ``per_class_cap`` (Ciernik et al.'s rule): when ``n`` exceeds it, keep ``ceil(per_class_cap / n_classes)``
    rows of each label (all rows of a smaller class); a source of at most ``per_class_cap`` rows is kept whole.
    An explicit ``per_class`` takes precedence."""
    rng = np.random.default_rng(seed)
    if per_class is None and per_class_cap is not None and n > per_class_cap:
        if labels is None:
            raise StimulusError("per_class_cap subsampling needs a labelled source")
        per_class = -(-int(per_class_cap) // len(set(labels)))
    if per_class is not None:
        if labels is None:
            raise StimulusError("per_class subsampling needs a labelled source")
        labels_arr = np.asarray(labels, dtype=object)
        picks = []
        for cls in sorted(set(labels)):
            rows = np.flatnonzero(labels_arr == cls)
            picks.append(rows if len(rows) <= per_class else rng.choice(rows, per_class, replace=False))
        idx = np.sort(np.concatenate(picks))
    else:
        idx = np.arange(n)
    if limit is not None and limit < len(idx):
        idx = np.sort(rng.choice(idx, limit, replace=False))
    return idx


# ------------------------------------------------------------------------------------------ variations

#: Defaults of a dataset's ``variations`` entry (``n`` is required): the object's longer side is drawn from
#: ``scale`` (fraction of the image side), it is rotated by up to ``rotate`` degrees either way, flipped
#: left-right with probability ``flip``, placed uniformly in the free space, on a background whose channels
#: are drawn from ``background`` (0-255; a light range keeps the object visible).
VARIATION_DEFAULTS = {"scale": [0.6, 0.95], "rotate": 15.0, "flip": 0.5, "background": [170, 255]}
VARIATION_SOURCES = ("tuxpaint", "image_folder", "csv")


def variation_params(spec: dict) -> dict:
    """The dataset field ``variations`` with its defaults, checked."""
    params = {**VARIATION_DEFAULTS, **(spec or {})}
    unknown = sorted(set(params) - set(VARIATION_DEFAULTS) - {"n"})
    if unknown:
        raise StimulusError(f"variations: unknown field(s) {unknown}; allowed: n, {sorted(VARIATION_DEFAULTS)}")
    if not isinstance(params.get("n"), int) or params["n"] < 1:
        raise StimulusError(f"variations.n must be a positive integer, got {params.get('n')!r}")
    lo, hi = params["scale"]
    if not 0 < lo <= hi <= 1:
        raise StimulusError(f"variations.scale must be [low, high] with 0 < low <= high <= 1, got {params['scale']}")
    blo, bhi = params["background"]
    if not 0 <= blo <= bhi <= 255:
        raise StimulusError(f"variations.background must be [low, high] within 0-255, got {params['background']}")
    if not 0 <= params["flip"] <= 1 or params["rotate"] < 0:
        raise StimulusError("variations.flip must be a probability and variations.rotate a non-negative angle")
    return params


def render_variation(image, size: int, rng: np.random.Generator, params: dict) -> np.ndarray:
    """One seeded rendering of a PIL image (transparency kept as the object's outline) on a ``size`` x
    ``size`` canvas: rotate, flip, scale the longer side to a drawn fraction of ``size``, place it at a
    uniform position on a drawn background colour. Returns uint8 RGB (size, size, 3)."""
    from PIL import Image

    image = upright(image)
    if image.mode in _SIXTEEN_BIT_MODES or image.mode == "F":
        image = to_rgb(image)
    obj = image.convert("RGBA")
    angle = float(rng.uniform(-params["rotate"], params["rotate"]))
    flip = bool(rng.random() < params["flip"])
    scale = float(rng.uniform(*params["scale"]))
    colour = tuple(int(c) for c in rng.integers(params["background"][0], params["background"][1] + 1, size=3))
    fx, fy = float(rng.random()), float(rng.random())
    if flip:
        obj = obj.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if angle:
        obj = obj.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True)
    w, h = obj.size
    factor = scale * size / max(w, h)
    nw, nh = max(1, round(w * factor)), max(1, round(h * factor))
    obj = obj.resize((nw, nh), Image.Resampling.BICUBIC)
    canvas = Image.new("RGBA", (size, size), (*colour, 255))
    canvas.alpha_composite(obj, (round(fx * (size - nw)), round(fy * (size - nh))))
    return np.asarray(canvas.convert("RGB"), dtype=np.uint8)


def render_variations(paths: list[Path], ids: list[str], n: int, size: int, seed: int, params: dict) -> np.ndarray:
    """``n`` renderings of every file (rows: file-major), each seeded by (seed, the id's CRC-32, j) so that a
    stimulus's renderings do not change when other files are added or removed."""
    import zlib

    from PIL import Image

    out = np.zeros((len(paths) * n, size, size, 3), np.uint8)
    for i, (p, sid) in enumerate(zip(paths, ids)):
        try:
            with Image.open(p) as im:
                im.load()
                for j in range(n):
                    rng = np.random.default_rng([int(seed), zlib.crc32(sid.encode()), j])
                    out[i * n + j] = render_variation(im, size, rng, params)
        except StimulusError:
            raise
        except Exception as err:
            raise _decode_error(p, err) from err
    return out


# ----------------------------------------------------------------------------------------------- build


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


def build_stimuli(name: str, spec: dict) -> xr.Dataset:
    """Materialise the dataset entry ``spec`` (named ``name``) as a labelled Dataset (see module doc)."""
    source = spec.get("source")
    size = int(spec.get("image_size", 224))
    background = spec.get("background", DEFAULT_BACKGROUND)
    if source == "emoji":
        raw = load_emoji(int(spec.get("image_size", 128)), background)
    elif source == "fashion_mnist":
        raw = load_fashion_mnist(Path(spec.get("path", FASHION_MNIST_DIR)), spec.get("split", "all"))
    elif source == "digits":
        raw = load_digits()
    elif source == "image_folder":
        raw = load_image_folder(spec["path"], size, background)
    elif source == "csv":
        raw = load_csv(spec["path"], size, background)
    elif source == "huggingface":
        raw = load_huggingface(spec, size)
    elif source == "tuxpaint":
        raw = load_tuxpaint(spec.get("path", TUXPAINT_DIR), size, background)
    elif source == "openclipart":
        raw = load_openclipart(spec, size, background)
    else:
        raise StimulusError(f"dataset {name!r}: unknown source {source!r}; allowed sources are {list(SOURCES)}")

    ids = [str(i) for i in raw["ids"]]
    if len(set(ids)) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1})[:5]
        raise StimulusError(f"dataset {name!r}: stimulus ids must be unique; duplicated: {dup}")
    _check_filled(name, spec, ids, raw)
    idx = subsample_indices(
        len(ids), raw["labels"], per_class=spec.get("per_class"), limit=spec.get("limit"), seed=int(spec.get("seed", 0)),
        per_class_cap=spec.get("per_class_cap"),
    )
    if len(idx) == 0:
        raise StimulusError(f"dataset {name!r}: no stimuli left after subsampling")
    images = raw["images"][idx]
    extra = dict(raw.get("extra") or {})
    if spec.get("variations"):
        if source not in VARIATION_SOURCES:
            raise StimulusError(f"dataset {name!r}: variations apply to sources {list(VARIATION_SOURCES)}, not {source!r}")
        params = variation_params(spec["variations"])
        n = params["n"]
        images = render_variations([raw["paths"][i] for i in idx], [ids[i] for i in idx], n, size,
                                   int(spec.get("seed", 0)), params)
        extra["concept"] = list(ids)
        extra["variation"] = [0] * len(ids)
        raw = {**raw, "captions": raw["captions"] and [c for c in raw["captions"] for _ in range(n)],
               "labels": raw["labels"] and [c for c in raw["labels"] for _ in range(n)]}
        extra = {k: [v for v in values for _ in range(n)] for k, values in extra.items()}
        extra["variation"] = [j for _ in ids for j in range(n)]
        ids = [f"{i}~v{j}" for i in ids for j in range(n)]
        idx = np.concatenate([i * n + np.arange(n) for i in idx]) if len(idx) else idx
    data_vars = {"image": (("stimulus", "height", "width", "channel"), images)}
    if raw["captions"] is not None:
        data_vars["caption"] = ("stimulus", np.array([raw["captions"][i] for i in idx], dtype=object))
    if raw["labels"] is not None:
        data_vars["label"] = ("stimulus", np.array([raw["labels"][i] for i in idx], dtype=object))
    for var, values in extra.items():  # further per-stimulus labels (e.g. subcategory)
        dtype = np.int64 if var == "variation" else object
        data_vars[var] = ("stimulus", np.array([values[i] for i in idx], dtype=dtype))
    ds = xr.Dataset(
        data_vars,
        coords={"stimulus": np.array([ids[i] for i in idx], dtype=object), "channel": np.array(["R", "G", "B"], dtype=object)},
    )
    ds.attrs = {
        "dataset": name,
        "source": source,
        "n_stimuli": int(len(idx)),
        "has_captions": raw["captions"] is not None,
        "has_labels": raw["labels"] is not None,
        "classes": sorted(set(ds["label"].values.tolist())) if raw["labels"] is not None else [],
        "spec": {k: v for k, v in spec.items()},
        **(raw.get("attrs") or {}),
    }
    return ds
