"""The illustrations of a spread: woodblock pictures of the world's concepts among
Openclipart props, plates of separate figures with captions, diagrams, technical drawings in
fine lines, pictures across both pages, and seals."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageChops, ImageDraw

from .artists import alpha_bbox
from .pages import INK, KANJI, Illustration
from .scanner import Spread, load_font
from .woodblock import clipart, line_art
from .writing import BRUSH_FONTS, TEXT_POOL, column


def picture(s: Spread, box, brush: str, *, annotate: bool, single: bool = False):
    """A woodblock picture in `box`: concept figures, Openclipart props, ground and mist,
    sometimes a frame; short columns of text inside it when `annotate`; one figure only
    when `single`. Returns the picture's bbox (None when nothing was drawn)."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    if w < s.px(40) or h < s.px(40):
        return None
    coloured = s.rng.random() < 0.2 and not s.printed
    engraved = s.printed and s.rng.random() < 0.75
    artist = "openmoji" if coloured or s.rng.random() < 0.4 else "noto"
    if single:
        n = int(s.rng.random() < 0.6)
        props = 1 - n
    else:
        n = int(s.rng.choice([0, 1, 2, 3], p=[0.2, 0.4, 0.25, 0.15]))
        props = s.integer(0, 3) if n else s.integer(1, 4)
    concepts = s.pick(s.rng, n) if n else []
    layer = Image.new("RGB", (w, h), (255, 255, 255))
    figures: list[tuple[int, int, int, int]] = []
    ink_boxes: list[tuple[int, int, int, int]] = []
    drawn: list[str] = []  # the concepts whose figure made it onto the page, in figure order
    items = [(c, True) for c in concepts] + [(None, False)] * props
    order = s.rng.permutation(len(items))
    for k in order:
        concept, is_concept = items[int(k)]
        side = int(min(w, h) * (s.uniform(0.35, 0.75) if is_concept else s.uniform(0.25, 0.7)))
        if single:
            side = int(max(w, h) * s.uniform(0.8, 1.0))
        if concept is not None:
            art = s.artists.draw(concept, artist, side, weight=int(s.rng.integers(300, 701)))
        else:
            art = clipart(s.rng, side)
        art = art.rotate(float(s.rng.normal(0, 5)), resample=Image.Resampling.BICUBIC, expand=True)
        visible = alpha_bbox(art)
        if visible is None:
            continue
        art = art.crop(visible)
        if art.width > w or art.height > h:
            art.thumbnail((w, h))
        cut = line_art(art, s.rng, keep_colour=coloured, tone=engraved)
        ax, ay = s.integer(0, w - cut.width), s.integer(0, h - cut.height)
        layer.paste(
            ImageChops.multiply(layer.crop((ax, ay, ax + cut.width, ay + cut.height)), cut),
            (ax, ay),
        )
        placed = (x0 + ax, y0 + ay, x0 + ax + cut.width, y0 + ay + cut.height)
        ink_boxes.append(placed)
        if is_concept:
            figures.append(placed)
            drawn.append(concept.key)
    if not ink_boxes:
        return None
    draw = ImageDraw.Draw(layer)
    if not single and s.rng.random() < 0.5:
        _ground(s, draw, ink_boxes, box)
    framed = s.rng.random() < (0.1 if single else 0.35)
    if framed:
        draw.rectangle((0, 0, w - 1, h - 1), outline=INK, width=s.px(s.uniform(1.5, 3.5)))
    page_part = s.canvas.crop(box)
    s.canvas.paste(ImageChops.multiply(page_part, layer), box[:2])
    bbox = box if framed else (
        min(b[0] for b in ink_boxes), min(b[1] for b in ink_boxes),
        max(b[2] for b in ink_boxes), max(b[3] for b in ink_boxes),
    )  # fmt: skip
    if annotate and not s.printed:  # labels written among the figures, as in 機巧図彙
        char = s.px(s.uniform(14, 24))
        _labels(s, bbox, brush, char, s.integer(1, 5), (2, 7))
    elif annotate:  # a printed book's caption under the figure: 第3・1圖 and a name
        _caption(s, bbox)
    s.truth.illustrations.append(
        Illustration(bbox, drawn, "colour" if coloured else "ink", figures)
    )
    return bbox


def _ground(s: Spread, draw: ImageDraw.ImageDraw, ink_boxes: list, box) -> None:
    """Ground strokes and bands of mist (霞) under the figures of a picture in `box`."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    left = min(b[0] for b in ink_boxes) - x0
    right = max(b[2] for b in ink_boxes) - x0
    for _ in range(s.integer(1, 4)):
        yy = s.integer(h // 3, h - 1)
        xs = np.linspace(left, right, 12)
        ys = yy + np.sin(xs / max(1, w) * s.uniform(3, 9)) * s.uniform(2, 10)
        draw.line(list(zip(xs.tolist(), ys.tolist())), fill=INK, width=s.px(1.5))
        ink_boxes.append((x0 + left, y0 + int(ys.min()), x0 + right, y0 + int(ys.max()) + 2))


def plate(s: Spread, box, style) -> None:
    """Several separate figures in a grid, each with a caption line under it, as a natural
    history or a technical book prints them: each figure is its own illustration."""
    font_path, _, _, _, printed = style
    x0, y0, x1, y1 = box
    rows, cols = s.integer(1, 6), s.integer(1, 3)
    if rows * cols == 1:
        rows = 2
    gap = s.px(s.uniform(6, 30))
    caption = s.px(s.uniform(12, 18)) if s.rng.random() < 0.7 else 0
    cell_w = (x1 - x0 - gap * (cols - 1)) // cols
    cell_h = (y1 - y0 - gap * (rows - 1)) // rows
    font = load_font(
        s.artists.paths["japanese"].as_posix() if printed else font_path, caption or 12
    )
    for r in range(rows):
        for c in range(cols):
            cx, cy = x0 + c * (cell_w + gap), y0 + r * (cell_h + gap)
            figure = (cx, cy, cx + cell_w, cy + cell_h - caption - (s.px(4) if caption else 0))
            bbox = picture(s, figure, font_path, annotate=False, single=True)
            if bbox is None or not caption:
                continue
            label = "".join(
                TEXT_POOL[int(i)] for i in s.rng.integers(0, len(TEXT_POOL), s.integer(1, 6))
            )
            at = (
                bbox[0] + max(0, (bbox[2] - bbox[0]) // 2 - caption * len(label) // 2),
                bbox[3] + s.px(4),
            )
            s.draw.text(at, label, font=font, fill=INK)
            left, top, right, bottom = (int(v) for v in s.draw.textbbox(at, label, font=font))
            if bottom <= s.height:
                s.truth.text_blocks.append((left, top, right, bottom))


def diagram(s: Spread, box, brush: str) -> None:
    """A figure of a mathematical or technical book: circles, squares, lines and small labels,
    sometimes in a ruled cell."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    if w < s.px(50) or h < s.px(50):
        return
    side = min(w, h)
    line = s.px(s.uniform(1, 2.5))
    shapes = []
    for _ in range(s.integer(1, 5)):
        size = int(side * s.uniform(0.25, 0.9))
        sx, sy = s.integer(x0, x1 - size), s.integer(y0, y1 - size)
        shape = (sx, sy, sx + size, sy + size)
        form = str(s.rng.choice(["circle", "square", "triangle", "lines", "wave"]))
        if form == "circle":
            s.draw.ellipse(shape, outline=INK, width=line)
        elif form == "square":
            s.draw.rectangle(shape, outline=INK, width=line)
        elif form == "triangle":
            s.draw.polygon(
                [(sx + size // 2, sy), (sx, sy + size), (sx + size, sy + size)],
                outline=INK,
                width=line,
            )
        elif form == "lines":
            for _ in range(s.integer(2, 6)):
                s.draw.line(
                    (
                        s.integer(sx, sx + size),
                        s.integer(sy, sy + size),
                        s.integer(sx, sx + size),
                        s.integer(sy, sy + size),
                    ),
                    fill=INK,
                    width=line,
                )
        else:
            for k in range(s.integer(2, 5)):
                xs = np.linspace(sx, sx + size, 16)
                ys = sy + k * size / 5 + np.sin((xs - sx) / size * s.uniform(6, 14)) * size / 14
                s.draw.line(list(zip(xs.tolist(), ys.tolist())), fill=INK, width=line)
        shapes.append(shape)
    char = s.px(s.uniform(12, 20))
    for _ in range(s.integer(0, 5)):  # labels on the figure
        at = (s.integer(x0, max(x0, x1 - char)), s.integer(y0, max(y0, y1 - char * 2)))
        column(s, at, char, s.integer(1, 2), brush, False)
        shapes.append((at[0], at[1], at[0] + char, at[1] + char * 2))
    bbox = (
        min(b[0] for b in shapes), min(b[1] for b in shapes),
        max(b[2] for b in shapes), max(b[3] for b in shapes),
    )  # fmt: skip
    if s.rng.random() < 0.4:
        pad = s.px(8)
        bbox = (bbox[0] - pad, bbox[1] - pad, bbox[2] + pad, bbox[3] + pad)
        s.draw.rectangle(bbox, outline=INK, width=s.px(1.5))
    s.truth.illustrations.append(Illustration(bbox, [], "ink", []))


def machine(s: Spread, box, brush: str) -> None:
    """A technical drawing in fine lines, as 機巧図彙 draws its mechanisms: frames seen
    obliquely, legs, rods, wheels with teeth, a part from Openclipart in outline, and labels
    written among the parts."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    if w < s.px(120) or h < s.px(120):
        return
    line = s.px(s.uniform(1, 2))
    parts: list[tuple[int, int, int, int]] = []

    def segment(a, b) -> None:
        s.draw.line((*a, *b), fill=INK, width=line)
        parts.append((min(a[0], b[0]), min(a[1], b[1]), max(a[0], b[0]) + 1, max(a[1], b[1]) + 1))

    for _ in range(s.integer(1, 3)):  # frames: a box drawn obliquely, with legs
        fw, fh = int(w * s.uniform(0.3, 0.8)), int(h * s.uniform(0.15, 0.5))
        dx, dy = int(fw * s.uniform(0.15, 0.4)), -int(fh * s.uniform(0.2, 0.5))
        fx = s.integer(x0, max(x0, x1 - fw - dx))
        fy = s.integer(max(y0, y0 - dy), max(y0 - dy, y1 - fh - s.px(40)))
        front = [(fx, fy), (fx + fw, fy), (fx + fw, fy + fh), (fx, fy + fh)]
        back = [(x + dx, y + dy) for x, y in front]
        for i in range(4):
            segment(front[i], front[(i + 1) % 4])
            if i < 2 or s.rng.random() < 0.5:
                segment(back[i], back[(i + 1) % 4])
            segment(front[i], back[i])
        for x, y in front[2:]:  # legs
            segment((x, y), (x, min(y1, y + s.integer(s.px(10), s.px(60)))))
        for _ in range(s.integer(0, 5)):  # rods
            rx = s.integer(fx, fx + fw)
            segment((rx, max(y0, fy + dy - s.integer(0, fh))), (rx, fy + fh))
    for _ in range(s.integer(0, 3)):  # wheels with teeth
        r = int(min(w, h) * s.uniform(0.05, 0.18))
        cx, cy = s.integer(x0 + r, x1 - r), s.integer(y0 + r, y1 - r)
        s.draw.ellipse((cx - r, cy - r, cx + r, cy + r), outline=INK, width=line)
        for k in range(s.integer(8, 20)):
            angle = 2 * np.pi * k / 20
            a = (int(cx + r * np.cos(angle)), int(cy + r * np.sin(angle)))
            b = (int(cx + r * 1.15 * np.cos(angle)), int(cy + r * 1.15 * np.sin(angle)))
            segment(a, b)
        parts.append((cx - r, cy - r, cx + r, cy + r))
    if s.rng.random() < 0.5:  # a part drawn by someone else, in outline
        side = int(min(w, h) * s.uniform(0.2, 0.5))
        art = clipart(s.rng, side)
        cut = line_art(art, s.rng)
        ax, ay = s.integer(x0, x1 - cut.width), s.integer(y0, y1 - cut.height)
        target = (ax, ay, ax + cut.width, ay + cut.height)
        s.canvas.paste(ImageChops.multiply(s.canvas.crop(target), cut), target[:2])
        parts.append(target)
    bbox = (
        max(x0, min(b[0] for b in parts)), max(y0, min(b[1] for b in parts)),
        min(x1, max(b[2] for b in parts)), min(y1, max(b[3] for b in parts)),
    )  # fmt: skip
    char = s.px(s.uniform(12, 20))
    _labels(s, bbox, brush, char, s.integer(2, 8), (1, 6))  # labels among the parts
    s.truth.illustrations.append(Illustration(bbox, [], "ink", []))


def spread_picture(s: Spread, left, right, brush: str) -> None:
    top, bottom = max(left[1], right[1]), min(left[3], right[3])
    h = bottom - top
    box = (
        left[0] + int((left[2] - left[0]) * s.uniform(0.08, 0.2)),
        top + int(h * s.uniform(0.08, 0.15)),
        right[2] - int((right[2] - right[0]) * s.uniform(0.08, 0.2)),
        bottom - int(h * s.uniform(0.08, 0.15)),
    )
    picture(s, box, brush, annotate=True)


def seal(s: Spread, inside) -> None:
    """A red library or owner's seal, square or round, with characters cut in it."""
    side = s.px(s.uniform(35, 95))
    x0, y0, x1, y1 = inside
    if x1 - x0 <= side or y1 - y0 <= side:
        return
    x, y = s.integer(x0, x1 - side), s.integer(y0, y1 - side)
    red = (int(s.uniform(150, 210)), int(s.uniform(30, 70)), int(s.uniform(30, 70)))
    layer = Image.new("RGB", (side, side), (255, 255, 255))
    draw = ImageDraw.Draw(layer)
    if s.rng.random() < 0.6:
        draw.rectangle((0, 0, side - 1, side - 1), outline=red, width=max(2, side // 14))
    else:
        draw.ellipse((0, 0, side - 1, side - 1), outline=red, width=max(2, side // 14))
    font = load_font(BRUSH_FONTS[4], max(6, side // 3))
    for i, glyph in enumerate(s.rng.choice(list(KANJI), 4)):
        draw.text(
            (side // 8 + (i % 2) * side * 3 // 8, side // 8 + (i // 2) * side * 3 // 8),
            str(glyph),
            font=font,
            fill=red,
        )
    box = (x, y, x + side, y + side)
    s.canvas.paste(ImageChops.multiply(s.canvas.crop(box), layer), box[:2])
    s.furniture.append(("seal", box))


def _caption(s: Spread, bbox) -> None:
    """A printed figure's number and name, one horizontal line under it (a text line)."""
    font = load_font(s.artists.paths["japanese"].as_posix(), s.px(s.uniform(11, 17)))
    name = "".join(str(g) for g in s.rng.choice(list(KANJI), s.integer(1, 5)))
    label = f"第{s.integer(1, 9)}・{s.integer(1, 20)}圖 {name}"
    width = s.draw.textlength(label, font=font)
    at = (int((bbox[0] + bbox[2] - width) / 2), bbox[3] + s.px(s.uniform(4, 14)))
    left, top, right, bottom = (int(v) for v in s.draw.textbbox(at, label, font=font))
    box = (left, top, right, bottom)
    if box[3] <= s.height and box[0] >= 0 and box[2] <= s.width:
        s.draw.text(at, label, font=font, fill=INK)
        s.truth.text_blocks.append(box)


def _labels(s: Spread, bbox, brush: str, char: int, count: int, lengths: tuple[int, int]) -> None:
    """Up to `count` short columns written at random inside `bbox` (fewer when it is small)."""
    for _ in range(count):
        length = s.integer(*lengths)
        if bbox[2] - bbox[0] <= char * 2 or bbox[3] - bbox[1] <= char * (length + 1):
            break
        at = (
            s.integer(bbox[0], bbox[2] - char * 2),
            s.integer(bbox[1], bbox[3] - char * (length + 1)),
        )
        column(s, at, char, length, brush, False)
