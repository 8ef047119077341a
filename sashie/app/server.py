"""`sashie serve`: the web page and the HTTP API (FastAPI; OpenAPI at /docs and /openapi.json).

Only library items and pages are ever served: requests name items by their integer id, and
page files are read from the paths the catalog holds, never from a path in a request.
Uploaded example images are limited in bytes and pixels. Bound to a non-local address, every
request must carry the access token (header `X-Sashie-Token`, or `?token=` on the page's URL).
"""

from __future__ import annotations

import io
import secrets
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

from fastapi import FastAPI, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse, Response
from PIL import Image
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from ..adapt.settings import DEFAULTS, AdaptSettings
from ..errors import BadInput, NotFound, SashieError
from ..ingest.images import decode_image, is_url
from ..library import Library, Result
from ..search.feedback import DEFAULT_LEARNER, FEEDBACK_LEARNERS
from ..search.query import DEFAULT_DIMS, DEFAULT_SELECT, SELECTIONS, parse_dims
from ..search.query import Query as SearchQuery

MAX_UPLOAD_BYTES = 20 * 2**20
MAX_UPLOAD_PIXELS = 40_000_000
MAX_UPLOADS = 20
PAGE_SIZE = 100
MAX_RESULTS = 5000
REMEMBERED_QUERIES = 64


@dataclass
class StoredQuery:
    query: SearchQuery  # built by Library.query: the same query the command line makes
    all_items: bool


class MarkRequest(BaseModel):
    query: str = Field(description="id of a search returned by POST /api/search")
    relevant: list[int] = Field(default_factory=list)
    irrelevant: list[int] = Field(default_factory=list)
    learner: str = DEFAULT_LEARNER
    offset: int = Field(0, ge=0)
    limit: int = Field(PAGE_SIZE, ge=1, le=1000)


class AnnotationRequest(BaseModel):
    items: list[int] = Field(min_length=1)
    caption: str = Field(min_length=1, max_length=500)


class LabelRequest(BaseModel):
    items: list[int] = Field(min_length=1)
    keep: bool


class AdaptRequest(BaseModel):
    epochs: int = Field(DEFAULTS.epochs, ge=1, le=1000)
    ratio: float = Field(DEFAULTS.ratio, ge=0, le=1)


class UseRequest(BaseModel):
    version: str = Field(min_length=1, max_length=40, description="v1, v2, ... or base")


class AdaptJob:
    """The one adaptation a server runs at a time, in a thread with its own Library (its own
    SQLite connection); the page polls its state."""

    def __init__(self) -> None:
        self.state: dict = {"state": "idle"}
        self.thread: threading.Thread | None = None

    def start(self, path: Path, request: AdaptRequest, finished: Callable[[], None]) -> None:
        if self.thread is not None and self.thread.is_alive():
            raise SashieError("the model is being adapted already; wait for it to finish")
        settings = AdaptSettings(epochs=request.epochs, ratio=request.ratio)
        settings.check()
        self.state = {"state": "running", "stage": "starting", "done": 0, "total": 0}

        def run() -> None:
            try:
                with Library(path) as worker:
                    report = worker.adapt(settings=settings, progress=self.progress)
                finished()
                self.state = {
                    "state": "done",
                    "version": report.version,
                    "pairs": report.pairs,
                    "captions": report.captions,
                    "seconds": round(report.trained.seconds + report.apply_seconds, 1),
                    "epoch_losses": [round(x, 4) for x in report.trained.epoch_losses],
                }
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
    return {
        "rank": r.rank,
        "item": r.item,
        "score": round(r.score, 5),
        "bbox": list(r.bbox),
        "detector": r.detector,
        "thumbnail": f"/api/items/{r.item}/thumbnail",
    }


def _decode_upload(name: str | None, data: bytes) -> Image.Image:
    if len(data) > MAX_UPLOAD_BYTES:
        raise SashieError(f"{name}: larger than {MAX_UPLOAD_BYTES // 2**20} MB")
    try:
        return decode_image(data, max_pixels=MAX_UPLOAD_PIXELS)
    except BadInput as e:
        raise SashieError(f"{name}: {e}") from None


def create_app(library: str | Path, *, token: str | None = None) -> FastAPI:
    """The app for one library; with `token`, every request must carry it.

    Model work (encoding a query, training) never runs on the event loop: endpoints are
    plain functions, which FastAPI runs in worker threads, and the search endpoint hands its
    work to one. `lock` lets one thread at a time rank over the library's loaded vectors or
    switch its model version; a query is encoded before it is taken, so no lock is held
    across the model (the catalog serializes its own SQLite use)."""
    lib = Library(library)
    lock = threading.Lock()
    queries: OrderedDict[str, StoredQuery] = OrderedDict()
    app = FastAPI(
        title="sashie", description="Search the illustrations of a collection.", version="1"
    )

    @app.middleware("http")
    async def check_token(request: Request, call_next):
        if token is not None:
            given = request.headers.get("x-sashie-token") or request.query_params.get("token")
            if not given or not secrets.compare_digest(given, token):
                return JSONResponse({"error": "missing or wrong access token"}, status_code=401)
        return await call_next(request)

    @app.exception_handler(NotFound)
    async def not_found(request: Request, error: NotFound):
        return JSONResponse({"error": str(error)}, status_code=404)

    @app.exception_handler(SashieError)
    async def sashie_error(request: Request, error: SashieError):
        return JSONResponse({"error": str(error)}, status_code=400)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException):
        return JSONResponse({"error": error.detail}, status_code=error.status_code)

    def remember(stored: StoredQuery) -> str:
        key = uuid.uuid4().hex
        with lock:
            queries[key] = stored
            while len(queries) > REMEMBERED_QUERIES:
                queries.popitem(last=False)
        return key

    def recall(key: str) -> StoredQuery:
        with lock:
            if key not in queries:
                raise SashieError("this search has expired; search again")
            return queries[key]

    @lru_cache(maxsize=2048)
    def thumbnail(item_id: int, size: int) -> bytes:
        return _jpeg(lib.crop(item_id, size), size)

    @lru_cache(maxsize=64)
    def page_image(item_id: int, size: int) -> bytes:
        return _jpeg(lib.page_image(item_id, size), size)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> str:
        return (resources.files("sashie.app") / "web" / "index.html").read_text(encoding="utf-8")

    @app.get("/api/info", summary="What the library holds")
    def info() -> dict:
        with lock:
            facts = lib.info()
        facts.pop("skipped_inputs", None)
        facts.pop("path", None)
        facts["feedback_learners"] = list(FEEDBACK_LEARNERS)
        facts["default_learner"] = DEFAULT_LEARNER
        facts["defaults"] = {
            "dims": DEFAULT_DIMS,
            "epochs": DEFAULTS.epochs,
            "ratio": DEFAULTS.ratio,
        }
        return facts

    @app.post("/api/search", summary="Search by text and/or example images")
    async def search(
        text: str = Form(""),
        dims: str = Form(str(DEFAULT_DIMS)),
        select: str = Form(DEFAULT_SELECT),
        all_items: bool = Form(False),
        limit: int = Form(PAGE_SIZE, ge=1, le=1000),
        images: list[UploadFile] = File(default=[]),
    ) -> dict:
        if len(images) > MAX_UPLOADS:
            raise SashieError(f"at most {MAX_UPLOADS} example images")
        uploads = [(u.filename, await u.read(MAX_UPLOAD_BYTES + 1)) for u in images]
        text = text.strip()
        if not text and not uploads:
            raise SashieError("type a query or add an example image")
        if select not in SELECTIONS:
            raise SashieError("select must be cv or random")
        query = await run_in_threadpool(build, text, uploads, parse_dims(dims), select)
        key = remember(StoredQuery(query, all_items))
        return await run_in_threadpool(page_of, key, 0, limit)

    def build(
        text: str, uploads: list[tuple[str | None, bytes]], dims: int | None, select: str
    ) -> SearchQuery:
        """The query, as the command line builds it; a term of the text that names a file is
        text here, never read."""
        pictures = [_decode_upload(name, data) for name, data in uploads]
        return lib.query(text, images=pictures, dims=dims, select=select, images_in_text=False)

    def page_of(key: str, offset: int, limit: int) -> dict:
        stored = recall(key)
        if offset + limit > MAX_RESULTS:
            raise SashieError(f"results stop at {MAX_RESULTS}")
        with lock:
            results = lib.search(query=stored.query, k=offset + limit, all_items=stored.all_items)
        dims = stored.query.dims
        return {
            "query": key,
            "offset": offset,
            "dims": None if dims is None else len(dims),
            "results": [_result(r) for r in results[offset:]],
            "more": len(results) == offset + limit,
        }

    @app.get("/api/search/{key}", summary="More results of a search")
    def more(
        key: str, offset: int = Query(0, ge=0), limit: int = Query(PAGE_SIZE, ge=1, le=1000)
    ) -> dict:
        return page_of(key, offset, limit)

    @app.post("/api/feedback", summary="Refine a search with relevant/irrelevant marks")
    def feedback(marks: MarkRequest) -> dict:
        stored = recall(marks.query)
        if marks.learner not in FEEDBACK_LEARNERS:
            raise SashieError(f"unknown learner {marks.learner!r}")
        with lock:
            results = lib.feedback(
                query=stored.query,
                relevant=marks.relevant,
                irrelevant=marks.irrelevant,
                learner=marks.learner,
                k=marks.offset + marks.limit,
                all_items=stored.all_items,
            )
        return {
            "query": marks.query,
            "offset": marks.offset,
            "learner": marks.learner,
            "results": [_result(r) for r in results[marks.offset :]],
            "more": len(results) == marks.offset + marks.limit,
        }

    @app.get("/api/items/{item_id}", summary="An item, its page and where it came from")
    def item(item_id: int) -> dict:
        row = lib.item(item_id)
        annotations = lib.annotations([item_id])
        labelled, keep = lib.labels([item_id])
        x0, y0, x1, y1 = row.bbox
        links = {
            "thumbnail": f"/api/items/{item_id}/thumbnail",
            "page": f"/api/items/{item_id}/page",
        }
        if is_url(row.page):
            links["original"] = row.page
        else:
            links["original"] = f"/api/items/{item_id}/original"
        service = row.metadata.get("image_service")
        if service:
            links["iiif_region"] = f"{service}/{x0},{y0},{x1 - x0},{y1 - y0}/max/0/default.jpg"
        if row.metadata.get("canvas"):
            links["canvas"] = row.metadata["canvas"]
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
            "label": None if not len(labelled) else ("keep" if keep[0] else "exclude"),
        }

    @app.get("/api/items/{item_id}/thumbnail", summary="The item's crop (JPEG)")
    def item_thumbnail(item_id: int, size: int = Query(256, ge=32, le=1024)) -> Response:
        return Response(
            thumbnail(item_id, size),
            media_type="image/jpeg",
            headers={"Cache-Control": "max-age=3600"},
        )

    @app.get("/api/items/{item_id}/page", summary="The item's whole page (JPEG)")
    def item_page(item_id: int, size: int = Query(1400, ge=64, le=4000)) -> Response:
        return Response(
            page_image(item_id, size),
            media_type="image/jpeg",
            headers={"Cache-Control": "max-age=3600"},
        )

    @app.get("/api/items/{item_id}/original", summary="The page's original file")
    def item_original(item_id: int) -> Response:
        row = lib.item(item_id)
        if is_url(row.page):
            raise HTTPException(404, "this page is on the web: see links.original")
        try:
            data = Path(row.page).read_bytes()
        except OSError:
            raise HTTPException(404, "the page's file is no longer there") from None
        kind = {
            ".png": "image/png",
            ".tif": "image/tiff",
            ".tiff": "image/tiff",
            ".webp": "image/webp",
            ".gif": "image/gif",
            ".bmp": "image/bmp",
        }
        return Response(data, media_type=kind.get(Path(row.page).suffix.lower(), "image/jpeg"))

    @app.post("/api/annotations", summary="Caption items (for fine-tuning)")
    def annotate(request: AnnotationRequest) -> dict:
        added = lib.annotate(request.items, request.caption)
        return {"added": added, "annotations": lib.counts()["annotations"]}

    @app.get("/api/annotations", summary="Every annotation")
    def annotations() -> dict:
        return {"annotations": lib.annotations()}

    job = AdaptJob()

    def switched() -> None:
        """Another model version is active: reload, and forget searches made in the old one."""
        with lock:
            lib.refresh()
            queries.clear()

    @app.get("/api/adapt", summary="Model versions and the adaptation in progress")
    def adapt_state() -> dict:
        with lock:
            versions = lib.versions() if lib.default_model else {"active": "base", "versions": []}
            captions = lib.captions()
        return {**versions, "captions": captions, "job": job.state}

    @app.post("/api/adapt", summary="Teach the model the annotations (runs in the background)")
    def adapt(request: AdaptRequest) -> dict:
        job.start(lib.path, request, switched)
        return {"job": job.state}

    @app.post("/api/adapt/use", summary="Make a model version (or base) the active one")
    def use(request: UseRequest) -> dict:
        with lock:
            lib.use(request.version)
            queries.clear()
            return lib.versions()

    @app.post("/api/labels", summary="Mark items keep/exclude for the filter")
    def label(request: LabelRequest) -> dict:
        lib.label(request.items, [request.keep] * len(request.items), "web")
        counts = lib.counts()
        return {
            "labelled": len(request.items),
            "keep": counts["labelled_keep"],
            "exclude": counts["labelled_exclude"],
        }

    return app


def serve(
    library: str | Path,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    allow_remote: bool = False,
    token: str | None = None,
    echo: Callable[[str], None] = print,
) -> None:
    """Run the server until Ctrl-C."""
    import uvicorn

    local = host in ("127.0.0.1", "localhost", "::1")
    if not local and not allow_remote:
        raise SashieError(
            f"binding to {host} lets other machines in; add --allow-remote "
            "(an access token is then required)"
        )
    if not local and token is None:
        token = secrets.token_urlsafe(16)
    app = create_app(library, token=token)
    import sklearn.linear_model
    import sklearn.svm
    import sklearn.tree  # noqa: F401

    shown = "localhost" if local else host
    echo(f"sashie: http://{shown}:{port}/" + (f"?token={token}" if token else ""))
    uvicorn.run(app, host=host, port=port, log_level="warning")
