"""The printings endpoints: the other printings of an item's picture, and the whole library
grouped into sets of printings in the background (`sashie printings --all`)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Query
from starlette.concurrency import run_in_threadpool

from ...library import Library
from .served import ItemId, ServedDep

MAX_CANDIDATES = 200  # nearest items a printings request may ask to verify
PRINTINGS_AT_ONCE = 2  # printings requests verified together (each keeps one core busy)
_printing = asyncio.Semaphore(PRINTINGS_AT_ONCE)

router = APIRouter(tags=["printings"])


@router.get("/api/items/{item_id}/printings", summary="Other printings of the item's picture")
async def printings(
    served: ServedDep,
    item_id: ItemId,
    candidates: int = Query(50, ge=1, le=MAX_CANDIDATES, description="nearest items verified"),
) -> dict:
    """The items that show the same picture (sashie/library/printings.py), best evidence
    first, each with its thumbnail and where it is printed (book, title, year, page); and
    `set`: the set of printings `sashie printings --all` put the item in, in its books'
    order of years ([] when it is in none). Verification reads pictures and matches
    keypoints (a second or two): PRINTINGS_AT_ONCE run together, the others wait their
    turn."""
    lib = served.lib
    async with _printing:
        found = await run_in_threadpool(lib.printings, item_id, candidates=candidates)
    members = await run_in_threadpool(lib.printings.set_of, item_id)
    printed = lib.printings.books_of([item_id, *(p.item for p in found), *members])

    def shown(item: int) -> dict:
        return {"thumbnail": f"/api/items/{item}/thumbnail", **printed[item]}

    return {
        "item": item_id,
        "printed": printed[item_id],
        "printings": [p.as_dict() | shown(p.item) for p in found],
        "set": [{"item": item} | shown(item) for item in members],
    }


@router.get("/api/printings", summary="The sets of printings, and the grouping in progress")
def printing_sets(served: ServedDep) -> dict:
    """How many sets of printings the library holds and their items (`sets`, `grouped`),
    and `job`: the grouping this server runs (`{"state": "idle" | "running" | "done" |
    "failed", "stage", "done", "total", ...}`)."""
    sets, grouped = served.lib.printings.counts()
    return {"sets": sets, "grouped": grouped, "job": served.grouping.state}


@router.post(
    "/api/printings/group", summary="Group the library into sets of printings (background)"
)
def group(served: ServedDep) -> dict:
    """Start what `sashie printings LIB --all` does: items not looked at before are looked
    at and compared; poll `GET /api/printings` for its progress and report."""
    job, path = served.grouping, served.lib.path

    def work() -> dict:
        with Library(path) as worker:
            told = lambda done, total: job.progress("grouping", done, total)  # noqa: E731
            return worker.printings.group(progress=told).as_dict()

    job.start(work, served.changed)
    return {"job": job.state}
