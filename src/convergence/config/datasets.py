"""Dataset entries: what the config (and cheap looks at a dataset's files, never its decoded stimuli) tells
about them (size bounds, labels, captions, CSV columns), and the checks of what an entry asks of its source.
"""

from __future__ import annotations

from pathlib import Path

from .schema import ConfigError

#: Classes of the built-in sources whose classes are known before their stimuli are read, and their sizes.
_KNOWN_CLASSES = {"fashion_mnist": 10, "digits": 10}
_KNOWN_SIZES = {"digits": 1797}


def max_stimuli(dataset: dict, base_dir: str | Path | None = None) -> int | None:
    """An upper bound on a dataset entry's number of stimuli known before any stimulus is read (its ``limit``,
    ``per_class`` times a built-in source's classes, a built-in source's size and, with ``base_dir``, the
    counted rows of a CSV or files of an image folder), times its ``variations.n``; or ``None``."""
    bounds = [dataset.get("limit"), _KNOWN_SIZES.get(dataset["source"])]
    if dataset.get("per_class") and dataset["source"] in _KNOWN_CLASSES:
        bounds.append(dataset["per_class"] * _KNOWN_CLASSES[dataset["source"]])
    if base_dir is not None:
        bounds.append(counted_stimuli(dataset, base_dir))
    bounds = [b for b in bounds if b]
    if not bounds:
        return None
    return min(bounds) * int((dataset.get("variations") or {}).get("n", 1))


def _resolve(path, base: str | Path) -> Path:
    p = Path(path)
    return p if p.is_absolute() else Path(base) / p


def csv_rows(path: str | Path) -> int | None:
    """The data rows of a CSV dataset (blank lines skipped, as the stimulus job reads it); ``None`` when the
    file cannot be read."""
    import csv

    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            rows = csv.reader(fh)
            next(rows, None)
            return sum(1 for row in rows if any(cell.strip() for cell in row))
    except (OSError, UnicodeDecodeError, csv.Error):
        return None


def counted_stimuli(dataset: dict, base_dir: str | Path = ".") -> int | None:
    """A CSV dataset's rows or an image folder's image files, counted without decoding anything (``None``
    for other sources or an unreadable path)."""
    if dataset["source"] == "csv":
        p = _resolve(dataset["path"], base_dir)
        return csv_rows(p) if p.is_file() else None
    if dataset["source"] == "image_folder":
        from ..stimuli import image_folder_files

        p = _resolve(dataset["path"], base_dir)
        try:
            return len(image_folder_files(p)) if p.is_dir() else None
        except Exception:  # a link cycle and the like: the stimulus job reports it
            return None
    return None


def _image_folder_classes(root: Path) -> set[str] | None:
    """The class folders of an image folder (``None`` when flat or unreadable)."""
    from ..stimuli import image_folder_files

    try:
        files = image_folder_files(root)
    except Exception:
        return None
    if not files or all(f.parent == root for f in files):
        return None
    return {f.relative_to(root).parent.as_posix() for f in files if f.parent != root}


def dataset_has_labels(dataset: dict, base_dir: str | Path = ".") -> bool | None:
    """Whether a dataset entry's stimuli carry labels, known from the config and cheap looks at its files;
    ``None`` when that is not knowable before the stimuli are read."""
    source = dataset["source"]
    if source in ("fashion_mnist", "digits", "tuxpaint", "openclipart"):
        return True
    if source == "emoji":
        return False
    if source == "huggingface":
        return bool(dataset.get("label_column"))
    if source == "csv":
        columns = csv_columns(_resolve(dataset["path"], base_dir))
        return None if columns is None else "label" in columns
    if source == "image_folder":
        root = _resolve(dataset["path"], base_dir)
        return _image_folder_classes(root) is not None if root.is_dir() else None
    return None


def csv_columns(path: str | Path) -> list[str] | None:
    """The header of a CSV dataset (UTF-8, with or without the byte-order mark spreadsheet programs
    write), each name stripped of surrounding spaces; ``None`` when the file cannot be opened."""
    import csv

    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            return [c.strip() for c in next(csv.reader(fh), [])]
    except OSError:
        return None
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path} is not UTF-8 text ({err.reason} at byte {err.start}); save the CSV as UTF-8") from None


def dataset_has_captions(dataset: dict) -> bool:
    """Whether a dataset entry provides captions (so language models run on it)."""
    if dataset["source"] in ("emoji", "tuxpaint"):
        return True
    if dataset["source"] == "openclipart":
        return bool(dataset.get("captioned_only", False))
    if dataset["source"] == "huggingface":
        return bool(dataset.get("caption_column"))
    if dataset["source"] == "csv":
        return "caption" in (csv_columns(dataset["path"]) or [])
    return False


def _check_dataset_inputs(dname: str, d: dict, base: Path) -> None:
    """What a dataset entry asks of its source, checked before any job: variations and per_class only where
    the source can have them, a colour Pillow knows, a CSV with rows, more than one class where labels are
    compared."""
    from ..stimuli import VARIATION_SOURCES, StimulusError, parse_background

    where = f"config.datasets.{dname}"
    if d.get("variations") and d["source"] not in VARIATION_SOURCES:
        raise ConfigError(f"{where}.variations: source {d['source']!r} cannot be rendered with variations (they "
                          f"need the image files); allowed for sources: {list(VARIATION_SOURCES)}")
    if "background" in d:
        try:
            parse_background(d["background"])
        except StimulusError as err:
            raise ConfigError(f"{where}.background: {err}") from None
    if d["source"] == "csv":
        p = _resolve(d["path"], base)
        if p.is_file() and csv_rows(p) == 0:
            raise ConfigError(f"{where}.path: {d['path']!r} has a header but no rows; list one image per row "
                              "(columns: path, and optionally caption, label, id)")
    for key in ("per_class",):
        if d.get(key) and dataset_has_labels(d, base) is False:
            how = {"emoji": "emoji have no labels", "huggingface": "give label_column",
                   "csv": "add a 'label' column", "image_folder": "put the images in class sub-folders"}
            raise ConfigError(f"{where}.{key}: a per-class subsample needs labels, and this {d['source']} dataset "
                              f"has none ({how.get(d['source'], '')}); use limit instead")


def _check_hub_columns(dname: str, d: dict) -> None:
    """The columns a Hugging Face dataset entry names exist in its cached copy (its ``dataset_info.json``);
    nothing is checked for a dataset that is not cached yet."""
    from ..hubcache import cached_columns

    splits = cached_columns(d["name"], d.get("revision"))
    if not splits:
        return
    columns = next(iter(splits.values()))
    for key in ("image_column", "caption_column", "label_column", "id_column"):
        col = d.get(key) if key != "image_column" else d.get(key, "image")
        if col and col not in columns:
            raise ConfigError(f"config.datasets.{dname}.{key}: {d['name']!r} has no column {col!r} (its cached "
                              f"copy has {columns})")


def _check_csv_captions(dname: str, d: dict, path: Path, models: dict) -> None:
    """A CSV dataset's caption column is found, or its absence is meant: language models never drop out of
    it silently."""
    try:
        columns = csv_columns(path)
    except ConfigError as err:
        raise ConfigError(f"config.datasets.{dname}.path: {err}") from None
    if columns is None or "caption" in columns:
        return
    near = [c for c in columns if c.lower() in ("caption", "captions")]
    if near:
        raise ConfigError(f"config.datasets.{dname}: {d['path']!r} has a column {near[0]!r}; the caption column "
                          f"must be named exactly 'caption' (columns: {columns})")
    language = [m for m, spec in models.items() if spec["modality"] == "language"]
    if language and not d.get("models"):
        raise ConfigError(f"config.datasets.{dname}: language model(s) {language} are configured but {d['path']!r} "
                          f"has no 'caption' column (columns: {columns}); add a 'caption' column, or list this "
                          "dataset's models (models: [...], vision models only) to run it without captions")
