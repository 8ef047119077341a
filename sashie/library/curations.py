"""Curations in: the regions a curator marked in another tool (a IIIF Curation, an
AnnotationPage or AnnotationList, a list of Web Annotations) become the library's items with
their captions, so that existing work seeds adaptation, the filter and the detector.

Each region names a canvas; the library's page on that canvas is found and the region is
scaled from the canvas's units to the page's pixels. A region that an item of the page
already covers (IoU at least MATCH_IOU) is that item; any other is cut from its page as a
new item (the `curated` detector: sashie/regions/curated.py) and encoded, the page's other
items untouched. Then each region's captions are added to its item. A canvas the library
does not hold is skipped with its reason: index its manifest first.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field

from ..errors import BadInput, SashieError
from ..ingest.indexer import AddReport
from ..regions.base import MIN_SIDE, BBox, iou
from ..regions.boxes import CanvasBox, read_regions
from ..sources.pages import indexed_page
from ..store.catalog import ItemRow
from .filtering import Filter
from .indexing import Indexing, index_pages
from .parts import Parts

MATCH_IOU = 0.8  # a region and an item this alike are one picture


@dataclass
class RegionImport:
    """What an import did: the regions read, the items they matched or made, the captions
    added, and each region skipped with its reason."""

    regions: int = 0
    items_found: int = 0
    items_made: int = 0
    annotations: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "regions": self.regions,
            "items_found": self.items_found,
            "items_made": self.items_made,
            "annotations": self.annotations,
            "skipped": [{"entry": e, "reason": r} for e, r in self.skipped],
        }


def import_regions(parts: Parts, keep_filter: Filter, path: str | os.PathLike) -> RegionImport:
    """Bring a file's regions in as items with their captions (see the module's text)."""
    try:
        boxes, skipped = read_regions(path)
    except BadInput as e:
        raise SashieError(str(e)) from None
    report = RegionImport(regions=len(boxes) + len(skipped), skipped=list(skipped))
    placed = _on_pages(parts, boxes, report.skipped)
    pages = {row.page_id: row for _, row, _ in placed}
    items = _page_items(parts, pages)
    new: dict[int, list[BBox]] = {}
    found: list[tuple[CanvasBox, int, BBox, int | None]] = []
    for box, row, bbox in placed:
        page_id = row.page_id
        item = _matching(items.get(page_id, []), bbox, MATCH_IOU)
        if item is None and bbox not in new.get(page_id, []):
            new.setdefault(page_id, []).append(bbox)
        found.append((box, page_id, bbox, item))
    report.items_found = len({item for *_, item in found if item is not None})
    report.items_made = sum(len(boxes) for boxes in new.values())
    if new:
        cut = _cut(parts, keep_filter, {page_id: pages[page_id] for page_id in new}, new, items)
        report.skipped += [(skip.uri[:200], skip.reason) for skip in cut.skipped]
        items = _page_items(parts, new)
    captioned: dict[int, set[str]] = {}
    for box, page_id, bbox, item in found:
        if item is None:
            item = _matching(items.get(page_id, []), bbox, 0.95)
            if item is None:  # its page could not be read again: skipped above, with why
                report.items_made -= 1
                continue
        captioned.setdefault(item, set()).update(box.captions)
    with parts.catalog.transaction() as tx:
        for item, captions in captioned.items():
            report.annotations += sum(tx.add_annotations([item], c) for c in sorted(captions))
    parts.catalog_changed()
    return report


def _on_pages(
    parts: Parts, boxes: list[CanvasBox], skipped: list[tuple[str, str]]
) -> list[tuple[CanvasBox, ItemRow, BBox]]:
    """Each region with its page (as a whole-page row) and its box in the page's pixels."""
    held = {meta.get("canvas"): page_id for page_id, _, _, meta in parts.catalog.pages()}
    wanted = {held[b.canvas] for b in boxes if b.canvas in held}
    rows = {row.page_id: row for row in parts.catalog.whole_pages(sorted(wanted))}
    out = []
    for box in boxes:
        row = rows.get(held.get(box.canvas, -1))
        if row is None:
            skipped.append(
                (box.canvas[:200], "no page of the library is on this canvas: index its manifest")
            )
            continue
        width, height = row.page_size
        canvas_w, canvas_h = row.metadata.get("canvas_width"), row.metadata.get("canvas_height")
        if not (type(canvas_w) is int and type(canvas_h) is int and canvas_w > 0 < canvas_h):
            canvas_w, canvas_h = width, height  # no canvas size recorded: the canvas is the page
        x, y, w, h = box.xywh
        sx, sy = width / canvas_w, height / canvas_h
        bbox = (
            max(0, round(x * sx)),
            max(0, round(y * sy)),
            min(width, round((x + w) * sx)),
            min(height, round((y + h) * sy)),
        )
        if bbox[2] - bbox[0] < MIN_SIDE or bbox[3] - bbox[1] < MIN_SIDE:
            skipped.append((box.canvas[:200], f"under {MIN_SIDE} pixels a side on its page"))
            continue
        out.append((box, row, bbox))
    return out


def _page_items(parts: Parts, page_ids: Iterable[int]) -> dict[int, list[tuple[int, str, BBox]]]:
    """The items of these pages: (item id, detector, box), by page."""
    return {page_id: parts.catalog.page_items(page_id) for page_id in page_ids}


def _matching(items: list[tuple[int, str, BBox]], bbox: BBox, least: float) -> int | None:
    """The item whose box is most like `bbox`, when at least `least` alike (IoU)."""
    best = max(items, key=lambda item: iou(item[2], bbox), default=None)
    return best[0] if best is not None and iou(best[2], bbox) >= least else None


def _cut(
    parts: Parts,
    keep_filter: Filter,
    rows: dict[int, ItemRow],
    new: dict[int, list[BBox]],
    items: dict[int, list[tuple[int, str, BBox]]],
) -> AddReport:
    """Cut and encode the new regions of these pages (`rows`: each as a whole-page row;
    their curated items kept); what the indexing did, the pages it could not read among it."""
    shares: dict[str, list[tuple[float, float, float, float]]] = {}
    for page_id, boxes in new.items():
        width, height = rows[page_id].page_size
        kept = [box for _, detector, box in items.get(page_id, []) if detector == "curated"]
        shares[rows[page_id].page] = [
            (x0 / width, y0 / height, x1 / width, y1 / height) for x0, y0, x1, y1 in kept + boxes
        ]
    refs = [indexed_page(row.page, row.source, row.metadata) for row in rows.values()]
    how = Indexing(
        regions="curated", detector_options={"curated": {"boxes": shares}}, recut=["curated"]
    )
    return index_pages(parts, keep_filter, refs, how)
