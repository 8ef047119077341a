"""What every router of the HTTP API shares: the one `Served` library of an app, handed to
each endpoint by a FastAPI dependency, its limits, and a few helpers of the answers."""

from __future__ import annotations

import asyncio
import io
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request
from fastapi.responses import Response
from PIL import Image
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from ...library import Library
from ...sources.images import is_url

if TYPE_CHECKING:
    from .search import SearchMemory
    from .versions import AdaptJob

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


@dataclass
class Served:
    """The library an app serves and what its routers keep beside it: the searches it
    remembers (search.py), the adaptation it runs (versions.py), what /api/info says, and
    thumbnails and pages already made."""

    lib: Library
    searches: SearchMemory
    job: AdaptJob
    trust_remote_code: bool = False
    example_query: str | None = None
    facts: Snapshot | None = None  # what /api/info answers (set by the app)

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
