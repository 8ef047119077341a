"""A spread being drawn (`Spread`), and the scanner's part of it: the bed, the colour chart,
the ruler and the call-number label at varied places; the paper's age, a scan's softness and
a slight skew."""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from ...errors import SashieError
from .artists import Artists
from .pages import PageTruth, stains

CHART_COLOURS = [
    (30, 30, 30), (70, 40, 90), (250, 250, 250), (200, 60, 130), (210, 90, 50), (240, 220, 60),
    (40, 150, 80), (80, 140, 220), (90, 50, 160), (120, 120, 120), (180, 180, 180),
]  # fmt: skip
SPREAD_SIZE = (1600, 1200)  # NDL's scans of a spread, as in NDL-DocL
LABEL_WORDS = ["国立国会図書館", "タイトル", "請求記号", "巻", "ガラス使用", "古典籍", "和"]


class Spread:
    """One spread being drawn: the canvas, its truth, and the generator."""

    def __init__(self, rng: np.random.Generator, artists: Artists, pick, size) -> None:
        self.rng, self.artists, self.pick = rng, artists, pick
        self.width, self.height = size
        self.scale = self.width / SPREAD_SIZE[0]
        self.truth = PageTruth("spread", self.width, self.height)
        self.furniture: list[tuple[str, tuple[int, int, int, int]]] = []
        self.canvas = Image.new("RGB", size)
        self.draw = ImageDraw.Draw(self.canvas)
        self.bed_tone: tuple[int, ...] = (150, 150, 150)  # the scanner bed's colour
        self.printed = False  # a Meiji book: printed lines, figures in engraved tone
        self.across = False  # its lines set across, left to right (a science book)

    def px(self, value: float) -> int:
        return max(1, int(value * self.scale + 0.5))

    def uniform(self, low: float, high: float) -> float:
        return float(self.rng.uniform(low, high))

    def integer(self, low: int, high: int) -> int:
        return int(self.rng.integers(low, high + 1))


FONTS_MISSING = (
    "the spread world writes with brush fonts: apt-get install fonts-aoyagi-soseki "
    "fonts-kouzan-mouhitsu fonts-aoyagi-kouzan-t"
)


@lru_cache(maxsize=64)
def load_font(path: str, size: int) -> ImageFont.FreeTypeFont:
    try:
        return ImageFont.truetype(path, size)
    except OSError:
        raise SashieError(FONTS_MISSING) from None


def bed(s: Spread) -> None:
    kind = s.rng.choice(["grey", "dark", "light"], p=[0.6, 0.2, 0.2])
    base = {"grey": s.uniform(135, 180), "dark": s.uniform(25, 60), "light": s.uniform(205, 235)}
    tone = base[str(kind)] + s.rng.normal(0, 3, 3)
    noise = s.rng.normal(0, 2.5, (s.height // 4, s.width // 4, 1)).astype(np.float32)
    bed = np.clip(tone[None, None, :] + noise, 0, 255).astype(np.uint8)
    s.canvas.paste(Image.fromarray(bed, "RGB").resize((s.width, s.height)))
    s.bed_tone = tuple(int(v) for v in tone)


def furniture(s: Spread, book) -> None:
    """A ruler, a colour chart and a call-number label, each on the bed where there is room."""
    x0, y0, x1, y1 = book
    below, above = s.height - y1, y0
    if s.rng.random() < 0.8:
        room_below = below > s.px(40)
        tall = s.px(s.uniform(24, 40))
        y = (
            (s.height - tall - s.integer(0, max(0, below - tall)))
            if room_below
            else s.integer(0, max(0, above - tall))
        )
        _ruler(
            s,
            (0, y, s.width, y + tall)
            if s.rng.random() < 0.6
            else (s.integer(0, s.width // 3), y, s.width - s.integer(0, s.width // 4), y + tall),
        )
        if s.rng.random() < 0.8:
            lw, lh = s.px(s.uniform(280, 560)), s.px(s.uniform(22, 36))
            lx = s.integer(0, max(0, s.width - lw))
            ly = y - lh - s.px(2) if y > lh + 4 else y + tall + s.px(2)
            _label(s, (lx, ly, lx + lw, ly + lh))
    if s.rng.random() < 0.15:  # a chart standing on the bed beside the book
        cw, ch = s.px(s.uniform(40, 70)), s.px(s.uniform(300, 520))
        room = [(0, x0), (x1, s.width)]
        left, right = max(room, key=lambda r: r[1] - r[0])
        if right - left > cw:
            cx, cy = s.integer(left, right - cw), s.integer(0, max(0, s.height - ch))
            _chart(s, (cx, cy, cx + cw, cy + ch))
    elif s.rng.random() < 0.6:
        cw, ch = s.px(s.uniform(300, 520)), s.px(s.uniform(40, 70))
        cx = s.integer(
            max(0, (s.width - cw) // 2 - s.px(200)),
            min(s.width - cw, (s.width - cw) // 2 + s.px(200)),
        )
        cy = (
            s.integer(0, max(0, above - ch))
            if above > ch or s.rng.random() < 0.5
            else s.height - ch
        )
        _chart(s, (cx, cy, cx + cw, cy + ch))


def _ruler(s: Spread, box) -> None:
    x0, y0, x1, y1 = box
    tone = (250, 250, 240) if s.rng.random() < 0.7 else (235, 215, 120)
    s.draw.rectangle(box, fill=tone)
    step = s.px(s.uniform(5.5, 7))
    font = load_font(s.artists.paths["japanese"].as_posix(), max(8, (y1 - y0) // 3))
    number = s.integer(0, 40)
    for i, x in enumerate(range(x0 + step, x1, step)):
        tall = (y1 - y0) // (2 if i % 10 == 9 else 4 if i % 5 == 4 else 6)
        s.draw.line((x, y0, x, y0 + tall), fill=(20, 20, 20), width=1)
        if i % 10 == 9:
            number += 1
            label = str(number)
            if s.rng.random() < 0.3:
                s.draw.rectangle((x - 4, y0 + tall + 1, x + 10, y1 - 2), fill=(200, 40, 40))
            s.draw.text((x - 3, y0 + tall + 1), label, font=font, fill=(20, 20, 20))
    s.furniture.append(("ruler", box))


def _label(s: Spread, box) -> None:
    s.draw.rectangle(box, fill=(245, 245, 245), outline=(120, 120, 120))
    font = load_font(s.artists.paths["japanese"].as_posix(), max(8, (box[3] - box[1]) * 5 // 9))
    words = [LABEL_WORDS[int(i)] for i in s.rng.integers(0, len(LABEL_WORDS), 3)]
    text = "  ".join(words) + f" {s.integer(100, 999)}-{s.integer(1, 400)}"
    s.draw.text((box[0] + 6, box[1] + (box[3] - box[1]) // 5), text, font=font, fill=(25, 25, 25))
    s.furniture.append(("label", box))


def _chart(s: Spread, box) -> None:
    """Colour patches over a grey ramp, along the chart's longer side."""
    x0, y0, x1, y1 = box
    s.draw.rectangle(box, fill=(25, 25, 25))
    patches = len(CHART_COLOURS)
    along = (x1 - x0) >= (y1 - y0)
    step = ((x1 - x0) if along else (y1 - y0)) / patches
    half = ((y1 - y0) if along else (x1 - x0)) // 2
    for i, colour in enumerate(CHART_COLOURS):
        grey = (int(25 + 220 * i / (patches - 1)),) * 3
        a, b = int(i * step) + 1, int((i + 1) * step) - 1
        if along:
            s.draw.rectangle((x0 + a, y0 + 1, x0 + b, y0 + half - 1), fill=colour)
            s.draw.rectangle((x0 + a, y0 + half, x0 + b, y1 - 1), fill=grey)
        else:
            s.draw.rectangle((x0 + 1, y0 + a, x0 + half - 1, y0 + b), fill=colour)
            s.draw.rectangle((x0 + half, y0 + a, x1 - 1, y0 + b), fill=grey)
    s.furniture.append(("chart", box))


def age(s: Spread, book) -> Image.Image:
    book_part = s.canvas.crop(book)
    stains(s.rng, book_part, s.integer(0, 6), s.uniform(0.6, 1.4))
    s.canvas.paste(book_part, book[:2])
    centre = s.uniform(4, 12)
    return s.canvas.filter(ImageFilter.Kernel((3, 3), [1, 1, 1, 1, centre, 1, 1, 1, 1]))


def skew(s: Spread, image: Image.Image) -> tuple[Image.Image, PageTruth]:
    """Turn the whole scan a little; every box becomes the bounds of its turned corners."""
    angle = s.uniform(-1.2, 1.2)
    image = image.rotate(angle, resample=Image.Resampling.BILINEAR, fillcolor=s.bed_tone)
    cx, cy = s.width / 2, s.height / 2
    cos, sin = math.cos(math.radians(angle)), math.sin(math.radians(angle))

    def turn(box):
        xs, ys = [], []
        for x, y in ((box[0], box[1]), (box[2], box[1]), (box[0], box[3]), (box[2], box[3])):
            dx, dy = x - cx, y - cy  # PIL turns counter-clockwise on screen for angle > 0
            xs.append(cx + dx * cos + dy * sin)
            ys.append(cy - dx * sin + dy * cos)
        return (
            max(0, int(min(xs))), max(0, int(min(ys))),
            min(s.width, math.ceil(max(xs))), min(s.height, math.ceil(max(ys))),
        )  # fmt: skip

    truth = s.truth
    truth.text_blocks = [turn(b) for b in truth.text_blocks]
    for ill in truth.illustrations:
        ill.bbox = turn(ill.bbox)
        ill.figures = [turn(f) for f in ill.figures]
    truth.furniture = [(kind, turn(b)) for kind, b in s.furniture]
    return image, truth
