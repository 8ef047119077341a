"""Region detectors: a page image in, the boxes worth embedding out (bbox in page pixels).

A detector has a `name` and a `detect(image, page)` method; `page` is the page's reference
(its URI and what its source says of it), for detectors that read regions from elsewhere.
Detectors register by name in `DETECTORS`; `load_detectors("whole,layout")` resolves a
comma-separated list, and ready-made detector objects may be passed among the names. This
module ships `whole` (the page itself) and `tiles` (overlapping tiles of a very large page);
`layout` (layout.py, OpenCV) and `zeroshot` (zeroshot.py, transformers) load on first use.
Detector options (a zero-shot model, its prompt) are passed by detector name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol, Sequence

import numpy as np
from PIL import Image

from .errors import SashieError
from .sources import PageRef

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


def clean_regions(regions: Sequence[Region], page_size: tuple[int, int], *,
                  duplicate_iou: float = DUPLICATE_IOU, by_score: bool = True) -> list[Region]:
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


def tile_boxes(page_size: tuple[int, int], side: int = TILE_SIDE, overlap: float = 0.25
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

    return [(x, y, min(width, x + side), min(height, y + side))
            for y in starts(height) for x in starts(width)]


class Detector(Protocol):
    name: str

    def detect(self, image: Image.Image, page: PageRef) -> list[Region]: ...


class WholePage:
    """The page itself as one item."""

    name = "whole"

    def detect(self, image: Image.Image, page: PageRef) -> list[Region]:
        return [Region((0, 0, image.width, image.height), self.name)]


class Tiles:
    """Overlapping tiles of pages too large to be seen whole (a CLIP sees ~224 pixels)."""

    name = "tiles"

    def __init__(self, side: int = TILE_SIDE) -> None:
        self.side = side

    def detect(self, image: Image.Image, page: PageRef) -> list[Region]:
        return [Region(box, self.name) for box in tile_boxes(image.size, self.side)]


def _layout(**options) -> Detector:
    from .layout import LayoutDetector  # OpenCV is imported only when layout is used

    return LayoutDetector(**options)


def _zeroshot(**options) -> Detector:
    from .zeroshot import ZeroShotDetector  # the detector's weights load on first use

    return ZeroShotDetector(**options)


DETECTORS: dict[str, Callable[..., Detector]] = {
    "whole": WholePage, "tiles": Tiles, "layout": _layout, "zeroshot": _zeroshot}
DEFAULT_DETECTORS = "layout"


def parse_detector_names(names: str | Sequence[str]) -> list[str]:
    """Split and check a detector list such as "whole,layout"."""
    if isinstance(names, str):
        names = names.split(",")
    parsed = [n.strip() for n in names if n.strip()]
    if not parsed:
        raise SashieError("no region detector named; try --regions whole")
    unknown = [n for n in parsed if n not in DETECTORS]
    if unknown:
        raise SashieError(
            f"unknown region detector {unknown[0]!r}; known: {', '.join(sorted(DETECTORS))}"
        )
    return list(dict.fromkeys(parsed))


def load_detectors(names: str | Sequence[str | Detector],
                   options: dict[str, dict] | None = None) -> list[Detector]:
    """Detectors by name, each built with `options[name]`; detector objects among `names`
    are taken as they are."""
    options = options or {}
    if isinstance(names, str):
        names = [names]
    named = [n for n in names if isinstance(n, str)]
    objects = [n for n in names if not isinstance(n, str)]
    detectors = [DETECTORS[name](**options.get(name, {}))
                 for name in parse_detector_names(",".join(named))] if named else []
    if not detectors and not objects:
        raise SashieError("no region detector named; try --regions whole")
    return detectors + objects
