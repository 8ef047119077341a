"""Region detectors: a page image in, the boxes worth embedding out (bbox in page pixels).

A detector has a `name` and a `detect(page)` method. Detectors register by name in
`DETECTORS`; `load_detectors("whole,layout")` resolves a comma-separated list. This module
ships `whole`, the page itself; layout and zero-shot detectors plug in beside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

from PIL import Image

from .errors import SashieError

BBox = tuple[int, int, int, int]  # x0, y0, x1, y1 in page pixels, x1/y1 exclusive


@dataclass(frozen=True)
class Region:
    bbox: BBox
    detector: str
    score: float = 1.0


class Detector(Protocol):
    name: str

    def detect(self, page: Image.Image) -> list[Region]: ...


class WholePage:
    """The page itself as one item."""

    name = "whole"

    def detect(self, page: Image.Image) -> list[Region]:
        return [Region((0, 0, page.width, page.height), self.name)]


DETECTORS: dict[str, Callable[[], Detector]] = {"whole": WholePage}


def parse_detector_names(names: str | list[str] | tuple[str, ...]) -> list[str]:
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


def load_detectors(names: str | list[str] | tuple[str, ...]) -> list[Detector]:
    return [DETECTORS[name]() for name in parse_detector_names(names)]
