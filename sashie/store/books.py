"""The catalog's books: which book each page is of, what each book records, and the books a
search's conditions keep (`year<1700`, `creator~北斎`, `book=12`). Written by `Transaction`
(put_book, set_page_book); read here."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import SashieError

Query = Callable[..., list[tuple]]  # the catalog's `_query`
COLUMNS = "id, key, title, creator, date, year_from, year_to, place, rights, homepage, fields"
TEXT_FIELDS = ("title", "creator", "place", "rights", "key")
AND = re.compile(r"\s+and\s+", re.IGNORECASE)
CONDITION = re.compile(
    r"^\s*(year|book|title|creator|place|rights|key)\s*(<=|>=|!=|=|<|>|~)\s*(.+?)\s*$"
)


@dataclass(frozen=True)
class BookRuns:
    """The book id of each row of an index (0: none), as runs of equal ids: `books[i]` for
    `lengths[i]` rows (a book's items are indexed together)."""

    books: np.ndarray
    lengths: np.ndarray

    @classmethod
    def of(cls, row_books: np.ndarray) -> BookRuns:
        """The runs of a book id a row."""
        row_books = np.asarray(row_books, np.int64)
        if len(row_books) == 0:
            return cls(row_books, np.zeros(0, np.int64))
        starts = np.flatnonzero(np.r_[True, row_books[1:] != row_books[:-1]])
        return cls(row_books[starts], np.diff(np.r_[starts, len(row_books)]))

    @functools.cached_property
    def last(self) -> int:
        """The largest book id of a row (0 when there are no rows): found once, as the runs
        do not change."""
        return int(self.books.max()) if len(self.books) else 0


@dataclass(frozen=True)
class Condition:
    """One condition on books: `year<1700`, `creator~北斎`, `book=12`."""

    field: str
    op: str
    value: str | int

    def sql(self) -> tuple[str, list]:
        """The condition as SQL over the books table, and its parameters. Years are ranges:
        `year<Y` keeps a book that may be before Y (its first year is), `year>Y` one that may
        be after, `year=Y` one whose range holds Y; a book without years matches none."""
        if self.field == "year":
            year = int(self.value)
            return {
                "<": ("year_from < ?", [year]),
                "<=": ("year_from <= ?", [year]),
                ">": ("year_to > ?", [year]),
                ">=": ("year_to >= ?", [year]),
                "=": ("year_from <= ? AND year_to >= ?", [year, year]),
                "!=": ("NOT (year_from <= ? AND year_to >= ?)", [year, year]),
            }[self.op]
        column = "id" if self.field == "book" else self.field
        if self.op == "~":
            return f"instr(lower({column}), lower(?)) > 0", [str(self.value)]
        return f"{column} {self.op} ?", [self.value]  # = or != (parse_conditions checked)


@dataclass(frozen=True)
class BookYears:
    """Every book's id and year range (NaN: none given), so that conditions on years and ids
    are met without asking SQLite (a first search with a new date range: 1 ms less)."""

    ids: np.ndarray
    year_from: np.ndarray
    year_to: np.ndarray

    def matching(self, conditions: list[Condition]) -> np.ndarray | None:
        """The ids of the books that meet every condition, exactly as `Books.matching` (SQL's
        three-valued logic: a comparison with a missing year is neither true nor false);
        None when a condition is on another field."""
        if any(c.field not in ("year", "book") for c in conditions):
            return None
        true = np.ones(len(self.ids), bool)
        for condition in conditions:
            true &= self._true(condition)
        return self.ids[true]

    def _true(self, condition: Condition) -> np.ndarray:
        value, op = int(condition.value), condition.op
        if condition.field == "book":
            return (self.ids == value) if op == "=" else (self.ids != value)
        first, last = self.year_from, self.year_to
        with np.errstate(invalid="ignore"):  # NaN compares False either way
            if op in ("<", "<="):
                return first < value if op == "<" else first <= value
            if op in (">", ">="):
                return last > value if op == ">" else last >= value
            if op == "=":  # year_from <= Y AND year_to >= Y
                return (first <= value) & (last >= value)
            return (first > value) | (last < value)  # its negation, false where NaN


def parse_conditions(text: str | None) -> list[Condition]:
    """`year<1700 and creator~北斎 and title="Birds and flowers"` as conditions (a value with
    spaces or "and" in it is quoted); one error line naming the part that is not one."""
    if text is None or not text.strip():
        return []
    if len(text) > 1000:
        raise SashieError("conditions of at most 1000 characters, please")
    out = []
    for part in _parts(text.strip()):
        found = CONDITION.match(part)
        if found is None:
            raise SashieError(
                f"not a condition: {part.strip()!r} (e.g. year<1700, year>=1600, "
                "creator~北斎, place=江戸, title~絵本, book=12)"
            )
        name, op, value = found.groups()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        if name in ("year", "book"):
            if not re.fullmatch(r"-?\d{1,6}", value):
                raise SashieError(f"{name} is compared with a whole number, not {value!r}")
            if name == "book" and op not in ("=", "!="):
                raise SashieError("book takes = or != (a book's id, from `sashie books`)")
            if name == "year" and op == "~":
                raise SashieError("year takes < <= > >= = or !=, not ~")
            out.append(Condition(name, op, int(value)))
        else:
            if op not in ("=", "!=", "~"):
                raise SashieError(f"{name} takes = != or ~ (contains), not {op}")
            out.append(Condition(name, op, value))
    return out


def _parts(text: str) -> list[str]:
    """The conditions of a text, split at each "and" outside quotes."""
    parts, start, quote, at = [], 0, "", 0
    while at < len(text):
        char = text[at]
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif found := AND.match(text, at):
            parts.append(text[start:at])
            start = at = found.end()
            continue
        at += 1
    parts.append(text[start:])
    return parts


class Books:
    """The books of one catalog, read through its query function."""

    def __init__(self, query: Query, known: bool) -> None:
        self._query = query
        self.known = known  # False: a catalog made before books, opened read-only

    def all(self) -> list[dict]:
        """Every book with its page and item counts, by id."""
        if not self.known:
            return []
        counts = {
            book: (pages, items)
            for book, pages, items in self._query(
                "SELECT p.book_id, COUNT(DISTINCT p.id), COUNT(i.id) FROM pages p "
                "LEFT JOIN items i ON i.page_id = p.id GROUP BY p.book_id"
            )
        }
        out = []
        for row in self._query(f"SELECT {COLUMNS} FROM books ORDER BY id"):
            book = _book(row)
            book["pages"], book["items"] = counts.get(book["id"], (0, 0))
            out.append(book)
        return out

    def get(self, book_ids: Iterable[int]) -> dict[int, dict]:
        """These books' records, by id."""
        wanted = sorted({int(b) for b in book_ids})
        if not self.known or not wanted:
            return {}
        found = {}
        for start in range(0, len(wanted), 900):
            chunk = wanted[start : start + 900]
            marks = ",".join("?" * len(chunk))
            for row in self._query(f"SELECT {COLUMNS} FROM books WHERE id IN ({marks})", chunk):
                found[row[0]] = _book(row)
        return found

    def of_items(self, item_ids: Sequence[int]) -> dict[int, tuple[int, int | None]]:
        """Each item's book and page number, by item (items of no book left out)."""
        if not self.known:
            return {}
        out: dict[int, tuple[int, int | None]] = {}
        ids = [int(i) for i in item_ids]
        for start in range(0, len(ids), 900):
            chunk = ids[start : start + 900]
            marks = ",".join("?" * len(chunk))
            out.update(
                (item, (book, number))
                for item, book, number in self._query(
                    "SELECT i.id, p.book_id, p.page_number FROM items i JOIN pages p "
                    f"ON p.id = i.page_id WHERE i.id IN ({marks}) AND p.book_id IS NOT NULL",
                    chunk,
                )
            )
        return out

    def by_key(self) -> dict[str, dict]:
        """Every book's record, by its key."""
        if not self.known:
            return {}
        return {row[1]: _book(row) for row in self._query(f"SELECT {COLUMNS} FROM books")}

    def page_books(self) -> dict[str, tuple[int | None, int | None]]:
        """Each page's book and page number, by the page's uri."""
        if not self.known:
            return {}
        rows = self._query("SELECT uri, book_id, page_number FROM pages")
        return {uri: (book, number) for uri, book, number in rows}

    def pages_of(self, book_id: int) -> list[tuple[int, int | None]]:
        """(page id, page number) of a book's pages, in the book's order."""
        if not self.known:
            return []
        rows = self._query(
            "SELECT id, page_number FROM pages WHERE book_id = ? ORDER BY page_number, id",
            (int(book_id),),
        )
        return [(page, number) for page, number in rows]

    def item_books(self) -> tuple[np.ndarray, np.ndarray]:
        """(item ids, their books' ids; 0 for none), every item, by item id."""
        if not self.known:
            rows = self._query("SELECT id, 0 FROM items ORDER BY id")
        else:
            rows = self._query(
                "SELECT i.id, COALESCE(p.book_id, 0) FROM items i JOIN pages p "
                "ON p.id = i.page_id ORDER BY i.id"
            )
        table = np.array(rows, np.int64).reshape(-1, 2)
        return table[:, 0], table[:, 1]

    def years(self) -> BookYears:
        """Every book's id and year range."""
        rows = (
            self._query("SELECT id, year_from, year_to FROM books ORDER BY id")
            if self.known
            else []
        )
        table = np.array(
            [(i, np.nan if a is None else a, np.nan if b is None else b) for i, a, b in rows],
            np.float64,
        ).reshape(-1, 3)
        return BookYears(table[:, 0].astype(np.int64), table[:, 1], table[:, 2])

    def matching(self, conditions: list[Condition]) -> np.ndarray:
        """The ids of the books that meet every condition."""
        if not self.known:
            return np.zeros(0, np.int64)
        where, params = [], []
        for condition in conditions:
            sql, values = condition.sql()
            where.append(f"({sql})")
            params += values
        sql = "SELECT id FROM books" + (" WHERE " + " AND ".join(where) if where else "")
        return np.array([row[0] for row in self._query(sql, params)], np.int64)


def _book(row: tuple) -> dict:
    try:
        fields = json.loads(row[10])
    except (TypeError, ValueError, RecursionError):
        fields = {}
    names = COLUMNS.split(", ")
    book = dict(zip(names[:10], row[:10]))
    book["fields"] = fields if isinstance(fields, dict) else {}
    return book
