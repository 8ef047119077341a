"""The catalog's tables (SQLite), and bringing a catalog made by an older sashie to them."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from ..errors import Damaged

SCHEMA = """
CREATE TABLE IF NOT EXISTS pages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    uri TEXT NOT NULL UNIQUE,          -- absolute path or URL of the page image
    source TEXT NOT NULL,              -- the folder, list or manifest it came from
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    size INTEGER,                      -- file size and mtime: a cheap "unchanged" check
    mtime_ns INTEGER,
    sha256 TEXT NOT NULL,              -- of the file's bytes
    metadata TEXT NOT NULL DEFAULT '{}',
    added REAL NOT NULL,
    book_id INTEGER REFERENCES books(id),  -- the book it is a page of (sashie/sources/books.py)
    page_number INTEGER                -- 1, 2, ... in its book
);
CREATE TABLE IF NOT EXISTS books (    -- a manifest, a folder of scans, a list: its metadata
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,          -- the manifest's id, the folder's or list's path
    title TEXT NOT NULL DEFAULT '',
    creator TEXT NOT NULL DEFAULT '',
    date TEXT NOT NULL DEFAULT '',     -- as the source wrote it
    year_from INTEGER,                 -- the years it names (sashie/sources/dates.py)
    year_to INTEGER,
    place TEXT NOT NULL DEFAULT '',
    rights TEXT NOT NULL DEFAULT '',
    homepage TEXT,
    fields TEXT NOT NULL DEFAULT '{}', -- every other field, as it came
    at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS items (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    page_id INTEGER NOT NULL REFERENCES pages(id) ON DELETE CASCADE,
    detector TEXT NOT NULL,
    x0 INTEGER NOT NULL, y0 INTEGER NOT NULL, x1 INTEGER NOT NULL, y1 INTEGER NOT NULL,
    score REAL NOT NULL DEFAULT 1.0,
    hash TEXT NOT NULL                 -- of the crop's RGB pixels
);
CREATE INDEX IF NOT EXISTS pages_sha ON pages(sha256);  -- a copy of a page is found by its bytes
CREATE TABLE IF NOT EXISTS page_copies (   -- other files holding a page's very bytes: not
    uri TEXT PRIMARY KEY,                  -- indexed again; the page's items stand for them
    page_id INTEGER NOT NULL REFERENCES pages(id) ON DELETE CASCADE,
    source TEXT NOT NULL,
    size INTEGER,
    mtime_ns INTEGER,
    added REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS page_copies_page ON page_copies(page_id);
CREATE INDEX IF NOT EXISTS items_page ON items(page_id);
CREATE INDEX IF NOT EXISTS pages_book ON pages(book_id);
CREATE INDEX IF NOT EXISTS items_detector ON items(detector);  -- counts by detector (info)
CREATE TABLE IF NOT EXISTS page_detectors (
    page_id INTEGER NOT NULL REFERENCES pages(id) ON DELETE CASCADE,
    detector TEXT NOT NULL,
    PRIMARY KEY (page_id, detector)
);
CREATE TABLE IF NOT EXISTS skipped (
    uri TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    reason TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS marks (   -- people's keep/exclude marks that train the filter
    item_id INTEGER PRIMARY KEY REFERENCES items(id) ON DELETE CASCADE,
    keep INTEGER NOT NULL,             -- 1: an illustration, keep it; 0: exclude it
    source TEXT NOT NULL,              -- who said so: csv, interactive, ground-truth, web
    at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS filter_scores (   -- the saved filter's verdict on each item
    item_id INTEGER PRIMARY KEY REFERENCES items(id) ON DELETE CASCADE,
    score REAL NOT NULL,               -- probability that the item is an illustration
    keep INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS annotations (   -- captions people give items, for fine-tuning
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    item_id INTEGER NOT NULL REFERENCES items(id) ON DELETE CASCADE,
    caption TEXT NOT NULL,
    at REAL NOT NULL,
    UNIQUE (item_id, caption)
);
CREATE TABLE IF NOT EXISTS label_sets (   -- the classes `classify` gave the items, by set
    name TEXT PRIMARY KEY,
    version TEXT NOT NULL,             -- of the label file's classes (sashie/classify/labelfile.py)
    method TEXT NOT NULL,              -- prompt, coder; + few-shot
    model_id TEXT NOT NULL,
    model_version TEXT NOT NULL,       -- the model version whose vectors were labelled
    classes TEXT NOT NULL,             -- the label set as JSON
    settings TEXT NOT NULL DEFAULT '{}',  -- all else the labels depend on (re-rank, examples)
    at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS item_labels (
    label_set TEXT NOT NULL REFERENCES label_sets(name) ON DELETE CASCADE,
    item_id INTEGER NOT NULL REFERENCES items(id) ON DELETE CASCADE,
    label TEXT NOT NULL,               -- the best class's name
    score REAL NOT NULL,
    runner_up TEXT,
    runner_up_score REAL,
    PRIMARY KEY (label_set, item_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS item_labels_item ON item_labels(item_id);  -- items deleted with pages
CREATE TABLE IF NOT EXISTS vector_sets (
    model_id TEXT PRIMARY KEY,
    rows INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS printing_pairs (   -- two items verified as printings of one picture
    a INTEGER NOT NULL REFERENCES items(id) ON DELETE CASCADE,  -- a < b
    b INTEGER NOT NULL REFERENCES items(id) ON DELETE CASCADE,
    inliers INTEGER NOT NULL,          -- local features agreeing on one map (printings/matching.py)
    agreement REAL NOT NULL,           -- share of a's lines the map lays on b's
    transform TEXT NOT NULL,           -- JSON: how b shows a's picture (scale, rotation, ...)
    PRIMARY KEY (a, b)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS printing_pairs_b ON printing_pairs(b);
CREATE TABLE IF NOT EXISTS printings_compared (  -- items compared with all others by
    item_id INTEGER PRIMARY KEY REFERENCES items(id) ON DELETE CASCADE  -- `printings --all`
);
CREATE TABLE IF NOT EXISTS drawn_boxes (   -- illustrations a curator boxed on a page, to teach
    page_id INTEGER PRIMARY KEY REFERENCES pages(id) ON DELETE CASCADE,  -- the detector
    boxes TEXT NOT NULL,               -- JSON [[x0, y0, x1, y1], ...] in page pixels; [] = none
    at REAL NOT NULL
);
"""


ADDED_COLUMNS = {"pages": ("book_id INTEGER REFERENCES books(id)", "page_number INTEGER")}


def bring_up_to_date(db: sqlite3.Connection) -> None:
    """A catalog made by an older sashie, given what this one's holds: tables under their
    new names (sashie 0.3's `labels`), columns added since (a page's book)."""
    tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if "labels" in tables and "marks" not in tables:
        db.execute("ALTER TABLE labels RENAME TO marks")
    for table, columns in ADDED_COLUMNS.items():
        if table not in tables:
            continue
        have = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
        for column in columns:
            if column.split()[0] not in have:
                db.execute(f"ALTER TABLE {table} ADD COLUMN {column}")


def has_table(db: sqlite3.Connection, name: str) -> bool:
    """Whether the catalog has the table (one made before it, opened read-only, may not)."""
    found = db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,))
    return found.fetchone() is not None


def has_books(db: sqlite3.Connection) -> bool:
    """Whether the catalog records books (one made before them, opened read-only, does not)."""
    return "book_id" in {row[1] for row in db.execute("PRAGMA table_info(pages)")}


def check_tables(db: sqlite3.Connection) -> None:
    """Each of the catalog's tables is a table with its columns, not a view or another
    shape someone gave it (a `sqlite3.DatabaseError` when not)."""
    kinds = dict(db.execute("SELECT name, type FROM sqlite_master").fetchall())
    for name, wanted in _table_columns().items():
        if name not in kinds:  # missing: an older catalog's
            continue
        if kinds[name] != "table":
            raise sqlite3.DatabaseError(f"{name} is not a table")
        if not wanted <= {row[1] for row in db.execute(f"PRAGMA table_info({name})")}:
            raise sqlite3.DatabaseError(f"the {name} table lacks columns")


@lru_cache(maxsize=1)
def _table_columns() -> dict[str, frozenset[str]]:
    """The columns of each table SCHEMA makes (less those an older catalog may lack)."""
    shape = sqlite3.connect(":memory:")
    shape.executescript(SCHEMA)
    tables = [
        name
        for (name,) in shape.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        if not name.startswith("sqlite_")
    ]
    out = {}
    for name in tables:
        added = {c.split()[0] for c in ADDED_COLUMNS.get(name, ())}
        columns = {row[1] for row in shape.execute(f"PRAGMA table_info({name})")}
        out[name] = frozenset(columns - added)
    shape.close()
    return out


CATALOG_PART = "the library's catalog"


def damage(error: sqlite3.DatabaseError) -> Exception:
    """What a failed catalog statement means: a damaged catalog, unless SQLite was only busy
    or the error is another of its kinds (a constraint) that the caller handles."""
    busy = isinstance(error, sqlite3.OperationalError) and (
        "locked" in str(error) or "busy" in str(error) or "readonly" in str(error)
    )
    if busy or isinstance(error, sqlite3.IntegrityError):
        return error
    return Damaged(CATALOG_PART, str(error))


MAX_SIDE = 1 << 17  # pixels a page side may have; a larger number is a tampered catalog


def sound_box(bbox: Sequence, page_size: Sequence) -> dict:
    """An item's box and page size as sashie wrote them: whole pixels, the box inside its
    page and at least a pixel wide. A tampered catalog's values (huge, negative, not numbers)
    are brought into those bounds, so that showing the item cannot fail or blow up."""
    width, height = (min(max(whole(v), 1), MAX_SIDE) for v in page_size)
    x0, x1 = (min(max(whole(v), 0), width) for v in (bbox[0], bbox[2]))
    y0, y1 = (min(max(whole(v), 0), height) for v in (bbox[1], bbox[3]))
    x0, y0 = min(x0, width - 1), min(y0, height - 1)
    return {"bbox": (x0, y0, max(x1, x0 + 1), max(y1, y0 + 1)), "page_size": (width, height)}


def whole(value: object) -> int:
    """A stored number as an int (0 for what is not a finite number)."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0
    return int(number) if np.isfinite(number) and abs(number) < 2**62 else 0
