"""``variations``: each kept image rendered ``n`` times with seeded changes (scale, position, horizontal flip,
small rotation, background colour)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .images import _SIXTEEN_BIT_MODES, StimulusError, _decode_error, to_rgb, upright

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
    return render_rows([(p, sid, j) for p, sid in zip(paths, ids) for j in range(n)], size, seed, params)


def render_rows(items: list[tuple[Path, str, int]], size: int, seed: int, params: dict) -> np.ndarray:
    """Rendering ``j`` of the file ``path`` of stimulus ``sid`` for every ``(path, sid, j)`` of ``items``
    (seeded as in :func:`render_variations`, so any range of a set's rows renders the same); consecutive
    items of one file open it once."""
    import zlib

    from PIL import Image

    out = np.zeros((len(items), size, size, 3), np.uint8)
    i = 0
    while i < len(items):
        p, sid, _ = items[i]
        end = i
        while end < len(items) and items[end][0] == p and items[end][1] == sid:
            end += 1
        try:
            with Image.open(p) as im:
                im.load()
                for r in range(i, end):
                    rng = np.random.default_rng([int(seed), zlib.crc32(sid.encode()), int(items[r][2])])
                    out[r] = render_variation(im, size, rng, params)
        except StimulusError:
            raise
        except Exception as err:
            raise _decode_error(p, err) from err
        i = end
    return out
