"""Pictures of items and pages to show (thumbnails, the page view, exported crops), without
fetching a page from the web for each of its items.

- A page whose manifest names a IIIF Image service: the service is asked for just the item's
  region at just the size needed, `{service}/{x,y,w,h}/!{s},{s}/0/default.jpg` (the region in
  the service's pixels: sashie/library/iiif.py). When the service fails, the page is used.
- Any other page on the web: fetched once into a bounded cache on disk, LIB/cache/pages/, one
  file per page named by the SHA-256 of its URL; past `PAGE_CACHE_BYTES` (2 GB, or
  SASHIE_PAGE_CACHE_MB megabytes; 0 turns the cache off) the least recently used go first.
  The 16 items of one page, and a server started again, read it from there.
- A local page: read from its file.

Downloads keep `sashie.sources.images.fetch`'s limits, and a page named by a manifest on the
internet connects only to public addresses, as when it was indexed.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from PIL import Image

from ..errors import BadInput, SashieError
from ..sources.images import (
    PRIVATE_ADDRESS,
    STORED_PRIVATE_ADDRESS,
    decode_image,
    fetch,
    is_url,
    load_image,
    read_file,
    stored_url_public_only,
)
from ..store.catalog import ItemRow
from .iiif import image_service, image_url, service_box
from .paths import inside

PAGE_CACHE_BYTES = 2 * 2**30
SERVICE_WAIT = 10.0  # seconds: an Image service slower than this, the page is used instead
CACHE_SETTING = "SASHIE_PAGE_CACHE_MB"
CACHED_NAME = re.compile(r"[0-9a-f]{64}|\.part-\w+")  # the files the page cache writes


def page_cache_bytes() -> int:
    """The page cache's size limit: SASHIE_PAGE_CACHE_MB megabytes, else PAGE_CACHE_BYTES."""
    setting = os.environ.get(CACHE_SETTING, "").strip()
    if not setting:
        return PAGE_CACHE_BYTES
    if not setting.isdigit():
        raise SashieError(f"{CACHE_SETTING} must be a whole number of megabytes, not {setting!r}")
    return int(setting) * 2**20


class PageCache:
    """Fetched pages on disk, at most `max_bytes` together, the least recently used (by
    file time, touched on each read) removed first. Each file is written whole (a temporary
    file, renamed); a folder that cannot be written only means nothing is kept."""

    def __init__(self, root: Path, folder: str, max_bytes: int) -> None:
        self.root = root  # the library's folder: the cache never reads or writes outside it
        self.folder = root / folder
        self.max_bytes = max_bytes
        self._locks = [threading.Lock() for _ in range(64)]  # one page fetched once at a time

    def get(self, url: str, download: Callable[[], bytes]) -> bytes:
        """The page's bytes from the cache, or from `download` (then kept)."""
        name = hashlib.sha256(url.encode()).hexdigest()
        path = inside(self.root, self.folder / name)
        with self._locks[int(name[:8], 16) % len(self._locks)]:
            try:
                data = read_file(path)
                _touch(path)
                return data
            except (BadInput, OSError):
                pass
            data = download()
            if len(data) <= self.max_bytes:
                self._keep(path, data)
            return data

    def _keep(self, path: Path, data: bytes) -> None:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self.folder, prefix=".part-", delete=False) as f:
                f.write(data)
            _touch(Path(f.name))
            os.replace(f.name, path)
            self._evict()
        except OSError:
            pass

    def _evict(self) -> None:
        """Remove the least recently used pages until the cache fits; only files the cache
        wrote (named by a URL's SHA-256, or its unfinished `.part-` files) are ever removed."""
        files = []
        with os.scandir(self.folder) as entries:
            for entry in entries:
                if CACHED_NAME.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
                    status = entry.stat(follow_symlinks=False)
                    files.append((status.st_mtime_ns, status.st_size, entry.path))
        total = sum(size for _, size, _ in files)
        for _, size, path in sorted(files):
            if total <= self.max_bytes:
                break
            Path(path).unlink(missing_ok=True)
            total -= size


class Pictures:
    """Items' crops and pages' images, from an image service, the page cache or a file."""

    def __init__(self, cache: PageCache) -> None:
        self.cache = cache

    def crop(self, row: ItemRow, size: int | None = None) -> Image.Image:
        """The item's picture, at most `size` pixels a side (None: as the page has it)."""
        x0, y0, x1, y1 = row.bbox
        longest = max(x1 - x0, y1 - y0)
        side = longest if size is None else min(size, longest)
        region = ",".join(map(str, service_box(row)))
        from_service = self._from_service(row, region, side)
        if from_service is not None:
            return from_service
        if size is None:
            return self._page(row).crop(row.bbox)
        factor = min(1.0, 2 * size / longest)
        page = self._page(row, at_least=int(min(row.page_size) * factor) + 1)
        scale = page.width / row.page_size[0]  # a JPEG may be decoded at 1/2, 1/4, 1/8
        x0, y0, x1, y1 = (round(v * scale) for v in row.bbox)
        image = page.crop((x0, y0, x1, y1))
        image.thumbnail((size, size))
        return image

    def crops_of_page(self, rows: list[ItemRow], size: int) -> list[Image.Image]:
        """The pictures of several items of one page, at most `size` pixels a side, the page
        decoded once (at the smallest scale that still gives them that size)."""
        if image_service(rows[0]) is not None:
            return [self.crop(row, size) for row in rows]
        shortest = min(max(r.bbox[2] - r.bbox[0], r.bbox[3] - r.bbox[1]) for r in rows)
        factor = min(1.0, 2 * size / max(1, shortest))
        page = self._page(rows[0], at_least=int(min(rows[0].page_size) * factor) + 1)
        scale = page.width / rows[0].page_size[0]
        crops = []
        for row in rows:
            x0, y0, x1, y1 = (round(v * scale) for v in row.bbox)
            image = page.crop((x0, y0, x1, y1))
            image.thumbnail((size, size))
            crops.append(image)
        return crops

    def page(self, row: ItemRow, size: int) -> Image.Image:
        """The item's whole page, at most `size` pixels a side."""
        from_service = self._from_service(row, "full", min(size, max(row.page_size)))
        if from_service is not None:
            return from_service
        short = min(row.page_size)
        page = self._page(row, at_least=int(short * min(1.0, size / short)) + 1)
        page.thumbnail((size, size))
        return page

    def _from_service(self, row: ItemRow, region: str, side: int) -> Image.Image | None:
        """The region from the page's IIIF Image service, at most `side` pixels a side; None
        when the page has no service or the service fails."""
        service = image_service(row)
        if service is None:
            return None
        url = image_url(service, region, f"!{side},{side}")
        try:
            data = fetch(
                url,
                timeout=SERVICE_WAIT,
                deadline=3 * SERVICE_WAIT,
                public_only=stored_url_public_only(url),
            )
            image = decode_image(data)
        except BadInput:
            return None
        image.thumbnail((side, side))
        return image

    def _page(self, row: ItemRow, at_least: int | None = None) -> Image.Image:
        if not is_url(row.page):
            return load_image(row.page, at_least=at_least)
        public_only = stored_url_public_only(row.page)
        try:
            data = self.cache.get(row.page, lambda: fetch(row.page, public_only=public_only))
        except BadInput as e:
            raise BadInput(
                STORED_PRIVATE_ADDRESS if str(e) == PRIVATE_ADDRESS else str(e)
            ) from None
        return decode_image(data, at_least=at_least)


def _touch(path: Path) -> None:
    """Mark a file used now (to the nanosecond: a file system's own clock may tick coarser)."""
    now = time.time_ns()
    os.utime(path, ns=(now, now))
