"""Pages that look like scans of Edo-period printed books, with their ground truth.

A page is paper (tone, grain, stains, foxing, sometimes bleed-through from the other side),
a printed frame with a fold line, vertical columns of Japanese text, and 0-3 illustrations,
each 1-4 concepts drawn in ink (Noto) or hand-coloured (OpenMoji). Everything random comes
from the generator passed in, so the same seed gives the same page.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from PIL import Image, ImageChops, ImageDraw, ImageEnhance, ImageFilter

from .artists import PAGE_STYLES, Artists, Concept, alpha_bbox

PAGE_SIZE = (1600, 2400)
INK = (34, 27, 22)
KANA = (
    "あいうえおかきくけこさしすせそたちつてとなにぬねのはひふへほまみむめもやゆよらりるれろわをん"
)
KANJI = "春夏秋冬山川花鳥風月雪松竹梅桜鶴亀龍虎舟橋寺宮城門家人物語日記歌絵図巻之上下中"


@dataclass
class Illustration:
    bbox: tuple[int, int, int, int]
    concepts: list[str]  # concept keys
    style: str  # "ink" or "colour"
    figures: list[tuple[int, int, int, int]] = field(default_factory=list)  # a box a concept


@dataclass
class PageTruth:
    kind: str  # "text", "mixed", "full", "blank"
    width: int
    height: int
    illustrations: list[Illustration] = field(default_factory=list)
    text_blocks: list[tuple[int, int, int, int]] = field(default_factory=list)
    # the scanner's and the owner's marks (kind, bbox): "ruler", "chart", "label", "seal"
    furniture: list[tuple[str, tuple[int, int, int, int]]] = field(default_factory=list)

    def as_dict(self) -> dict:
        extra = {"furniture": [{"kind": k, "bbox": list(b)} for k, b in self.furniture]}
        return {
            "kind": self.kind,
            "width": self.width,
            "height": self.height,
            "illustrations": [
                {
                    "bbox": list(i.bbox),
                    "concepts": i.concepts,
                    "style": i.style,
                    "figures": [list(f) for f in i.figures],
                }
                for i in self.illustrations
            ],
            "text_blocks": [list(b) for b in self.text_blocks],
            **(extra if self.kind == "spread" else {}),
        }


@lru_cache(maxsize=2)
def _paper_textures(size: tuple[int, int]) -> tuple[Image.Image, ...]:
    """A few grey paper textures (slow blotches + fibre grain), made once per page size."""
    width, height = size
    textures = []
    for variant in range(4):
        rng = np.random.default_rng(1000 + variant)
        slow = rng.normal(0, 4.5, (height // 64 + 2, width // 64 + 2)).astype(np.float32)
        slow = np.asarray(
            Image.fromarray(slow, "F").resize((width, height), Image.Resampling.BICUBIC)
        )
        grain = rng.normal(0, 9, (height // 2, width // 2)).astype(np.float32)
        grain = np.asarray(
            Image.fromarray(grain, "F").resize((width, height), Image.Resampling.BILINEAR)
        )
        light = np.clip(230 + slow + grain, 0, 255).astype(np.uint8)
        textures.append(Image.fromarray(light, "L"))
    return tuple(textures)


def paper(rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    """Aged paper: one of the textures, turned at random, in a warm tone of its own."""
    texture = _paper_textures(size)[int(rng.integers(0, 4))]
    if rng.random() < 0.5:
        texture = texture.transpose(Image.Transpose.ROTATE_180)
    return tone(rng, texture)


def paper_patch(rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    """A piece of page-sized paper, for drawings made outside a page (training samples)."""
    texture = _paper_textures(PAGE_SIZE)[int(rng.integers(0, 4))]
    x = int(rng.integers(0, PAGE_SIZE[0] - size[0] + 1))
    y = int(rng.integers(0, PAGE_SIZE[1] - size[1] + 1))
    return tone(rng, texture.crop((x, y, x + size[0], y + size[1])))


def tone(rng: np.random.Generator, texture: Image.Image) -> Image.Image:
    tone = np.clip(np.array([226, 211, 178]) + rng.normal(0, 6, 3), 150, 255) / 230
    return Image.merge(
        "RGB", [texture.point([min(255, int(v * t)) for v in range(256)]) for t in tone]
    )


def _multiply(page: Image.Image, layer: Image.Image, at: tuple[int, int]) -> None:
    """Print `layer` (RGB on white) onto the page the way ink sits on paper."""
    x, y = at
    box = (x, y, x + layer.width, y + layer.height)
    page.paste(ImageChops.multiply(page.crop(box), layer), box)


def stains(rng, page: Image.Image, count: int, strength: float) -> None:
    width, height = page.size
    small = Image.new("L", (width // 8, height // 8), 255)
    draw = ImageDraw.Draw(small)
    for _ in range(count):
        cx, cy = rng.integers(0, width // 8), rng.integers(0, height // 8)
        scale = width / PAGE_SIZE[0]
        rx, ry = max(1, rng.integers(4, 40) * scale), max(1, rng.integers(4, 40) * scale)
        shade = int(255 - rng.uniform(15, 60) * strength)
        draw.ellipse((cx - rx, cy - ry, cx + rx, cy + ry), fill=shade)
    for _ in range(int(rng.integers(0, 30))):  # foxing: small brown spots
        cx, cy = rng.integers(0, width // 8), rng.integers(0, height // 8)
        r = rng.uniform(0.5, 2.0)
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=int(255 - rng.uniform(40, 90)))
    mask = small.filter(ImageFilter.GaussianBlur(2)).resize(page.size, Image.Resampling.BILINEAR)
    brown = Image.merge(
        "RGB",
        [
            mask,
            mask.point(lambda v: max(0, int(255 - (255 - v) * 1.15))),
            mask.point(lambda v: max(0, int(255 - (255 - v) * 1.45))),
        ],
    )
    page.paste(ImageChops.multiply(page, brown))


def text_column_layer(
    rng, artists: Artists, height: int, char_size: int, lines: int, gap: int
) -> Image.Image:
    """Columns of vertical text, right to left, as an L mask (255 = ink)."""
    width = lines * (char_size + gap)
    layer = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(layer)
    font = artists.japanese_font(char_size)
    per_column = max(1, height // char_size - 1)
    pool = KANA * 3 + KANJI
    for column in range(lines):
        length = per_column if rng.random() < 0.8 else int(rng.integers(1, per_column + 1))
        x = width - (column + 1) * (char_size + gap) + gap // 2
        shade = int(rng.integers(190, 256))
        for row, i in enumerate(rng.integers(0, len(pool), length)):
            draw.text((x, row * char_size), pool[i], font=font, fill=shade)
    return layer


def ink(page: Image.Image, mask: Image.Image, at: tuple[int, int]) -> None:
    page.paste(Image.new("RGB", mask.size, INK), at, mask)


def _drawing(rng, artists: Artists, concept: Concept, artist: str, size: int) -> Image.Image:
    """One concept in the page's style: RGB on white, ready to multiply onto paper."""
    weight = int(rng.integers(300, 701))
    art = artists.draw(concept, artist, size, weight=weight)
    art = art.rotate(float(rng.normal(0, 8)), resample=Image.Resampling.BICUBIC, expand=True)
    visible = alpha_bbox(art)  # rotation adds transparent corners: the box is the ink's
    if visible:
        art = art.crop(visible)
    if artist == "noto":
        alpha = np.asarray(art.getchannel("A"), np.float32) / 255
        texture = rng.uniform(0.55, 1.0, alpha.shape[0] * alpha.shape[1]).reshape(alpha.shape)
        ink = 255 - alpha * texture * 235
        layer = Image.fromarray(ink.astype(np.uint8), "L").convert("RGB")
        return ImageChops.multiply(layer, Image.new("RGB", layer.size, (255, 248, 240)))
    white = Image.new("RGB", art.size, (255, 255, 255))
    coloured = Image.alpha_composite(white.convert("RGBA"), art).convert("RGB")
    coloured = ImageEnhance.Color(coloured).enhance(float(rng.uniform(0.45, 0.85)))
    coloured = ImageEnhance.Brightness(coloured).enhance(float(rng.uniform(0.95, 1.05)))
    white.paste(coloured, (0, 0), art.getchannel("A"))  # outside the drawing: untouched paper
    return white


def draw_illustration(
    rng,
    artists: Artists,
    concepts: list[Concept],
    artist: str,
    box: tuple[int, int, int, int],
    page: Image.Image,
) -> tuple[tuple[int, int, int, int], list[tuple[int, int, int, int]]]:
    """Draw 1-4 concepts inside `box` on the page; returns the illustration's bbox and the
    box of each concept's figure."""
    x0, y0, x1, y1 = box
    width, height = x1 - x0, y1 - y0
    n = len(concepts)
    cols = 1 if n == 1 else 2
    rows = (n + cols - 1) // cols
    cell_w, cell_h = width // cols, height // rows
    drawn = []
    for i, concept in enumerate(concepts):
        cx = x0 + (i % cols) * cell_w
        cy = y0 + (i // cols) * cell_h
        size = max(8, int(min(cell_w, cell_h) * rng.uniform(0.55, 0.85)))
        art = _drawing(rng, artists, concept, artist, size)
        if art.width > cell_w or art.height > cell_h:
            art = art.resize((max(1, min(art.width, cell_w)), max(1, min(art.height, cell_h))))
        ax = cx + int(rng.integers(0, cell_w - art.width + 1))
        ay = cy + int(rng.integers(0, cell_h - art.height + 1))
        _multiply(page, art, (ax, ay))
        drawn.append((ax, ay, ax + art.width, ay + art.height))
    if rng.random() < 0.5:  # a ruled frame around the picture
        draw = ImageDraw.Draw(page)
        draw.rectangle(box, outline=INK, width=int(rng.integers(2, 5)))
        return box, drawn
    return (
        min(b[0] for b in drawn),
        min(b[1] for b in drawn),
        max(b[2] for b in drawn),
        max(b[3] for b in drawn),
    ), drawn


def make_page(
    rng: np.random.Generator, artists: Artists, pick_concepts, size: tuple[int, int] = PAGE_SIZE
) -> tuple[Image.Image, PageTruth]:
    """One page and its ground truth. `pick_concepts(rng, n)` chooses the concepts drawn."""
    width, height = size
    scale = width / PAGE_SIZE[0]  # sizes below are for a 1600-pixel page
    px = lambda v: max(1, int(round(v * scale)))  # noqa: E731, RUF046 - numpy 1 rounds to floats
    page = paper(rng, size)
    kind = rng.choice(["text", "mixed", "full", "blank"], p=[0.3, 0.45, 0.15, 0.1])
    truth = PageTruth(str(kind), width, height)
    margin_x, margin_y = int(width * rng.uniform(0.07, 0.1)), int(height * rng.uniform(0.06, 0.09))
    inner = (margin_x, margin_y, width - margin_x, height - margin_y)
    draw = ImageDraw.Draw(page)

    if kind != "blank":
        line = px(rng.integers(3, 7))
        draw.rectangle(inner, outline=INK, width=line)  # the printed frame (匡郭)
        draw.rectangle(
            (inner[0] - px(12), inner[1] - px(12), inner[2] + px(12), inner[3] + px(12)),
            outline=INK,
            width=px(2),
        )
        fold_x = inner[0] + px(40) if rng.random() < 0.5 else inner[2] - px(40)  # 版心, the fold
        draw.line((fold_x, inner[1], fold_x, inner[3]), fill=INK, width=px(2))

    area = (inner[0] + px(60), inner[1] + px(30), inner[2] - px(60), inner[3] - px(30))
    area_w, area_h = area[2] - area[0], area[3] - area[1]
    char_size = max(6, px(rng.integers(34, 52)))
    gap = int(char_size * rng.uniform(0.35, 0.6))

    def text_block(x_right: int, y_top: int, y_bottom: int, columns: int) -> None:
        layer = text_column_layer(rng, artists, y_bottom - y_top, char_size, columns, gap)
        at = (x_right - layer.width, y_top)
        ink(page, layer, at)
        box = layer.getbbox()
        if box:
            truth.text_blocks.append(
                (at[0] + box[0], at[1] + box[1], at[0] + box[2], at[1] + box[3])
            )

    if kind == "text":
        text_block(area[2], area[1], area[3], area_w // (char_size + gap))
    elif kind == "mixed":
        count = int(rng.integers(1, 4))
        band_h = area_h // count
        text_cols = max(2, int(area_w * rng.uniform(0.25, 0.45)) // (char_size + gap))
        text_w = text_cols * (char_size + gap)
        text_block(area[2], area[1], area[3], text_cols)
        for i in range(count):
            free_w = max(px(160), area_w - text_w - px(40))
            w = int(free_w * rng.uniform(0.35, 1.0))
            h = int(band_h * rng.uniform(0.45, 0.92))
            x = area[0] + int(rng.integers(0, free_w - w + 1))
            y = area[1] + i * band_h + int(rng.integers(0, band_h - h + 1))
            _illustrate(rng, artists, pick_concepts, page, truth, (x, y, x + w, y + h))
    elif kind == "full":
        _illustrate(rng, artists, pick_concepts, page, truth, area)
    else:  # blank or damaged: stains, maybe a torn corner
        stains(rng, page, int(rng.integers(3, 12)), 1.6)
        if rng.random() < 0.5:
            cut = px(rng.integers(150, 500))
            corner = [(width, height), (width - cut, height), (width, height - cut)]
            draw.polygon(corner, fill=(20, 20, 20))

    if rng.random() < 0.3 and kind != "blank":  # bleed-through of the other side's text
        ghost = text_column_layer(rng, artists, area_h, char_size, 6, gap)
        ghost = ghost.transpose(Image.Transpose.FLIP_LEFT_RIGHT).point(lambda v: v // 9)
        page.paste(Image.new("RGB", ghost.size, (120, 100, 80)), (area[0], area[1]), ghost)
    stains(rng, page, int(rng.integers(0, 5)), 1.0)
    centre = float(rng.uniform(4, 12))  # the softness of a scan: a light 3x3 smoothing
    page = page.filter(ImageFilter.Kernel((3, 3), [1, 1, 1, 1, centre, 1, 1, 1, 1]))
    return page, truth


def _illustrate(rng, artists, pick_concepts, page, truth, box) -> None:
    artist = "noto" if rng.random() < 0.6 else "openmoji"
    n = int(rng.choice([1, 2, 3, 4], p=[0.4, 0.3, 0.2, 0.1]))
    concepts = pick_concepts(rng, n)
    bbox, figures = draw_illustration(rng, artists, concepts, artist, box, page)
    truth.illustrations.append(
        Illustration(bbox, [c.key for c in concepts], PAGE_STYLES[artist], figures)
    )
