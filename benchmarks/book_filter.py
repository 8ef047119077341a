"""What narrowing a search to books costs (issue 40): p50 / p95 of a top-100 search over
1.14 M vectors with the ANN index, with no filter, with one book, and with the books of a
date range, the filter's mask computed each time as `Library.search` computes it (the books
that meet the conditions, from the books' year ranges the library reads once from its
catalog; the rows of the index whose book is one of them), and again as a later search with
the same filter runs (the library keeps a filter's rows, counted, until its catalog changes),
with recall@100 against the exact top 100 of the same filter.

    python benchmarks/book_filter.py [--rows 1140000] [--books 4000] [--kind ivf] [--work DIR]
        [--seed 0]

The vectors and the ANN index are those of benchmarks/ann.py (made in --work by running it
once, unless already there). The items are spread over --books books of consecutive items
(a book's pages are indexed together), each given a year from 1600 to 1899 at random.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ann import K, open_index

FILTERS = {
    "no filter": None,
    "one book": "book=17",
    "year<1700 (a third of the books)": "year<1700",
    "year>=1650 (most books)": "year>=1650",
    "year<1630 (a tenth of the books)": "year<1630",
    "year<1610 (a thirtieth of the books)": "year<1610",
}


def books_table(count: int, seed: int = 0):
    """An in-memory catalog's books table of `count` books with random years, read the way
    the library reads its own (sashie/store/books.py)."""
    from sashie.store.books import Books
    from sashie.store.schema import SCHEMA

    db = sqlite3.connect(":memory:")
    db.executescript(SCHEMA)
    years = np.random.default_rng(seed).integers(1600, 1900, count)
    db.executemany(
        "INSERT INTO books (id, key, year_from, year_to, at) VALUES (?, ?, ?, ?, 0)",
        [(i + 1, f"book{i + 1}", int(y), int(y)) for i, y in enumerate(years)],
    )
    return Books(lambda sql, params=(): db.execute(sql, params).fetchall(), True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_140_000)
    parser.add_argument("--books", type=int, default=4000)
    parser.add_argument("--kind", default="ivf")
    parser.add_argument("--work", help="benchmarks/ann.py's folder (default: made anew)")
    parser.add_argument("--seed", type=int, default=0, help="of the books' years")
    parser.add_argument("--repeat", type=int, default=3, help="times each query is asked")
    args = parser.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="sashie-books-"))
    meta = work / "meta.json"
    if not meta.exists() or json.loads(meta.read_text())["rows"] != args.rows:
        subprocess.run(
            [sys.executable, str(Path(__file__).parent / "ann.py"), "--rows", str(args.rows),
             "--kinds", args.kind, "--work", str(work), "--no-float32", "--no-multi"],
            check=True,
        )  # fmt: skip
    elif not (work / f"{args.kind}.index").exists():
        raise SystemExit(f"no {args.kind} index in {work}: run benchmarks/ann.py there")

    from sashie.library.searching import rows_outside
    from sashie.search.ranking import AnnSearch
    from sashie.store.books import BookRuns, parse_conditions

    index = open_index(work, args.kind)
    books = books_table(args.books, args.seed)
    book_rows = BookRuns.of(np.arange(len(index)) * args.books // len(index) + 1)  # in order
    queries = np.concatenate(
        [np.load(work / "queries-text.npy"), np.load(work / "queries-image.npy")]
    )
    how = AnnSearch()
    for query in queries[:5]:  # warm: the index and the rows in memory
        index.search(query, K, how=how)

    print(
        f"{len(index):,} vectors, {args.kind} index, {args.books:,} books; top {K}; "
        f"{len(queries)} queries x {args.repeat}, every filter in turn for each query (so "
        "that the machine's drift touches them alike)"
    )
    print(
        "| filter | items searched | p50 / p95 ms, mask made | vs no filter "
        "| p50 / p95 ms, same filter again | vs no filter | recall@100 |"
    )
    print("|---|---|---|---|---|---|---|")

    years = books.years()  # the library reads them once, until its catalog changes

    def mask(conditions: str | None) -> tuple[np.ndarray | None, int | None]:
        if conditions is None:
            return None, None
        allowed = years.matching(parse_conditions(conditions))
        assert allowed is not None  # conditions on years only
        return rows_outside(book_rows, allowed)

    excludes, counts = {}, {}
    for name, conditions in FILTERS.items():  # a loaded library keeps each filter's rows
        excludes[name], counts[name] = mask(conditions)  # read-only, counted
        if excludes[name] is not None:
            excludes[name].flags.writeable = False
    made: dict[str, list[float]] = {name: [] for name in FILTERS}
    kept: dict[str, list[float]] = {name: [] for name in FILTERS}
    found: dict[str, list[np.ndarray]] = {name: [] for name in FILTERS}
    for _ in range(args.repeat):
        for query in queries:
            for name, conditions in FILTERS.items():
                started = time.perf_counter()
                exclude, count = mask(conditions)
                found[name].append(index.search(query, K, exclude=exclude, kept=count, how=how)[0])
                made[name].append(time.perf_counter() - started)
                started = time.perf_counter()
                index.search(query, K, exclude=excludes[name], kept=counts[name], how=how)
                kept[name].append(time.perf_counter() - started)
    exact_search = AnnSearch(exact=True)
    # each column against its own no-filter row: the first search of each pair runs colder
    base_made = float(np.percentile(made["no filter"], 50)) * 1000
    base_kept = float(np.percentile(kept["no filter"], 50)) * 1000
    for name in FILTERS:
        exclude = excludes[name]
        exact = [index.search(q, K, exclude=exclude, how=exact_search)[0] for q in queries]
        recall = np.mean(
            [len(np.intersect1d(f, exact[i % len(queries)])) / max(1, len(exact[i % len(queries)]))
             for i, f in enumerate(found[name])]
        )  # fmt: skip
        searched = len(index) if exclude is None else int((~exclude).sum())
        p50, p95 = (float(np.percentile(made[name], q)) * 1000 for q in (50, 95))
        k50, k95 = (float(np.percentile(kept[name], q)) * 1000 for q in (50, 95))
        print(
            f"| {name} | {searched:,} | {p50:.2f} / {p95:.2f} | {p50 / base_made - 1:+.0%} "
            f"| {k50:.2f} / {k95:.2f} | {k50 / base_kept - 1:+.0%} | {recall:.3f} |"
        )


if __name__ == "__main__":
    main()
