"""The search endpoints: a search by text, example images and items, remembered so that its
results can be paged and refined by feedback; the same query the command line builds."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import replace
from typing import Annotated

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from PIL import Image
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from ...errors import BadInput, SashieError
from ...library import SORTS, Asked, Filters, Result, book_facets, knee, sort_results
from ...search.feedback import DEFAULT_LEARNER, FEEDBACK_LEARNERS
from ...search.query import DEFAULT_DIMS, DEFAULT_SELECT, SELECTIONS, parse_dims, parse_ids
from ...sources.images import decode_image, header_pixels
from ..decoding import cost
from .served import (
    MAX_RESULTS,
    PAGE_SIZE,
    Expired,
    ItemId,
    PageOffset,
    Served,
    ServedDep,
    StoredQuery,
)

MAX_UPLOAD_BYTES = 20 * 2**20  # one example image
MAX_UPLOAD_PIXELS = 40_000_000  # one example image
MAX_UPLOADS = 20
MAX_REQUEST_PIXELS = 100_000_000  # all the example images of one search together
HEADER_BYTES = 1 << 16  # read of an upload to learn its size in pixels
SORTED_POOL = 1000  # results sorted by year or book: the best this many, then sorted
WHERE = "conditions on the items' books: year<1700 and creator~北斎 (sashie search -h)"
BookId = Annotated[int, Field(ge=1, lt=2**63)]
QUERY_SIDE = 448  # examples are decoded and kept at about this size (the encoder needs 224)
MAX_LABELS = 20  # classes one search may keep or leave out

router = APIRouter()


def search_filters(
    all_items: bool,
    label: Sequence[str],
    not_label: Sequence[str],
    where: str = "",
    book: Sequence[int] = (),
    min_score: float | None = None,
) -> Filters:
    """A request's `Filters`, checked: only items labelled one of `label`, none of
    `not_label`, of the books `book` or the books that meet `where` ("year<1700"), scoring
    at least `min_score`; every item with `all_items`, else those the filter kept."""
    label = tuple(t.strip() for t in label if t.strip())
    not_label = tuple(t.strip() for t in not_label if t.strip())
    if len(label) + len(not_label) > MAX_LABELS:
        raise SashieError(f"at most {MAX_LABELS} labels a search")
    if any(len(t) > 200 for t in (*label, *not_label)):
        raise SashieError("a label of at most 200 characters, please")
    if len(book) > MAX_LABELS:
        raise SashieError(f"at most {MAX_LABELS} books a search")
    return Filters(
        all_items=all_items,
        label=label or None,
        not_label=not_label or None,
        book=list(book) or None,
        conditions=where.strip() or None,
        min_score=min_score,
    ).check()  # a bad condition is refused now, not when paging


class FeedbackRequest(BaseModel):
    query: str = Field(description="id of a search returned by POST /api/search", max_length=64)
    relevant: list[ItemId] = Field(default_factory=list, max_length=MAX_RESULTS)
    irrelevant: list[ItemId] = Field(default_factory=list, max_length=MAX_RESULTS)
    learner: str = Field(DEFAULT_LEARNER, max_length=40)
    offset: PageOffset = 0
    limit: int = Field(PAGE_SIZE, ge=1, le=1000)


def _result(r: Result) -> dict:
    """Every fact of a result (as `sashie search --json` gives it) and its thumbnail."""
    return {
        **r.as_dict(),
        "score": round(r.score, 5),
        "thumbnail": f"/api/items/{r.item}/thumbnail",
    }


def _facets(results: list[Result]) -> list[dict]:
    """The classes of these results and how many carry each, most first."""
    counts = Counter(r.class_label for r in results if r.class_label is not None)
    return [{"label": label, "count": n} for label, n in counts.most_common()]


def search_asked(
    text: str, items: str, dims: str, select: str, modify: str, modify_method: str
) -> Asked:
    """A search's fields, checked, as what was asked (example images join it later)."""
    text = text.strip()
    if len(text) > 2000:
        raise SashieError("a query of at most 2000 characters, please")
    example_items = parse_ids(items)
    if len(example_items) > MAX_UPLOADS:
        raise SashieError(f"at most {MAX_UPLOADS} example items")
    if select not in SELECTIONS:
        raise SashieError("select must be cv or random")
    return Asked(
        text=text,
        items=example_items,
        modify=modify.strip() or None,
        modify_method=modify_method,
        dims=parse_dims(dims),
        select=select,
        images_in_text=False,
    )


def _upload_sizes(uploads: list[tuple[str | None, bytes]]) -> None:
    """Refuse, from their headers alone, uploads too large in bytes or pixels together."""
    total = 0
    for name, data in uploads:
        if len(data) > MAX_UPLOAD_BYTES:
            raise SashieError(f"{name}: larger than {MAX_UPLOAD_BYTES // 2**20} MB")
        total += header_pixels(data)  # 0 when unreadable: decoding then says why
    if total > MAX_REQUEST_PIXELS:
        raise SashieError(
            f"the example images have {total:,} pixels together; at most "
            f"{MAX_REQUEST_PIXELS:,} a search (send smaller copies)"
        )


def _decode_upload(name: str | None, data: bytes) -> Image.Image:
    """An example image, decoded (JPEG: at reduced scale) and kept about QUERY_SIDE a side."""
    try:
        image = decode_image(data, max_pixels=MAX_UPLOAD_PIXELS, at_least=QUERY_SIDE)
    except BadInput as e:
        raise SashieError(f"{name}: {e}") from None
    scale = QUERY_SIDE / min(image.size)
    if scale < 1:
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(size, Image.Resampling.BOX)
    return image


@router.post("/api/search", summary="Search by text, example images and example items")
async def search(
    served: ServedDep,
    request: Request,
    text: str = Form(""),
    items: str = Form("", description="ids of example items, e.g. 12,40"),
    modify: str = Form("", max_length=500, description="words that change the pictures"),
    modify_method: str = Form("auto", description="auto, sum, tokens or light"),
    dims: str = Form(str(DEFAULT_DIMS)),
    select: str = Form(DEFAULT_SELECT),
    all_items: bool = Form(False),
    exact: bool = Form(False, description="scan every vector, not the ANN index"),
    label: list[str] = Form(default=[], description="keep only items of these classes"),
    not_label: list[str] = Form(default=[], description="leave items of these out"),
    where: str = Form("", max_length=1000, description=WHERE),
    book: list[BookId] = Form(default=[], description="keep only the items of these books"),
    min_score: float | None = Form(None, ge=-1, le=1, description="leave lower scores out"),
    sort: str = Form("score", description="score, year (oldest book first) or book"),
    offset: int = Form(0, ge=0, le=MAX_RESULTS),
    limit: int = Form(PAGE_SIZE, ge=1, le=1000),
    images: list[UploadFile] = File(default=[]),
) -> dict:
    if len(images) > MAX_UPLOADS:
        raise SashieError(f"at most {MAX_UPLOADS} example images")
    asked = search_asked(text, items, dims, select, modify, modify_method)
    where_ = search_filters(all_items, label, not_label, where, book, min_score)
    client = _client(request)
    charge = cost([u.size or MAX_UPLOAD_BYTES for u in images], [await _pixels(u) for u in images])
    async with served.decoding.held(charge) if images else nullcontext():
        uploads = [(u.filename, await u.read(MAX_UPLOAD_BYTES + 1)) for u in images]
        for upload in images:
            await upload.close()  # its spooled copy goes now; the bytes are in `uploads`
        key = await run_in_threadpool(remember, served, asked, uploads, where_, exact, client, sort)
        del uploads
    return await run_in_threadpool(page_of, served, key, offset, limit)


async def _pixels(upload: UploadFile) -> int:
    """The pixels an upload's header declares (at most what one example may have; that when
    the header cannot be read from its first bytes)."""
    head = await upload.read(HEADER_BYTES)
    await upload.seek(0)
    return min(header_pixels(head) or MAX_UPLOAD_PIXELS, MAX_UPLOAD_PIXELS)


@router.get("/api/search", summary="Search by text and example items (a link to share)")
def search_link(
    served: ServedDep,
    request: Request,
    q: str = Query("", description="the query text"),
    items: str = Query("", description="ids of example items, e.g. 12,40"),
    modify: str = Query("", max_length=500, description="words that change the items"),
    modify_method: str = Query("auto", description="auto, sum, tokens or light"),
    dims: str = Query(str(DEFAULT_DIMS)),
    select: str = Query(DEFAULT_SELECT),
    all_items: bool = Query(False),
    exact: bool = Query(False, description="scan every vector, not the ANN index"),
    label: list[str] = Query(default=[], description="keep only items of these classes"),
    not_label: list[str] = Query(default=[], description="leave items of these out"),
    where: str = Query("", max_length=1000, description=WHERE),
    book: list[BookId] = Query(default=[], description="keep only the items of these books"),
    min_score: float | None = Query(None, ge=-1, le=1, description="leave lower scores out"),
    sort: str = Query("score", description="score, year (oldest book first) or book"),
    offset: int = Query(0, ge=0, le=MAX_RESULTS),
    limit: int = Query(PAGE_SIZE, ge=1, le=1000),
) -> dict:
    asked = search_asked(q, items, dims, select, modify, modify_method)
    filters = search_filters(all_items, label, not_label, where, book, min_score)
    key = remember(served, asked, [], filters, exact, _client(request), sort)
    return page_of(served, key, offset, limit)


@router.get("/api/search/{key}", summary="More results of a search")
def more(
    served: ServedDep,
    key: str,
    offset: int = Query(0, ge=0, le=MAX_RESULTS),
    limit: int = Query(PAGE_SIZE, ge=1, le=1000),
) -> dict:
    return page_of(served, key, offset, limit)


@router.post("/api/feedback", summary="Refine a search by items judged relevant or not")
def feedback(served: ServedDep, request: FeedbackRequest) -> dict:
    stored = recall(served, request.query)
    if request.learner not in FEEDBACK_LEARNERS:
        raise SashieError(f"unknown learner {request.learner!r}")
    if request.offset + request.limit > MAX_RESULTS:
        raise SashieError(f"results stop at {MAX_RESULTS}")
    results = served.lib.feedback(
        stored.query,
        request.offset + request.limit,
        relevant=request.relevant,
        irrelevant=request.irrelevant,
        learner=request.learner,
        where=stored.where,
    )
    return {
        "query": request.query,
        "offset": request.offset,
        "learner": request.learner,
        "facets": _facets(results),
        "results": [_result(r) for r in results[request.offset :]],
        "more": len(results) == request.offset + request.limit,
    }


def remember(
    served: Served,
    asked: Asked,
    uploads: list[tuple[str | None, bytes]],
    where: Filters,
    exact: bool,
    client: str,
    sort: str = "score",
) -> str:
    """The query, as the command line builds it, remembered for `client`; a term of the text
    that names a file is text here, never read. Example images are decoded one at a time."""
    if not asked.text and not len(asked.items) and not uploads:
        raise SashieError("type a query or add an example image")
    if sort not in SORTS:
        raise SashieError(f"sort by one of {', '.join(SORTS)}")
    _upload_sizes(uploads)
    pictures = []
    while uploads:
        name, data = uploads.pop(0)
        pictures.append(_decode_upload(name, data))
    lib = served.lib
    version = lib.versions.active() if lib.default_model else "base"
    query = lib.query(replace(asked, images=pictures))
    stored = StoredQuery(query, where, version, exact, sort)
    if stored.narrow() is not None:  # an unknown label is refused now, not when paging
        lib.search(query, 1, where=where)
    return served.searches.remember(stored, client)


def page_of(served: Served, key: str, offset: int, limit: int) -> dict:
    stored = recall(served, key)
    if offset + limit > MAX_RESULTS:
        raise SashieError(f"results stop at {MAX_RESULTS}")
    # sorted otherwise than by score, a page is a slice of the best SORTED_POOL sorted
    wanted = offset + limit if stored.sort == "score" else SORTED_POOL
    results = served.lib.search(stored.query, wanted, where=stored.where, exact=stored.exact)
    bend = knee(results)
    ordered = sort_results(results, stored.sort)[: offset + limit]
    dims = stored.query.dims
    return {
        "query": key,
        "offset": offset,
        "dims": None if dims is None else len(dims),
        "note": stored.query.note,
        "narrow": stored.narrow(),
        "sort": stored.sort,
        "facets": _facets(ordered),
        "book_facets": book_facets(ordered),
        "knee": bend,
        "results": [_result(r) for r in ordered[offset:]],
        "more": len(ordered) == offset + limit and len(results) == wanted,
    }


def recall(served: Served, key: str) -> StoredQuery:
    stored = served.searches.recall(key)
    if stored.version != served.lib.versions.active():
        raise Expired("the model version changed since this search; search again")
    return stored


def _client(request: Request) -> str:
    """Who asks, for the searches each may keep: the peer's address."""
    return request.client.host if request.client else ""
