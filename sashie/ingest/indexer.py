"""Indexing: pages from sources → regions → crops → vectors, committed page by page.

An engine reads and cuts the pages that need work (sashie/ingest/cutting.py) and runs the
model on their crops: the local one with reader threads feeding the model in this process,
the Ray one (sashie/ingest/ray_engine.py) on a Ray cluster's workers. Either way this process
alone writes: every flush of about one batch of items is one transaction (the pages, their
items, their vectors, their skips). An interrupted run loses at most the flush in flight, and
the next run starts where it stopped: pages already done (same size and mtime, or same
bytes) are not read again, and items without vectors are embedded.

A new file whose bytes are those of a page already indexed (a copied folder, the same scan
under two names) is recorded as a copy of that page, not indexed again: the page's items and
vectors stand for it, and results list it among the page's copies.
"""

from __future__ import annotations

import os
import time
from collections import Counter, deque
from collections.abc import Collection, Generator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Protocol

import numpy as np
from tqdm import tqdm

from ..encoders import Encoder
from ..regions import BBox, Detector
from ..sources.images import DEFAULT_MAX_PIXELS, is_url
from ..sources.pages import PageRef, Sidecar, expand_sources
from ..store.catalog import Catalog
from ..store.vectors import VectorFile
from .cutting import PageCopy, PageCutter, PageJob, PageWork, Skip

Batch = tuple[list[PageWork | PageCopy | Skip], np.ndarray]  # pages read, their vectors


class Engine(Protocol):
    """Reads and cuts pages and embeds their crops; yields about a model batch of pages at a
    time, with the vectors of their pixels in order (PageWork.pixels may then be empty)."""

    def batches(self, cutter: PageCutter, jobs: list[PageJob]) -> Generator[Batch, None, None]: ...


class LocalEngine:
    """Reader threads read and cut pages in order, a bounded number ahead, while this thread
    runs the model: the model never waits on decoding (Pillow, OpenCV and the image
    processors release the GIL for the heavy parts)."""

    def __init__(self, encoder: Encoder, batch_size: int, workers: int | None = None) -> None:
        self.encoder = encoder
        self.batch_size = max(1, batch_size)
        self.workers = workers or min(8, os.cpu_count() or 1)

    def batches(self, cutter: PageCutter, jobs: list[PageJob]) -> Generator[Batch, None, None]:
        pool = ThreadPoolExecutor(self.workers, thread_name_prefix="sashie-read")
        try:
            batch: list[PageWork | PageCopy | Skip] = []
            waiting = 0
            for result in self._in_order(pool, cutter, jobs):
                batch.append(result)
                waiting += len(result.pixels) if isinstance(result, PageWork) else 0
                if waiting >= self.batch_size:
                    yield batch, self._embed(batch)
                    batch, waiting = [], 0
            if batch:
                yield batch, self._embed(batch)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _in_order(
        self, pool: ThreadPoolExecutor, cutter: PageCutter, jobs: list[PageJob]
    ) -> Iterator[PageWork | PageCopy | Skip]:
        ahead: deque[Future] = deque()
        window = self.workers * 4
        for job in jobs:
            ahead.append(pool.submit(cutter.read, job))
            if len(ahead) >= window:
                yield ahead.popleft().result()
        while ahead:
            yield ahead.popleft().result()

    def _embed(self, batch: list[PageWork | PageCopy | Skip]) -> np.ndarray:
        pixels = [p for w in batch if isinstance(w, PageWork) for p in w.pixels]
        if not pixels:
            return np.zeros((0, self.encoder.dim), np.float32)
        return self.encoder.encode_pixels(np.stack(pixels), self.batch_size)


@dataclass
class AddReport:
    pages_seen: int = 0
    pages_unchanged: int = 0
    pages_indexed: int = 0
    pages_copied: int = 0  # new files holding a page's very bytes: recorded, not indexed
    items_added: int = 0
    items_removed: int = 0  # cut no longer by a detector run again (`reindex --regions`)
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
            f"{self.pages_unchanged} already up to date, "
            + (f"{self.pages_copied} copies of pages indexed, " if self.pages_copied else "")
            + f"{len(self.skipped)} skipped; "
            f"{self.items_added} new items, "
            + (f"{self.items_removed} removed, " if self.items_removed else "")
            + f"{self.vectors_added} vectors in {self.seconds:.1f} s ({rate:.1f} items/s)"
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
                " (the region detectors look for the illustrations of printed pages; a "
                f"photograph has none); to index each image as an item too: --regions {regions}"
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
        engine: Engine | None = None,
        recut: Collection[str] = (),
        books: Sidecar | None = None,
    ) -> None:
        self.catalog = catalog
        self.vector_file = vector_file
        self.model_id = model_id
        self.encoder = encoder
        self.detectors = detectors
        self.max_pixels = max_pixels
        self.progress = progress
        self.engine = engine or LocalEngine(encoder, batch_size, workers)
        self.rows = catalog.vector_rows(model_id)
        self.recut = frozenset(recut)  # detectors to run again on pages they have cut
        self.books = books or {}  # a sidecar's book metadata, by folder or file
        self.book_ids: dict[str, int] = {}  # the catalog's id of each book planned, by key

    # --- planning --------------------------------------------------------------------------

    def plan(self, sources: list[str] | list[PageRef], report: AddReport) -> list[PageJob]:
        """The pages that need work, from sources to expand or pages already named;
        skipped sources go straight into the report."""
        refs: dict[str, PageRef] = {}
        skip = lambda uri, source, reason: report.skipped.append(Skip(uri, source, reason))  # noqa: E731
        named = [s for s in sources if isinstance(s, PageRef)]
        for ref in named or expand_sources([str(s) for s in sources], skip, self.books):
            refs.setdefault(ref.uri, ref)
        self._record_books(list(refs.values()))
        report.pages_seen = len(refs)
        if report.skipped:  # sources that could not be read at all (a malformed manifest)
            with self.catalog.transaction() as tx:
                for s in report.skipped:
                    tx.skip(s.uri, s.source, s.reason)

        states = self.catalog.page_states()
        copies = self.catalog.copy_states()
        done = self.catalog.page_detectors()
        again = self.catalog.detector_items(self.recut) if self.recut else {}
        pending = self._items_lacking_vectors()
        jobs, unchanged = [], []
        for uri, ref in refs.items():
            state = states.get(uri)
            if state is None:
                copy = copies.get(uri)
                if copy is not None and not self._file_changed(uri, copy.size, copy.mtime_ns):
                    report.pages_unchanged += 1  # a copy seen before: its page stands for it
                else:
                    jobs.append(PageJob(ref, detectors=self.detectors))
                continue
            ran = done.get(state.id, set())
            todo = [d for d in self.detectors if d.name not in ran or d.name in self.recut]
            lacking = pending.get(state.id, [])
            if todo or lacking or self._file_changed(uri, state.size, state.mtime_ns):
                redo = again.get(state.id, [])
                jobs.append(PageJob(ref, state.id, state.sha256, todo, lacking, redo))
            else:
                report.pages_unchanged += 1
                unchanged.append(ref)
        self._update_metadata(unchanged)
        return jobs

    def _record_books(self, refs: list[PageRef]) -> None:
        """Record the books of these pages as their sources describe them now, and which
        book each page already indexed is of (a library indexed before books were)."""
        books = {ref.book.key: ref.book for ref in refs if ref.book is not None}
        if not books or not self.catalog.books.known:
            return
        placed = self.catalog.books.page_books()
        stored = self.catalog.books.by_key()
        with self.catalog.transaction() as tx:
            for key, book in books.items():
                record, known = book.as_dict(), stored.get(key)
                if known is not None and all(known[k] == v for k, v in record.items()):
                    self.book_ids[key] = known["id"]  # as recorded: nothing written
                else:
                    self.book_ids[key] = tx.put_book(record)
            for ref in refs:
                if ref.book is None or ref.uri not in placed:
                    continue
                place = (self.book_ids[ref.book.key], ref.page_number)
                if placed[ref.uri] != place:
                    tx.set_page_book(ref.uri, *place)

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

    # --- the run ---------------------------------------------------------------------------

    def run(self, sources: list[str] | list[PageRef]) -> AddReport:
        report = AddReport(detectors=[d.name for d in self.detectors])
        started = time.perf_counter()
        jobs = self.plan(sources, report)
        new_files = any(job.page_id is None for job in jobs)
        cutter = PageCutter(
            self.detectors,
            self.encoder.preparer(),
            self.encoder.image_size,
            self.max_pixels,
            known=self.catalog.page_hashes() if new_files else None,
        )
        bar = tqdm(
            total=len(jobs),
            unit="page",
            desc="indexing",
            disable=not self.progress,
            dynamic_ncols=True,
        )
        batches = self.engine.batches(cutter, jobs)
        try:
            for batch, vectors in batches:
                self._commit(batch, vectors, report)
                bar.update(len(batch))
                elapsed = max(time.perf_counter() - started, 1e-9)
                bar.set_postfix_str(
                    f"{report.vectors_added} items, {report.vectors_added / elapsed:.1f} items/s"
                )
        except KeyboardInterrupt:
            report.interrupted = True
            raise Interrupted(report) from None
        finally:
            batches.close()  # the engine's workers stop
            bar.close()
            report.seconds = time.perf_counter() - started
        return report

    def _commit(
        self, batch: list[PageWork | PageCopy | Skip], vectors: np.ndarray, report: AddReport
    ) -> None:
        """One transaction: the pages, their items, their vectors (synced first), their skips,
        the copies of pages."""
        works = [r for r in batch if isinstance(r, PageWork)]
        skips = [r for r in batch if isinstance(r, Skip)]
        copies = [r for r in batch if isinstance(r, PageCopy)]
        if not len(vectors):
            vectors = np.zeros((0, self.vector_file.dim), np.float32)
        new_items = 0
        kept = np.ones(len(vectors), bool)  # a copy found only now: its vectors are dropped
        with self.catalog.transaction() as tx:
            item_ids: list[int] = []
            start = copied_now = 0
            for w in works:
                ref = w.job.ref
                count = len(w.pending) + len(w.regions)
                start += count
                original = None if w.job.page_id is not None else tx.page_with_sha(w.sha256)
                if original is not None:  # the same bytes as a page committed this run
                    copies.append(
                        PageCopy(ref.uri, ref.source, w.size, w.mtime_ns, w.sha256, original)
                    )
                    kept[start - count : start] = False
                    copied_now += 1
                    continue
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
                if ref.book is not None and ref.book.key in self.book_ids:
                    tx.set_page_book(ref.uri, self.book_ids[ref.book.key], ref.page_number)
                item_ids += [item_id for item_id, _ in w.pending]
                for region, crop_hash in zip(w.regions, w.hashes):
                    item_ids.append(
                        tx.add_item(page_id, region.detector, region.bbox, region.score, crop_hash)
                    )
                new_items += len(w.regions)
                if w.stale:
                    tx.remove_items(w.stale)
                    report.items_removed += len(w.stale)
                tx.mark_detectors(page_id, w.detectors_run)
                tx.unskip(ref.uri)
            for c in copies:
                tx.put_copy(c.uri, c.page_id, c.source, c.size, c.mtime_ns)
                tx.unskip(c.uri)
            for s in skips:
                tx.skip(s.uri, s.source, s.reason)
            vectors = vectors[kept]
            if len(vectors) != len(item_ids):
                raise RuntimeError(f"{len(vectors)} vectors for {len(item_ids)} items")
            rows = self.vector_file.write_at(self.rows, vectors, np.array(item_ids, np.int64))
            tx.set_vector_rows(self.model_id, rows)
        self.rows = rows
        report.pages_indexed += len(works) - copied_now
        report.pages_copied += len(copies)
        report.items_added += new_items
        report.vectors_added += len(vectors)
        report.skipped += skips
