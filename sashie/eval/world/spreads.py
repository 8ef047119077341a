"""Spreads that look like a library's scans of old Japanese books (the world's version 3).

A spread is an open book on a scanner bed: two pages of different paper tone, a gutter, the
edges of the page stack; around it, at varied places, a colour chart, a ruler and a call-number
label. Pages carry brush-written columns (Debian's public-domain brush fonts) between ruled
lines inside a printed frame (匡郭), or printed lines in a later book's manner; illustrations
are woodblock line art (outlines and hatching cut from the emoji artists' and Openclipart's
drawings), often unframed, with short columns of text beside and inside them; a picture may
run across both pages. Then seals, stains, foxing, bleed-through, a slight skew, a scan's
softness. The truth keeps every illustration, every text column and every piece of the
scanner's furniture. Same generator state, same spread.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageChops, ImageDraw

from ...errors import SashieError
from .artists import Artists
from .figures import diagram, machine, picture, plate, seal, spread_picture
from .pages import INK, PageTruth, paper_patch
from .scanner import FONTS_MISSING, SPREAD_SIZE, Spread, age, bed, furniture, load_font, skew
from .woodblock import clipart_files
from .writing import BRUSH_FONTS, TEXT_POOL, column, columns


def check_installed() -> None:
    """Raise a SashieError naming what to install when the spread world cannot be drawn."""
    if not all(Path(path).is_file() for path in BRUSH_FONTS):
        raise SashieError(FONTS_MISSING)
    clipart_files()


def make_spread(
    rng: np.random.Generator, artists: Artists, pick_concepts, size: tuple[int, int] = SPREAD_SIZE
) -> tuple[Image.Image, PageTruth]:
    """One scanned spread and its truth (kind "spread"; `furniture` in the dict form)."""
    s = Spread(rng, artists, pick_concepts, size)
    bed(s)
    book = _book_box(s)
    left, right = _pages(s, book)
    brush = BRUSH_FONTS[int(rng.integers(len(BRUSH_FONTS)))]
    printed = s.printed = rng.random() < 0.3  # a Meiji book: printed lines, no frame
    s.across = printed and rng.random() < 0.6
    if rng.random() < 0.1:  # one picture across both pages
        spread_picture(s, left, right, brush)
    else:
        for page in (left, right):
            _page(s, page, brush, printed)
    furniture(s, book)
    for page in (left, right):
        if rng.random() < 0.5:
            _bleed_through(s, page, brush)
    image = age(s, book)
    image, truth = skew(s, image)
    return image, truth


def _book_box(s: Spread) -> tuple[int, int, int, int]:
    bw, bh = int(s.width * s.uniform(0.74, 0.95)), int(s.height * s.uniform(0.66, 0.86))
    x0 = (s.width - bw) // 2 + int(s.width * s.uniform(-0.03, 0.03))
    y0 = int((s.height - bh) * s.uniform(0.25, 0.75))
    x0 = min(max(0, x0), s.width - bw)
    return x0, y0, x0 + bw, y0 + bh


def _pages(s: Spread, book) -> tuple[tuple[int, int, int, int], tuple[int, int, int, int]]:
    """The cover's edge, the page stacks and two pages; returns the two pages' boxes."""
    x0, y0, x1, y1 = book
    cover = tuple(
        int(c) for c in np.clip(np.array([150, 120, 90]) + s.rng.normal(0, 25, 3), 20, 230)
    )
    s.draw.rectangle(book, fill=cover)
    stack = s.px(s.uniform(4, 14))
    gutter = (x0 + x1) // 2 + int((x1 - x0) * s.uniform(-0.015, 0.015))
    left = (x0 + stack, y0 + stack, gutter, y1 - stack)
    right = (gutter, y0 + stack // 2, x1 - stack, y1 - stack // 2)
    for page in (left, right):
        w, h = page[2] - page[0], page[3] - page[1]
        patch = paper_patch(s.rng, (min(w, 1600), min(h, 2400))).resize((w, h))
        s.canvas.paste(patch, page[:2])
        for i in range(s.integer(2, 6)):  # the page stack's edges
            shade = int(s.uniform(90, 160))
            edge = page[0] + i * 2 if page is left else page[2] - 1 - i * 2
            s.draw.line((edge, page[1], edge, page[3]), fill=(shade, shade - 10, shade - 25))
    shadow = s.px(s.uniform(6, 30))
    for i in range(shadow):  # the gutter: darker toward the fold
        fade = 1 - i / shadow
        darkness = int(110 * fade**2)
        for x in (gutter - i, gutter + i):
            column = s.canvas.crop((x, y0, x + 1, y1))
            s.canvas.paste(
                ImageChops.subtract(column, Image.new("RGB", column.size, (darkness,) * 3)), (x, y0)
            )
    s.draw.line((gutter, y0, gutter, y1), fill=(40, 35, 30), width=s.px(2))
    if s.rng.random() < 0.35:  # the scanner's glass divider above and below the book
        half = s.px(s.uniform(5, 12))
        s.draw.rectangle((gutter - half, 0, gutter + half, y0), fill=(15, 15, 18))
        s.draw.rectangle((gutter - half, y1, gutter + half, s.height), fill=(15, 15, 18))
    return left, right


def _page(s: Spread, page, brush: str, printed: bool) -> None:
    x0, y0, x1, y1 = page
    w, h = x1 - x0, y1 - y0
    inner = (
        x0 + int(w * s.uniform(0.07, 0.14)),
        y0 + int(h * s.uniform(0.08, 0.14)),
        x1 - int(w * s.uniform(0.05, 0.12)),
        y1 - int(h * s.uniform(0.07, 0.12)),
    )
    kind = str(
        s.rng.choice(
            ["text", "mixed", "diagram", "plate", "machine", "full", "blank", "cover"],
            p=[0.27, 0.27, 0.1, 0.07, 0.1, 0.09, 0.06, 0.04],
        )
    )
    if kind == "cover":
        _cover(s, page)
        return
    framed = not printed and kind != "blank" and s.rng.random() < 0.8
    if framed:
        s.draw.rectangle(inner, outline=INK, width=s.px(s.uniform(1.5, 4)))
        if s.rng.random() < 0.3:
            d = s.px(6)
            outer = (inner[0] - d, inner[1] - d, inner[2] + d, inner[3] + d)
            s.draw.rectangle(outer, outline=INK, width=s.px(1.5))
    area = (inner[0] + s.px(10), inner[1] + s.px(10), inner[2] - s.px(10), inner[3] - s.px(10))
    font = load_font(s.artists.paths["japanese"].as_posix(), 12) if printed else None
    char = s.px(s.uniform(17, 27) if printed else s.uniform(18, 34))
    pitch = int(char * (s.uniform(1.3, 1.7) if printed else s.uniform(1.3, 1.8)))
    ruled = framed and s.rng.random() < 0.5
    style = (font.path if font else brush, char, pitch, ruled, printed)
    if kind == "text":
        columns(s, area, style)
    elif kind == "mixed":
        _mixed(s, area, style)
    elif kind == "diagram":
        _mixed(s, area, style, figure=diagram)
    elif kind == "plate":
        _mixed(s, area, style, figure=plate)
    elif kind == "machine":
        if s.rng.random() < 0.4:
            machine(s, area, brush)
        else:
            _mixed(s, area, style, figure=machine)
    elif kind == "full":
        picture(s, area, brush, annotate=True)
    if s.rng.random() < 0.25:
        seal(s, inner if kind != "blank" else page)


def _mixed(s: Spread, area, style, figure=None) -> None:
    """A figure (a picture by default) at the top, bottom, side or middle of the page's
    area, and columns of text in the rest."""
    x0, y0, x1, y1 = area
    w, h = x1 - x0, y1 - y0
    where = str(s.rng.choice(["top", "bottom", "left", "right", "middle"]))
    pw, ph = int(w * s.uniform(0.4, 0.95)), int(h * s.uniform(0.3, 0.65))
    if where in ("left", "right"):
        pw, ph = int(w * s.uniform(0.35, 0.65)), int(h * s.uniform(0.5, 0.95))
    if figure is diagram:  # diagrams are small
        pw, ph = int(pw * s.uniform(0.15, 0.6)), int(ph * s.uniform(0.15, 0.6))
    elif figure is plate:  # plates are tall
        ph = int(h * s.uniform(0.5, 1.0))
    px0 = {"left": x0, "right": x1 - pw}.get(where, x0 + int((w - pw) * s.uniform(0, 1)))
    py0 = {"top": y0, "bottom": y1 - ph}.get(where, y0 + int((h - ph) * s.uniform(0, 1)))
    box = (px0, py0, px0 + pw, py0 + ph)
    if figure is None:
        picture(s, box, style[0], annotate=s.rng.random() < 0.6)
    elif figure is plate:
        plate(s, box, style)
    else:
        figure(s, box, style[0])
    gap = s.px(s.uniform(8, 30) + (30 if s.printed else 0))  # room for a caption
    free = []
    if where == "top" or where == "middle":
        free.append((x0, box[3] + gap, x1, y1))
    if where == "bottom" or where == "middle":
        free.append((x0, y0, x1, box[1] - gap))
    if where == "left":
        free.append((box[2] + gap, y0, x1, y1))
    if where == "right":
        free.append((x0, y0, box[0] - gap, y1))
    for box in free:
        if box[2] - box[0] > style[2] and box[3] - box[1] > style[1] * 2:
            columns(s, box, style)


def _cover(s: Spread, page) -> None:
    """The book's cover: patterned cloth or paper, a title slip, sometimes a small label."""
    x0, y0, x1, y1 = page
    w, h = x1 - x0, y1 - y0
    base = np.clip(np.array([40, 70, 60]) + s.rng.normal(0, 30, 3), 10, 200)
    step = s.px(s.uniform(10, 30))
    ys, xs = np.mgrid[0:h, 0:w]
    pattern = ((xs + ys) % step < 2) | ((xs - ys) % step < 2)
    noise = s.rng.normal(0, 6, (h, w, 1))
    cloth = base[None, None, :] + noise + pattern[..., None] * 25
    s.canvas.paste(Image.fromarray(np.clip(cloth, 0, 255).astype(np.uint8), "RGB"), (x0, y0))
    slip_w, slip_h = int(w * s.uniform(0.12, 0.2)), int(h * s.uniform(0.45, 0.7))
    sx = x0 + int(w * s.uniform(0.3, 0.7))
    sy = y0 + int(h * 0.06)
    s.draw.rectangle((sx, sy, sx + slip_w, sy + slip_h), fill=(200, 190, 160))
    brush = BRUSH_FONTS[int(s.rng.integers(len(BRUSH_FONTS)))]
    column(
        s, (sx + slip_w // 6, sy + slip_w // 4), int(slip_w * 0.7), s.integer(2, 5), brush, False
    )
    if s.rng.random() < 0.6:
        lw = s.px(s.uniform(40, 70))
        lx, ly = x1 - lw - s.px(20), y0 + s.px(20)
        s.draw.rectangle((lx, ly, lx + lw, ly + lw), fill=(240, 238, 230), outline=(90, 90, 90))
        s.furniture.append(("label", (lx, ly, lx + lw, ly + lw)))


def _bleed_through(s: Spread, page, brush: str) -> None:
    """The other side's columns showing faintly through the paper, mirrored."""
    x0, y0, x1, y1 = page
    w, h = x1 - x0, y1 - y0
    ghost = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(ghost)
    char = s.px(s.uniform(18, 32))
    font = load_font(brush, char)
    for x in range(int(w * 0.12), int(w * 0.88), int(char * 1.5)):
        for y in range(int(h * 0.12), int(h * 0.85), char):
            draw.text((x, y), TEXT_POOL[int(s.rng.integers(len(TEXT_POOL)))], font=font, fill=255)
    ghost = ghost.transpose(Image.Transpose.FLIP_LEFT_RIGHT).point(
        lambda v: v * int(s.uniform(5, 14)) // 100
    )
    s.canvas.paste(Image.new("RGB", (w, h), (110, 95, 80)), page[:2], ghost)
