"""`whole` (the page itself) and `tiles` (overlapping tiles of a very large page)."""

from __future__ import annotations

from PIL import Image

from ..sources.pages import PageRef
from .base import TILE_SIDE, Region, tile_boxes


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
