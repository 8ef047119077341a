"""Drawings as a woodblock printer cut them: thin ink outlines, hatching for the dark parts,
solid black where the drawing is black; and the line drawings of Openclipart beside the
emoji artists.

Openclipart (Debian's `openclipart-svg`, about 8,000 drawings by hundreds of people, dedicated
to the public domain) is rendered with `rsvg-convert` (Debian's `librsvg2-bin`); both are
needed only for the spread world (version 3).
"""

from __future__ import annotations

import shutil
import subprocess
from functools import lru_cache
from io import BytesIO
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from ...errors import SashieError

CLIPART_ROOT = Path("/usr/share/openclipart/svg")
CLIPART_CREDIT = (
    "Openclipart drawings (Debian package openclipart-svg), their authors' public-domain "
    "dedication (CC0)"
)
MAX_SVG_BYTES = 150_000  # larger files are mostly photographs traced in thousands of paths
_INSTALL = "apt-get install openclipart-svg librsvg2-bin"


@lru_cache(maxsize=1)
def clipart_files() -> tuple[Path, ...]:
    """The Openclipart drawings small enough to render quickly, in a fixed order."""
    if not CLIPART_ROOT.is_dir() or shutil.which("rsvg-convert") is None:
        raise SashieError(f"the spread world draws Openclipart's drawings: {_INSTALL}")
    return tuple(
        sorted(
            p
            for p in CLIPART_ROOT.rglob("*.svg")
            if p.is_file() and not p.is_symlink() and p.stat().st_size <= MAX_SVG_BYTES
        )
    )


@lru_cache(maxsize=32)  # a drawing is often drawn again at the same size (plates); bounded
def render_svg(path: Path, side: int) -> Image.Image | None:
    try:
        done = subprocess.run(
            ["rsvg-convert", "-w", str(side), "-h", str(side), "--keep-aspect-ratio", str(path)],
            capture_output=True,
            timeout=20,
            check=True,
        )
        image = Image.open(BytesIO(done.stdout)).convert("RGBA")
    except (subprocess.SubprocessError, OSError):
        return None
    box = image.getchannel("A").point(lambda a: 255 if a > 24 else 0).getbbox()
    if box is None or box[2] - box[0] < side // 6 or box[3] - box[1] < side // 6:
        return None
    return image.crop(box)


def clipart(rng: np.random.Generator, side: int) -> Image.Image:
    """A random Openclipart drawing as RGBA, about `side` pixels on its longer side."""
    files = clipart_files()
    side = max(24, int(side))
    for _ in range(20):  # a few files render empty or fail: take the next draw
        image = render_svg(files[int(rng.integers(len(files)))], min(512, side))
        if image is not None:
            if max(image.size) != side:
                ratio = side / max(image.size)
                size = (max(1, round(image.width * ratio)), max(1, round(image.height * ratio)))
                image = image.resize(size, Image.Resampling.BILINEAR)
            return image
    raise SashieError("Openclipart's drawings do not render; check rsvg-convert")


def line_art(
    art: Image.Image, rng: np.random.Generator, *, keep_colour: bool = False, tone: bool = False
) -> Image.Image:
    """An RGBA drawing cut as a woodblock: an RGB layer on white, to multiply onto paper.

    Edges of shape and colour become thin outlines, dark fills become hatching (crossed when
    darker), black stays black; or, a third of the time, the outlines alone, as a fine line
    drawing is cut. With `keep_colour`, pale washes of the drawing's colours lie under the
    lines, as in hand-coloured prints. With `tone`, the drawing is printed as a later book
    prints its engravings: every shade in fine dots and short strokes, under the outlines."""
    rgba = np.asarray(art.convert("RGBA"), np.float32) / 255
    alpha = rgba[..., 3]
    rgb = rgba[..., :3] * alpha[..., None] + (1 - alpha[..., None])
    lum = rgb @ np.array([0.299, 0.587, 0.114], np.float32)
    gx = cv2.Sobel(lum, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(lum, cv2.CV_32F, 0, 1, ksize=3)
    edges = np.hypot(gx, gy) > float(rng.uniform(0.35, 0.7))
    shape = (alpha > 0.5).astype(np.uint8)
    outline = shape - cv2.erode(shape, np.ones((3, 3), np.uint8))
    ink = edges | outline.astype(bool)
    outlines_only = rng.random() < 0.33
    if not outlines_only and rng.random() < 0.4:  # a heavier line
        ink = cv2.dilate(ink.astype(np.uint8), np.ones((2, 2), np.uint8)).astype(bool)
    darkness = (1 - lum) * alpha
    if tone:
        return _engraved(ink, darkness, alpha, rng)
    height, width = lum.shape
    ys, xs = np.mgrid[0:height, 0:width]
    period = int(rng.integers(4, 8))
    one_way = (xs + ys) % period == 0
    other_way = (xs - ys) % period == 0
    # dark fills: their rim stays black, their inside is hatched, crossed where darker (a
    # block rarely prints large black areas; now and then it does)
    black = (darkness > 0.88).astype(np.uint8)
    inside = cv2.erode(black, np.ones((5, 5), np.uint8)).astype(bool)
    if rng.random() < 0.2:
        inside[:] = False
    if not outlines_only:
        ink |= black.astype(bool) & ~inside
        ink |= (darkness > 0.35) & one_way
        ink |= ((darkness > 0.6) & ~inside | inside & (rng.random() < 0.5)) & other_way
    strength = rng.uniform(0.75, 1.0, ink.shape).astype(np.float32)  # the block's uneven ink
    dark = np.where(ink, 1 - strength * 0.88, 1.0)
    if keep_colour:
        wash = 1 - (1 - rgb) * float(rng.uniform(0.3, 0.55))
        layer = wash * dark[..., None]
    else:
        layer = np.repeat(dark[..., None], 3, axis=2)
    return Image.fromarray((np.clip(layer, 0, 1) * 255).astype(np.uint8), "RGB")


def _engraved(
    ink: np.ndarray, darkness: np.ndarray, alpha: np.ndarray, rng: np.random.Generator
) -> Image.Image:
    """Shades as dots and short strokes whose density follows the drawing's darkness (pale
    fills lightly shaded too, as an engraver models a form), with the outlines on top."""
    shade = np.clip(
        darkness * float(rng.uniform(0.6, 1.1)) + alpha * float(rng.uniform(0.05, 0.3)), 0, 1
    )
    grain = rng.random(shade.shape).astype(np.float32)
    if rng.random() < 0.5:  # strokes along one direction rather than dots
        blurred = cv2.blur(grain, (1, int(rng.integers(3, 7))))
        span = max(1e-6, float(blurred.max() - blurred.min()))
        grain = ((blurred - blurred.min()) / span).astype(np.float32)
    dots = shade > grain * 1.15
    strength = rng.uniform(0.6, 1.0, ink.shape).astype(np.float32)
    dark = np.where(ink | dots, 1 - strength * 0.85, 1.0)
    layer = np.repeat(dark[..., None], 3, axis=2)
    return Image.fromarray((np.clip(layer, 0, 1) * 255).astype(np.uint8), "RGB")
