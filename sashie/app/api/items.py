"""The item endpoints: an item, its page and where it came from; its crop, its page and the
page's original file as images; the boxes a curator draws on its page."""

from __future__ import annotations

import io
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import Response
from PIL import Image
from pydantic import BaseModel, Field

from ...errors import BadInput, NotFound
from ...library import MAX_DRAWN
from ...sources.images import is_url, read_bytes
from .served import ItemId, ServedDep, cached_jpeg, web_link

MAX_ORIGINAL_BYTES = 512 * 2**20

router = APIRouter()


Corner = Annotated[float, Field(allow_inf_nan=False)]


class BoxesRequest(BaseModel):
    boxes: list[Annotated[list[Corner], Field(min_length=4, max_length=4)]] = Field(
        max_length=MAX_DRAWN,
        description="every illustration of the page, each [x0, y0, x1, y1] in page pixels "
        "(the item's page_size); [] says the page holds none",
    )


def _image_type(data: bytes) -> str | None:
    """The media type of image bytes, read from their header (None: not an image)."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return Image.MIME.get(image.format or "")
    except Exception:
        return None


def _boxes_reply(boxes: list | None, pages: int) -> dict:
    return {
        "boxes": [list(box) for box in boxes or []],
        "drawn": boxes is not None,
        "boxed_pages": pages,
    }


@router.get("/api/books", summary="The books: each manifest, folder or list, and its metadata")
def books(served: ServedDep) -> dict:
    return {"books": served.lib.books.list()}


@router.get("/api/books/{book_id}/pages", summary="A book's pages and the items found on each")
def book_pages(served: ServedDep, book_id: ItemId) -> dict:
    return {"book": book_id, "pages": served.lib.books.pages(book_id)}


@router.get("/api/items/{item_id}", summary="An item, its page and where it came from")
def item(served: ServedDep, item_id: ItemId) -> dict:
    row = served.lib.item(item_id)
    annotations = served.lib.annotations.list([item_id])
    marked, keep = served.lib.filter.marks([item_id])
    links = {
        "thumbnail": f"/api/items/{item_id}/thumbnail",
        "page": f"/api/items/{item_id}/page",
    }
    links["original"] = web_link(row.page) or f"/api/items/{item_id}/original"
    try:  # on a IIIF canvas: the region in the canvas's coordinates, and for a viewer
        target = served.lib.iiif_target(item_id)
    except NotFound:
        target = None
    iiif = None
    if target is not None:
        for name, key in (("canvas", "canvas"), ("iiif_region", "image_region")):
            if web_link(target[key]):
                links[name] = target[key]
        iiif = {k: target[k] for k in ("region", "xywh", "iiif_content")}
    return {
        "item": item_id,
        "page": row.page,
        "source": row.source,
        "bbox": list(row.bbox),
        "page_size": list(row.page_size),
        "detector": row.detector,
        "metadata": row.metadata,
        "links": links,
        "annotations": [a["caption"] for a in annotations],
        "mark": None if not len(marked) else ("keep" if keep[0] else "exclude"),
        "iiif": iiif,
    }


@router.get("/api/items/{item_id}/thumbnail", summary="The item's crop (JPEG)")
def item_thumbnail(
    served: ServedDep, item_id: ItemId, size: int = Query(256, ge=32, le=1024)
) -> Response:
    return cached_jpeg(served.thumbnail(item_id, size))


@router.get("/api/items/{item_id}/page", summary="The item's whole page (JPEG)")
def item_page(
    served: ServedDep, item_id: ItemId, size: int = Query(1400, ge=64, le=4000)
) -> Response:
    return cached_jpeg(served.page_image(item_id, size))


@router.get("/api/items/{item_id}/original", summary="The page's original file")
def item_original(served: ServedDep, item_id: ItemId) -> Response:
    """The file the page was indexed from, when it is still a regular file and an image
    (a library folder someone sent may name any path)."""
    row = served.lib.item(item_id)
    if is_url(row.page):
        raise HTTPException(404, "this page is on the web: see links.original")
    try:
        data = read_bytes(row.page, max_bytes=MAX_ORIGINAL_BYTES)
    except BadInput:
        raise HTTPException(404, "the page's file is no longer there") from None
    media_type = _image_type(data)
    if media_type is None:
        raise HTTPException(404, "the page's file is not an image")
    return Response(data, media_type=media_type)


@router.get("/api/items/{item_id}/page-boxes", summary="Illustrations boxed on the item's page")
def page_boxes(served: ServedDep, item_id: ItemId) -> dict:
    """The boxes drawn on the item's page, and (`found`) those its detectors cut, to
    start from."""
    reply = _boxes_reply(served.lib.regions.drawn(item_id), served.lib.regions.boxed_pages())
    found = served.lib.regions.found(item_id)
    reply["found"] = [{"box": list(box), "detector": name} for name, box in found]
    return reply


@router.put("/api/items/{item_id}/page-boxes", summary="Box the illustrations of a page")
def draw_page_boxes(served: ServedDep, item_id: ItemId, request: BoxesRequest) -> dict:
    """Every illustration of the item's page, to teach the region detector
    (`sashie regions train LIB`); replaces the boxes drawn on that page before."""
    boxes = served.lib.regions.draw(item_id, request.boxes)
    return _boxes_reply(boxes, served.lib.regions.boxed_pages())


@router.delete("/api/items/{item_id}/page-boxes", summary="Forget a page's drawn boxes")
def forget_page_boxes(served: ServedDep, item_id: ItemId) -> dict:
    served.lib.regions.forget(item_id)
    return _boxes_reply(None, served.lib.regions.boxed_pages())
