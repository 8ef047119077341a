"""What every region detector shares: boxes, regions, the clean-up of boxes, tiling.

A detector has a `name` and a `detect(image, page)` method that returns `Region`s, each a
bbox in page pixels (x0, y0, x1, y1, x1/y1 exclusive); `page` is the page's reference (its URI
and what its source says of it), for detectors that read regions from elsewhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from PIL import Image

from ..sources.pages import PageRef

BBox = tuple[int, int, int, int]  # x0, y0, x1, y1 in page pixels, x1/y1 exclusive


@dataclass(frozen=True)
class Region:
    bbox: BBox
    detector: str
    score: float = 1.0


def overlap(a: BBox, b: BBox) -> int:
    """The area two boxes share."""
    return max(0, min(a[2], b[2]) - max(a[0], b[0])) * max(0, min(a[3], b[3]) - max(a[1], b[1]))


def iou(a: BBox, b: BBox) -> float:
    """Intersection over union of two boxes."""
    inter = overlap(a, b)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


MIN_SIDE = 16  # pixels: smaller boxes are noise, and too small to embed
DUPLICATE_IOU = 0.9  # boxes this alike are one region, whichever detector proposed them
TILE_SIDE = 1024


def clean_regions(
    regions: Sequence[Region],
    page_size: tuple[int, int],
    *,
    duplicate_iou: float = DUPLICATE_IOU,
    by_score: bool = True,
) -> list[Region]:
    """Boxes clipped to the page; tiny ones dropped; of near-duplicates (IoU at or above
    `duplicate_iou`) the best-scoring is kept (the first given when `by_score` is False)."""
    width, height = page_size
    ordered = sorted(regions, key=lambda r: -r.score) if by_score else list(regions)
    kept: list[Region] = []
    for region in ordered:
        x0, y0, x1, y1 = region.bbox
        box = (max(0, x0), max(0, y0), min(width, x1), min(height, y1))
        if box[2] - box[0] < min(MIN_SIDE, width) or box[3] - box[1] < min(MIN_SIDE, height):
            continue
        if any(iou(box, k.bbox) >= duplicate_iou for k in kept):
            continue
        kept.append(Region(box, region.detector, region.score))
    return kept


def tile_boxes(
    page_size: tuple[int, int], side: int = TILE_SIDE, overlap: float = 0.25
) -> list[BBox]:
    """Overlapping square tiles covering a page larger than one tile (none otherwise)."""
    width, height = page_size
    if width <= side and height <= side:
        return []

    def starts(length: int) -> list[int]:
        if length <= side:
            return [0]
        count = int(np.ceil((length - side) / (side * (1 - overlap)))) + 1
        return [round(i * (length - side) / (count - 1)) for i in range(count)]

    return [
        (x, y, min(width, x + side), min(height, y + side))
        for y in starts(height)
        for x in starts(width)
    ]


class Detector(Protocol):
    name: str

    def detect(self, image: Image.Image, page: PageRef) -> list[Region]: ...
