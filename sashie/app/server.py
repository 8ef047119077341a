"""`sashie serve`: the web page and the HTTP API (FastAPI; OpenAPI at /docs and /openapi.json).

Only library items and pages are ever served: requests name items by their integer id, and
page files are read from the paths the catalog holds, never from a path in a request, and only
when they are images. Request bodies are refused from their Content-Length before they are
read; uploaded example images are limited in bytes and pixels and decoded at reduced size.
Bound to a non-local address, every request must carry the access token: in the header
`X-Sashie-Token`, or in the same-origin cookie that opening `/?token=...` once sets (the page
then drops it from its address). docs/security.md has the threat model.

Requests run in worker threads side by side: the library's vectors are read-only once loaded,
and the Library reloads them itself when another process changes it.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import re
import secrets
import threading
import time
import uuid
from base64 import b64encode
from collections import Counter, OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal

from fastapi import FastAPI, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from PIL import Image, ImageDraw
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..adapt.settings import DEFAULTS, AdaptSettings
from ..classify.coder import DEFAULT_METHOD, OTHER, OTHER_BELOW
from ..classify.labelfile import LabelSet
from ..errors import BadInput, NotFound, SashieError
from ..library import MAX_DRAWN, Asked, Filters, Library, Result
from ..search.feedback import DEFAULT_LEARNER, FEEDBACK_LEARNERS
from ..search.query import DEFAULT_DIMS, DEFAULT_SELECT, SELECTIONS, parse_dims, parse_ids
from ..search.query import Query as SearchQuery
from ..sources.images import decode_image, header_pixels, is_url, read_bytes
from .iiif_api import iiif_routes

MAX_UPLOAD_BYTES = 20 * 2**20  # one example image
MAX_UPLOAD_PIXELS = 40_000_000  # one example image
MAX_UPLOADS = 20
MAX_REQUEST_BYTES = 32 * 2**20  # a whole request body, refused from its Content-Length
MAX_REQUEST_PIXELS = 100_000_000  # all the example images of one search together
QUERY_SIDE = 448  # examples are decoded and kept at about this size (the encoder needs 224)
MAX_ORIGINAL_BYTES = 512 * 2**20
PAGE_SIZE = 100
MAX_RESULTS = 5000
MAX_LABELS = 20  # classes one search may keep or leave out
MAX_CLASSES = 10_000  # classes of a label set sent to POST /api/classify
SEARCH_TTL = 4 * 3600  # a search may be refined or paged this long after its last use
SEARCH_MEMORY = 64 * 2**20  # bytes of remembered searches, all users together
EXAMPLE_QUERIES = 6  # searches the page offers before the first one
COOKIE = "sashie_token"
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
ItemId = Annotated[int, Field(ge=0, lt=2**63)]
PageOffset = Annotated[int, Field(ge=0, le=MAX_RESULTS)]


class Expired(SashieError):
    """A search id the server no longer holds (HTTP 410): the page runs the search again."""


@dataclass
class StoredQuery:
    query: SearchQuery  # built by Library.query: the same query the command line makes
    where: Filters  # the items it looks at
    version: str  # the model version it was encoded with
    exact: bool = False  # scan every vector, not the ANN index

    @property
    def nbytes(self) -> int:
        dims = self.query.dims
        return 1024 + self.query.vector.nbytes + (0 if dims is None else dims.nbytes)

    def narrow(self) -> dict | None:
        """The classes it keeps or leaves out (classify), as the page shows them."""
        label, not_label = self.where.label or (), self.where.not_label or ()
        return {"label": list(label), "not_label": list(not_label)} if label or not_label else None


def search_filters(all_items: bool, label: Sequence[str], not_label: Sequence[str]) -> Filters:
    """A request's `Filters`, checked: only items labelled one of `label`, none of
    `not_label`; every item with `all_items`, else those the filter kept."""
    label = tuple(t.strip() for t in label if t.strip())
    not_label = tuple(t.strip() for t in not_label if t.strip())
    if len(label) + len(not_label) > MAX_LABELS:
        raise SashieError(f"at most {MAX_LABELS} labels a search")
    if any(len(t) > 200 for t in (*label, *not_label)):
        raise SashieError("a label of at most 200 characters, please")
    return Filters(all_items=all_items, label=label or None, not_label=not_label or None)


class SearchMemory:
    """The searches the server remembers, so their results can be paged and refined: each
    is kept `ttl` seconds after its last use, and the least recently used go first when they
    take more than `max_bytes` together (no fixed count shared by all users)."""

    def __init__(self, ttl: float = SEARCH_TTL, max_bytes: int = SEARCH_MEMORY) -> None:
        self.ttl = ttl
        self.max_bytes = max_bytes
        self._held: OrderedDict[str, tuple[StoredQuery, float]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def remember(self, stored: StoredQuery) -> str:
        key = uuid.uuid4().hex
        with self._lock:
            self._held[key] = (stored, time.monotonic())
            self._bytes += stored.nbytes
            self._evict()
        return key

    def recall(self, key: str) -> StoredQuery:
        with self._lock:
            self._evict()
            if key not in self._held:
                raise Expired("this search has expired; search again")
            stored, _ = self._held.pop(key)
            self._held[key] = (stored, time.monotonic())
            return stored

    def __len__(self) -> int:
        return len(self._held)

    def _evict(self) -> None:
        oldest = time.monotonic() - self.ttl
        while self._held:
            key, (stored, used) = next(iter(self._held.items()))
            if used >= oldest and self._bytes <= self.max_bytes:
                break
            del self._held[key]
            self._bytes -= stored.nbytes


class Snapshot:
    """A value recomputed in a worker thread at most every `fresh` seconds: readers get the
    last one at once (stale while it is recomputed), so a status request never waits behind
    searches. `clear` after a change this server made: the next reader computes it anew."""

    def __init__(self, compute: Callable[[], dict], fresh: float) -> None:
        self.compute = compute
        self.fresh = fresh
        self._value: dict | None = None
        self._at = 0.0
        self._refreshing = False
        self._lock = threading.Lock()

    async def get(self) -> dict:
        if self._value is None:
            self._store(await run_in_threadpool(self.compute))
        elif time.monotonic() - self._at > self.fresh:
            with self._lock:
                start, self._refreshing = not self._refreshing, True
            if start:
                asyncio.get_running_loop().create_task(self._refresh())
        assert self._value is not None
        return self._value

    def clear(self) -> None:
        self._value = None

    async def _refresh(self) -> None:
        try:
            self._store(await run_in_threadpool(self.compute))
        finally:
            self._refreshing = False

    def _store(self, value: dict) -> None:
        self._value, self._at = value, time.monotonic()


class FeedbackRequest(BaseModel):
    query: str = Field(description="id of a search returned by POST /api/search", max_length=64)
    relevant: list[ItemId] = Field(default_factory=list, max_length=MAX_RESULTS)
    irrelevant: list[ItemId] = Field(default_factory=list, max_length=MAX_RESULTS)
    learner: str = Field(DEFAULT_LEARNER, max_length=40)
    offset: PageOffset = 0
    limit: int = Field(PAGE_SIZE, ge=1, le=1000)


class AnnotationRequest(BaseModel):
    items: list[ItemId] = Field(min_length=1, max_length=MAX_RESULTS)
    caption: str = Field(min_length=1, max_length=500)


class MarkRequest(BaseModel):
    items: list[ItemId] = Field(min_length=1, max_length=MAX_RESULTS)
    keep: bool


class AdaptRequest(BaseModel):
    epochs: int = Field(DEFAULTS.epochs, ge=1, le=1000)
    ratio: float = Field(DEFAULTS.ratio, ge=0, le=1, allow_inf_nan=False)
    target: Literal["text", "images"] = Field(
        "text",
        description="text: teach the captions to text search; images: better image search "
        "(MCIP), the text encoder untouched unless realign",
    )
    realign: bool = Field(False, description="with images: re-align the text encoder (Re-A)")


class ClassifyRequest(BaseModel):
    labels: dict = Field(description='a label set: {"name": ..., "classes": [{"name": ...}]}')
    method: str = Field(DEFAULT_METHOD, max_length=20, description="prompt or coder")
    few_shot: bool = False
    rerank: bool = True
    other_below: float | None = Field(
        OTHER_BELOW,
        ge=0,
        le=100,
        description='deviations a best class must stand out by, else "other"; null: none',
    )


Corner = Annotated[float, Field(allow_inf_nan=False)]


class BoxesRequest(BaseModel):
    boxes: list[Annotated[list[Corner], Field(min_length=4, max_length=4)]] = Field(
        max_length=MAX_DRAWN,
        description="every illustration of the page, each [x0, y0, x1, y1] in page pixels "
        "(the item's page_size); [] says the page holds none",
    )


class UseRequest(BaseModel):
    version: str = Field(min_length=1, max_length=40, description="v1, v2, ... or base")


class AdaptJob:
    """The one adaptation a server runs at a time, in a thread with its own Library (its own
    SQLite connection; the server's Library notices the new version itself); the page polls
    its state."""

    def __init__(self) -> None:
        self.state: dict = {"state": "idle"}
        self.thread: threading.Thread | None = None

    def start(
        self,
        path: Path,
        request: AdaptRequest,
        trust_remote_code: bool,
        finished: Callable[[], None],
    ) -> None:
        if self.thread is not None and self.thread.is_alive():
            raise SashieError("the model is being adapted already; wait for it to finish")
        settings = AdaptSettings.choose(
            epochs=request.epochs,
            ratio=request.ratio,
            target=request.target,
            realign=request.realign,
        )
        settings.check()
        self.state = {"state": "running", "stage": "starting", "done": 0, "total": 0}

        def run() -> None:
            try:
                with Library(path, trust_remote_code=trust_remote_code) as worker:
                    report = worker.versions.adapt(settings=settings, progress=self.progress)
                finished()
                self.state = {"state": "done", **report.as_dict(paths=False)}
            except SashieError as e:
                self.state = {"state": "failed", "error": str(e)}
            except Exception as e:
                self.state = {"state": "failed", "error": f"{type(e).__name__}: {e}"}

        self.thread = threading.Thread(target=run, name="sashie-adapt", daemon=True)
        self.thread.start()

    def progress(self, update: dict) -> None:
        loss = update.get("loss")
        self.state = {
            "state": "running",
            "stage": update["stage"],
            "done": update["done"],
            "total": update["total"],
            "loss": None if loss is None else round(loss, 4),
        }


def _jpeg(image: Image.Image, size: int) -> bytes:
    image.thumbnail((size, size))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=85)
    return out.getvalue()


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


def _example_queries(captions: Sequence[str], given: str | None, label_sets: dict) -> list[str]:
    """The searches the page offers before a search, from the library's own words: its
    captions, most used first, then the query the server was given, then the classes of the
    newest label set, most frequent first; each once, at most EXAMPLE_QUERIES."""
    newest: dict = next(iter(label_sets.values()), {})
    classes = [c for c in newest.get("counts", {}) if c != OTHER]  # "other" is no search
    queries: list[str] = []
    for text in (*captions, given or "", *classes):
        text = text.strip()
        if text and len(text) <= 100 and text not in queries:
            queries.append(text)
    return queries[:EXAMPLE_QUERIES]


@lru_cache(maxsize=1)
def _favicon() -> bytes:
    """The page's icon (browsers ask for /favicon.ico): a picture on a page, in its colours."""
    icon = Image.new("RGBA", (32, 32), (0, 0, 0, 0))
    draw = ImageDraw.Draw(icon)
    draw.rounded_rectangle((2, 1, 29, 30), radius=3, fill="#f6f1e7", outline="#2b2621", width=2)
    draw.rectangle((7, 6, 24, 19), fill="#8c2f1b")
    draw.polygon([(7, 19), (13, 11), (18, 16), (21, 13), (24, 19)], fill="#2b2621")
    for y in (23, 26):
        draw.line((7, y, 24, y), fill="#2b2621", width=1)
    out = io.BytesIO()
    icon.save(out, "ICO", sizes=[(16, 16), (32, 32)])
    return out.getvalue()


def _search_terms(
    text: str, items: str, dims: str, select: str
) -> tuple[str, list[int], int | None, str]:
    """A search's fields checked: (text, example item ids, dims, selection)."""
    text = text.strip()
    if len(text) > 2000:
        raise SashieError("a query of at most 2000 characters, please")
    example_items = parse_ids(items)
    if len(example_items) > MAX_UPLOADS:
        raise SashieError(f"at most {MAX_UPLOADS} example items")
    if select not in SELECTIONS:
        raise SashieError("select must be cv or random")
    return text, example_items, parse_dims(dims), select


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


def _cached_jpeg(data: bytes) -> Response:
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "max-age=3600"})


def _image_type(data: bytes) -> str | None:
    """The media type of image bytes, read from their header (None: not an image)."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return Image.MIME.get(image.format or "")
    except Exception:
        return None


def _web_link(value: object) -> str | None:
    """A link taken from data (a manifest): only an http(s) URL is one."""
    return value if isinstance(value, str) and is_url(value) else None


def _boxes_reply(boxes: list | None, pages: int) -> dict:
    return {
        "boxes": [list(box) for box in boxes or []],
        "drawn": boxes is not None,
        "boxed_pages": pages,
    }


def _same_token(given: str | None, token: str) -> bool:
    return given is not None and secrets.compare_digest(given.encode(), token.encode())


def _host_name(header: str) -> str:
    """The name in a Host header, without its port ("[::1]:8000" -> "::1")."""
    match = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\](:\d+)?|([^:\[\]]*)(:\d+)?", header)
    if not match:
        return ""
    return (match.group(1) or match.group(3) or "").lower()


def _page_headers(html: str) -> dict[str, str]:
    """The page's Content-Security-Policy: its own inline script (by hash) and nothing else
    runs; images, requests and forms go only to this server."""
    script = html.split("<script>", 1)[1].split("</script>", 1)[0]
    digest = b64encode(hashlib.sha256(script.encode()).digest()).decode()
    policy = (
        "default-src 'none'; "
        f"script-src 'sha256-{digest}'; style-src 'unsafe-inline'; "
        "img-src 'self' blob: data:; connect-src 'self'; form-action 'self'; "
        "base-uri 'none'; frame-ancestors 'none'"
    )
    return {"Content-Security-Policy": policy}


SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Resource-Policy": "same-origin",
}


def create_app(
    library: str | Path,
    *,
    token: str | None = None,
    allowed_hosts: Sequence[str] | None = None,
    trust_remote_code: bool = False,
    example_query: str | None = None,
) -> FastAPI:
    """The app for one library; with `token`, every request must carry it; with
    `allowed_hosts`, a request naming another Host is refused (DNS rebinding).
    `example_query`: a search the page suggests (after the library's own captions).

    Model work (encoding a query, training) never runs on the event loop: endpoints are
    plain functions, which FastAPI runs in worker threads, side by side; the search endpoint
    hands its work to one."""
    lib = Library(library, trust_remote_code=trust_remote_code)
    searches = SearchMemory()
    hosts = None if allowed_hosts is None else {h.lower().strip("[]") for h in allowed_hosts}
    html = (resources.files("sashie.app") / "web" / "index.html").read_text(encoding="utf-8")
    page_headers = _page_headers(html)
    app = FastAPI(
        title="sashie", description="Search the illustrations of a collection.", version="1"
    )

    @app.middleware("http")
    async def guard(request: Request, call_next):
        """Host, access token and body size are checked before anything is read."""
        if hosts is not None and _host_name(request.headers.get("host", "")) not in hosts:
            return _secured(JSONResponse({"error": "unknown Host"}, status_code=400))
        if token is not None:
            given = request.headers.get("x-sashie-token") or request.cookies.get(COOKIE)
            if request.url.path == "/" and _same_token(request.query_params.get("token"), token):
                # the link `sashie serve` prints: keep the token in a cookie, not the URL
                moved = RedirectResponse("/", status_code=303)
                moved.set_cookie(COOKIE, token, httponly=True, samesite="strict")
                return _secured(moved)
            if not _same_token(given, token):
                error = {"error": "missing or wrong access token"}
                return _secured(JSONResponse(error, status_code=401))
        if request.method in ("POST", "PUT", "PATCH"):
            length = request.headers.get("content-length")
            if length is None or not length.isdigit():
                error = {"error": "a request body needs a Content-Length"}
                return _secured(JSONResponse(error, status_code=411))
            if int(length) > MAX_REQUEST_BYTES:
                error = {"error": f"request larger than {MAX_REQUEST_BYTES // 2**20} MB"}
                return _secured(JSONResponse(error, status_code=413))
        return _secured(await call_next(request))

    def _secured(response: Response) -> Response:
        response.headers.update(SECURITY_HEADERS)
        return response

    @app.exception_handler(NotFound)
    async def not_found(request: Request, error: NotFound):
        return JSONResponse({"error": str(error)}, status_code=404)

    @app.exception_handler(Expired)
    async def expired(request: Request, error: Expired):
        return JSONResponse({"error": str(error), "expired": True}, status_code=410)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError):
        """One line naming the field; the input is not echoed (it may be NaN or huge)."""
        first = error.errors()[0] if error.errors() else {}
        where = ".".join(str(part) for part in first.get("loc", ()) if part != "body")
        return JSONResponse(
            {"error": f"{where or 'request'}: {first.get('msg', 'invalid')}"}, status_code=422
        )

    @app.exception_handler(SashieError)
    async def sashie_error(request: Request, error: SashieError):
        return JSONResponse({"error": str(error)}, status_code=400)

    @app.exception_handler(StarletteHTTPException)  # FastAPI's own too (unparsable bodies)
    async def http_error(request: Request, error: StarletteHTTPException):
        return JSONResponse({"error": error.detail}, status_code=error.status_code)

    def recall(key: str) -> StoredQuery:
        stored = searches.recall(key)
        if stored.version != lib.versions.active():
            raise Expired("the model version changed since this search; search again")
        return stored

    @lru_cache(maxsize=2048)
    def thumbnail(item_id: int, size: int) -> bytes:
        return _jpeg(lib.crop(item_id, size), size)

    @lru_cache(maxsize=64)
    def page_image(item_id: int, size: int) -> bytes:
        return _jpeg(lib.page_image(item_id, size), size)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> HTMLResponse:
        return HTMLResponse(html, headers=page_headers)

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> Response:
        return Response(
            _favicon(), media_type="image/x-icon", headers={"Cache-Control": "max-age=86400"}
        )

    @app.get("/api/info", summary="What the library holds")
    async def info() -> dict:
        return await library_facts.get()

    def facts() -> dict:
        facts = lib.info(skipped_inputs=False)
        facts.pop("path", None)
        queries = _example_queries(
            list(lib.annotations.captions()), example_query, facts["label_sets"]
        )
        facts["example_queries"] = queries  # the page offers them before a search
        facts["example_query"] = next(iter(queries), None)  # what the search box suggests
        facts["feedback_learners"] = list(FEEDBACK_LEARNERS)
        facts["default_learner"] = DEFAULT_LEARNER
        facts["defaults"] = {
            "dims": DEFAULT_DIMS,
            "epochs": DEFAULTS.epochs,
            "ratio": DEFAULTS.ratio,
        }
        return facts

    library_facts = Snapshot(facts, fresh=1.0)  # counts lag a changed library by a second

    @app.post("/api/search", summary="Search by text, example images and example items")
    async def search(
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
        offset: int = Form(0, ge=0, le=MAX_RESULTS),
        limit: int = Form(PAGE_SIZE, ge=1, le=1000),
        images: list[UploadFile] = File(default=[]),
    ) -> dict:
        if len(images) > MAX_UPLOADS:
            raise SashieError(f"at most {MAX_UPLOADS} example images")
        uploads = [(u.filename, await u.read(MAX_UPLOAD_BYTES + 1)) for u in images]
        asked = _search_terms(text, items, dims, select)
        where = search_filters(all_items, label, not_label)
        key = await run_in_threadpool(build, *asked, uploads, where, modify, modify_method, exact)
        return await run_in_threadpool(page_of, key, offset, limit)

    @app.get("/api/search", summary="Search by text and example items (a link to share)")
    def search_link(
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
        offset: int = Query(0, ge=0, le=MAX_RESULTS),
        limit: int = Query(PAGE_SIZE, ge=1, le=1000),
    ) -> dict:
        terms = _search_terms(q, items, dims, select)
        where = search_filters(all_items, label, not_label)
        key = build(*terms, [], where, modify, modify_method, exact)
        return page_of(key, offset, limit)

    def build(
        text: str,
        example_items: list[int],
        dims: int | None,
        select: str,
        uploads: list[tuple[str | None, bytes]],
        where: Filters,
        modify: str = "",
        modify_method: str = "auto",
        exact: bool = False,
    ) -> str:
        """The query, as the command line builds it, remembered; a term of the text that
        names a file is text here, never read. Example images are decoded one at a time."""
        if not text and not example_items and not uploads:
            raise SashieError("type a query or add an example image")
        _upload_sizes(uploads)
        pictures = []
        while uploads:
            name, data = uploads.pop(0)
            pictures.append(_decode_upload(name, data))
        version = lib.versions.active() if lib.default_model else "base"
        asked = Asked(
            text=text,
            images=pictures,
            items=example_items,
            modify=modify.strip() or None,
            modify_method=modify_method,
            dims=dims,
            select=select,
            images_in_text=False,
        )
        query = lib.query(asked)
        stored = StoredQuery(query, where, version, exact)
        if stored.narrow() is not None:  # an unknown label is refused now, not when paging
            lib.search(query, 1, where=where)
        return searches.remember(stored)

    def page_of(key: str, offset: int, limit: int) -> dict:
        stored = recall(key)
        if offset + limit > MAX_RESULTS:
            raise SashieError(f"results stop at {MAX_RESULTS}")
        results = lib.search(stored.query, offset + limit, where=stored.where, exact=stored.exact)
        dims = stored.query.dims
        return {
            "query": key,
            "offset": offset,
            "dims": None if dims is None else len(dims),
            "note": stored.query.note,
            "narrow": stored.narrow(),
            "facets": _facets(results),
            "results": [_result(r) for r in results[offset:]],
            "more": len(results) == offset + limit,
        }

    @app.get("/api/search/{key}", summary="More results of a search")
    def more(
        key: str,
        offset: int = Query(0, ge=0, le=MAX_RESULTS),
        limit: int = Query(PAGE_SIZE, ge=1, le=1000),
    ) -> dict:
        return page_of(key, offset, limit)

    @app.post("/api/feedback", summary="Refine a search by items judged relevant or not")
    def feedback(request: FeedbackRequest) -> dict:
        stored = recall(request.query)
        if request.learner not in FEEDBACK_LEARNERS:
            raise SashieError(f"unknown learner {request.learner!r}")
        if request.offset + request.limit > MAX_RESULTS:
            raise SashieError(f"results stop at {MAX_RESULTS}")
        results = lib.feedback(
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

    @app.get("/api/items/{item_id}", summary="An item, its page and where it came from")
    def item(item_id: ItemId) -> dict:
        row = lib.item(item_id)
        annotations = lib.annotations.list([item_id])
        marked, keep = lib.filter.marks([item_id])
        links = {
            "thumbnail": f"/api/items/{item_id}/thumbnail",
            "page": f"/api/items/{item_id}/page",
        }
        links["original"] = _web_link(row.page) or f"/api/items/{item_id}/original"
        try:  # on a IIIF canvas: the region in the canvas's coordinates, and for a viewer
            target = lib.iiif_target(item_id)
        except NotFound:
            target = None
        iiif = None
        if target is not None:
            for name, key in (("canvas", "canvas"), ("iiif_region", "image_region")):
                if _web_link(target[key]):
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

    @app.get("/api/items/{item_id}/thumbnail", summary="The item's crop (JPEG)")
    def item_thumbnail(item_id: ItemId, size: int = Query(256, ge=32, le=1024)) -> Response:
        return _cached_jpeg(thumbnail(item_id, size))

    @app.get("/api/items/{item_id}/page", summary="The item's whole page (JPEG)")
    def item_page(item_id: ItemId, size: int = Query(1400, ge=64, le=4000)) -> Response:
        return _cached_jpeg(page_image(item_id, size))

    @app.get("/api/items/{item_id}/original", summary="The page's original file")
    def item_original(item_id: ItemId) -> Response:
        """The file the page was indexed from, when it is still a regular file and an image
        (a library folder someone sent may name any path)."""
        row = lib.item(item_id)
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

    @app.get("/api/items/{item_id}/page-boxes", summary="Illustrations boxed on the item's page")
    def page_boxes(item_id: ItemId) -> dict:
        """The boxes drawn on the item's page, and (`found`) those its detectors cut, to
        start from."""
        reply = _boxes_reply(lib.regions.drawn(item_id), lib.regions.boxed_pages())
        found = lib.regions.found(item_id)
        reply["found"] = [{"box": list(box), "detector": name} for name, box in found]
        return reply

    @app.put("/api/items/{item_id}/page-boxes", summary="Box the illustrations of a page")
    def draw_page_boxes(item_id: ItemId, request: BoxesRequest) -> dict:
        """Every illustration of the item's page, to teach the region detector
        (`sashie regions train LIB`); replaces the boxes drawn on that page before."""
        boxes = lib.regions.draw(item_id, request.boxes)
        return _boxes_reply(boxes, lib.regions.boxed_pages())

    @app.delete("/api/items/{item_id}/page-boxes", summary="Forget a page's drawn boxes")
    def forget_page_boxes(item_id: ItemId) -> dict:
        lib.regions.forget(item_id)
        return _boxes_reply(None, lib.regions.boxed_pages())

    @app.post("/api/annotations", summary="Caption items (for fine-tuning)")
    def annotate(request: AnnotationRequest) -> dict:
        added = lib.annotations.add(request.items, request.caption)
        library_facts.clear()
        return {"added": added, "annotations": lib.counts()["annotations"]}

    @app.get("/api/annotations", summary="Every annotation")
    def annotations() -> dict:
        return {"annotations": lib.annotations.list()}

    @app.delete("/api/annotations", summary="Take captions back (from items, or everywhere)")
    def unannotate(
        items: list[ItemId] = Query(default=[], max_length=MAX_RESULTS),
        caption: str | None = Query(None, min_length=1, max_length=500),
    ) -> dict:
        """?caption=C removes C everywhere, ?items=12&items=40 every caption of those items,
        both: C from those items."""
        removed = lib.annotations.remove(items or None, caption)
        library_facts.clear()
        return {"removed": removed, "annotations": lib.counts()["annotations"]}

    @app.delete("/api/marks", summary="Forget keep/exclude marks of items")
    def unmark(items: list[ItemId] = Query(min_length=1, max_length=MAX_RESULTS)) -> dict:
        removed = lib.filter.unmark(items)
        library_facts.clear()
        counts = lib.counts()
        return {
            "removed": removed,
            "keep": counts["marked_keep"],
            "exclude": counts["marked_exclude"],
        }

    @app.get("/api/label-sets", summary="The label sets `classify` made, and their counts")
    def label_sets() -> dict:
        return {"label_sets": lib.labels.list()}

    @app.post("/api/classify", summary="Label every item with a label set's classes")
    def classify(request: ClassifyRequest) -> dict:
        labels = LabelSet.from_json(request.labels)
        if len(labels.classes) > MAX_CLASSES:
            raise SashieError(f"at most {MAX_CLASSES:,} classes a label set here")
        report = lib.labels.classify(
            labels,
            method=request.method,
            few_shot=request.few_shot,
            rerank=request.rerank,
            other_below=request.other_below,
        )
        library_facts.clear()
        return report.as_dict()

    app.include_router(iiif_routes(lib))
    job = AdaptJob()

    @app.get("/api/adapt", summary="Model versions and the adaptation in progress")
    def adapt_state() -> dict:
        versions = lib.versions.list() if lib.default_model else {"active": "base", "versions": []}
        return {**versions, "captions": lib.annotations.captions(), "job": job.state}

    @app.post("/api/adapt", summary="Teach the model the annotations (runs in the background)")
    def adapt(request: AdaptRequest) -> dict:
        job.start(lib.path, request, trust_remote_code, library_facts.clear)
        return {"job": job.state}

    @app.get("/api/adapt/loss/{version}", summary="A model version's loss curve (PNG)")
    def loss_plot(version: str) -> Response:
        path = lib.versions.loss_plot(version)
        if path is None:
            raise HTTPException(404, f"{version} has no loss curve")
        return Response(path.read_bytes(), media_type="image/png")

    @app.post("/api/adapt/use", summary="Make a model version (or base) the active one")
    def use(request: UseRequest) -> dict:
        lib.versions.use(request.version)
        library_facts.clear()
        return lib.versions.list()

    @app.post("/api/marks", summary="Mark items keep/exclude for the filter")
    def mark(request: MarkRequest) -> dict:
        lib.filter.mark(request.items, [request.keep] * len(request.items), "web")
        library_facts.clear()
        counts = lib.counts()
        return {
            "marked": len(request.items),
            "keep": counts["marked_keep"],
            "exclude": counts["marked_exclude"],
        }

    return app


def allowed_hosts(host: str, extra: Sequence[str] = ()) -> list[str] | None:
    """The Host names a server bound to `host` answers to: this machine's names when bound
    locally; else the bound address and `extra` (None, any name, when bound to every
    address with no names given: the token still guards it)."""
    if host in LOCAL_HOSTS:
        return [*LOCAL_HOSTS, *extra]
    if host in ("0.0.0.0", "::") and not extra:
        return None
    return [host, *extra]


def serve(
    library: str | Path,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    allow_remote: bool = False,
    token: str | None = None,
    hosts: Sequence[str] = (),
    trust_remote_code: bool = False,
    example_query: str | None = None,
    echo: Callable[[str], None] = print,
) -> None:
    """Run the server until Ctrl-C."""
    import sklearn.linear_model
    import sklearn.svm
    import sklearn.tree  # noqa: F401
    import torch
    import uvicorn
    from threadpoolctl import threadpool_limits

    local = host in LOCAL_HOSTS
    if not local and not allow_remote:
        raise SashieError(
            f"binding to {host} lets other machines in; add --allow-remote "
            "(an access token is then required)"
        )
    if not local and token is None:
        token = secrets.token_urlsafe(16)
    # requests run side by side, one core each: a model or a BLAS call spreading one request
    # over every core only makes the others wait (and spin) for it
    torch.set_num_threads(1)
    threadpool_limits(1)
    app = create_app(
        library,
        token=token,
        allowed_hosts=allowed_hosts(host, hosts),
        trust_remote_code=trust_remote_code,
        example_query=example_query,
    )
    shown = "localhost" if local else host
    echo(f"sashie: http://{shown}:{port}/" + (f"?token={token}" if token else ""))
    uvicorn.run(app, host=host, port=port, log_level="warning")
