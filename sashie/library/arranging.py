"""A search's results arranged as a researcher asks: sorted by their books' years, grouped
by book (its best crops), counted by book, century and creator (facets), cut at a score, and
where their scores fall off (the knee), which is shown rather than applied."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace

import numpy as np

from ..errors import SashieError
from .searching import Result

SORTS = ("score", "year", "book")


def sort_results(results: list[Result], by: str = "score") -> list[Result]:
    """The results by score (as found), by their books' first years (oldest first; those
    of no known year last), or by book and page; ranked anew."""
    if by not in SORTS:
        raise SashieError(f"sort by one of {', '.join(SORTS)}, not {by!r}")
    if by == "year":
        ordered = sorted(results, key=lambda r: (_year(r) is None, _year(r) or 0))
    elif by == "book":
        ordered = sorted(results, key=lambda r: (_book_id(r), r.page_number or 0, -r.score))
    else:
        ordered = list(results)
    return [replace(r, rank=rank) for rank, r in enumerate(ordered, start=1)]


def at_least(results: list[Result], min_score: float | None) -> list[Result]:
    """The results scoring at least `min_score` (all when None)."""
    return results if min_score is None else [r for r in results if r.score >= min_score]


@dataclass(frozen=True)
class BookHits:
    """One book among a search's results: its record and its best results (best first)."""

    book: dict | None  # None: the pages of no book
    results: list[Result]
    count: int  # of all its results

    def as_dict(self) -> dict:
        return {
            "book": self.book,
            "best_score": self.results[0].score,
            "count": self.count,
            "results": [r.as_dict() for r in self.results],
        }


def by_book(results: list[Result], per_book: int = 3) -> list[BookHits]:
    """One entry per book, in the order of its first result (by score: its best), with its
    `per_book` best results (its count is of all of them)."""
    groups: dict[int, list[Result]] = {}
    for r in results:
        groups.setdefault(_book_id(r), []).append(r)
    ordered = list(groups.values())
    return [
        BookHits(rs[0].book, sorted(rs, key=lambda r: -r.score)[:per_book], len(rs))
        for rs in ordered
    ]


def book_facets(results: list[Result]) -> dict[str, list[dict]]:
    """How many results fall in each book, century and creator, most first."""
    books = Counter((_book_id(r), (r.book or {}).get("title", "")) for r in results if r.book)
    centuries = Counter(_century(y) for r in results if (y := _year(r)) is not None)
    creators = Counter(r.book["creator"] for r in results if r.book and r.book.get("creator"))
    return {
        "book": [{"id": b, "title": t, "count": n} for (b, t), n in books.most_common()],
        "century": [{"century": c, "count": n} for c, n in centuries.most_common()],
        "creator": [{"creator": c, "count": n} for c, n in creators.most_common()],
    }


def knee(results: list[Result]) -> dict | None:
    """Where the scores fall off: the rank farthest below the straight line from the first
    score to the last (the top-k's knee), and its score; None for fewer than 5 results."""
    if len(results) < 5:
        return None
    scores = np.array([r.score for r in results], np.float64)
    spread = scores[0] - scores[-1]
    if spread <= 1e-9:
        return None
    x = np.linspace(0.0, 1.0, len(scores))
    y = (scores - scores[-1]) / spread  # 1 at the first, 0 at the last
    below = (1.0 - x) - y  # how far each lies below the chord
    at = int(np.argmax(below))
    if below[at] <= 0.05:  # no bend worth a name: scores fall evenly
        return None
    return {"rank": results[at].rank, "score": float(scores[at])}


def _year(result: Result) -> int | None:
    return (result.book or {}).get("year_from")


def _book_id(result: Result) -> int:
    return int((result.book or {}).get("id") or 0)


def _century(year: int) -> str:
    """ "18th century" for 1701-1800, as catalogues count."""
    number = (year - 1) // 100 + 1
    suffix = (
        "th" if 10 <= number % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    )
    return f"{number}{suffix} century"
