"""Writing on a spread's pages: columns of brush-written or printed characters, right to
left, each column's ink box a text line of the truth."""

from __future__ import annotations

from .pages import INK, KANA, KANJI
from .scanner import Spread, load_font

BRUSH_FONTS = (
    "/usr/share/fonts/truetype/aoyagi-soseki/aoyagi-soseki.ttf",
    "/usr/share/fonts/truetype/kouzan-mouhitsu/kouzan-mouhitsu-gyosho.ttf",
    "/usr/share/fonts/truetype/kouzan-mouhitsu/KouzanBrushFontSousyo.ttf",
    "/usr/share/fonts/truetype/kouzan-mouhitsu/kouzan-mouhitsu.ttf",
    "/usr/share/fonts/truetype/aoyagi-kouzan-t/AoyagiKouzanT.ttf",
)
FONT_CREDIT = (
    "Aoyagi Soseki, Kouzan Mouhitsu (regular, gyosho, sousho) and Aoyagi Kouzan T brush fonts "
    "by Kouzan and Soseki Aoyagi, public domain (Debian fonts-aoyagi-soseki, "
    "fonts-kouzan-mouhitsu, fonts-aoyagi-kouzan-t)"
)
TEXT_POOL = KANA * 3 + KANJI


def columns(s: Spread, area, style, *, record: bool = True) -> None:
    """Columns of vertical text right to left; each column's ink box is a text line."""
    font_path, char, pitch, ruled, printed = style
    x0, y0, x1, y1 = area
    count = max(1, (x1 - x0) // pitch)
    for i in range(count):
        right = x1 - i * pitch
        if ruled and i:
            s.draw.line((right, y0, right, y1), fill=INK, width=1)
        length = (y1 - y0) // char
        if s.rng.random() < 0.3:
            length = s.integer(1, max(1, length))
        box = column(s, (right - pitch // 2 - char // 2, y0), char, length, font_path, printed)
        if box and record:
            s.truth.text_blocks.append(box)


def column(s: Spread, at, char: int, length: int, font_path: str, printed: bool):
    """One column of `length` characters from `at` down; returns its ink box."""
    x, y = at
    boxes = []
    tone = int(s.uniform(0, 35))
    colour = (INK[0] + tone, INK[1] + tone, INK[2] + tone)
    for _ in range(length):
        size = char if printed else max(6, int(char * s.uniform(0.8, 1.15)))
        font = load_font(font_path, size)
        glyph = TEXT_POOL[int(s.rng.integers(len(TEXT_POOL)))]
        dx = 0 if printed else int(char * s.uniform(-0.12, 0.12))
        box = s.draw.textbbox((x + dx, y), glyph, font=font)
        if box[3] > s.height or box[2] > s.width:
            break
        s.draw.text((x + dx, y), glyph, font=font, fill=colour)
        boxes.append(box)
        y += int(size * (1.0 if printed else s.uniform(0.7, 1.0)))
    if not boxes:
        return None
    return (
        min(b[0] for b in boxes), min(b[1] for b in boxes),
        max(b[2] for b in boxes), max(b[3] for b in boxes),
    )  # fmt: skip
