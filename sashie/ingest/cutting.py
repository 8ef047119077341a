"""One page read, decoded and cut into its regions' model input: the work an indexing engine
hands to its workers (threads of this process, or Ray's worker processes).

Memory: a worker holds one decoded page (Pillow keeps RGB in 4 bytes a pixel) and no
full-size copy of it (crops are hashed band by band and reduced straight from the page), and
pages over LARGE_PAGE_PIXELS are decoded one at a time across a process's threads
(`benchmarks/page_memory.py` measures it).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from ..errors import BadInput
from ..regions import BBox, Detector, Region, clean_regions
from ..sources.images import decode_image, header_pixels, is_url, read_bytes, stat_file
from ..sources.pages import PageRef

LARGE_PAGE_PIXELS = 50_000_000  # pages larger than this are decoded one at a time
HASH_BAND_PIXELS = 4_000_000  # a crop is hashed band by band, about this many pixels each
_large_page = threading.Lock()


@contextmanager
def _room_to_decode(pixels: int) -> Iterator[None]:
    """Held while a page is decoded and cut: a page over LARGE_PAGE_PIXELS waits for any
    other, so that reader threads never hold two such pages (4 bytes a pixel each)."""
    if pixels > LARGE_PAGE_PIXELS:
        with _large_page:
            yield
    else:
        yield


@dataclass
class PageJob:
    ref: PageRef
    page_id: int | None = None  # None: a page new to the library
    known_sha: str | None = None
    detectors: list[Detector] = field(default_factory=list)  # detectors not yet run on it
    pending: list[tuple[int, BBox]] = field(default_factory=list)  # items lacking vectors
    # items of detectors run again (a retrained one): (item id, detector, bbox); a box cut
    # again keeps its item, one no longer cut goes
    redo: list[tuple[int, str, BBox]] = field(default_factory=list)


@dataclass
class PageWork:
    """A page read and cut, ready to be encoded and committed."""

    job: PageJob
    width: int
    height: int
    size: int | None
    mtime_ns: int | None
    sha256: str
    replace: bool  # the file changed: its old items go
    detectors_run: list[str]
    pending: list[tuple[int, BBox]]
    regions: list[Region]
    hashes: list[str]
    pixels: list[np.ndarray]  # model input: pending items first, then new regions
    stale: list[int] = field(default_factory=list)  # items a detector run again no longer cuts


@dataclass
class Skip:
    uri: str
    source: str
    reason: str


@dataclass
class PageCopy:
    """A new file whose bytes are those of a page the library holds: nothing to decode or
    embed; the page's items stand for it."""

    uri: str
    source: str
    size: int | None
    mtime_ns: int | None
    sha256: str
    page_id: int  # the page it copies


class PageCutter:
    """Reads, decodes and cuts pages: the detectors, and the model's input preparation
    without the model (picklable, so that worker processes can hold one). `known` maps the
    SHA-256 of each page the library holds to its id: a new file with those bytes is a copy,
    not decoded."""

    def __init__(
        self,
        detectors: list[Detector],
        prepare: Callable[[Image.Image], np.ndarray],
        image_size: int,
        max_pixels: int,
        known: dict[str, int] | None = None,
    ) -> None:
        self.detectors = detectors
        self.prepare = prepare
        self.image_size = image_size
        self.max_pixels = max_pixels
        self.known = known or {}

    def read(self, job: PageJob) -> PageWork | PageCopy | Skip:
        uri = job.ref.uri
        try:
            size = mtime_ns = None
            if not is_url(uri):
                status = stat_file(uri)
                size, mtime_ns = status.st_size, status.st_mtime_ns
            data = read_bytes(uri, public_only=job.ref.public_only)
            sha = hashlib.sha256(data).hexdigest()
            if job.page_id is None and sha in self.known:
                return PageCopy(uri, job.ref.source, size, mtime_ns, sha, self.known[sha])
            with _room_to_decode(header_pixels(data)):
                return self._cut(job, data, sha, size, mtime_ns)
        except BadInput as e:
            return Skip(uri, job.ref.source, str(e))

    def _cut(
        self, job: PageJob, data: bytes, sha: str, size: int | None, mtime_ns: int | None
    ) -> PageWork:
        """Decode a page, find its regions and prepare the model's input; the decoded page
        is freed when this returns."""
        image = decode_image(data, max_pixels=self.max_pixels)
        replace = job.page_id is not None and sha != job.known_sha
        fresh = job.page_id is None or replace
        detectors = self.detectors if fresh else job.detectors
        pending = [] if fresh else job.pending
        regions = clean_regions(
            [region for d in detectors for region in d.detect(image, job.ref)],
            image.size,
            by_score=False,
        )
        stale: list[int] = []
        if job.redo and not fresh:
            cut = {(r.detector, r.bbox) for r in regions}
            held = {(detector, bbox) for _, detector, bbox in job.redo}
            regions = [r for r in regions if (r.detector, r.bbox) not in held]
            stale = [item for item, detector, bbox in job.redo if (detector, bbox) not in cut]
        pixels, hashes = [], []
        for _, bbox in pending:
            pixels.append(self._prepare(image, bbox)[0])
        for region in regions:
            prepared, crop_hash = self._prepare(image, region.bbox)
            pixels.append(prepared)
            hashes.append(crop_hash)
        return PageWork(
            job,
            image.width,
            image.height,
            size,
            mtime_ns,
            sha,
            replace,
            [d.name for d in detectors],
            pending,
            regions,
            hashes,
            pixels,
            stale,
        )

    def _prepare(self, page: Image.Image, bbox: BBox) -> tuple[np.ndarray, str]:
        """A region's model input and the hash of its RGB pixels, with no full-size copy of
        the region: hashed band by band (the hash of the whole crop's bytes all the same),
        and reduced straight from the page."""
        x0, y0, x1, y1 = bbox
        digest = hashlib.blake2b(digest_size=16)
        rows = max(1, HASH_BAND_PIXELS // (x1 - x0))
        for top in range(y0, y1, rows):
            digest.update(page.crop((x0, top, x1, min(y1, top + rows))).tobytes())
        # a box-filter reduction first: resizing a 3000-pixel page straight to 224 is slow
        factor = min(x1 - x0, y1 - y0) // (2 * self.image_size)
        crop = page.reduce(factor, box=bbox) if factor >= 2 else page.crop(bbox)
        return self.prepare(crop), digest.hexdigest()
