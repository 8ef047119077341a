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

import hashlib
import io
import re
import secrets
from base64 import b64encode
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from PIL import Image, ImageDraw
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..adapt.settings import DEFAULTS
from ..classify.coder import OTHER
from ..errors import Damaged, NotFound, SashieError, ShardDown
from ..library import Library
from ..search.feedback import DEFAULT_LEARNER, FEEDBACK_LEARNERS
from ..search.query import DEFAULT_DIMS
from .api import annotations as annotations_api
from .api import iiif, items, labels, maps, marks, printings, search, versions
from .api.served import Expired, Job, SearchMemory, Served, Snapshot
from .decoding import Busy, keep_large_blocks_apart
from .http_protocol import uvicorn_settings

MAX_REQUEST_BYTES = 32 * 2**20  # a whole request body, refused from its Content-Length
EXAMPLE_QUERIES = 6  # searches the page offers before the first one
COOKIE = "sashie_token"
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
ROUTERS = [
    m.router
    for m in (search, items, printings, maps, annotations_api, marks, versions, labels, iiif)
]


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


MAP_SCRIPTS = ("scatterplot.js", "map.js")  # the map page's own scripts, served beside it
# The map page runs only this server's scripts; regl (its WebGL layer) compiles its drawing
# commands with Function(), so that page, and it alone, allows eval
MAP_PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self' 'unsafe-eval'; style-src 'unsafe-inline'; "
        "img-src 'self' blob: data:; connect-src 'self'; form-action 'self'; "
        "base-uri 'none'; frame-ancestors 'none'"
    )
}

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
    read_only: bool = False,
    read_token: str | None = None,
    cluster: str | None = None,
    shards: int = 4,
) -> FastAPI:
    """The app for one library; with `token`, every request must carry it; with
    `allowed_hosts`, a request naming another Host is refused (DNS rebinding).
    `example_query`: a search the page suggests (after the library's own captions).
    `read_only` (or a library this process cannot write): every request that would change
    the library is refused (403), and the page hides the controls that would; so for the
    requests that carry `read_token` (with `token`, for those who may change it).
    `cluster`: searches fan out to `shards` Ray actors on the cluster at that address
    ("local": a Ray started here), each holding a run of the library's rows.

    Model work (encoding a query, training) never runs on the event loop: endpoints are
    plain functions, which FastAPI runs in worker threads, side by side; the search endpoint
    hands its work to one."""
    lib = Library(library, trust_remote_code=trust_remote_code, read_only=read_only)
    if cluster is not None:
        lib.shard(shards, address=cluster)
    keep_large_blocks_apart()  # a burst of large example images leaves no bloated heap
    adapting = Job("adapt", "the model is being adapted already; wait for it to finish")
    grouping = Job("printings", "the printings are being grouped already; wait for it to finish")
    served = Served(lib, SearchMemory(), adapting, grouping, trust_remote_code, example_query)
    served.facts = Snapshot(lambda: library_facts(served), fresh=1.0)  # lags a second
    hosts = None if allowed_hosts is None else {h.lower().strip("[]") for h in allowed_hosts}
    html = (resources.files("sashie.app") / "web" / "index.html").read_text(encoding="utf-8")
    page_headers = _page_headers(html)
    app = FastAPI(
        title="sashie", description="Search the illustrations of a collection.", version="1"
    )
    app.state.served = served
    _guard(app, Tokens(token, read_token), hosts, lib.read_only)
    _answer_errors(app)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> HTMLResponse:
        return HTMLResponse(html, headers=page_headers)

    web = resources.files("sashie.app") / "web"
    map_page = (web / "map.html").read_text(encoding="utf-8")
    scripts = {name: (web / name).read_bytes() for name in MAP_SCRIPTS}

    @app.get("/map", response_class=HTMLResponse, include_in_schema=False)
    def map_view() -> HTMLResponse:
        return HTMLResponse(map_page, headers=MAP_PAGE_HEADERS)

    @app.get("/{name}.js", include_in_schema=False)
    def script(name: str) -> Response:
        body = scripts.get(f"{name}.js")
        if body is None:
            return JSONResponse({"error": "no such script"}, status_code=404)
        return Response(body, media_type="text/javascript", headers={"Cache-Control": "no-cache"})

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> Response:
        return Response(
            _favicon(), media_type="image/x-icon", headers={"Cache-Control": "max-age=86400"}
        )

    @app.get("/api/info", summary="What the library holds")
    async def info(request: Request) -> dict:
        assert served.facts is not None
        facts = await served.facts.get()
        return facts | {"read_only": True} if request.state.reader else facts

    for router in ROUTERS:
        app.include_router(router)
    return app


def library_facts(served: Served) -> dict:
    """What /api/info says: the library's info, the searches the page offers before the
    first, the feedback learners and the defaults."""
    lib = served.lib
    facts = lib.info(skipped_inputs=False)
    facts.pop("path", None)
    queries = _example_queries(
        list(lib.annotations.captions()), served.example_query, facts["label_sets"]
    )
    facts["example_queries"] = queries  # the page offers them before a search
    facts["example_query"] = next(iter(queries), None)  # what the search box suggests
    facts["feedback_learners"] = list(FEEDBACK_LEARNERS)
    facts["default_learner"] = DEFAULT_LEARNER
    facts["defaults"] = {"dims": DEFAULT_DIMS, "epochs": DEFAULTS.epochs, "ratio": DEFAULTS.ratio}
    facts["read_only"] = lib.read_only
    return facts


def _guard(app: FastAPI, tokens: Tokens, hosts: set[str] | None, read_only: bool) -> None:
    """Host, access token, read-only and body size are checked before anything is read."""

    @app.middleware("http")
    async def guard(request: Request, call_next):
        if hosts is not None and _host_name(request.headers.get("host", "")) not in hosts:
            return _secured(JSONResponse({"error": "unknown Host"}, status_code=400))
        reader = read_only
        if tokens.write is not None:
            link = request.query_params.get("token")
            if request.url.path == "/" and tokens.which(link) is not None:
                # the link `sashie serve` prints: keep the token in a cookie, not the URL
                return _secured(_in_cookie(request, str(link)))
            given = tokens.which(
                request.headers.get("x-sashie-token") or request.cookies.get(COOKIE)
            )
            if given is None:
                error = {"error": "missing or wrong access token"}
                return _secured(JSONResponse(error, status_code=401))
            reader = reader or given == "read"
        if reader and _changes(request):
            error = {"error": "this server is read-only: nothing in the library can be changed"}
            return _secured(JSONResponse(error, status_code=403))
        request.state.reader = reader
        if request.method in ("POST", "PUT", "PATCH"):
            length = request.headers.get("content-length")
            if length is None or not length.isdigit():
                error = {"error": "a request body needs a Content-Length"}
                return _secured(JSONResponse(error, status_code=411))
            if int(length) > MAX_REQUEST_BYTES:
                error = {"error": f"request larger than {MAX_REQUEST_BYTES // 2**20} MB"}
                return _secured(JSONResponse(error, status_code=413))
        return _secured(await call_next(request))


@dataclass(frozen=True)
class Tokens:
    """The access tokens: `write` may do anything, `read` (if any) only search and show."""

    write: str | None
    read: str | None = None

    def which(self, given: str | None) -> str | None:
        """ "write", "read" or None: which token `given` is."""
        if self.write is not None and _same_token(given, self.write):
            return "write"
        if self.read is not None and _same_token(given, self.read):
            return "read"
        return None


def _in_cookie(request: Request, token: str) -> Response:
    """To the page, the token kept in a cookie, not the URL (`Secure` over HTTPS, directly
    or behind a proxy that says so, so it never goes in clear)."""
    moved = RedirectResponse("/", status_code=303)
    https = request.url.scheme == "https" or (
        request.headers.get("x-forwarded-proto", "").lower() == "https"
    )
    moved.set_cookie(COOKIE, token, httponly=True, samesite="strict", secure=https)
    return moved


READING_POSTS = {  # they change nothing
    "/api/search",
    "/api/feedback",
    "/api/iiif/annotations",
    "/api/map/select",
}


def _changes(request: Request) -> bool:
    """Whether a request would change the library."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return False
    return not (request.method == "POST" and request.url.path in READING_POSTS)


def _told(request: Request, error: Exception) -> str:
    """An error's line as a web client reads it: the library's place on the server's disk,
    which /api/info does not tell either, written LIB."""
    path = request.app.state.served.lib.path
    text = str(error)
    for place in sorted({str(path.resolve()), str(path)}, key=len, reverse=True):
        text = text.replace(place, "LIB")
    return text


def _secured(response: Response) -> Response:
    response.headers.update(SECURITY_HEADERS)
    return response


def _answer_errors(app: FastAPI) -> None:
    """Every error as one JSON line, {"error": ...}, with its status."""

    @app.exception_handler(NotFound)
    async def not_found(request: Request, error: NotFound):
        return JSONResponse({"error": _told(request, error)}, status_code=404)

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

    @app.exception_handler(Busy)
    async def busy(request: Request, error: Busy):
        headers = {"Retry-After": str(error.retry_after)}
        return JSONResponse({"error": str(error)}, status_code=503, headers=headers)

    @app.exception_handler(Damaged)
    async def damaged(request: Request, error: Damaged):
        """A damaged file of the library: this answer cannot be given until it is repaired
        (`sashie check --repair`); answers that do not need it go on."""
        return JSONResponse({"error": _told(request, error), "damaged": True}, status_code=503)

    @app.exception_handler(ShardDown)
    async def shard_down(request: Request, error: ShardDown):
        """A shard of the cluster did not answer: no results rather than fewer."""
        return JSONResponse({"error": _told(request, error), "shard_down": True}, status_code=503)

    @app.exception_handler(SashieError)
    async def sashie_error(request: Request, error: SashieError):
        return JSONResponse({"error": _told(request, error)}, status_code=400)

    @app.exception_handler(StarletteHTTPException)  # FastAPI's own too (unparsable bodies)
    async def http_error(request: Request, error: StarletteHTTPException):
        return JSONResponse({"error": error.detail}, status_code=error.status_code)


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
    read_only: bool = False,
    read_token: str | None = None,
    cluster: str | None = None,
    shards: int = 4,
    echo: Callable[[str], None] = print,
) -> None:
    """Run the server until Ctrl-C; with `read_token`, those who have it only search and
    show (and those who have `token`, made when not given, may change the library)."""
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
    if (not local or read_token) and token is None:
        token = secrets.token_urlsafe(16)
    # requests run side by side, one core each: a model or a BLAS call spreading one request
    # over every core only makes the others wait (and spin) for it
    torch.set_num_threads(1)
    threadpool_limits(1)
    if cluster is not None:  # each shard reads its rows (and may build its ANN index) first
        echo(f"sashie: starting {shards} shards on {cluster} (the page opens once they are up)")
    app = create_app(
        library,
        token=token,
        allowed_hosts=allowed_hosts(host, hosts),
        trust_remote_code=trust_remote_code,
        example_query=example_query,
        read_only=read_only,
        read_token=read_token,
        cluster=cluster,
        shards=shards,
    )
    shown = "localhost" if local else host
    echo(f"sashie: http://{shown}:{port}/" + (f"?token={token}" if token else ""))
    if read_token:
        echo(f"sashie, to search only: http://{shown}:{port}/?token={read_token}")
    uvicorn.run(app, host=host, port=port, log_level="warning", **uvicorn_settings())
