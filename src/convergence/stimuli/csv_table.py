"""Source ``csv``: a CSV with a ``path`` column (relative to the CSV's folder) and optional ``caption``,
``label``, ``id``. Listing reads the table and checks every file exists (no file is opened); the decoder
reads the kept files only."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from .images import DEFAULT_BACKGROUND, StimulusError, parse_background
from .image_folder import file_decoder
from .registry import Listing


def csv_image_paths(csv_path: Path, column: Iterable[str]) -> list[Path]:
    """The image files a ``csv`` source's ``path`` column names (relative to the CSV's folder)."""
    return [(csv_path.parent / p) if not Path(p).is_absolute() else Path(p) for p in column]


def read_table(path: Path):
    import pandas as pd

    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise StimulusError(f"csv {path} is not UTF-8 text ({err.reason} at byte {err.start}); save it as UTF-8") from None
    table.columns = [str(c).strip() for c in table.columns]
    return table


def index_csv(path: str | Path) -> Listing:
    path = Path(path)
    if path.is_dir():
        raise StimulusError(f"csv path {path} is a directory, not a CSV file (source image_folder reads a folder)")
    if not path.is_file():
        raise StimulusError(f"csv file {path} does not exist")
    table = read_table(path)
    if "path" not in table.columns:
        raise StimulusError(f"csv {path} needs a 'path' column; it has {list(table.columns)} (optional: caption, label, id)")
    if table.empty:
        raise StimulusError(f"csv {path} has a header but no rows; list one image per row")
    files = csv_image_paths(path, table["path"])
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise StimulusError(f"csv {path}: {len(missing)} image path(s) do not exist, e.g. {missing[:3]}")
    ids = list(table["id"]) if "id" in table.columns else [Path(p).with_suffix("").as_posix() for p in table["path"]]
    return Listing(
        ids=ids,
        refs=files,
        captions=list(table["caption"]) if "caption" in table.columns else None,
        labels=list(table["label"]) if "label" in table.columns else None,
        paths=files,
    )


def list_stimuli(spec: dict) -> Listing:
    parse_background(spec.get("background", DEFAULT_BACKGROUND))
    return index_csv(spec["path"])


decoder = file_decoder


def content_files(spec: dict, here) -> list:
    csv = here(spec["path"])
    out = [(csv.name, csv)]
    try:
        table = read_table(csv)
    except (OSError, ValueError):  # missing or unreadable: the stimulus job says so
        return out
    if "path" in table.columns:
        out += [(str(name), f) for name, f in zip(table["path"], csv_image_paths(csv, table["path"]))]
    return out
