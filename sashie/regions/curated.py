"""`curated`: regions someone drew elsewhere (a IIIF Curation, an AnnotationPage from another
tool) cut as items, so that a curator's existing work is searched, captioned and taught
(sashie/library/curations.py brings them in)."""

from __future__ import annotations

from PIL import Image

from ..sources.pages import PageRef
from .base import Region

Share = tuple[float, float, float, float]  # x0, y0, x1, y1 as shares of the page's sides


class CuratedRegions:
    """The given boxes of each page (by its URI), as shares of its width and height, so that
    they fit the page however large it is decoded."""

    name = "curated"

    def __init__(self, boxes: dict[str, list[Share]] | None = None) -> None:
        self.boxes = boxes or {}

    def detect(self, image: Image.Image, page: PageRef) -> list[Region]:
        w, h = image.size
        return [
            Region((round(x0 * w), round(y0 * h), round(x1 * w), round(y1 * h)), self.name)
            for x0, y0, x1, y1 in self.boxes.get(page.uri, [])
        ]
