"""What every router of the HTTP API shares: the one `Served` library of an app, handed to
each endpoint by a FastAPI dependency, its limits, and a few helpers of the answers."""

from __future__ import annotations

import asyncio
import io
import threading
import time
import uuid
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Annotated

from fastapi import Depends, Request
from fastapi.responses import Response
from PIL import Image
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from ...errors import SashieError
from ...library import Filters, Library
from ...search.query import Query as SearchQuery
from ...sources.images import is_url
from ..decoding import DecodeBudget

SEARCH_TTL = 4 * 3600  # a search may be refined or paged this long after its last use
SEARCH_MEMORY = 64 * 2**20  # bytes of remembered searches, all users together
MAX_RESULTS = 5000
PAGE_SIZE = 100
ItemId = Annotated[int, Field(ge=0, lt=2**63)]
PageOffset = Annotated[int, Field(ge=0, le=MAX_RESULTS)]


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


class Expired(SashieError):
    """A search id the server no longer holds (HTTP 410): the page runs the search again."""


@dataclass
class StoredQuery:
    query: SearchQuery  # built by Library.query: the same query the command line makes
    where: Filters  # the items it looks at
    version: str  # the model version it was encoded with
    exact: bool = False  # scan every vector, not the ANN index
    sort: str = "score"  # or "year", "book" (sashie/library/arranging.py)

    @property
    def nbytes(self) -> int:
        dims = self.query.dims
        return 1024 + self.query.vector.nbytes + (0 if dims is None else dims.nbytes)

    def narrow(self) -> dict | None:
        """The classes it keeps or leaves out (classify), as the page shows them."""
        label, not_label = self.where.label or (), self.where.not_label or ()
        return {"label": list(label), "not_label": list(not_label)} if label or not_label else None


class SearchMemory:
    """The searches the server remembers, so their results can be paged and refined: each
    is kept `ttl` seconds after its last use. Each client (by address) holds at most
    `per_client` bytes of them, its own least recently used going first, so that one client
    searching without end expires nobody else's; all together hold at most `max_bytes`."""

    def __init__(
        self,
        ttl: float = SEARCH_TTL,
        max_bytes: int = SEARCH_MEMORY,
        per_client: int = SEARCH_MEMORY // 8,
    ) -> None:
        self.ttl = ttl
        self.max_bytes = max_bytes
        self.per_client = per_client
        self._held: OrderedDict[str, tuple[StoredQuery, float, str]] = OrderedDict()
        self._bytes = 0
        self._by_client: Counter[str] = Counter()
        self._lock = threading.Lock()

    def remember(self, stored: StoredQuery, client: str = "") -> str:
        key = uuid.uuid4().hex
        with self._lock:
            self._held[key] = (stored, time.monotonic(), client)
            self._bytes += stored.nbytes
            self._by_client[client] += stored.nbytes
            while self._by_client[client] > self.per_client:
                self._drop(next(k for k, held in self._held.items() if held[2] == client))
            self._evict()
        return key

    def recall(self, key: str) -> StoredQuery:
        with self._lock:
            self._evict()
            if key not in self._held:
                raise Expired("this search has expired; search again")
            stored, _, client = self._held.pop(key)
            self._held[key] = (stored, time.monotonic(), client)
            return stored

    def __len__(self) -> int:
        return len(self._held)

    def _evict(self) -> None:
        oldest = time.monotonic() - self.ttl
        while self._held:
            key, (_, used, _) = next(iter(self._held.items()))
            if used >= oldest and self._bytes <= self.max_bytes:
                break
            self._drop(key)

    def _drop(self, key: str) -> None:
        stored, _, client = self._held.pop(key)
        self._bytes -= stored.nbytes
        self._by_client[client] -= stored.nbytes
        if self._by_client[client] <= 0:
            del self._by_client[client]


class Job:
    """One background task of its kind at a time (an adaptation, grouping printings), in a
    thread that opens its own Library (its own SQLite connection; the server's Library
    notices what it changed); the page polls its state."""

    def __init__(self, name: str, busy: str) -> None:
        self.name = name
        self.busy = busy  # the error line when asked again while running
        self.state: dict = {"state": "idle"}
        self.thread: threading.Thread | None = None

    def start(self, work: Callable[[], dict], finished: Callable[[], None]) -> None:
        """Run `work` (its report, a dict) in a thread; `finished` after it succeeds."""
        if self.thread is not None and self.thread.is_alive():
            raise SashieError(self.busy)
        self.state = {"state": "running", "stage": "starting", "done": 0, "total": 0}

        def run() -> None:
            try:
                report = work()
                finished()
                self.state = {"state": "done", **report}
            except SashieError as e:
                self.state = {"state": "failed", "error": str(e)}
            except Exception as e:
                self.state = {"state": "failed", "error": f"{type(e).__name__}: {e}"}

        self.thread = threading.Thread(target=run, name=f"sashie-{self.name}", daemon=True)
        self.thread.start()

    def progress(self, stage: str, done: int, total: int, **more: object) -> None:
        self.state = {"state": "running", "stage": stage, "done": done, "total": total, **more}


@dataclass
class Served:
    """The library an app serves and what its routers keep beside it: the searches it
    remembers (search.py); the background work it runs: adapting (versions.py), grouping
    printings (printings.py), drawing the map (maps.py); what /api/info says, and thumbnails
    and pages already made."""

    lib: Library
    searches: SearchMemory
    adapting: Job
    grouping: Job
    trust_remote_code: bool = False
    example_query: str | None = None
    facts: Snapshot | None = None  # what /api/info answers (set by the app)
    decoding: DecodeBudget = field(default_factory=DecodeBudget)  # example images' memory
    mapping: Job = field(
        default_factory=lambda: Job("map", "the map is being drawn already; wait for it to finish")
    )

    def __post_init__(self) -> None:
        self.thumbnail = lru_cache(maxsize=2048)(self._thumbnail)
        self.page_image = lru_cache(maxsize=64)(self._page_image)

    def changed(self) -> None:
        """This server changed the library: /api/info is computed anew."""
        if self.facts is not None:
            self.facts.clear()

    def _thumbnail(self, item_id: int, size: int) -> bytes:
        return jpeg(self.lib.crop(item_id, size), size)

    def _page_image(self, item_id: int, size: int) -> bytes:
        return jpeg(self.lib.page_image(item_id, size), size)


def served(request: Request) -> Served:
    """The dependency every endpoint takes its library from."""
    return request.app.state.served


ServedDep = Annotated[Served, Depends(served)]


def jpeg(image: Image.Image, size: int) -> bytes:
    image.thumbnail((size, size))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=85)
    return out.getvalue()


def cached_jpeg(data: bytes) -> Response:
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "max-age=3600"})


def web_link(value: object) -> str | None:
    """A link taken from data (a manifest): only an http(s) URL is one."""
    return value if isinstance(value, str) and is_url(value) else None
