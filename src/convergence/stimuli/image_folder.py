"""Source ``image_folder``: a folder of images, either in class sub-folders (label = folder name) or flat (no
labels); id = the path below the folder without its suffix. Symbolic links are followed, to folders and to
files alike (a link back to a folder above it, a cycle, and a link to nothing are errors): see
:func:`image_folder_files`. Listing walks the folder (no file is opened);
the decoder reads the kept files only."""

from __future__ import annotations

from pathlib import Path

from .images import DEFAULT_BACKGROUND, IMAGE_SUFFIXES, StimulusError, _load_images, parse_background
from .registry import Listing


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


def index_image_folder(path: str | Path) -> Listing:
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
    return Listing(ids=ids, refs=files, labels=labels, paths=files)


def list_stimuli(spec: dict) -> Listing:
    parse_background(spec.get("background", DEFAULT_BACKGROUND))
    return index_image_folder(spec["path"])


def file_decoder(spec: dict):
    """``decode(paths)``: the files at the dataset's ``image_size`` on its ``background`` (every file source)."""
    size = int(spec.get("image_size", 224))
    background = spec.get("background", DEFAULT_BACKGROUND)
    parse_background(background)
    return lambda refs: _load_images(refs, size, background)


decoder = file_decoder


def content_files(spec: dict, here) -> list:
    root = here(spec["path"])
    return [(f.relative_to(root).as_posix(), f) for f in image_folder_files(root)] if root.is_dir() else []
