"""Source ``openclipart``: Debian's ``openclipart-png`` (public domain): every distinct PNG (symlinked
duplicates resolved to one file), ``label`` = top-level folder, ``subcategory`` = the full folder path;
transparency composited on the ``background``. Captions are the SVG titles of ``openclipart-svg`` that pass
:func:`openclipart_caption` (see there); with ``captioned_only: true`` only images with such a caption are
kept (then language models run on it), otherwise every image is kept without captions (vision-only).
Images Pillow refuses as decompression bombs (over twice ``Image.MAX_IMAGE_PIXELS``) are skipped with a
warning naming them. Listing reads each PNG's header (its size) and SVG metadata, never its pixels."""

from __future__ import annotations

import re
from pathlib import Path

from .images import DEFAULT_BACKGROUND, StimulusError, _missing_debian, parse_background
from .image_folder import file_decoder
from .registry import Listing

OPENCLIPART_PNG = Path("/usr/share/openclipart/png")
OPENCLIPART_SVG = Path("/usr/share/openclipart/svg")
#: A title shared by more files than this is a collection or theme name ("gramastar", "Lemon SVG theme"),
#: not a description of one image.
OPENCLIPART_MAX_SHARED_TITLE = 3

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


def list_stimuli(spec: dict) -> Listing:
    parse_background(spec.get("background", DEFAULT_BACKGROUND))
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
    paths = [r["path"] for r in rows]
    return Listing(
        ids=[r["id"] for r in rows],
        refs=paths,
        captions=[r["caption"] for r in rows] if captioned_only else None,
        labels=[r["label"] for r in rows],
        extra={"subcategory": [r["subcategory"] for r in rows]},
        attrs={"distinct_images": n_all, "with_caption": n_captioned, "skipped_bombs": bombs,
               "caption_filter": OPENCLIPART_CAPTION_FILTER},
    )


decoder = file_decoder


def content_files(spec: dict, here) -> list:
    roots = [here(spec.get("path", OPENCLIPART_PNG))]
    if spec.get("captions", True):
        roots.append(here(spec.get("svg_path", OPENCLIPART_SVG)))
    return [(str(f), f) for root in roots if root.is_dir() for f in sorted(root.rglob("*")) if f.is_file()]
