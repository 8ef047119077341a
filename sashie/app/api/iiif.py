"""The IIIF endpoints: a found region as a link a IIIF viewer opens at that region, and a set
of found regions as a IIIF Presentation 3 AnnotationPage. docs/iiif.md says what each
holds."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from .served import MAX_RESULTS, ItemId, ServedDep

MAX_ITEMS = MAX_RESULTS  # as many as a search shows
IIIF_JSON = 'application/ld+json;profile="http://iiif.io/api/presentation/3/context.json"'
Score = Annotated[float, Field(allow_inf_nan=False)]


class AnnotationsRequest(BaseModel):
    items: list[ItemId] = Field(min_length=1, max_length=MAX_ITEMS, description="best first")
    scores: list[Score] | None = Field(None, max_length=MAX_ITEMS, description="one per item")
    title: str = Field("sashie", min_length=1, max_length=500, description="e.g. the query")
    curation: bool = Field(False, description="a IIIF Curation JSON (cr:Curation) instead")


router = APIRouter()


@router.get("/api/items/{item_id}/iiif", summary="The item's region on its IIIF canvas")
def item_iiif(served: ServedDep, item_id: ItemId) -> dict:
    """Its canvas and manifest, its box on the canvas (xywh), the region as `canvas#xywh=`,
    a IIIF Image API URL of the region, and a Content State (with its encoding for a
    viewer's `?iiif-content=`). 404 for an item not from IIIF."""
    return served.lib.iiif_target(item_id)


@router.post("/api/iiif/annotations", summary="Found regions as a IIIF AnnotationPage")
def annotation_page_of(served: ServedDep, request: AnnotationsRequest) -> JSONResponse:
    """The items (a search's results, best first, with their scores) as a IIIF Presentation
    3 AnnotationPage; items not from IIIF are left out, and counted in the X-Sashie-Skipped
    header."""
    lib = served.lib
    export = lib.iiif_annotations(
        request.items, scores=request.scores, title=request.title, curation=request.curation
    )
    return _annotation_page(export.page, export.annotations, export.skipped, request.curation)


@router.get("/api/iiif/annotations", summary="Captioned or marked items as IIIF")
def annotations_of(
    served: ServedDep,
    caption: str | None = Query(None, min_length=1, max_length=500),
    mark: str | None = Query(None, pattern="^(keep|exclude)$"),
    curation: bool = Query(False, description="a IIIF Curation JSON (cr:Curation) instead"),
) -> JSONResponse:
    """The items with a caption, or marked keep or exclude, as a IIIF Presentation 3
    AnnotationPage or a IIIF Curation (give one of the two)."""
    export = served.lib.iiif_annotations(caption=caption, mark=mark, curation=curation)
    return _annotation_page(export.page, export.annotations, export.skipped, curation)


def _annotation_page(page: dict, annotations: int, skipped: int, curation: bool) -> JSONResponse:
    headers = {"X-Sashie-Annotations": str(annotations), "X-Sashie-Skipped": str(skipped)}
    media = "application/json" if curation else IIIF_JSON
    return JSONResponse(page, media_type=media, headers=headers)
