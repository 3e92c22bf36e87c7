"""Source ``emoji``: every glyph of Debian's ``fonts-noto-color-emoji`` rendered with Pillow; caption = the
code point's Unicode name in lower case; id = ``U+XXXX``. Glyphs the font lacks are skipped.

Listing reads the font's character map and its colour-bitmap table (which glyphs have a bitmap); only the
kept glyphs are rendered."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import numpy as np

from .images import DEFAULT_BACKGROUND, _missing_debian, parse_background
from .registry import Listing

EMOJI_FONT = Path("/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf")
EMOJI_FONT_SIZE = 109  # Noto Color Emoji is a bitmap (CBDT) font with this one strike
_CANVAS = 160


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


def _render(cp: int, font, background) -> "Image.Image | None":  # noqa: F821
    from PIL import Image, ImageDraw

    canvas = Image.new("RGBA", (_CANVAS, _CANVAS), (255, 255, 255, 0))
    ImageDraw.Draw(canvas).text((_CANVAS // 2, _CANVAS // 2), chr(cp), font=font, embedded_color=True, anchor="mm")
    if canvas.getbbox() is None:  # the font has no visible glyph for it
        return None
    fill = (*parse_background(background), 255)
    return Image.alpha_composite(Image.new("RGBA", canvas.size, fill), canvas).convert("RGB")


def visible_codepoints(font_path: Path = EMOJI_FONT) -> list[int]:
    """The :func:`emoji_codepoints` that have a glyph to draw: those whose glyph has a bitmap in the font's
    colour-bitmap (CBDT) strike, read from the font's tables without rendering; a font without such a
    table has each glyph rendered once to see whether anything shows."""
    from fontTools.ttLib import TTFont

    cps = emoji_codepoints(font_path)
    with TTFont(str(font_path), lazy=True) as font:
        if "CBDT" in font:
            cmap = font.getBestCmap() or {}
            glyphs = set().union(*(set(strike) for strike in font["CBDT"].strikeData))
            return [cp for cp in cps if cmap.get(cp) in glyphs]
    from PIL import ImageFont

    pil_font = ImageFont.truetype(str(font_path), EMOJI_FONT_SIZE)
    return [cp for cp in cps if _render(cp, pil_font, DEFAULT_BACKGROUND) is not None]


def list_stimuli(spec: dict) -> Listing:
    if not EMOJI_FONT.is_file():
        raise _missing_debian("emoji", EMOJI_FONT)
    parse_background(spec.get("background", DEFAULT_BACKGROUND))
    cps = visible_codepoints()
    return Listing(ids=[f"U+{cp:04X}" for cp in cps], refs=cps, captions=[unicodedata.name(chr(cp)).lower() for cp in cps])


def decoder(spec: dict):
    from PIL import Image, ImageFont

    size = int(spec.get("image_size", 128))
    background = spec.get("background", DEFAULT_BACKGROUND)
    font = ImageFont.truetype(str(EMOJI_FONT), EMOJI_FONT_SIZE)

    def decode(refs) -> np.ndarray:
        out = np.zeros((len(refs), size, size, 3), np.uint8)
        for i, cp in enumerate(refs):
            rgb = _render(int(cp), font, background)
            if rgb is None:
                from .images import StimulusError

                raise StimulusError(f"emoji: the font {EMOJI_FONT} draws nothing for U+{int(cp):04X}")
            out[i] = np.asarray(rgb.resize((size, size), Image.Resampling.LANCZOS), dtype=np.uint8)
        return out

    return decode


def content_files(spec: dict, here) -> list:
    return [(str(EMOJI_FONT), EMOJI_FONT)]
