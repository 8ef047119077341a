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
PRINTED_POOL = KANA + KANJI * 2  # a later book's prose: more characters, denser ink


def columns(s: Spread, area, style, *, record: bool = True) -> None:
    """Columns of vertical text right to left, or in a book printed across (`s.across`)
    lines left to right, top to bottom; each column's or line's ink box is a text line."""
    font_path, char, pitch, ruled, printed = style
    if printed and s.across:
        _lines(s, area, font_path, char, pitch, record)
        return
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
    pool = PRINTED_POOL if printed else TEXT_POOL
    for _ in range(length):
        size = char if printed else max(6, int(char * s.uniform(0.8, 1.15)))
        font = load_font(font_path, size)
        glyph = pool[int(s.rng.integers(len(pool)))]
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


def _lines(s: Spread, area, font_path: str, char: int, pitch: int, record: bool) -> None:
    """Printed lines across, as a Meiji science book sets them: full lines, a short one at a
    paragraph's end, now and then an indented heading."""
    x0, y0, x1, y1 = area
    font = load_font(font_path, char)
    per_line = max(1, (x1 - x0) // char)
    tone = int(s.uniform(0, 35))
    colour = (INK[0] + tone, INK[1] + tone, INK[2] + tone)
    for y in range(y0, y1 - char, pitch):
        count, indent = per_line, 0
        if s.rng.random() < 0.2:  # a paragraph's last line, or a heading
            count = s.integer(1, per_line)
            indent = s.integer(0, max(0, per_line - count)) if s.rng.random() < 0.3 else 0
        text = "".join(PRINTED_POOL[int(i)] for i in s.rng.integers(0, len(PRINTED_POOL), count))
        at = (x0 + indent * char, y)
        left, top, right, bottom = (int(v) for v in s.draw.textbbox(at, text, font=font))
        box = (left, top, right, bottom)
        if box[2] > s.width or box[3] > s.height:
            break
        s.draw.text(at, text, font=font, fill=colour)
        if record:
            s.truth.text_blocks.append(box)
