"""Indexing: pages from sources → regions → crops → vectors, committed page by page.

Worker threads read, decode and cut each page and prepare the model's input while the main
thread runs the model, so the model never waits on decoding. Every flush of about one batch
of items is one transaction: the pages, their items, their vectors, their skips. An
interrupted run loses at most the flush in flight, and the next run starts where it stopped:
pages already done (same size and mtime, or same bytes) are not read again.

Memory: a reader thread holds one decoded page (Pillow keeps RGB in 4 bytes a pixel) and no
full-size copy of it (crops are hashed band by band and reduced straight from the page), and
pages over LARGE_PAGE_PIXELS are decoded one at a time across threads
(`benchmarks/page_memory.py` measures it).
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections import Counter, deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field

import numpy as np
from PIL import Image
from tqdm import tqdm

from ..encoders import Encoder
from ..errors import BadInput
from ..regions import BBox, Detector, Region, clean_regions
from ..store.catalog import Catalog
from ..store.vectors import VectorFile
from .images import DEFAULT_MAX_PIXELS, decode_image, header_pixels, is_url, read_bytes, stat_file
from .sources import PageRef, expand_sources

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


@dataclass
class Skip:
    uri: str
    source: str
    reason: str


@dataclass
class AddReport:
    pages_seen: int = 0
    pages_unchanged: int = 0
    pages_indexed: int = 0
    items_added: int = 0
    vectors_added: int = 0
    skipped: list[Skip] = field(default_factory=list)
    seconds: float = 0.0
    interrupted: bool = False
    filtered: dict | None = None  # the saved filter's verdict on the new items
    detectors: list[str] = field(default_factory=list)  # the region detectors asked for
    ann: str = "none"  # what became of the ANN index: built, extended, current, removed, none

    def summary(self) -> str:
        rate = self.vectors_added / self.seconds if self.seconds > 0 else 0.0
        text = (
            f"{self.pages_seen} pages: {self.pages_indexed} indexed, "
            f"{self.pages_unchanged} already up to date, {len(self.skipped)} skipped; "
            f"{self.items_added} new items, {self.vectors_added} vectors "
            f"in {self.seconds:.1f} s ({rate:.1f} items/s)"
        )
        if self.filtered:
            text += f"\nfilter: {self.filtered['kept']} of {self.filtered['scored']} new items kept"
        if self.ann in ("built", "extended"):
            text += f"\nANN index {self.ann}"
        if self.skipped:
            reasons = Counter(reason_kind(s.reason) for s in self.skipped)
            text += "\nskipped: " + "; ".join(f"{n} {r}" for r, n in reasons.most_common())
        if self.empty_hint():
            text += "\n" + self.empty_hint()
        return text

    def as_dict(self) -> dict:
        """The report as JSON-ready data (`sashie index --json`)."""
        return {**asdict(self), "seconds": round(self.seconds, 2), "hint": self.empty_hint()}

    def empty_hint(self) -> str:
        """Why a run that read pages made no items, and the option that would help ("" when
        it made some)."""
        if not self.pages_indexed or self.items_added or self.vectors_added:
            return ""
        text = (
            f"no items: {' and '.join(self.detectors) or 'no detector'} found nothing to "
            f"cut from the {self.pages_indexed} pages read"
        )
        if "whole" not in self.detectors:
            regions = ",".join([*self.detectors, "whole"])
            text += (
                " (layout looks for the illustrations of printed pages; a photograph has "
                f"none); to index each image as an item too: --regions {regions}"
            )
        return text


def reason_kind(reason: str) -> str:
    """The general part of a skip reason, for counting ("truncated or corrupt image")."""
    return reason.split(" (", 1)[0]


class Interrupted(Exception):
    """Ctrl-C during indexing; what was committed stays, and `report` says how much."""

    def __init__(self, report: AddReport) -> None:
        super().__init__("interrupted")
        self.report = report


class Indexer:
    def __init__(
        self,
        catalog: Catalog,
        vector_file: VectorFile,
        model_id: str,
        encoder: Encoder,
        detectors: list[Detector],
        *,
        batch_size: int = 64,
        workers: int | None = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        progress: bool = False,
    ) -> None:
        self.catalog = catalog
        self.vector_file = vector_file
        self.model_id = model_id
        self.encoder = encoder
        self.detectors = detectors
        self.batch_size = max(1, batch_size)
        self.workers = workers or min(8, os.cpu_count() or 1)
        self.max_pixels = max_pixels
        self.progress = progress
        self.rows = catalog.vector_rows(model_id)

    # --- planning --------------------------------------------------------------------------

    def plan(self, sources: list[str], report: AddReport) -> list[PageJob]:
        """The pages that need work; skipped sources go straight into the report."""
        refs: dict[str, PageRef] = {}
        skip = lambda uri, source, reason: report.skipped.append(Skip(uri, source, reason))  # noqa: E731
        for ref in expand_sources(sources, skip):
            refs.setdefault(ref.uri, ref)
        report.pages_seen = len(refs)
        if report.skipped:  # sources that could not be read at all (a malformed manifest)
            with self.catalog.transaction() as tx:
                for s in report.skipped:
                    tx.skip(s.uri, s.source, s.reason)

        states = self.catalog.page_states()
        done = self.catalog.page_detectors()
        pending = self._items_lacking_vectors()
        jobs, unchanged = [], []
        for uri, ref in refs.items():
            state = states.get(uri)
            if state is None:
                jobs.append(PageJob(ref, detectors=self.detectors))
                continue
            todo = [d for d in self.detectors if d.name not in done.get(state.id, ())]
            lacking = pending.get(state.id, [])
            if todo or lacking or self._file_changed(uri, state.size, state.mtime_ns):
                jobs.append(PageJob(ref, state.id, state.sha256, todo, lacking))
            else:
                report.pages_unchanged += 1
                unchanged.append(ref)
        self._update_metadata(unchanged)
        return jobs

    def _update_metadata(self, refs: list[PageRef]) -> None:
        """Record what a source now says of pages that are not read again (a manifest's
        canvas sizes, indexed before sashie kept them), without fetching them."""
        refs = [ref for ref in refs if ref.metadata]
        stored = self.catalog.page_metadata(ref.uri for ref in refs)
        changed = [ref for ref in refs if stored.get(ref.uri) != ref.metadata]
        if changed:
            with self.catalog.transaction() as tx:
                for ref in changed:
                    tx.set_page_metadata(ref.uri, ref.metadata)

    def _items_lacking_vectors(self) -> dict[int, list[tuple[int, BBox]]]:
        item_ids, page_ids = self.catalog.item_pages()
        have = self.vector_file.item_ids(self.rows)
        lacking = ~np.isin(item_ids, have)
        if not lacking.any():
            return {}
        page_of = dict(zip(item_ids[lacking].tolist(), page_ids[lacking].tolist()))
        by_page: dict[int, list[tuple[int, BBox]]] = {}
        for item_id, bbox in sorted(self.catalog.item_boxes(page_of)):
            by_page.setdefault(page_of[item_id], []).append((item_id, bbox))
        return by_page

    @staticmethod
    def _file_changed(uri: str, size: int | None, mtime_ns: int | None) -> bool:
        if is_url(uri):
            return False  # a URL is fetched once; re-fetching every run would cost too much
        try:
            stat = os.stat(uri)
        except OSError:
            return True  # let the worker record why
        return (stat.st_size, stat.st_mtime_ns) != (size, mtime_ns)

    # --- one page, in a worker thread ------------------------------------------------------

    def read_page(self, job: PageJob) -> PageWork | Skip:
        uri = job.ref.uri
        try:
            size = mtime_ns = None
            if not is_url(uri):
                status = stat_file(uri)
                size, mtime_ns = status.st_size, status.st_mtime_ns
            data = read_bytes(uri, public_only=job.ref.public_only)
            with _room_to_decode(header_pixels(data)):
                return self._cut(job, data, size, mtime_ns)
        except BadInput as e:
            return Skip(uri, job.ref.source, str(e))

    def _cut(self, job: PageJob, data: bytes, size: int | None, mtime_ns: int | None) -> PageWork:
        """Decode a page, find its regions and prepare the model's input; the decoded page
        is freed when this returns."""
        sha = hashlib.sha256(data).hexdigest()
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
        factor = min(x1 - x0, y1 - y0) // (2 * self.encoder.image_size)
        crop = page.reduce(factor, box=bbox) if factor >= 2 else page.crop(bbox)
        return self.encoder.preprocess(crop), digest.hexdigest()

    # --- the run ---------------------------------------------------------------------------

    def run(self, sources: list[str]) -> AddReport:
        report = AddReport(detectors=[d.name for d in self.detectors])
        started = time.perf_counter()
        jobs = self.plan(sources, report)
        bar = tqdm(
            total=len(jobs),
            unit="page",
            desc="indexing",
            disable=not self.progress,
            dynamic_ncols=True,
        )
        batch: list[PageWork | Skip] = []
        waiting = 0
        pool = ThreadPoolExecutor(self.workers, thread_name_prefix="sashie-read")
        try:
            for result in self._in_order(pool, jobs):
                batch.append(result)
                waiting += len(result.pixels) if isinstance(result, PageWork) else 0
                if waiting >= self.batch_size:
                    self._flush(batch, report, bar, started)
                    batch, waiting = [], 0
            self._flush(batch, report, bar, started)
        except KeyboardInterrupt:
            pool.shutdown(wait=True, cancel_futures=True)
            bar.close()
            report.interrupted = True
            report.seconds = time.perf_counter() - started
            raise Interrupted(report) from None
        pool.shutdown(wait=True)
        bar.close()
        report.seconds = time.perf_counter() - started
        return report

    def _in_order(self, pool: ThreadPoolExecutor, jobs: list[PageJob]) -> Iterator[PageWork | Skip]:
        """Results in job order, with a bounded number of pages read ahead."""
        ahead: deque[Future] = deque()
        window = self.workers * 4
        for job in jobs:
            ahead.append(pool.submit(self.read_page, job))
            if len(ahead) >= window:
                yield ahead.popleft().result()
        while ahead:
            yield ahead.popleft().result()

    def _flush(self, batch: list[PageWork | Skip], report: AddReport, bar, started: float) -> None:
        if not batch:
            return
        works = [r for r in batch if isinstance(r, PageWork)]
        skips = [r for r in batch if isinstance(r, Skip)]
        pixels = [p for w in works for p in w.pixels]
        vectors = (
            self.encoder.encode_pixels(np.stack(pixels))
            if pixels
            else np.zeros((0, self.vector_file.dim), np.float32)
        )
        new_items = 0
        with self.catalog.transaction() as tx:
            item_ids: list[int] = []
            for w in works:
                ref = w.job.ref
                page_id = tx.put_page(
                    ref.uri,
                    ref.source,
                    w.width,
                    w.height,
                    w.size,
                    w.mtime_ns,
                    w.sha256,
                    ref.metadata,
                    w.replace,
                )
                item_ids += [item_id for item_id, _ in w.pending]
                for region, crop_hash in zip(w.regions, w.hashes):
                    item_ids.append(
                        tx.add_item(page_id, region.detector, region.bbox, region.score, crop_hash)
                    )
                new_items += len(w.regions)
                tx.mark_detectors(page_id, w.detectors_run)
                tx.unskip(ref.uri)
            for s in skips:
                tx.skip(s.uri, s.source, s.reason)
            rows = self.vector_file.write_at(self.rows, vectors, np.array(item_ids, np.int64))
            tx.set_vector_rows(self.model_id, rows)
        self.rows = rows
        report.pages_indexed += len(works)
        report.items_added += new_items
        report.vectors_added += len(vectors)
        report.skipped += skips
        bar.update(len(batch))
        elapsed = max(time.perf_counter() - started, 1e-9)
        bar.set_postfix_str(
            f"{report.vectors_added} items, {report.vectors_added / elapsed:.1f} items/s"
        )
