"""Image decoding shared by every source: any Pillow mode to 8-bit RGB, resize and centre-crop, errors that
name the file."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

DEFAULT_BACKGROUND = "white"
_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


class StimulusError(ValueError):
    """A stimulus source is missing, malformed or misconfigured."""


DEBIAN_PACKAGES = {
    "emoji": "fonts-noto-color-emoji",
    "fashion_mnist": "dataset-fashion-mnist",
    "tuxpaint": "tuxpaint-stamps-default",
    "openclipart": "openclipart-png",
    "openclipart_svg": "openclipart-svg",
}


def _missing_debian(source: str, path: Path) -> StimulusError:
    pkg = DEBIAN_PACKAGES[source]
    return StimulusError(f"stimulus source {source!r} needs {path}, which is missing: apt-get install {pkg}")


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


def decode_file(path: Path, size: int, background=DEFAULT_BACKGROUND) -> np.ndarray:
    """One image file as uint8 RGB (``size``, ``size``, 3) (:func:`fit_square`); a file Pillow cannot decode
    is one :class:`StimulusError` naming it."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return np.asarray(fit_square(im, size, background), dtype=np.uint8)
    except StimulusError:
        raise
    except Exception as err:  # Pillow raises OSError, SyntaxError, ValueError, DecompressionBombError, ...
        raise _decode_error(path, err) from err


def _load_images(paths: Iterable[Path], size: int, background=DEFAULT_BACKGROUND) -> np.ndarray:
    """The files ``paths`` decoded (:func:`decode_file`) and stacked: (len(paths), size, size, 3) uint8."""
    parse_background(background)  # a bad colour is one error, before any image is read
    paths = list(paths)
    out = np.zeros((len(paths), size, size, 3), np.uint8)
    for i, p in enumerate(paths):  # into one array: no list of images and stacked copy side by side
        out[i] = decode_file(p, size, background)
    return out


def gray_to_rgb(images: np.ndarray) -> np.ndarray:
    """(N, H, W) uint8 -> (N, H, W, 3) uint8."""
    return np.repeat(images[..., None], 3, axis=-1)
