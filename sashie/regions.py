"""Region detectors: a page image in, the boxes worth embedding out (bbox in page pixels).

A detector has a `name` and a `detect(image, page)` method; `page` is the page's reference
(its URI and what its source says of it), for detectors that read regions from elsewhere.
Detectors register by name in `DETECTORS`; `load_detectors("whole,layout")` resolves a
comma-separated list, and ready-made detector objects may be passed among the names. This
module ships `whole`, the page itself; layout and zero-shot detectors plug in beside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol, Sequence

from PIL import Image

from .errors import SashieError
from .sources import PageRef

BBox = tuple[int, int, int, int]  # x0, y0, x1, y1 in page pixels, x1/y1 exclusive


@dataclass(frozen=True)
class Region:
    bbox: BBox
    detector: str
    score: float = 1.0


def iou(a: BBox, b: BBox) -> float:
    """Intersection over union of two boxes."""
    x0, y0, x1, y1 = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    inter = max(0, x1 - x0) * max(0, y1 - y0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


class Detector(Protocol):
    name: str

    def detect(self, image: Image.Image, page: PageRef) -> list[Region]: ...


class WholePage:
    """The page itself as one item."""

    name = "whole"

    def detect(self, image: Image.Image, page: PageRef) -> list[Region]:
        return [Region((0, 0, image.width, image.height), self.name)]


def _layout() -> Detector:
    from .layout import LayoutDetector  # OpenCV is imported only when layout is used

    return LayoutDetector()


DETECTORS: dict[str, Callable[[], Detector]] = {"whole": WholePage, "layout": _layout}


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


def load_detectors(names: str | Sequence[str | Detector]) -> list[Detector]:
    """Detectors by name; detector objects among `names` are taken as they are."""
    if isinstance(names, str):
        return [DETECTORS[name]() for name in parse_detector_names(names)]
    named = [n for n in names if isinstance(n, str)]
    objects = [n for n in names if not isinstance(n, str)]
    detectors = [DETECTORS[name]() for name in parse_detector_names(named)] if named else []
    if not detectors and not objects:
        raise SashieError("no region detector named; try --regions whole")
    return detectors + objects
