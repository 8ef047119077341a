"""The library's catalog: pages, items, skipped inputs and vector counts, in one SQLite file.

SQLite in WAL mode: every indexing step is one transaction, so a library is always in the
state after its last committed step, whatever happened to the process.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import Damaged, SashieError
from .books import Books
from .printing_pairs import PrintingPairs
from .schema import (
    CATALOG_PART,
    MAX_SIDE,
    SCHEMA,
    bring_up_to_date,
    check_tables,
    damage,
    has_books,
    has_table,
    sound_box,
    whole,
)
from .transaction import Box, Transaction

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1  # SQLite's integers; no item has an id outside


@dataclass(frozen=True)
class PageState:
    id: int
    size: int | None
    mtime_ns: int | None
    sha256: str


@dataclass(frozen=True, kw_only=True)
class ItemRow:
    id: int
    page_id: int
    page: str
    source: str
    detector: str
    bbox: tuple[int, int, int, int]
    page_size: tuple[int, int]
    metadata: dict


READ_ONLY = "this library is open read-only: nothing in it can be changed"


class Catalog:
    def __init__(self, path: Path, *, readonly: bool = False, immutable: bool = False) -> None:
        """Open the catalog at `path`; `readonly`: no write is possible (`immutable`: on a
        folder this process cannot write, where SQLite may not even keep its lock files)."""
        # One connection, shared by a server's threads: each read, and each transaction from
        # BEGIN to COMMIT, holds the lock, so that threads take turns on it.
        self._lock = threading.RLock()
        self.readonly = readonly
        try:
            if readonly:
                query = "mode=ro" + ("&immutable=1" if immutable else "")
                self.db = sqlite3.connect(
                    f"{path.resolve().as_uri()}?{query}",
                    uri=True,
                    isolation_level=None,
                    check_same_thread=False,
                )
            else:
                self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
                self.db.execute("PRAGMA journal_mode=WAL")
                bring_up_to_date(self.db)
                self.db.executescript(SCHEMA)
            check_tables(self.db)
            self.db.execute("PRAGMA foreign_keys=ON")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.books = Books(self._query, has_books(self.db))
            self.printing_pairs = PrintingPairs(self._query, has_table(self.db, "printing_pairs"))
        except sqlite3.Error as e:
            raise Damaged(CATALOG_PART, str(e)) from None

    def close(self) -> None:
        with self._lock:
            self.db.close()

    def transaction(self) -> Transaction:
        if self.readonly:
            raise SashieError(READ_ONLY)
        return Transaction(self.db, self._lock)

    def _query(self, sql: str, params: Sequence = ()) -> list[tuple]:
        with self._lock:
            try:
                return self.db.execute(sql, params).fetchall()
            except sqlite3.DatabaseError as e:
                raise damage(e) from None

    def quick_check(self) -> list[str]:
        """What SQLite finds wrong in the catalog's pages and indexes (empty: nothing); reads
        the whole file."""
        found = [row[0] for row in self._query("PRAGMA quick_check")]
        return [] if found == ["ok"] else found

    # --- reading -------------------------------------------------------------------------

    def page_states(self) -> dict[str, PageState]:
        rows = self._query("SELECT uri, id, size, mtime_ns, sha256 FROM pages")
        return {uri: PageState(*rest) for uri, *rest in rows}

    def page_hashes(self) -> dict[str, int]:
        """Each page content's SHA-256 and the (first) page that has it."""
        return dict(self._query("SELECT sha256, MIN(id) FROM pages GROUP BY sha256"))

    def copy_states(self) -> dict[str, PageState]:
        """The files recorded as copies of a page, by uri: the page's id and SHA-256, the
        copy's size and mtime when it was seen."""
        rows = self._query(
            "SELECT c.uri, c.page_id, c.size, c.mtime_ns, p.sha256 FROM page_copies c "
            "JOIN pages p ON p.id = c.page_id"
        )
        return {uri: PageState(*rest) for uri, *rest in rows}

    def copies_of(self, page_ids: Iterable[int]) -> dict[int, list[str]]:
        """The other files that hold these pages' bytes, by page id."""
        found: dict[int, list[str]] = {}
        for chunk in _chunks(sorted({int(p) for p in page_ids}), 900):
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT page_id, uri FROM page_copies WHERE page_id IN ({marks}) ORDER BY uri"
            for page_id, uri in self._query(sql, chunk):
                found.setdefault(page_id, []).append(uri)
        return found

    def page_metadata(self, uris: Iterable[str]) -> dict[str, dict]:
        """What the sources said of these pages (those the catalog has), by uri."""
        found: dict[str, dict] = {}
        for chunk in _chunks(list(uris), 900):
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT uri, metadata FROM pages WHERE uri IN ({marks})"
            found.update((uri, _metadata(meta)) for uri, meta in self._query(sql, chunk))
        return found

    def page_detectors(self) -> dict[int, set[str]]:
        done: dict[int, set[str]] = {}
        for page_id, detector in self._query("SELECT page_id, detector FROM page_detectors"):
            done.setdefault(page_id, set()).add(detector)
        return done

    def pages(self) -> list[tuple[int, str, str, dict]]:
        """(id, uri, source, metadata) of every page, by id."""
        rows = self._query("SELECT id, uri, source, metadata FROM pages ORDER BY id")
        return [(r[0], r[1], r[2], _metadata(r[3])) for r in rows]

    def detector_items(self, detectors: Iterable[str]) -> dict[int, list[tuple[int, str, Box]]]:
        """The items these detectors cut, by page: (item id, detector, bbox)."""
        names = list(detectors)
        marks = ",".join("?" * len(names))
        found: dict[int, list[tuple[int, str, Box]]] = {}
        for item_id, page_id, detector, x0, y0, x1, y1 in self._query(
            f"SELECT id, page_id, detector, x0, y0, x1, y1 FROM items WHERE detector IN ({marks})"
            " ORDER BY id",
            names,
        ):
            found.setdefault(page_id, []).append((item_id, detector, (x0, y0, x1, y1)))
        return found

    def item_pages(self) -> tuple[np.ndarray, np.ndarray]:
        """(item ids, their page ids) of every item."""
        rows = self._query("SELECT id, page_id FROM items ORDER BY id")
        table = np.array(rows, dtype=np.int64).reshape(-1, 2)
        return table[:, 0], table[:, 1]

    def item_boxes(self, item_ids: Iterable[int]) -> list[tuple[int, tuple[int, int, int, int]]]:
        out = []
        for chunk in _chunks(list(item_ids), 900):
            marks = ",".join("?" * len(chunk))
            out += [
                (item_id, (x0, y0, x1, y1))
                for item_id, x0, y0, x1, y1 in self._query(
                    f"SELECT id, x0, y0, x1, y1 FROM items WHERE id IN ({marks})", chunk
                )
            ]
        return out

    def page_items(self, page_id: int) -> list[tuple[int, str, Box]]:
        """The page's items, (item id, detector, box), largest first."""
        rows = self._query(
            "SELECT id, detector, x0, y0, x1, y1 FROM items WHERE page_id = ? "
            "ORDER BY (x1 - x0) * (y1 - y0) DESC, id",
            (int(page_id),),
        )
        return [(item, detector, (x0, y0, x1, y1)) for item, detector, x0, y0, x1, y1 in rows]

    def items(self, item_ids: Iterable[int] | None = None) -> list[ItemRow]:
        """Items with their pages, in the order asked (all items by id when None)."""
        query = """SELECT i.id, i.page_id, p.uri, p.source, i.detector, i.x0, i.y0, i.x1, i.y1,
                          p.width, p.height, p.metadata
                   FROM items i JOIN pages p ON p.id = i.page_id"""
        if item_ids is None:
            rows = self._query(query + " ORDER BY i.id")
        else:
            wanted = [int(i) for i in item_ids if _INT64_MIN <= int(i) <= _INT64_MAX]
            found = {}
            for chunk in _chunks(wanted, 900):
                marks = ",".join("?" * len(chunk))
                for row in self._query(query + f" WHERE i.id IN ({marks})", chunk):
                    found[row[0]] = row
            rows = [found[i] for i in wanted if i in found]
        return [
            ItemRow(
                id=r[0],
                page_id=r[1],
                page=r[2],
                source=r[3],
                detector=r[4],
                **sound_box(r[5:9], r[9:11]),
                metadata=_metadata(r[11]),
            )
            for r in rows
        ]

    def whole_pages(self, page_ids: Iterable[int]) -> list[ItemRow]:
        """Pages as rows covering each all of its page (item id 0, detector "page"): what
        reads a page's picture takes them."""
        rows = []
        for chunk in _chunks([int(i) for i in page_ids], 900):
            marks = ",".join("?" * len(chunk))
            rows += self._query(
                "SELECT id, uri, source, width, height, metadata FROM pages "
                f"WHERE id IN ({marks}) ORDER BY id",
                chunk,
            )
        return [
            ItemRow(
                id=0,
                page_id=page_id,
                page=uri,
                source=source,
                detector="page",
                **sound_box((0, 0, w, h), (w, h)),
                metadata=_metadata(meta),
            )
            for page_id, uri, source, w, h, meta in rows
        ]

    def data_version(self) -> int:
        """A number that changes when another connection commits (SQLite's data_version)."""
        return self._query("PRAGMA data_version")[0][0]

    def items_stamp(self) -> tuple:
        """What loaded vectors depend on: the items there are and the vector rows committed."""
        items = self._query("SELECT COUNT(*), MAX(id), SUM(id) FROM items")[0]
        return items + tuple(self._query("SELECT model_id, rows FROM vector_sets ORDER BY 1"))

    def live_item_ids(self) -> np.ndarray:
        rows = self._query("SELECT id FROM items")
        return np.array(rows, dtype=np.int64).reshape(-1)

    def vector_rows(self, model_id: str) -> int:
        found = self._query("SELECT rows FROM vector_sets WHERE model_id = ?", (model_id,))
        return max(whole(found[0][0]), 0) if found else 0

    def last_item_id(self) -> int:
        """The largest item id the catalog ever gave (items since deleted included)."""
        found = self._query("SELECT seq FROM sqlite_sequence WHERE name = 'items'")
        largest = self._query("SELECT MAX(id) FROM items")[0][0]
        return max(whole(found[0][0]) if found else 0, whole(largest))

    def unsound_items(self) -> int:
        """How many items have a box that is not whole pixels inside its page, or a page
        of no sane size (what a tampered catalog holds; `sound_box` clips them)."""
        whole = " AND ".join(
            f"typeof({c}) = 'integer'" for c in ("x0", "y0", "x1", "y1", "width", "height")
        )
        sql = (
            "SELECT COUNT(*) FROM items i JOIN pages p ON p.id = i.page_id WHERE NOT "
            f"({whole} AND width BETWEEN 1 AND {MAX_SIDE} AND height BETWEEN 1 AND {MAX_SIDE}"
            " AND 0 <= x0 AND x0 < x1 AND x1 <= width AND 0 <= y0 AND y0 < y1 AND y1 <= height)"
        )
        return int(self._query(sql)[0][0])

    def counts(self) -> dict[str, int]:
        one = lambda sql: self._query(sql)[0][0]  # noqa: E731
        return {
            "pages": one("SELECT COUNT(*) FROM pages"),
            "items": one("SELECT COUNT(*) FROM items"),
            "copies": one("SELECT COUNT(*) FROM page_copies"),
            "skipped": one("SELECT COUNT(*) FROM skipped"),
        }

    def items_by_detector(self) -> dict[str, int]:
        return dict(self._query("SELECT detector, COUNT(*) FROM items GROUP BY detector"))

    def _of_items(self, query: str, item_ids: Iterable[int] | None, order: str) -> list:
        """The query's rows, all or those whose item_id is among `item_ids`, by `order`."""
        if item_ids is None:
            return self._query(f"{query} ORDER BY {order}")
        rows = []
        for chunk in _chunks([int(i) for i in item_ids], 900):
            marks = ",".join("?" * len(chunk))
            rows += self._query(f"{query} WHERE item_id IN ({marks}) ORDER BY {order}", chunk)
        return rows

    def marks(self, item_ids: Iterable[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(item ids, keep as bool) of the marked items among `item_ids`, or of all."""
        rows = self._of_items("SELECT item_id, keep FROM marks", item_ids, "item_id")
        table = np.array(rows, dtype=np.int64).reshape(-1, 2)
        return table[:, 0], table[:, 1].astype(bool)

    def mark_counts(self) -> dict[str, int]:
        rows = self._query("SELECT keep, COUNT(*) FROM marks GROUP BY keep")
        counts = dict(rows)
        return {"keep": counts.get(1, 0), "exclude": counts.get(0, 0)}

    def excluded_item_ids(self) -> np.ndarray:
        """Items the filter excluded (items it has not scored yet count as kept)."""
        rows = self._query("SELECT item_id FROM filter_scores WHERE keep = 0")
        return np.array(rows, dtype=np.int64).reshape(-1)

    def unscored_item_ids(self) -> np.ndarray:
        rows = self._query(
            "SELECT id FROM items WHERE id NOT IN (SELECT item_id FROM filter_scores)"
        )
        return np.array(rows, dtype=np.int64).reshape(-1)

    def filter_verdicts(self) -> tuple[np.ndarray, np.ndarray]:
        """(item ids, keep as bool) of every item the filter scored."""
        rows = self._query("SELECT item_id, keep FROM filter_scores ORDER BY item_id")
        table = np.array(rows, dtype=np.int64).reshape(-1, 2)
        return table[:, 0], table[:, 1].astype(bool)

    def verdicts(self, item_ids: Iterable[int] | None = None) -> dict[int, bool]:
        """The filter's keep (True) or exclude of those of these items (or of all) it scored."""
        rows = self._of_items("SELECT item_id, keep FROM filter_scores", item_ids, "item_id")
        return {item: bool(keep) for item, keep in rows}

    def filter_counts(self) -> dict[str, int]:
        rows = self._query("SELECT keep, COUNT(*) FROM filter_scores GROUP BY keep")
        counts = dict(rows)
        return {"kept": counts.get(1, 0), "excluded": counts.get(0, 0)}

    def annotations(self, item_ids: Iterable[int] | None = None) -> list[dict]:
        """Annotations ({"id", "item", "caption", "at"}), of the given items or all."""
        rows = self._of_items("SELECT id, item_id, caption, at FROM annotations", item_ids, "id")
        return [dict(zip(("id", "item", "caption", "at"), r)) for r in rows]

    def annotation_captions(self) -> dict[str, int]:
        """Each caption and how many items carry it, most used first."""
        rows = self._query(
            "SELECT caption, COUNT(*) AS n FROM annotations "
            "GROUP BY caption ORDER BY n DESC, caption"
        )
        return dict(rows)

    def annotation_count(self) -> int:
        return self._query("SELECT COUNT(*) FROM annotations")[0][0]

    def label_sets(self) -> list[dict]:
        """Every label set, newest first: its record (`label_set`) and "items" labelled."""
        counts = dict(self._query("SELECT label_set, COUNT(*) FROM item_labels GROUP BY label_set"))
        out = []
        for name in self.label_set_names():
            record = self.label_set(name)
            assert record is not None
            out.append({**record, "items": counts.get(name, 0)})
        return out

    def label_set_names(self) -> list[str]:
        """The label sets' names, newest first (cheap: searches ask it every time)."""
        return [r[0] for r in self._query("SELECT name FROM label_sets ORDER BY at DESC, name")]

    def label_set(self, name: str) -> dict | None:
        """One label set's record ({"name", "version", "method", "model_id", "model_version",
        "classes", "settings", "at"}, JSON decoded), or None."""
        keys = ("name", "version", "method", "model_id", "model_version", "classes", "settings")
        rows = self._query(f"SELECT {', '.join(keys)}, at FROM label_sets WHERE name = ?", (name,))
        if not rows:
            return None
        record = dict(zip((*keys, "at"), rows[0]))
        try:
            record.update(
                classes=json.loads(record["classes"]), settings=json.loads(record["settings"])
            )
        except (TypeError, ValueError):  # a library folder from elsewhere may hold anything
            raise SashieError(
                f"the label set {name!r} of this library is damaged; label the library again "
                "with `sashie classify`"
            ) from None
        return record

    def class_counts(self, label_set: str) -> dict[str, int]:
        """How many items carry each label of the set, most first."""
        rows = self._query(
            "SELECT label, COUNT(*) AS n FROM item_labels WHERE label_set = ? "
            "GROUP BY label ORDER BY n DESC, label",
            (label_set,),
        )
        return dict(rows)

    def item_classes(
        self, label_set: str, item_ids: Iterable[int] | None = None
    ) -> dict[int, tuple[str, float, str | None, float | None]]:
        """(label, score, runner-up, its score) by item, of these items (or all) in the set."""
        query = (
            "SELECT item_id, label, score, runner_up, runner_up_score FROM item_labels "
            "WHERE label_set = ?"
        )
        if item_ids is None:
            rows = self._query(query + " ORDER BY item_id", (label_set,))
        else:
            rows = []
            for chunk in _chunks([int(i) for i in item_ids], 900):
                marks = ",".join("?" * len(chunk))
                rows += self._query(query + f" AND item_id IN ({marks})", (label_set, *chunk))
        return {r[0]: (r[1], r[2], r[3], r[4]) for r in rows}

    def labelled_items(self, label_set: str) -> tuple[np.ndarray, list[str]]:
        """(item ids, their labels) of every item the set labels."""
        rows = self._query(
            "SELECT item_id, label FROM item_labels WHERE label_set = ?", (label_set,)
        )
        return np.array([r[0] for r in rows], np.int64), [r[1] for r in rows]

    def confident_items(self, label_set: str, per_label: int) -> list[tuple[int, str]]:
        """(item, label) of up to `per_label` items of each label of the set, those whose
        label leads its runner-up most first."""
        rows = self._query(
            "SELECT item_id, label FROM (SELECT item_id, label, ROW_NUMBER() OVER ("
            "PARTITION BY label ORDER BY score - COALESCE(runner_up_score, score) DESC, item_id"
            ") AS n FROM item_labels WHERE label_set = ?) WHERE n <= ? ORDER BY label, n",
            (label_set, per_label),
        )
        return [(int(item), label) for item, label in rows]

    def unlabelled_item_ids(self, label_set: str) -> np.ndarray:
        """Items that have no label in the set."""
        rows = self._query(
            "SELECT id FROM items WHERE id NOT IN "
            "(SELECT item_id FROM item_labels WHERE label_set = ?)",
            (label_set,),
        )
        return np.array(rows, dtype=np.int64).reshape(-1)

    def drawn_boxes(self, page_ids: Iterable[int] | None = None) -> dict[int, list[Box]]:
        """The boxes a curator drew, by page (of these pages; of all when None): a page with
        an empty list was looked at and holds no illustration. A damaged record (a catalog
        from elsewhere) keeps only its well-formed boxes, clipped to the page."""
        sql = (
            "SELECT d.page_id, d.boxes, p.width, p.height FROM drawn_boxes d "
            "JOIN pages p ON p.id = d.page_id"
        )
        if page_ids is None:
            rows = self._query(sql)
        else:
            rows = []
            for chunk in _chunks([int(i) for i in page_ids], 500):
                marks = ",".join("?" * len(chunk))
                rows += self._query(f"{sql} WHERE d.page_id IN ({marks})", chunk)
        return {page_id: _boxes(text, (w, h)) for page_id, text, w, h in rows}

    def drawn_page_count(self) -> int:
        """How many pages have drawn boxes (an empty list counts: it says "none here")."""
        return self._query("SELECT COUNT(*) FROM drawn_boxes")[0][0]

    def skipped(self) -> list[dict]:
        rows = self._query("SELECT uri, source, reason, at FROM skipped ORDER BY uri")
        return [dict(zip(("uri", "source", "reason", "at"), r)) for r in rows]


def _metadata(text: str) -> dict:
    """What a page's source said of it, as recorded; a damaged record (not JSON, or not a
    JSON object: a catalog from elsewhere) reads as nothing said."""
    try:
        value = json.loads(text)
    except (TypeError, ValueError, RecursionError):
        return {}
    return value if isinstance(value, dict) else {}


def _boxes(text: str, size: tuple[int, int]) -> list[Box]:
    """Drawn boxes as recorded, each inside the page and at least a pixel across."""
    try:
        value = json.loads(text)
    except (TypeError, ValueError, RecursionError):
        return []
    boxes = []
    for box in value if isinstance(value, list) else []:
        if not (isinstance(box, list) and len(box) == 4 and all(type(v) is int for v in box)):
            continue
        x0, y0 = max(0, box[0]), max(0, box[1])
        x1, y1 = min(size[0], box[2]), min(size[1], box[3])
        if x1 > x0 and y1 > y0:
            boxes.append((x0, y0, x1, y1))
    return boxes


def _chunks(values: list, size: int):
    for start in range(0, len(values), size):
        yield values[start : start + size]
