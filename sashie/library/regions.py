"""`lib.regions`: the boxes a curator draws around a page's illustrations, and the library's
own region detector trained on them (the training itself: region_model.py)."""

from __future__ import annotations

from collections.abc import Callable, Collection
from pathlib import Path

from .parts import Parts
from .region_model import (
    STEPS,
    RegionTuning,
    boxes_from,
    checked_boxes,
    drawn_pages,
    tune_region_model,
)

Box = tuple[int, int, int, int]


class Regions:
    """The drawn boxes and the tuned detector of one library."""

    def __init__(self, parts: Parts) -> None:
        self._parts = parts

    def train(
        self,
        source: str | Path | None = None,
        *,
        labels: Collection[str] | None = None,
        steps: int = STEPS,
        seed: int = 0,
        on_step: Callable[[int, float], None] | None = None,
    ) -> RegionTuning:
        """Fine-tune the `learned` region detector on boxes a curator drew (a folder of VOC
        files, a COCO JSON file, or a IIIF AnnotationPage on the library's canvases; None:
        the boxes drawn on its pages, `draw`), saved in the library and used by its later
        indexing (`lib.recut()` cuts the pages again with it)."""
        parts = self._parts
        with parts.writing():
            if source is None:
                drawn = parts.catalog.drawn_boxes()
                pages, skipped = drawn_pages(
                    drawn, parts.catalog.whole_pages(drawn), parts.pictures.page
                )
            else:
                pages, skipped = boxes_from(source, parts.catalog.pages)
            return tune_region_model(
                parts.path, pages, skipped, labels=labels, steps=steps, seed=seed,
                progress=parts.progress, on_step=on_step,
            )  # fmt: skip

    def draw(self, item_id: int, boxes: object) -> list[Box]:
        """Record the illustrations a curator boxed on an item's page (x0, y0, x1, y1 in page
        pixels; an empty list: the page holds none), replacing those drawn before; the
        boxes as kept. `train()` learns from every page so drawn."""
        row = self._parts.item(item_id)
        kept = checked_boxes(boxes, row.page_size)
        with self._parts.catalog.transaction() as tx:
            tx.set_drawn_boxes(row.page_id, kept)
        return kept

    def drawn(self, item_id: int) -> list[Box] | None:
        """The boxes drawn on an item's page (None: its page was never boxed)."""
        row = self._parts.item(item_id)
        return self._parts.catalog.drawn_boxes([row.page_id]).get(row.page_id)

    def found(self, item_id: int) -> list[tuple[str, Box]]:
        """The boxes the detectors cut from an item's page, each with its detector's name
        (not `whole` or `tiles`, which are no picture's outline): where a curator starts
        boxing a page from."""
        row = self._parts.item(item_id)
        return [
            (detector, box)
            for _, detector, box in self._parts.catalog.page_items(row.page_id)
            if detector not in ("whole", "tiles")
        ]

    def forget(self, item_id: int) -> None:
        """Forget the boxes drawn on an item's page: it no longer teaches the detector."""
        row = self._parts.item(item_id)
        with self._parts.catalog.transaction() as tx:
            tx.set_drawn_boxes(row.page_id, None)

    def boxed_pages(self) -> int:
        """How many pages have boxes drawn (each teaches `train()`)."""
        return self._parts.catalog.drawn_page_count()
