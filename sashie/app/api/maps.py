"""The map endpoints: what the map holds (its clusters), its points a viewport at a time as a
binary buffer, the items inside a lasso, and drawing it in the background (`sashie map`)."""

from __future__ import annotations

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field

from ...library import Library
from ...library.collection_map import LASSO_CORNERS, MOST_POINTS
from .served import ServedDep

SELECTED_SHOWN = 100_000  # items a lasso's answer lists (it counts all)

router = APIRouter(tags=["map"])

Coordinate = Field(ge=-1e6, le=1e6)


@router.get("/api/map", summary="The map: its clusters, and the drawing in progress")
def map_facts(served: ServedDep) -> dict:
    """`map`: the map's model, version, items and when it was drawn (null when the library
    has none: draw one with `POST /api/map/draw` or `sashie map LIB`); `clusters`: each
    cluster's centre, items, the model's words for it and its label-set class; `classes`:
    the newest label set's classes, as the points' class numbers count them from 1; `job`:
    the drawing this server runs."""
    lib = served.lib
    facts = lib.map.facts()
    clusters = lib.map.clusters() if facts else []
    classes = lib.map.class_names() if facts else []
    return {"map": facts, "clusters": clusters, "classes": classes, "job": served.mapping.state}


@router.get(
    "/api/map/points",
    summary="The map's points in a viewport (binary)",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
def map_points(
    served: ServedDep,
    x0: float = Query(-1e6, ge=-1e6, le=1e6),
    y0: float = Query(-1e6, ge=-1e6, le=1e6),
    x1: float = Query(1e6, ge=-1e6, le=1e6),
    y1: float = Query(1e6, ge=-1e6, le=1e6),
    limit: int = Query(200_000, ge=1, le=MOST_POINTS, description="points at most"),
) -> Response:
    """The points inside the box, at most `limit`, always the same ones for the same box
    (a fixed order of priority: a first view of a large library is an even sample, a closer
    one fills in). Little-endian: a 16-byte head (b"SMAP", count, total in the map, 0), then
    count x/y float32 pairs, count item ids (uint32), book ids (uint32, 0: none), years
    (float32, NaN: none), cluster numbers (uint16) and label-set classes (uint16, 0: none;
    else a place in `GET /api/map`'s `classes`, from 1)."""
    points = served.lib.map.points((x0, y0, x1, y1), limit)
    return Response(points.binary(), media_type="application/octet-stream")


class Lasso(BaseModel):
    polygon: list[tuple[float, float]] = Field(min_length=3, max_length=LASSO_CORNERS)


@router.post("/api/map/select", summary="The items inside a lasso")
def select(served: ServedDep, lasso: Lasso) -> dict:
    """The live items inside the polygon (map coordinates, even-odd rule): `count`, and
    `items` (the first SELECTED_SHOWN by id)."""
    items = served.lib.map.select(lasso.polygon)
    return {"count": len(items), "items": items[:SELECTED_SHOWN]}


@router.post("/api/map/draw", summary="Draw the map (background)")
def draw(served: ServedDep, redraw: bool = False) -> dict:
    """What `sashie map LIB` does: lay the map out (or, when there is one and not `redraw`,
    place the items indexed since); poll `GET /api/map` for its progress."""
    job, path = served.mapping, served.lib.path

    def work() -> dict:
        with Library(path) as worker:
            if redraw or not worker.map.exists():
                told = lambda done, total: job.progress("placing", done, total)  # noqa: E731
                job.progress("laying out", 0, 0)
                return worker.map.draw(progress=told).as_dict()
            return worker.map.update().as_dict()

    job.start(work, served.changed)
    return {"job": job.state}
