"""The printings world (issue 41): pictures printed again in other books, each time
differently, beside pictures that only look alike.

A block is a design (two or three of the world's concepts, each drawn by one artist at a
place, size and tilt, over a ground of brush strokes, maybe in a frame) cut as a woodblock
(woodblock.py `line_art`). Its first printing is the original; later printings are:

    impression  the same block printed again: ink spread or thinned, lines broken where the
                block wore, a softer or harder print
    recut       the design cut anew by another hand: every line displaced a little (a smooth
                random warp), cut with other line weights and hatching
    mirror      a copy cut from a print laid face down: the picture mirrored, printed again
    crop        part of the picture (55-85 % of it) fitted into another frame
    colouring   the same print, washed with colours by hand

A near miss draws the same concepts in another design (another artist, other places): the
same subject, not the same picture, which must not be matched. Unique pictures are printed
once. Every picture is printed on a plate of paper, scaled and slightly turned, half of
them beside a column of text, in one of the world's books (folders of pages, each book a
year in books.csv: originals in earlier books than their reprints).

    make_printings_world(out, blocks=60, seed=0)

writes OUT/pages/bookNN/NNNN.jpg, OUT/books.csv and OUT/printings.jsonl: one line a page,
{"page", "block" (null for a unique picture), "kind" ("original", a kind above, "nearmiss",
"unique"), "concepts"}. Same seed, same bytes.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageOps
from tqdm import tqdm

from ...errors import SashieError
from .artists import Artists, Concept, alpha_bbox
from .pages import INK, ink, text_column_layer, tone
from .vocab import vocabulary
from .woodblock import line_art

KINDS = ("impression", "recut", "mirror", "crop", "colouring")
SIDE = 520  # pixels a block's picture is drawn at
BOOKS = 24


@dataclass(frozen=True)
class Figure:
    concept: Concept
    artist: str
    at: tuple[int, int]
    size: int
    tilt: float


@dataclass(frozen=True)
class Design:
    """What a block shows: its figures, its ground strokes and whether it is framed."""

    figures: tuple[Figure, ...]
    ground: tuple[tuple[int, int, int, int], ...]
    framed: bool


def design(rng: np.random.Generator, concepts: list[Concept], artist: str | None = None) -> Design:
    """A picture of `concepts`, laid out at random (by one artist, chosen when None)."""
    artist = artist or ("noto" if rng.random() < 0.5 else "openmoji")
    figures = []
    for concept in concepts:
        size = int(SIDE * rng.uniform(0.3, 0.5))
        at = (int(rng.integers(10, SIDE - size - 10)), int(rng.integers(10, SIDE - size - 10)))
        figures.append(Figure(concept, artist, at, size, float(rng.normal(0, 8))))
    ground = []
    for _ in range(int(rng.integers(4, 10))):
        x, y = int(rng.integers(0, SIDE - 60)), int(rng.integers(SIDE // 2, SIDE - 10))
        ground.append((x, y, x + int(rng.integers(30, 160)), y + int(rng.integers(-12, 12))))
    return Design(tuple(figures), tuple(ground), bool(rng.random() < 0.5))


def cut(plan: Design, artists: Artists, rng: np.random.Generator, warp: float = 0.0) -> Image.Image:
    """The design cut as a woodblock and printed: RGB on white, SIDE x SIDE. `warp`: pixels
    each line is displaced by (a re-cut by another hand)."""
    art = Image.new("RGBA", (SIDE, SIDE), (0, 0, 0, 0))
    for figure in plan.figures:
        drawing = artists.draw(figure.concept, figure.artist, figure.size)
        drawing = drawing.rotate(figure.tilt, resample=Image.Resampling.BICUBIC, expand=True)
        visible = alpha_bbox(drawing)
        if visible is None:
            continue
        drawing = drawing.crop(visible)
        drawing.thumbnail((SIDE - figure.at[0], SIDE - figure.at[1]))
        art.alpha_composite(drawing, figure.at)
    draw = ImageDraw.Draw(art)
    for x0, y0, x1, y1 in plan.ground:
        draw.line((x0, y0, (x0 + x1) // 2, y0 - 6, x1, y1), fill=(40, 30, 20, 255), width=3)
    if plan.framed:
        draw.rectangle((4, 4, SIDE - 5, SIDE - 5), outline=(30, 25, 20, 255), width=5)
    if warp:
        art = _warped(art, rng, warp)
    return line_art(art, rng)


def _warped(image: Image.Image, rng: np.random.Generator, amount: float) -> Image.Image:
    """The image displaced by a smooth random field of about `amount` pixels."""
    coarse = rng.normal(0, amount, (2, 6, 6)).astype(np.float32)
    dx, dy = (cv2.resize(c, image.size, interpolation=cv2.INTER_CUBIC) for c in coarse)
    ys, xs = np.mgrid[0 : image.height, 0 : image.width].astype(np.float32)
    moved = cv2.remap(np.asarray(image), xs + dx, ys + dy, cv2.INTER_LINEAR, borderValue=0)
    return Image.fromarray(moved, "RGBA")


def impression(print_: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Another impression of the block: ink spread or thinned, the worn block's broken
    lines, softer or harder."""
    grey = np.asarray(print_.convert("L"))
    if rng.random() < 0.5:
        grey = cv2.erode(grey, np.ones((2, 2), np.uint8))  # ink spreads: dark lines grow
    else:
        grey = cv2.dilate(grey, np.ones((2, 2), np.uint8))  # a dry print: lines thin
    wear = cv2.resize(rng.random((SIDE // 8, SIDE // 8)).astype(np.float32), (SIDE, SIDE))
    broken = wear > float(rng.uniform(0.8, 0.9))  # where the block wore, lines break
    grey = np.where(broken, np.maximum(grey, 200), grey).astype(np.uint8)
    out = Image.fromarray(grey, "L").filter(ImageFilter.GaussianBlur(float(rng.uniform(0.3, 1.0))))
    return out.convert("RGB")


def colouring(print_: Image.Image, rng: np.random.Generator) -> Image.Image:
    """The print washed with a few colours by hand: soft patches under the lines."""
    wash = Image.new("RGB", print_.size, (255, 255, 255))
    draw = ImageDraw.Draw(wash)
    for _ in range(int(rng.integers(3, 7))):
        colour = tuple(int(v) for v in rng.integers(120, 240, 3))
        x, y = (int(v) for v in rng.integers(0, SIDE - 80, 2))
        w, h = (int(v) for v in rng.integers(80, 260, 2))
        draw.ellipse((x, y, x + w, y + h), fill=colour)
    wash = wash.filter(ImageFilter.GaussianBlur(12))
    return ImageChops.multiply(print_, wash)


def cropped(print_: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Part of the picture (55-85 % of its area) fitted into a new frame."""
    share = float(rng.uniform(0.55, 0.85))
    if rng.random() < 0.5:
        w, h = int(SIDE * share), SIDE
    else:
        w, h = SIDE, int(SIDE * share)
    x, y = int(rng.integers(0, SIDE - w + 1)), int(rng.integers(0, SIDE - h + 1))
    part = print_.crop((x, y, x + w, y + h))
    framed = Image.new("RGB", (w + 24, h + 24), (255, 255, 255))
    framed.paste(part, (12, 12))
    ImageDraw.Draw(framed).rectangle((2, 2, w + 21, h + 21), outline=INK, width=4)
    return framed


def printed(kind: str, plan: Design, original: Image.Image, artists: Artists, rng) -> Image.Image:
    """A later printing of the block whose first print is `original`."""
    if kind == "impression":
        return impression(original, rng)
    if kind == "recut":
        return cut(plan, artists, rng, warp=float(rng.uniform(3, 6)))
    if kind == "mirror":
        return impression(ImageOps.mirror(original), rng)
    if kind == "crop":
        return cropped(original, rng)
    if kind == "colouring":
        return colouring(original, rng)
    raise ValueError(kind)


def plate(picture: Image.Image, artists: Artists, rng: np.random.Generator) -> Image.Image:
    """The picture printed on a page of paper: scaled, slightly turned, maybe beside a
    column of text."""
    scale = float(rng.uniform(0.55, 1.1))
    picture = picture.resize(
        (max(8, int(picture.width * scale)), max(8, int(picture.height * scale)))
    )
    picture = picture.rotate(
        float(rng.normal(0, 2)), resample=Image.Resampling.BICUBIC, expand=True, fillcolor="white"
    )
    text = rng.random() < 0.5
    margin = int(rng.integers(30, 70))
    column = 70 if text else 0
    size = (picture.width + 2 * margin + column, picture.height + 2 * margin)
    page = _paper(rng, size)
    page.paste(
        ImageChops.multiply(
            page.crop((margin, margin, margin + picture.width, margin + picture.height)), picture
        ),
        (margin, margin),
    )
    if text:
        layer = text_column_layer(rng, artists, picture.height, 40, 1, 20)
        ink(page, layer, (size[0] - margin // 2 - layer.width, margin))
    return page.filter(ImageFilter.GaussianBlur(0.5))


def _paper(rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    """A plate's own paper: blotches and grain of its own (the page world's few shared
    textures, cut at random places, would give two plates the same grain to match on)."""
    width, height = size
    slow = rng.normal(0, 4.5, (height // 64 + 2, width // 64 + 2)).astype(np.float32)
    grain = rng.normal(0, 9, (height // 2 + 1, width // 2 + 1)).astype(np.float32)
    light = (
        230
        + cv2.resize(slow, size, interpolation=cv2.INTER_CUBIC)
        + cv2.resize(grain, size, interpolation=cv2.INTER_LINEAR)
    )
    return tone(rng, Image.fromarray(np.clip(light, 0, 255).astype(np.uint8), "L"))


def make_printings_world(
    out: str | os.PathLike, *, blocks: int = 60, seed: int = 0, progress: bool = False
) -> Path:
    """Draw a printings world of `blocks` blocks (each printed 2-4 times, half with a near
    miss) and as many unique pictures into `out`."""
    out = Path(out)
    if blocks < 1:
        raise SashieError("a printings world needs at least one block")
    if out.exists() and any(out.iterdir()):
        raise SashieError(f"{out} exists and is not empty; choose a new folder")
    rng = np.random.default_rng([seed, 41])
    artists, vocab = Artists(), vocabulary()
    concepts = list(vocab.concepts)
    years = sorted(int(y) for y in rng.integers(1600, 1880, BOOKS))
    jobs: list[tuple[int | None, str, list[Concept]]] = []
    # unique pictures show other concepts than the blocks': where a figure is one artist's
    # drawing of a concept, two pictures of it share that figure line for line
    order = rng.permutation(len(concepts))
    others = [concepts[int(i)] for i in order[len(order) // 2 :]]
    concepts = [concepts[int(i)] for i in order[: len(order) // 2]]
    for block in range(blocks):
        subject = [
            concepts[int(i)]
            for i in rng.choice(len(concepts), int(rng.integers(2, 4)), replace=False)
        ]
        kinds = ["original"] + [
            KINDS[int(i)] for i in rng.choice(len(KINDS), int(rng.integers(1, 4)), replace=False)
        ]
        kinds += ["nearmiss"] if rng.random() < 0.5 else []
        jobs += [(block, kind, subject) for kind in kinds]
    for _ in range(blocks):
        subject = [
            others[int(i)] for i in rng.choice(len(others), int(rng.integers(2, 4)), replace=False)
        ]
        jobs.append((None, "unique", subject))
    plans: dict[int, tuple[Design, Image.Image]] = {}
    lines, counts = [], [0] * BOOKS
    for number, (block, kind, subject) in enumerate(
        tqdm(jobs, desc="printings world", unit="page", disable=not progress)
    ):
        here = np.random.default_rng([seed, 41, number])
        if block is None:
            picture = cut(design(here, subject), artists, here)
        elif kind == "nearmiss":  # the same subject by the other artist, laid out anew
            artist = "openmoji" if plans[block][0].figures[0].artist == "noto" else "noto"
            picture = cut(design(here, subject, artist), artists, here)
        elif kind == "original":
            plan = design(here, subject)
            plans[block] = (plan, cut(plan, artists, here))
            picture = plans[block][1]
        else:
            plan, original = plans[block]
            picture = printed(kind, plan, original, artists, here)
        book = (
            int(here.integers(0, BOOKS // 2))
            if kind == "original"
            else int(here.integers(BOOKS // 3, BOOKS))
        )
        name = f"pages/book{book:02d}/{counts[book]:04d}.jpg"
        counts[book] += 1
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        plate(picture, artists, here).save(out / name, "JPEG", quality=88)
        lines.append(
            json.dumps(
                {"page": name, "block": block, "kind": kind, "concepts": [c.key for c in subject]}
            )
        )
    (out / "printings.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    with open(out / "books.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["folder", "title", "date"])
        for book, year in enumerate(years):
            if counts[book]:
                writer.writerow([f"book{book:02d}", f"Book {book:02d}", str(year)])
    return out


def read_printings(world: str | os.PathLike) -> list[dict]:
    """A printings world's truth, one dict a page, `page` made an absolute path."""
    from . import read_truth

    return read_truth(world, "printings.jsonl")
