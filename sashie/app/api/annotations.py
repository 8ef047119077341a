"""The annotation endpoints: captions people give items, listed and taken back."""

from __future__ import annotations

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from .served import MAX_RESULTS, ItemId, ServedDep

router = APIRouter()


class AnnotationRequest(BaseModel):
    items: list[ItemId] = Field(min_length=1, max_length=MAX_RESULTS)
    caption: str = Field(min_length=1, max_length=500)


@router.post("/api/annotations", summary="Caption items (for fine-tuning)")
def annotate(served: ServedDep, request: AnnotationRequest) -> dict:
    added = served.lib.annotations.add(request.items, request.caption)
    served.changed()
    return {"added": added, "annotations": served.lib.counts()["annotations"]}


@router.get("/api/annotations", summary="Every annotation")
def every_annotation(served: ServedDep) -> dict:
    return {"annotations": served.lib.annotations.list()}


@router.delete("/api/annotations", summary="Take captions back (from items, or everywhere)")
def unannotate(
    served: ServedDep,
    items: list[ItemId] = Query(default=[], max_length=MAX_RESULTS),
    caption: str | None = Query(None, min_length=1, max_length=500),
) -> dict:
    """?caption=C removes C everywhere, ?items=12&items=40 every caption of those items,
    both: C from those items."""
    removed = served.lib.annotations.remove(items or None, caption)
    served.changed()
    return {"removed": removed, "annotations": served.lib.counts()["annotations"]}
