"""`sashie search`: by text, by example images, by a sum of both; refined by feedback."""

from __future__ import annotations

import csv
import io
import os
import shutil
import unicodedata
from urllib.parse import urlsplit

import click

from ...library import (
    SORTS,
    Asked,
    BookHits,
    Filters,
    Library,
    Result,
    book_facets,
    knee,
    sort_results,
)
from ...library import by_book as by_book_hits
from ...search.feedback import DEFAULT_LEARNER, FEEDBACK_LEARNERS
from ...search.query import (
    DEFAULT_DIMS,
    DEFAULT_MODIFY_WEIGHT,
    DEFAULT_SELECT,
    MODIFY_METHODS,
    SELECTIONS,
    parse_dims,
    parse_ids,
)
from ...search.ranking import DEFAULT_K
from .common import TRUST_REMOTE_CODE, ann_setting, echo_json

TABLE_K = 20  # results the table shows unless --k says otherwise: a screenful


@click.command()
@click.argument("library", type=click.Path(file_okay=False))
@click.argument("query", required=False)
@click.option(
    "--image",
    "-i",
    "images",
    multiple=True,
    metavar="PATH_OR_URL",
    help="An example image; give several for a multi-image query.",
)
@click.option(
    "--modify",
    metavar="WORDS",
    help='Words that change the --image: "hand-coloured", "with a plum tree" (composed search).',
)
@click.option(
    "--modify-weight",
    type=click.FloatRange(0, 1000, min_open=True),
    default=DEFAULT_MODIFY_WEIGHT,
    show_default=True,
    metavar="W",
    help="How much the --modify words weigh against the picture (the sum method).",
)
@click.option(
    "--modify-method",
    type=click.Choice(MODIFY_METHODS),
    default="auto",
    show_default=True,
    help="sum: picture + W x words; tokens: the picture as pseudo-words read with the "
    "words (after `sashie compose train`); light: the same from the light query encoder; "
    "auto: tokens when trained, else sum.",
)
@click.option(
    "--k",
    "-k",
    type=click.IntRange(1),
    help=f"How many results (default: {TABLE_K} in the table, {DEFAULT_K} with --json or --csv).",
)
@click.option(
    "--dims",
    default=str(DEFAULT_DIMS),
    show_default=True,
    metavar="D|all",
    help="Multi-image queries: dimensions kept; 'all' keeps every one.",
)
@click.option(
    "--select",
    type=click.Choice(SELECTIONS),
    default=DEFAULT_SELECT,
    show_default=True,
    help="Multi-image queries: lowest coefficient of variation, or a random control.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for --select random.")
@click.option("--model", "-m", metavar="SPEC_OR_ID", help="Which of the library's models.")
@click.option(
    "--all",
    "all_items",
    is_flag=True,
    help="Search every item, also those the keep/exclude filter excluded.",
)
@click.option(
    "--label",
    "labels",
    multiple=True,
    metavar="LABEL",
    help="Only items of this class (repeatable: any of them), as `sashie classify` labelled "
    "them; a class's Japanese name or synonym works too.",
)
@click.option(
    "--not-label", "not_labels", multiple=True, metavar="LABEL", help="Leave this class out."
)
@click.option(
    "--label-set",
    metavar="NAME",
    help="Which label set --label and the results' classes come from (default: the newest).",
)
@click.option(
    "--where",
    "conditions",
    metavar="CONDITIONS",
    help="Only items of the books that meet these: year<1700, year>=1600, creator~北斎, "
    "place=江戸, title~絵本 (joined by 'and'). A year is a range: year<1700 keeps a book that "
    "may be older than 1700.",
)
@click.option(
    "--book", "books", multiple=True, type=int, metavar="ID", help="Only this book's items "
    "(its id: `sashie books LIB`); again for more."
)  # fmt: skip
@click.option(
    "--sort",
    type=click.Choice(SORTS),
    default="score",
    show_default=True,
    help="Order of the results: by score, by their books' years (oldest first), by book.",
)
@click.option("--min-score", type=float, metavar="S", help="Leave out results scoring less than S.")
@click.option(
    "--by-book", is_flag=True, help="One row per book: its best results and how many it has."
)
@click.option(
    "--relevant",
    metavar="IDS",
    help="Relevance feedback: item ids marked relevant (comma-separated).",
)
@click.option("--irrelevant", metavar="IDS", help="Item ids marked not relevant.")
@click.option(
    "--learner",
    type=click.Choice(FEEDBACK_LEARNERS),
    default=DEFAULT_LEARNER,
    show_default=True,
    help="How feedback is learnt.",
)
@click.option(
    "--exact",
    is_flag=True,
    help="Scan every vector instead of asking the library's ANN index (large libraries "
    "have one: `sashie reindex -h`).",
)
@ann_setting(
    "--nprobe", "ANN index of kind ivf/ivfpq: cells scanned (more: better recall, slower)."
)
@ann_setting(
    "--ef", "ANN index of kind hnsw: breadth of the graph search (more: better recall, slower)."
)
@TRUST_REMOTE_CODE
@click.option("--json", "as_json", is_flag=True, help="Print JSON: every fact of each result.")
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV, for a spreadsheet.")
def search(
    library,
    query,
    images,
    modify,
    modify_weight,
    modify_method,
    k,
    dims,
    select,
    seed,
    model,
    all_items,
    labels,
    not_labels,
    label_set,
    conditions,
    books,
    sort,
    min_score,
    by_book,
    relevant,
    irrelevant,
    learner,
    exact,
    nprobe,
    ef,
    trust_remote_code,
    as_json,
    as_csv,
):
    """Search LIBRARY by text, by example images, or by a sum of both.

    \b
    QUERY is text, or terms joined by ' + ' and ' - ', each optionally weighted:
      "crane"                     text
      '"crane" + pine.jpg'        text plus an image
      'pine.jpg - 0.5*"text"'     an image, less some of a text
    A term naming an existing file or an image URL is an image; quote it to search the text.

    \b
    A picture changed by words (composed search):
      sashie search LIB --image crane.png --modify "hand-coloured"
    (`sashie compose train LIB` first makes it better: see `sashie compose -h`)

    \b
    Narrowed to a class, after `sashie classify LIB --labels labels.csv`:
      sashie search LIB "a crane" --label 鳥 --not-label 人物

    \b
    Narrowed to books, by what their manifests or --metadata said (`sashie books LIB`):
      sashie search LIB "a crane" --where "year<1700" --sort year
      sashie search LIB "a crane" --book 3 --by-book
    """
    if k is None:
        k = DEFAULT_K if as_json or as_csv else TABLE_K
    lib = Library(library, progress=True, trust_remote_code=trust_remote_code)
    feedback = bool(relevant or irrelevant)
    where = Filters(
        all_items=all_items, label=labels, not_label=not_labels, label_set=label_set,
        book=list(books) or None, conditions=conditions, min_score=min_score,
    )  # fmt: skip
    asked = Asked(
        text=query,
        images=images,
        modify=modify,
        modify_weight=modify_weight,
        modify_method=modify_method,
        dims=None if feedback else parse_dims(dims),
        select=select,
        seed=seed,
    )
    made = lib.query(asked, model=model)
    if made.note:
        click.echo(f"note: {made.note}", err=True)
    if feedback:
        results = lib.feedback(
            made,
            k,
            relevant=parse_ids(relevant),
            irrelevant=parse_ids(irrelevant),
            learner=learner,
            where=where,
            model=model,
        )
    else:
        results = lib.search(made, k, where=where, model=model, exact=exact, nprobe=nprobe, ef=ef)
    bend = knee(results)  # found on the scores' order, before any other sort
    results = sort_results(results, sort)
    if by_book:
        _print_books(by_book_hits(results), as_json=as_json)
    else:
        _print_results(results, k, as_json=as_json, as_csv=as_csv, bend=bend)


def _print_results(
    results: list[Result], k: int, *, as_json: bool, as_csv: bool, bend: dict | None
) -> None:
    if as_json:
        facets = book_facets(results)
        echo_json({"results": [r.as_dict() for r in results], "knee": bend, "facets": facets})
        return
    if as_csv:
        click.echo(results_csv(results), nl=False)
    elif not results:
        click.echo("no results: the library has no such items for this model")
    else:
        click.echo(results_table(results, shutil.get_terminal_size().columns))
        if len(results) == k:
            click.echo(f"the best {k}; --k N for more, --json or --csv for every field", err=True)
    if bend is not None and not as_csv:
        click.echo(
            f"scores fall off after rank {bend['rank']} (score {bend['score']:.3f}); "
            "--min-score cuts there",
            err=True,
        )


def _print_books(groups: list[BookHits], *, as_json: bool) -> None:
    """One row per book: its title, creator and date, how many results, the best ones."""
    if as_json:
        echo_json({"books": [g.as_dict() for g in groups]})
        return
    for group in groups:
        book = group.book or {}
        told = " · ".join(
            filter(None, (book.get("title") or "(no book)", book.get("creator"), book.get("date")))
        )
        best = ", ".join(
            f"{r.item} (p.{r.page_number or '?'}, {r.score:.3f})" for r in group.results
        )
        click.echo(
            f"{book.get('id', '-'):>5}  {len(group.results):>3} best of {group.count}: "
            f"{told}\n       {best}"
        )


def results_table(results: list[Result], width: int = 100) -> str:
    """The results as a table that fits `width` columns: the page's path relative to the
    source it was indexed from, shortened from the left when it is too long."""
    classes = any(r.class_label for r in results)
    # the book column, when it tells more than the page's folder: several books, or dates
    known = {r.book["id"]: r.book for r in results if r.book}
    books = len(known) > 1 or any(b.get("year_from") for b in known.values())
    columns = [("rank", 4, ">"), ("score", 6, ">"), ("item", 7, ">"), ("box x,y wxh", 17, "<")]
    if classes:
        columns.append(("label", 12, "<"))
    if books:
        columns.append(("book, page", BOOK_WIDTH, "<"))
    room = max(20, width - sum(w + 2 for _, w, _ in columns))
    lines = ["  ".join(_cell(name, w, align) for name, w, align in columns) + "  page"]
    for r in results:
        x0, y0, x1, y1 = r.bbox
        cells = [str(r.rank), f"{r.score:.3f}", str(r.item), f"{x0},{y0} {x1 - x0}x{y1 - y0}"]
        if classes:
            cells.append(r.class_label or "-")
        if books:
            cells.append(_book_cell(r))
        row = [_cell(c, w, align) for c, (_, w, align) in zip(cells, columns)]
        lines.append("  ".join(row) + "  " + _shortened(shown_page(r.page, r.source), room))
    return "\n".join(lines)


BOOK_WIDTH = 22  # columns of the results table's book cell


def _book_cell(result: Result) -> str:
    """A result's book as a table shows it: its title (shortened from the left, as every
    cell) then its page, "p.3"; its year when known."""
    if result.book is None:
        return "-"
    year = result.book.get("year_from")
    tail = (f" p.{result.page_number}" if result.page_number else "") + (f" {year}" if year else "")
    title = str(result.book.get("title") or result.book["id"])
    room = BOOK_WIDTH - _display_width(tail)
    while _display_width(title) > room and len(title) > 1:
        title = title[:-2] + "…"
    return title + tail


def shown_page(page: str, source: str) -> str:
    """A page as a person reads it: relative to the folder it was indexed from; a URL's host
    and path; control characters shown as "?"."""
    if "://" in page:
        parts = urlsplit(page)
        page = f"{parts.netloc}{parts.path}"
    else:
        folder = source.rstrip(os.sep) + os.sep  # a list file or manifest is no page's folder
        page = page[len(folder) :] if page.startswith(folder) else page
    # a library from elsewhere may name a page with terminal control sequences in it
    return "".join("?" if unicodedata.category(c) == "Cc" else c for c in page)


def _display_width(text: str) -> int:
    """Columns a text takes in a terminal (CJK characters take two)."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _shortened(text: str, width: int) -> str:
    """The text, or its end after "…" when it is wider than `width` columns."""
    if _display_width(text) <= width:
        return text
    kept, used = len(text), 1  # the "…" takes one column
    while kept and used + _display_width(text[kept - 1]) <= width:
        kept -= 1
        used += _display_width(text[kept])
    return "…" + text[kept:]


def _cell(text: str, width: int, align: str) -> str:
    text = _shortened(text, width) if align == "<" else text
    pad = " " * max(0, width - _display_width(text))
    return pad + text if align == ">" else text + pad


CSV_COLUMNS = (
    *("rank", "item", "score", "page", "x0", "y0", "x1", "y1", "detector", "source"),
    *("canvas", "region", "mark", "verdict", "captions", "class_label"),
)


def results_csv(results: list[Result]) -> str:
    """The results as CSV: one row each, the box as four columns, captions joined by "; "."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for r in results:
        row = r.as_dict()
        row.update(zip(("x0", "y0", "x1", "y1"), r.bbox), captions="; ".join(r.captions))
        writer.writerow(["" if row[c] is None else row[c] for c in CSV_COLUMNS])
    return out.getvalue()
