"""`sashie printings LIB --all`: the whole library grouped into sets of printings.

It runs in two passes, each resumable where it stopped:
1. look: each item not looked at before is read once (a page's items together) for its
   local features (printings/matching.py) and fingerprint (printings/fingerprints.py),
   kept in LIB/printings/ (library/printing_features.py);
2. compare: each item not compared before asks every item's fingerprint for the nearest to
   its own and to its mirror's; the NEIGHBOURS nearest that are alike enough (LIKENESS), not
   on its own page and not joined to it already (through pairs verified before: a pair in
   one set could only join the set to itself) are verified on local features, and the
   verified pairs are kept in the catalog with the items compared. So a picture printed many
   times over, whose nearest are all its own copies, still reaches its other printings.
A set is the items joined by pairs. A later run looks at and compares only new items (with
all), so adding pages costs what they hold; items removed take their pairs with them.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from ..store.catalog import ItemRow
from .parts import Parts
from .printing_features import FeatureShards, Looked

NEIGHBOURS = 10  # nearest fingerprints (its own's or its mirror's) an item proposes
IN_A_SET = 4  # what an item in a set proposes: the set's other members propose too
REACH = 4 * NEIGHBOURS + 8  # fingerprints searched for them: room for its page, its set
LIKENESS = 0.08  # fingerprints less alike are never verified (printings world, seed 7)
STEP = 2048  # items a step: one shard, one transaction
CROP_SIDE = 512  # pixels the pictures are read at (features are found at 256)
KEPT_FEATURES = 8192  # stored items' features kept in memory during a run (~39 KB each)
FLAT_UP_TO = 20_000  # fingerprints searched exhaustively; more: an inverted file (FAISS IVF)
PROBED = 32  # of the inverted file's cells, those searched
ASKED_AT_ONCE = 256  # items whose likely printings are found together
VERIFIED_AT_ONCE = 256  # pairs verified together before the sets they join are looked at

if TYPE_CHECKING:  # OpenCV loads when printings are first looked for
    from ..printings.matching import Features

Progress = Callable[[int, int], None]  # steps of items done, to do (both passes)


@dataclass(frozen=True)
class GroupingReport:
    """What a run did: items looked at and compared now, items looked at in all, pairs
    verified now and in all, the sets and the items in them, and the seconds it took."""

    looked: int
    compared: int
    items: int
    verified: int
    pairs: int
    groups: int
    grouped: int
    seconds: float

    def as_dict(self) -> dict:
        return self.__dict__.copy()


class PrintingGroups:
    """The library's sets of printings."""

    def __init__(self, parts: Parts) -> None:
        self._parts = parts

    def update(self, *, progress: Progress | None = None) -> GroupingReport:
        """Look at the items not looked at yet, then compare those not compared yet."""
        parts = self._parts
        catalog = parts.catalog
        started = time.perf_counter()
        # a thread a core; BLAS and OpenCV threads of their own would only fight them
        with parts.writing(), threadpool_limits(1), _one_opencv_thread():
            shards = FeatureShards(parts.path)
            live = catalog.live_item_ids()
            unseen = [int(i) for i in live if int(i) not in shards]
            compared = catalog.printing_pairs.compared()
            uncompared = [int(i) for i in live if int(i) not in compared]
            total, done = len(unseen) + len(uncompared), 0
            bar = tqdm(total=total, desc="printings", unit="item", disable=not parts.progress)
            for step in _steps(catalog.items(unseen), STEP):
                shards.write(_look(parts, step))
                done += len(step)
                bar.update(len(step))
                if progress:
                    progress(done, total)
            verified = 0
            if uncompared:
                stored = shards.items()
                alive = np.isin(stored, live)  # items removed since keep their rows, unread
                pages = dict(zip(*(a.tolist() for a in catalog.item_pages()), strict=True))
                base = _Base(shards, stored[alive].tolist(), pages)
                cache = _Features(shards)
                asked: set[int] = set()  # pairs verified this run (a pair is found from both)
                joined = Joined((p.a, p.b) for p in catalog.printing_pairs.all())
                for start in range(0, len(uncompared), STEP):
                    items = uncompared[start : start + STEP]
                    pairs = _compare(items, base, cache, asked, joined)
                    with catalog.transaction() as t:
                        t.put_printing_pairs(pairs, items)
                    verified += len(pairs)
                    done += len(items)
                    bar.update(len(items))
                    if progress:
                        progress(done, total)
            bar.close()
        sets, grouped = self.counts()
        return GroupingReport(
            looked=len(unseen),
            compared=len(uncompared),
            items=len(live),
            verified=verified,
            pairs=catalog.printing_pairs.count(),
            groups=sets,
            grouped=grouped,
            seconds=round(time.perf_counter() - started, 1),
        )

    def groups(self) -> list[list[int]]:
        """The sets of printings: items joined by verified pairs, each ordered by its
        book's year (undated last), then page and item; the largest sets first."""
        members = self._joined()
        order = self._order([i for group in members for i in group])
        groups = [sorted(group, key=order) for group in members]
        return sorted(groups, key=lambda g: (-len(g), g[0]))

    def counts(self) -> tuple[int, int]:
        """How many sets there are, and the items in them (no book is read)."""
        members = self._joined()
        return len(members), sum(map(len, members))

    def _joined(self) -> list[list[int]]:
        """The items joined by verified pairs, set by set, in no order."""
        return Joined((p.a, p.b) for p in self._parts.catalog.printing_pairs.all()).sets()

    def set_of(self, item: int) -> list[int]:
        """The set of printings `item` is in (as `group` found it), in its books' order of
        years; [] when it is in none."""
        pairs = self._parts.catalog.printing_pairs
        members, frontier = {int(item)}, [int(item)]
        while frontier:
            new = pairs.joined(frontier) - members
            members |= new
            frontier = sorted(new)
        return sorted(members, key=self._order(sorted(members))) if len(members) > 1 else []

    def books_of(self, items: list[int]) -> dict[int, dict]:
        """Where each item is printed: {"book", "title", "year", "page_number"} (None where
        unknown)."""
        books = self._parts.catalog.books
        placed = books.of_items(items)
        records = books.get(book for book, _ in placed.values())
        out = {}
        for item in items:
            book, number = placed.get(item, (None, None))
            record = records.get(book, {}) if book is not None else {}
            out[item] = {
                "book": book,
                "title": record.get("title"),
                "year": record.get("year_from"),
                "page_number": number,
            }
        return out

    def _order(self, items: list[int]) -> Callable[[int], tuple]:
        """A sort key: the item's book's first year (undated last), its book, page, id."""
        where = self.books_of(items)

        def key(item: int) -> tuple:
            at = where.get(item, {})
            year, book, number = at.get("year"), at.get("book"), at.get("page_number")
            return (year is None, year or 0, book or 0, number or 0, item)

        return key


def fingerprint_index(shards: FeatureShards, items: list[int]):
    """A FAISS index (inner product) of these items' stored fingerprints, row k holding
    items[k]: exhaustive up to FLAT_UP_TO items, an inverted file beyond."""
    import faiss

    from ..printings.fingerprints import DIMS

    index: faiss.Index
    if len(items) <= FLAT_UP_TO:
        index = faiss.IndexFlatIP(DIMS)
    else:
        cells = max(1, min(int(4 * np.sqrt(len(items))), len(items) // 39))
        inverted = faiss.IndexIVFFlat(
            faiss.IndexFlatIP(DIMS), DIMS, cells, faiss.METRIC_INNER_PRODUCT
        )
        rng = np.random.default_rng(0)
        sample = np.sort(rng.choice(len(items), min(len(items), 64 * cells), replace=False))
        inverted.train(shards.fingerprints_of([items[r] for r in sample]))
        inverted.nprobe = PROBED
        index = inverted
    for start in range(0, len(items), STEP):  # a step at a time: one copy in memory
        index.add(shards.fingerprints_of(items[start : start + STEP]))
    return index


class _Base:
    """Every looked-at item's fingerprint, searched by new ones (`fingerprint_index`)."""

    def __init__(self, shards: FeatureShards, items: list[int], pages: dict[int, int]) -> None:
        self._index = fingerprint_index(shards, items)
        self._shards = shards
        self._known = set(items)
        self._items = items
        self._pages = pages

    def pairs(self, items: list[int], cache: _Features, joined: Joined) -> list[tuple[int, int]]:
        """The pairs (a < b) of one of `items` and a likely printing of its picture: its
        NEIGHBOURS likeliest not joined to it already (so that a picture printed many times
        over, whose nearest are all its own copies, still reaches its other printings);
        IN_A_SET of them for an item in a set already."""
        from ..printings.fingerprints import codebook
        from ..printings.matching import mirrored

        book = codebook()
        items = [i for i in items if i in self._known]
        if not items:
            return []
        asked = np.concatenate(
            [
                self._shards.fingerprints_of(items),
                np.asarray([book.fingerprint(mirrored(cache[i])) for i in items], np.float32),
            ]
        )
        wanted = min(REACH, len(self._items))
        with threadpool_limits(os.cpu_count() or 1):  # one batched search: every core
            likeness, rows = self._index.search(asked, wanted)
        alike: list[dict[int, float]] = [{} for _ in items]  # other item -> its likeness
        for k, (near, values) in enumerate(zip(rows.tolist(), likeness.tolist(), strict=True)):
            item, best = items[k % len(items)], alike[k % len(items)]
            page = self._pages.get(item)
            for row, value in zip(near, values, strict=True):
                if row < 0 or value < LIKENESS:
                    break
                other = self._items[row]
                if other != item and self._pages.get(other) != page:
                    best[other] = max(value, best.get(other, -1.0))
        found = set()
        for item, best in zip(items, alike, strict=True):  # as alike as its own or its mirror's
            ranked = sorted(best, key=best.__getitem__, reverse=True)
            most = IN_A_SET if item in joined else NEIGHBOURS
            for other in [o for o in ranked if not joined.together(item, o)][:most]:
                found.add((min(item, other), max(item, other)))
        return sorted(found)


class _Features:
    """Stored items' features, read and kept for a while."""

    def __init__(self, shards: FeatureShards) -> None:
        self._shards = shards
        self._kept: dict = {}
        self._lock = threading.Lock()  # verified on several threads

    def __getitem__(self, item: int) -> Features:
        with self._lock:
            if item not in self._kept:
                if len(self._kept) >= KEPT_FEATURES:
                    self._kept.pop(next(iter(self._kept)))
                self._kept[item] = self._shards.features(item)
            return self._kept[item]


@contextmanager
def _one_opencv_thread() -> Iterator[None]:
    import cv2

    before = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        yield
    finally:
        cv2.setNumThreads(before)


def _steps(rows: list[ItemRow], size: int) -> Iterator[list[ItemRow]]:
    """The rows in steps of about `size`, a page's items in one step."""
    rows = sorted(rows, key=lambda r: (r.page_id, r.id))
    step: list[ItemRow] = []
    for row in rows:
        if len(step) >= size and row.page_id != step[-1].page_id:
            yield step
            step = []
        step.append(row)
    if step:
        yield step


def _look(parts: Parts, rows: list[ItemRow]) -> list[Looked]:
    """The items' features and fingerprints, each page read once (a thread a core)."""
    from ..printings.fingerprints import codebook
    from ..printings.matching import features

    by_page: dict[int, list[ItemRow]] = {}
    for row in rows:
        by_page.setdefault(row.page_id, []).append(row)

    def page(rows: list[ItemRow]) -> list[tuple[int, Features]]:
        pictures = parts.pictures.crops_of_page(rows, CROP_SIDE)
        return [(row.id, features(picture)) for row, picture in zip(rows, pictures, strict=True)]

    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        found = [one for looked in pool.map(page, by_page.values()) for one in looked]
    book = codebook()  # numpy's small sums run best on one thread: not in the pool
    return [Looked(item, features, book.fingerprint(features)) for item, features in found]


class Joined:
    """Items joined by pairs (union-find)."""

    def __init__(self, pairs: Iterable[tuple[int, int]] = ()) -> None:
        self._parent: dict[int, int] = {}
        self.join(pairs)

    def _root(self, i: int) -> int:
        parent = self._parent
        parent.setdefault(i, i)
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def join(self, pairs: Iterable[tuple[int, int]]) -> None:
        for a, b in pairs:
            self._parent[self._root(a)] = self._root(b)

    def __contains__(self, item: int) -> bool:
        """Whether the item is in a set (of two or more)."""
        return item in self._parent

    def together(self, a: int, b: int) -> bool:
        return a in self._parent and b in self._parent and self._root(a) == self._root(b)

    def sets(self) -> list[list[int]]:
        members: dict[int, list[int]] = {}
        for item in list(self._parent):
            members.setdefault(self._root(item), []).append(item)
        return list(members.values())


def _compare(
    items: list[int], base: _Base, cache: _Features, asked: set[int], joined: Joined
) -> list[tuple]:
    """The verified pairs of `items` and their likely printings, ASKED_AT_ONCE items and
    VERIFIED_AT_ONCE pairs at a time, each time leaving out what the sets found so far
    join already (`asked`: pairs verified this run, `joined`: the sets, both kept up)."""
    rows: list[tuple] = []
    for at in range(0, len(items), ASKED_AT_ONCE):
        new = [
            (a, b)
            for a, b in base.pairs(items[at : at + ASKED_AT_ONCE], cache, joined)
            if a << 32 | b not in asked
        ]
        asked.update(a << 32 | b for a, b in new)
        for first in range(0, len(new), VERIFIED_AT_ONCE):
            left = [p for p in new[first : first + VERIFIED_AT_ONCE] if not joined.together(*p)]
            found = _verify(left, cache)
            joined.join((row[0], row[1]) for row in found)
            rows += found
    return rows


def _verify(pairs: list[tuple[int, int]], cache: _Features) -> list[tuple]:
    """The pairs that are printings, as rows for the catalog."""
    from ..printings.matching import match, mirrored

    def one(pair: tuple[int, int]):
        a, b = pair
        query = cache[a]
        found = match(query, mirrored(query), cache[b])
        if found is None:
            return None
        t = found.transform
        how = {"scale": t.scale, "rotation": t.rotation, "mirrored": t.mirrored, "crop": t.crop}
        return (a, b, found.inliers, found.agreement, {**how, "area": list(found.area)})

    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        return [row for row in pool.map(one, pairs) if row is not None]
