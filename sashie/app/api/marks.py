"""The filter's endpoints: people's keep/exclude marks on items, given and taken back."""

from __future__ import annotations

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from .served import MAX_RESULTS, ItemId, ServedDep

router = APIRouter()


class MarkRequest(BaseModel):
    items: list[ItemId] = Field(min_length=1, max_length=MAX_RESULTS)
    keep: bool


@router.post("/api/marks", summary="Mark items keep/exclude for the filter")
def mark(served: ServedDep, request: MarkRequest) -> dict:
    served.lib.filter.mark(request.items, [request.keep] * len(request.items), "web")
    served.changed()
    counts = served.lib.counts()
    return {
        "marked": len(request.items),
        "keep": counts["marked_keep"],
        "exclude": counts["marked_exclude"],
    }


@router.delete("/api/marks", summary="Forget keep/exclude marks of items")
def unmark(
    served: ServedDep, items: list[ItemId] = Query(min_length=1, max_length=MAX_RESULTS)
) -> dict:
    removed = served.lib.filter.unmark(items)
    served.changed()
    counts = served.lib.counts()
    return {
        "removed": removed,
        "keep": counts["marked_keep"],
        "exclude": counts["marked_exclude"],
    }
