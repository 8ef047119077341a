"""The catalog's writes: one `Transaction` holds the writes of one step (a batch of pages, a
set of marks); nothing is visible to others until it commits, and a failure inside rolls
all of it back (sashie/store/catalog.py reads)."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable

from .schema import damage

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 in page pixels
BOOK_COLUMNS = (
    *("key", "title", "creator", "date", "year_from", "year_to", "place", "rights"),
    *("homepage", "fields"),
)


class Transaction:
    """The writes of one step (a batch of pages, a set of labels); nothing is visible to
    others until it commits, and a failure inside rolls all of it back."""

    def __init__(self, db: sqlite3.Connection, lock: threading.RLock) -> None:
        self.db = db
        self.lock = lock

    def __enter__(self) -> Transaction:
        self.lock.acquire()
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except BaseException:
            self.lock.release()
            raise
        return self

    def __exit__(self, kind: object, value: object, traceback: object) -> None:
        try:
            self.db.execute("COMMIT" if kind is None else "ROLLBACK")
        except sqlite3.DatabaseError as e:
            raise damage(e) from None
        finally:
            self.lock.release()
        if isinstance(value, sqlite3.DatabaseError):
            found = damage(value)
            if found is not value:
                raise found from None

    def put_page(
        self,
        uri: str,
        source: str,
        width: int,
        height: int,
        size: int | None,
        mtime_ns: int | None,
        sha256: str,
        metadata: dict,
        replace: bool,
    ) -> int:
        """Insert a page, or update it (dropping its old items when its content changed). A
        file recorded as a copy of another page that is now a page of its own is no copy."""
        self.db.execute("DELETE FROM page_copies WHERE uri = ?", (uri,))
        row = self.db.execute("SELECT id FROM pages WHERE uri = ?", (uri,)).fetchone()
        meta = json.dumps(metadata, ensure_ascii=False, sort_keys=True)
        if row is None:
            cursor = self.db.execute(
                "INSERT INTO pages (uri, source, width, height, size, mtime_ns, sha256, metadata,"
                " added) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (uri, source, width, height, size, mtime_ns, sha256, meta, time.time()),
            )
            return _row_id(cursor)
        page_id = row[0]
        if replace:
            self.db.execute("DELETE FROM items WHERE page_id = ?", (page_id,))
            self.db.execute("DELETE FROM page_detectors WHERE page_id = ?", (page_id,))
        self.db.execute(
            "UPDATE pages SET source = ?, width = ?, height = ?, size = ?, mtime_ns = ?,"
            " sha256 = ?, metadata = ? WHERE id = ?",
            (source, width, height, size, mtime_ns, sha256, meta, page_id),
        )
        return page_id

    def page_with_sha(self, sha256: str) -> int | None:
        """The first page whose bytes have this SHA-256, as of this transaction."""
        row = self.db.execute("SELECT MIN(id) FROM pages WHERE sha256 = ?", (sha256,)).fetchone()
        return row[0]

    def put_copy(
        self, uri: str, page_id: int, source: str, size: int | None, mtime_ns: int | None
    ) -> None:
        """Record a file as a copy of a page (its items stand for it: nothing is indexed)."""
        self.db.execute(
            "INSERT OR REPLACE INTO page_copies (uri, page_id, source, size, mtime_ns, added)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (uri, page_id, source, size, mtime_ns, time.time()),
        )

    def put_book(self, book: dict) -> int:
        """Record a book (sashie/sources/books.py `Book.as_dict`), or update the one with its
        key to what its source says now; its id."""
        values = [book[k] for k in BOOK_COLUMNS[1:-1]]
        fields = json.dumps(book["fields"], ensure_ascii=False, sort_keys=True)
        row = self.db.execute(
            f"INSERT INTO books ({', '.join(BOOK_COLUMNS)}, at) VALUES "
            f"({', '.join('?' * (len(BOOK_COLUMNS) + 1))}) ON CONFLICT(key) DO UPDATE SET "
            + ", ".join(f"{c} = excluded.{c}" for c in BOOK_COLUMNS[1:])
            + " RETURNING id",
            (book["key"], *values, fields, time.time()),
        ).fetchone()
        return int(row[0])

    def set_page_book(self, uri: str, book_id: int, page_number: int | None) -> None:
        """Which book a page is of, and its place in it."""
        self.db.execute(
            "UPDATE pages SET book_id = ?, page_number = ? WHERE uri = ?",
            (int(book_id), page_number, uri),
        )

    def set_page_metadata(self, uri: str, metadata: dict) -> None:
        meta = json.dumps(metadata, ensure_ascii=False, sort_keys=True)
        self.db.execute("UPDATE pages SET metadata = ? WHERE uri = ?", (meta, uri))

    def add_item(self, page_id: int, detector: str, bbox, score: float, hash_: str) -> int:
        cursor = self.db.execute(
            "INSERT INTO items (page_id, detector, x0, y0, x1, y1, score, hash)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (page_id, detector, *map(int, bbox), float(score), hash_),
        )
        return _row_id(cursor)

    def remove_items(self, item_ids: Iterable[int]) -> None:
        """Drop items (a detector no longer cuts them); their labels, captions, verdicts and
        classes go with them, and their vectors are no longer live."""
        self.db.executemany("DELETE FROM items WHERE id = ?", [(int(i),) for i in item_ids])

    def mark_detectors(self, page_id: int, detectors: Iterable[str]) -> None:
        self.db.executemany(
            "INSERT OR IGNORE INTO page_detectors (page_id, detector) VALUES (?, ?)",
            [(page_id, d) for d in detectors],
        )

    def forget_vector_rows(self, model_id: str) -> None:
        self.db.execute("DELETE FROM vector_sets WHERE model_id = ?", (model_id,))

    def set_vector_rows(self, model_id: str, rows: int) -> None:
        self.db.execute(
            "INSERT INTO vector_sets (model_id, rows) VALUES (?, ?)"
            " ON CONFLICT(model_id) DO UPDATE SET rows = excluded.rows",
            (model_id, rows),
        )

    def set_marks(self, item_ids: Iterable[int], keep: Iterable[bool], source: str) -> None:
        now = time.time()
        self.db.executemany(
            "INSERT OR REPLACE INTO marks (item_id, keep, source, at) VALUES (?, ?, ?, ?)",
            [(int(i), int(bool(k)), source, now) for i, k in zip(item_ids, keep)],
        )

    def clear_marks(self, item_ids: Iterable[int] | None = None) -> int:
        """Forget the keep/exclude marks of these items (of all when None); how many."""
        before = self.db.total_changes
        if item_ids is None:
            self.db.execute("DELETE FROM marks")
        else:
            self.db.executemany(
                "DELETE FROM marks WHERE item_id = ?", [(int(i),) for i in item_ids]
            )
        return self.db.total_changes - before

    def add_annotations(self, item_ids: Iterable[int], caption: str) -> int:
        now = time.time()
        before = self.db.total_changes
        self.db.executemany(
            "INSERT OR IGNORE INTO annotations (item_id, caption, at) VALUES (?, ?, ?)",
            [(int(i), caption, now) for i in item_ids],
        )
        return self.db.total_changes - before

    def remove_annotations(
        self, item_ids: Iterable[int] | None = None, caption: str | None = None
    ) -> int:
        """Forget the annotations of these items, with this caption, or both (all when
        neither is given); how many went."""
        where, params = ["1"], []
        if caption is not None:
            where.append("caption = ?")
            params.append(caption)
        before = self.db.total_changes
        if item_ids is None:
            self.db.execute(f"DELETE FROM annotations WHERE {' AND '.join(where)}", params)
        else:
            self.db.executemany(
                f"DELETE FROM annotations WHERE {' AND '.join(where)} AND item_id = ?",
                [(*params, int(i)) for i in item_ids],
            )
        return self.db.total_changes - before

    def set_drawn_boxes(self, page_id: int, boxes: list[Box] | None) -> None:
        """The boxes a curator drew on a page, replacing those drawn before (None: forget
        that the page was boxed)."""
        if boxes is None:
            self.db.execute("DELETE FROM drawn_boxes WHERE page_id = ?", (int(page_id),))
            return
        self.db.execute(
            "INSERT OR REPLACE INTO drawn_boxes (page_id, boxes, at) VALUES (?, ?, ?)",
            (int(page_id), json.dumps([list(map(int, b)) for b in boxes]), time.time()),
        )

    def set_filter_scores(
        self, item_ids: Iterable[int], scores: Iterable[float], threshold: float
    ) -> None:
        self.db.executemany(
            "INSERT OR REPLACE INTO filter_scores (item_id, score, keep) VALUES (?, ?, ?)",
            [(int(i), float(s), int(s >= threshold)) for i, s in zip(item_ids, scores)],
        )

    def clear_filter_scores(self) -> None:
        self.db.execute("DELETE FROM filter_scores")

    def put_label_set(self, record: dict, *, replace: bool) -> None:
        """Write a label set's record; `replace` forgets the labels it gave before."""
        if replace:
            self.db.execute("DELETE FROM item_labels WHERE label_set = ?", (record["name"],))
        values = (
            record["name"],
            record["version"],
            record["method"],
            record["model_id"],
            record["model_version"],
            json.dumps(record["classes"], ensure_ascii=False),
            json.dumps(record["settings"], ensure_ascii=False, sort_keys=True),
            time.time(),
        )
        self.db.execute(  # not INSERT OR REPLACE: a replaced row would cascade to its labels
            "INSERT INTO label_sets (name, version, method, model_id, model_version, classes,"
            " settings, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET"
            " version = excluded.version, method = excluded.method,"
            " model_id = excluded.model_id, model_version = excluded.model_version,"
            " classes = excluded.classes, settings = excluded.settings, at = excluded.at",
            values,
        )

    def set_item_classes(
        self,
        label_set: str,
        rows: Iterable[tuple[int, str, float, str | None, float | None]],
    ) -> None:
        """(item, label, score, runner-up, its score) rows of a set."""
        self.db.executemany(
            "INSERT OR REPLACE INTO item_labels (label_set, item_id, label, score, runner_up,"
            " runner_up_score) VALUES (?, ?, ?, ?, ?, ?)",
            ((label_set, *row) for row in rows),
        )

    def remove_label_set(self, name: str) -> bool:
        """Forget a label set and its labels; whether there was one."""
        self.db.execute("DELETE FROM item_labels WHERE label_set = ?", (name,))
        return self.db.execute("DELETE FROM label_sets WHERE name = ?", (name,)).rowcount > 0

    def put_printing_pairs(
        self, pairs: Iterable[tuple[int, int, int, float, dict]], compared: Iterable[int]
    ) -> None:
        """Pairs (a, b, inliers, agreement, transform: how b shows a's picture), a < b,
        verified as printings of one picture, replacing what was found of them before; and
        the items now compared with all others."""
        self.db.executemany(
            "INSERT OR IGNORE INTO printings_compared (item_id) VALUES (?)",
            [(int(i),) for i in compared],
        )
        self.db.executemany(
            "INSERT OR REPLACE INTO printing_pairs (a, b, inliers, agreement, transform) "
            "VALUES (?, ?, ?, ?, ?)",
            [(a, b, i, g, json.dumps(t)) for a, b, i, g, t in pairs],
        )

    def skip(self, uri: str, source: str, reason: str) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO skipped (uri, source, reason, at) VALUES (?, ?, ?, ?)",
            (uri, source, reason, time.time()),
        )

    def unskip(self, uri: str) -> None:
        self.db.execute("DELETE FROM skipped WHERE uri = ?", (uri,))


def _row_id(cursor: sqlite3.Cursor) -> int:
    """The id of the row an INSERT made."""
    assert cursor.lastrowid is not None
    return cursor.lastrowid
