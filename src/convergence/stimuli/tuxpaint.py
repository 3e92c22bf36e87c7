"""Source ``tuxpaint``: Debian's ``tuxpaint-stamps-default`` clip art: every
``<category>/<subcategory>/.../<name>.png`` outside the ``symbols`` category (letters and signs, not objects)
that has a ``<name>.txt`` beside it; caption = the first line of that file ("A red kangaroo."); ``label`` =
the category (animals, food, ...), ``subcategory`` = ``<category>/<first folder below it>``
(``animals/mammals``; the category alone for stamps directly in it); transparency composited on the
``background`` (white); id = the path without ``.png``. Listing reads the caption files only."""

from __future__ import annotations

from pathlib import Path

from .images import DEFAULT_BACKGROUND, StimulusError, _missing_debian, parse_background
from .image_folder import file_decoder
from .registry import Listing

TUXPAINT_DIR = Path("/usr/share/tuxpaint/stamps")
#: tuxpaint categories left out: ``symbols`` holds letters, digits and signs, not depictions of objects.
TUXPAINT_EXCLUDED = ("symbols",)


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


def list_stimuli(spec: dict) -> Listing:
    parse_background(spec.get("background", DEFAULT_BACKGROUND))
    rows = tuxpaint_index(Path(spec.get("path", TUXPAINT_DIR)))
    paths = [r["path"] for r in rows]
    return Listing(ids=[r["id"] for r in rows], refs=paths, captions=[r["caption"] for r in rows],
                   labels=[r["category"] for r in rows], extra={"subcategory": [r["subcategory"] for r in rows]},
                   paths=paths)


decoder = file_decoder


def content_files(spec: dict, here) -> list:
    root = here(spec.get("path", TUXPAINT_DIR))
    if not root.is_dir():
        return []
    return [(f.relative_to(root).as_posix(), f) for f in sorted(root.rglob("*"))
            if f.suffix in (".png", ".txt") and f.relative_to(root).parts[0] not in TUXPAINT_EXCLUDED]
