"""`layout`: a region detector without learned weights, for printed and hand-written books.

On a copy of the page about 1000 pixels high it finds ink (dark, or coloured against the
paper), takes out ruled lines, recognizes columns of vertical text by their shape (a column's
characters, closed vertically, make a strip as narrow as a character and many times as tall),
and proposes as regions:
- boxes drawn by ruled lines (framed illustrations, the printed frame's panels);
- what ink is left once text and lines are gone, grouped at four distances (one character,
  three, six, twelve), so that a picture of several separate figures is proposed whole as
  well as figure by figure.
Proposals that take in text columns (a group that swallowed a column's end, the printed frame's
panel around the text) are dropped, as are near-duplicates; the page itself is the `whole`
detector's.
"""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image

from ..sources.pages import PageRef
from .base import BBox, Region, iou

WORKING_SIDE = 1000
GROUPINGS = (1.0, 3.0, 6.0, 12.0)  # dilation sizes, in character widths
DEFAULT_CHAR_WIDTH = 18  # at working scale, when a page has no text to measure
DUPLICATE_IOU = 0.85
MIN_COLUMN_CHARS = 4.0  # a text column is at least this many character widths long
TEXT_SHARE = 0.04  # a proposal whose box is more text-column ink than this is not a picture


def _boxes(mask: np.ndarray, min_area: int) -> list[BBox]:
    _, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    return [
        (int(x), int(y), int(x + w), int(y + h)) for x, y, w, h, _ in stats[1:] if w * h >= min_area
    ]


def ink_mask(rgb: np.ndarray) -> np.ndarray:
    """Ink against the local paper: darker than it, or more saturated (hand colouring)."""
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    paper = cv2.medianBlur(gray, 31)
    dark = cv2.divide(gray, paper, scale=255) < 200
    saturation = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)[..., 1]
    coloured = cv2.subtract(saturation, cv2.medianBlur(saturation, 31)) > 35
    return ((dark | coloured) * 255).astype(np.uint8)


def text_columns(ink: np.ndarray) -> tuple[np.ndarray, float]:
    """The mask of vertical text columns, and the character width measured from them."""
    closed = cv2.morphologyEx(
        ink, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_RECT, (1, 15))
    )
    count, labels, stats, _ = cv2.connectedComponentsWithStats(closed)
    widths = [w for _, _, w, h, _ in stats[1:] if h > 4 * w and w > 3]
    text = np.zeros_like(ink)
    if len(widths) < 3:
        return text, DEFAULT_CHAR_WIDTH
    char_width = float(np.median(widths))
    # a column is narrow, tall for its width, and at least a few characters long (shorter
    # upright strokes are often parts of pictures: towers, legs, windows)
    columns = [
        i
        for i in range(1, count)
        if stats[i, 3] > 2.5 * stats[i, 2]
        and stats[i, 2] < 1.6 * char_width
        and stats[i, 3] > MIN_COLUMN_CHARS * char_width
    ]
    text[np.isin(labels, columns)] = 255
    return text, char_width


def _text_share(box: BBox, columns: list[BBox], text_sum: np.ndarray, page_area: int) -> float:
    """The share of the box that is ink of text columns crossing its edge (a column wholly
    inside is more likely a picture's own stroke); for a panel of half the page or more (the
    printed frame) every column inside counts."""
    x0, y0, x1, y1 = box
    area = max(1, (x1 - x0) * (y1 - y0))

    def ink(a: int, b: int, c: int, d: int) -> int:
        return int(text_sum[d, c] - text_sum[b, c] - text_sum[d, a] + text_sum[b, a])

    if area >= page_area / 2:
        return ink(x0, y0, x1, y1) / area
    total = 0
    for cx0, cy0, cx1, cy1 in columns:
        ix0, iy0, ix1, iy1 = max(x0, cx0), max(y0, cy0), min(x1, cx1), min(y1, cy1)
        inside = cx0 >= x0 and cy0 >= y0 and cx1 <= x1 and cy1 <= y1
        if ix0 < ix1 and iy0 < iy1 and not inside:
            total += ink(ix0, iy0, ix1, iy1)
    return total / area


class LayoutDetector:
    name = "layout"

    def detect(self, image: Image.Image, page: PageRef | None = None) -> list[Region]:
        scale = min(1.0, WORKING_SIDE / max(image.size))
        small = (
            image
            if scale == 1.0
            else image.resize(
                (max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                Image.Resampling.BOX,
            )
        )
        rgb = np.asarray(small.convert("RGB"))
        height, width = rgb.shape[:2]
        ink = ink_mask(rgb)

        lines, proposals = _frames(ink)
        framed_boxes = set(proposals)

        rest = cv2.subtract(ink, cv2.dilate(lines, np.ones((5, 5), np.uint8)))
        rest = cv2.morphologyEx(rest, cv2.MORPH_OPEN, np.ones((2, 2), np.uint8))
        text, char_width = text_columns(rest)
        pictures = cv2.subtract(rest, text)
        for grouping in GROUPINGS:
            size = max(3, int(char_width * grouping))
            grown = cv2.dilate(pictures, cv2.getStructuringElement(cv2.MORPH_RECT, (size, size)))
            margin = size // 2  # give back what the dilation added
            proposals += [
                (
                    x0 + margin,
                    y0 + margin,
                    max(x0 + margin + 1, x1 - margin),
                    max(y0 + margin + 1, y1 - margin),
                )
                for x0, y0, x1, y1 in _boxes(grown, width * height // 600)
            ]

        # a picture is bigger than a character and holds more ink than a few stray strokes
        min_side, min_ink = 1.5 * char_width, 2.0 * char_width**2
        ink_sum = cv2.integral((pictures > 0).astype(np.uint8))
        text_sum = cv2.integral((text > 0).astype(np.uint8))
        columns = _boxes(
            cv2.morphologyEx(
                text, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_RECT, (1, 15))
            ),
            1,
        )
        kept: list[BBox] = []
        for box in proposals:
            x0, y0, x1, y1 = box
            if (x1 - x0) * (y1 - y0) > 0.9 * width * height:
                continue  # the page itself
            framed = box in framed_boxes
            if _text_share(box, columns, text_sum, width * height) > TEXT_SHARE:
                continue  # a group or panel that takes in text columns
            if not framed and (
                min(x1 - x0, y1 - y0) < min_side
                or ink_sum[y1, x1] - ink_sum[y0, x1] - ink_sum[y1, x0] + ink_sum[y0, x0] < min_ink
            ):
                continue
            if any(iou(box, other) > DUPLICATE_IOU for other in kept):
                continue
            kept.append(box)
        return [Region(_on_page(box, scale, image.size), self.name) for box in kept]


def _frames(ink: np.ndarray) -> tuple[np.ndarray, list[BBox]]:
    """The long straight lines of the ink (frames, rules) and the boxes they enclose."""
    height, width = ink.shape[:2]
    length = max(25, width // 20)
    lines = np.bitwise_or(
        cv2.morphologyEx(
            ink, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (length, 1))
        ),
        cv2.morphologyEx(
            ink, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, (1, length))
        ),
    )
    boxes = [
        b
        for b in _boxes(cv2.dilate(lines, np.ones((3, 3), np.uint8)), width * height // 400)
        if b[2] - b[0] > length and b[3] - b[1] > length
    ]
    return lines, boxes


def _on_page(box: BBox, scale: float, size: tuple[int, int]) -> BBox:
    """A box of the working copy in the page's pixels."""
    x0, y0, x1, y1 = (round(v / scale) for v in box)
    return (min(size[0], x0), min(size[1], y0), min(size[0], x1), min(size[1], y1))
