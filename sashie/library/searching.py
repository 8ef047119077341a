"""One search of a library, in one place: the query built from what was asked (the text or
expression, example images and items, the words that modify the pictures, which composer
reads them or why none does), which items it looks at (`Filters`), and its results. The
arithmetic of terms is in sashie/search/query.py, the ranking in sashie/search/ranking.py,
composing in sashie/compose."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from ..encoders import Encoder
from ..errors import SashieError
from ..search.query import (
    DEFAULT_DIMS,
    DEFAULT_MODIFY_WEIGHT,
    DEFAULT_SELECT,
    MODIFY_METHODS,
    Query,
    Term,
    build_query,
    modified,
    parse_query,
    query_image,
    read_pictures,
)
from ..store.books import BookRuns, parse_conditions
from . import iiif
from .composers import Composers, QueryImage
from .export import Judged
from .labels import Labels
from .parts import Ids, Parts

if TYPE_CHECKING:  # torch: imported when a composer is used
    from ..compose.composer import Composer


REMEMBERED_FILTERS = 8  # filters whose rows left out a loaded index keeps


@dataclass(frozen=True, kw_only=True)
class Asked:
    """What a person asked for: a text or expression, example images (paths, URLs or
    pictures) and example items (their stored vectors), and words that change the pictures.

    `modify_method`: "sum" (picture + `modify_weight` x words), "tokens" (the picture as
    pseudo-words read with the words: needs a composer), "light" (the same from the light
    query encoder's vector), "auto" (tokens when this version has a composer, else sum; the
    query's note says why when it falls back). Several examples keep the `dims` dimensions
    they agree on most (`select`: "cv", or "random" for the control; None: all).
    `images_in_text`: a term of the text that names an image file or URL is that image (the
    web server turns it off: no request may name a file on the server)."""

    text: str | None = None
    images: Sequence[QueryImage] = ()
    items: Ids = ()
    modify: str | None = None
    modify_weight: float = DEFAULT_MODIFY_WEIGHT
    modify_method: str = "auto"
    dims: int | None = DEFAULT_DIMS
    select: str = DEFAULT_SELECT
    seed: int = 0
    images_in_text: bool = True


@dataclass(frozen=True, kw_only=True)
class Filters:
    """Which items a search looks at: by default those the keep/exclude filter kept
    (`all_items`: every item). `label` keeps only items whose class (in `label_set`, by
    default the newest set `classify` made) is one of these; `not_label` leaves those out.
    `book` keeps only the items of these books (ids: `sashie books`), `conditions` those of
    the books that meet them ("year<1700 and creator~北斎": sashie/store/books.py).
    `min_score`: results scoring less are left out."""

    all_items: bool = False
    label: str | Sequence[str] | None = None
    not_label: str | Sequence[str] | None = None
    label_set: str | None = None
    book: int | Sequence[int] | None = None
    conditions: str | None = None
    min_score: float | None = None

    def check(self) -> Filters:
        """These filters, once their conditions read (one error line when one does not)."""
        parse_conditions(self.conditions)
        return self


def left_out(
    parts: Parts, labels: Labels, where: Filters, model: str | None
) -> tuple[np.ndarray | None, int | None, str | None]:
    """The rows of the model's index a search leaves out (None: none), how many rows it
    looks at (None: all), and the label set whose classes its results carry. Kept for the
    next search with the same filters until the catalog changes (a few of them): the mask
    and its count are then not made again."""
    label_set = labels.chosen(where.label_set)
    key = (
        where.all_items, label_set, _names(where.label), _names(where.not_label),
        _names(where.book), where.conditions,
    )  # fmt: skip
    remembered = parts.load(model).left
    if key not in remembered:
        present = [
            (mask, kept)  # rows left out, and how many are left in when known
            for mask, kept in (
                (None if where.all_items else parts.excluded_rows(model), None),
                (labels.left_out(model, label_set, where.label, where.not_label), None),
                _outside_books(parts, where, model),
            )
            if mask is not None
        ]
        excluded, kept = present[0] if len(present) == 1 else (None, None)
        if len(present) > 1:
            excluded = functools.reduce(np.logical_or, [mask for mask, _ in present])
        if excluded is not None:
            excluded.flags.writeable = False  # shared by the searches that reuse it
            if kept is None:
                kept = len(excluded) - int(np.count_nonzero(excluded))
        if len(remembered) >= REMEMBERED_FILTERS:
            remembered.pop(next(iter(remembered)))
        remembered[key] = (excluded, kept)
    return (*remembered[key], label_set)


def _names(value: str | int | Sequence | None) -> tuple | None:
    """A filter's value (a name, an id, or several) as a key."""
    if value is None:
        return None
    if isinstance(value, str | int):
        return (value,)
    return tuple(value)


def _outside_books(
    parts: Parts, where: Filters, model: str | None
) -> tuple[np.ndarray | None, int | None]:
    """The rows whose books the filters leave out (None: they name no book), and how many
    rows are left in."""
    conditions = parse_conditions(where.conditions)
    if where.book is None and not conditions:
        return None, None
    allowed = parts.book_years(model).matching(conditions)
    if allowed is None:  # a condition on titles, creators, places: SQLite's
        allowed = parts.catalog.books.matching(conditions)
    if where.book is not None:
        wanted = [where.book] if isinstance(where.book, int) else list(where.book)
        allowed = np.intersect1d(allowed, np.asarray(wanted, np.int64))
    return rows_outside(parts.book_rows(model), allowed)


def rows_outside(book_rows: BookRuns, allowed: np.ndarray) -> tuple[np.ndarray, int]:
    """The rows whose book is not one of `allowed`, and how many rows are: a table of the
    books looked up run by run (a book's items are indexed together: a few thousand runs for
    a million rows), the rows left in counted from the runs' lengths, not row by row."""
    last = book_rows.last
    left = np.ones(last + 1, bool)
    left[allowed[(allowed >= 0) & (allowed <= last)]] = False
    run_left = left[book_rows.books]
    kept = int(book_rows.lengths[~run_left].sum())
    return np.repeat(run_left, book_rows.lengths), kept  # one row-long array, not two


def build(parts: Parts, composers: Composers, asked: Asked, model: str | None) -> Query:
    """The query vector of what was asked, with the dimensions its examples agree on."""
    if asked.modify_method not in MODIFY_METHODS:
        raise SashieError(f"the modify method must be one of {', '.join(MODIFY_METHODS)}")
    terms = parse_query(asked.text, files=asked.images_in_text) if asked.text else []
    terms += [
        Term(1.0, "image", image if isinstance(image, Image.Image) else str(image))
        for image in asked.images
    ]
    terms = read_pictures(terms)  # before any model loads: a bad file is one error line
    if len(asked.items):
        known = parts.known_items(asked.items)
        terms += [Term(1.0, "vector", v) for v in parts.vectors_of(known, model, None)]
    encoder = parts.query_encoder(model)
    method, composer, note = _method(parts, composers, asked, model, encoder)
    if method == "light":
        terms = _light_terms(parts, terms, composer)
    query = build_query(encoder, terms, dims=asked.dims, select=asked.select, seed=asked.seed)
    if asked.modify is None:
        return query
    if composer is None:
        query = modified(query, encoder, asked.modify, asked.modify_weight)
        return Query(query.vector, query.dims, query.terms, note)
    from ..compose.composer import composed
    from ..compose.slots import token_slots

    return composed(query, composer, token_slots(encoder), asked.modify, light=method == "light")


def _method(
    parts: Parts, composers: Composers, asked: Asked, model: str | None, encoder: Encoder
) -> tuple[str, Composer | None, str | None]:
    """How the modifying words join the pictures: the method, its composer (None for the
    sum) and, when "auto" fell back to the sum, why."""
    if asked.modify is None or asked.modify_method == "sum":
        return "sum", None, None
    composer, note = composers.usable(model, encoder)
    if composer is not None:
        method = "tokens" if asked.modify_method == "auto" else asked.modify_method
        return method, composer, None
    if asked.modify_method != "auto":
        raise SashieError(
            note
            or f"the {asked.modify_method} method needs a composer: train one with "
            f"`sashie compose train {parts.path}`"
        )
    return "sum", None, None if note is None else note + "; composed by the sum method"


def _light_terms(parts: Parts, terms: list[Term], composer: Composer | None) -> list[Term]:
    """The query's pictures as the light encoder's vectors (the gallery model's image
    tower is not run for them: the asymmetric method)."""
    pictures = [i for i, t in enumerate(terms) if t.kind == "image"]
    if not pictures:
        raise SashieError("the light method reads a picture: give an --image")
    assert composer is not None
    if composer.light is None:
        raise SashieError(
            "this library's composer has no light encoder; train one with "
            f"`sashie compose train {parts.path} --light`"
        )
    images = [query_image(terms[i].value) for i in pictures]  # type: ignore[arg-type]
    vectors = composer.light_vectors(images)
    out = list(terms)
    for i, vector in zip(pictures, vectors):
        out[i] = Term(terms[i].weight, "vector", vector)
    return out


@dataclass(frozen=True, kw_only=True)
class Result:
    rank: int
    item: int
    score: float
    page: str  # the page image: path or URL
    bbox: tuple[int, int, int, int]
    detector: str
    source: str
    metadata: dict  # what the source says of the page (IIIF: manifest, canvas, service)
    page_size: tuple[int, int]
    mark: str | None  # a person's mark: "keep", "exclude" or None
    verdict: str | None  # the filter's: "keep", "exclude" or None (no filter, not scored)
    captions: tuple[str, ...]  # the item's annotations
    canvas: str | None  # the IIIF canvas the page is (None: not from a IIIF manifest)
    region: str | None  # the item on that canvas: "canvas#xywh=x,y,w,h" (sashie/library/iiif.py)
    class_label: str | None = None  # its class in the label set the search used (classify)
    copies: tuple[str, ...] = ()  # other files with the page's very bytes (not indexed again)
    book: dict | None = None  # the book its page is of: id, title, creator, date, years ...
    page_number: int | None = None  # the page's place in its book (1, 2, ...)
    content_state: str | None = None  # its region as an encoded Content State (iiif-content)
    viewer_url: str | None = None  # a viewer opened at its region (SASHIE_VIEWER)
    homepage: str | None = None  # its book's page at the institution that holds it

    def as_dict(self) -> dict:
        """Everything a script needs, as JSON-ready data (`search --json`, the API)."""
        out = asdict(self)
        out.update(bbox=list(self.bbox), page_size=list(self.page_size))
        out.update(captions=list(self.captions), copies=list(self.copies))
        return out


def results(
    parts: Parts, item_ids: np.ndarray, scores: np.ndarray, label_set: str | None = None
) -> list[Result]:
    """The ranked items as results; an item removed since the vectors were loaded is left
    out. `label_set`: the set whose class each result carries."""
    catalog = parts.catalog
    rows = {row.id: row for row in catalog.items(item_ids.tolist())}
    found = [(item, score) for item, score in zip(item_ids.tolist(), scores) if item in rows]
    ids = [item for item, _ in found]
    said = judged(parts, ids)
    classes = {} if label_set is None else catalog.item_classes(label_set, ids)
    copies = catalog.copies_of(rows[item].page_id for item in ids)
    places = catalog.books.of_items(ids)
    books = catalog.books.get(book for book, _ in places.values())
    viewer = iiif.viewer_template()
    out = []
    for rank, (item, score) in enumerate(found, start=1):
        row = rows[item]
        where = iiif.place(row)
        book = _shown_book(books.get(places[item][0])) if item in places else None
        out.append(
            Result(
                rank=rank,
                item=item,
                score=float(score),
                page=row.page,
                bbox=row.bbox,
                detector=row.detector,
                source=row.source,
                metadata=row.metadata,
                page_size=row.page_size,
                mark=said.mark(item),
                verdict=said.verdict(item),
                captions=tuple(said.captions.get(item, ())),
                canvas=where.canvas if where else None,
                region=where.region if where else None,
                class_label=classes[item][0] if item in classes else None,
                copies=tuple(copies.get(row.page_id, ())),
                book=book,
                page_number=places[item][1] if item in places else None,
                content_state=iiif.encode_content_state(iiif.content_state(where))
                if where
                else None,
                viewer_url=iiif.viewer_url(viewer, where, row.metadata.get("canvas_index"))
                if where
                else None,
                homepage=book.get("homepage") if book else None,
            )
        )
    return out


def _shown_book(book: dict | None) -> dict | None:
    """What a result tells of its book (all but the fields kept as they came)."""
    return None if book is None else {k: v for k, v in book.items() if k != "fields"}


def judged(parts: Parts, item_ids: list[int] | None = None) -> Judged:
    """People's marks and captions and the filter's verdicts, of these items or all."""
    marked, keep = parts.catalog.marks(item_ids)
    captions: dict[int, list[str]] = {}
    for a in parts.catalog.annotations(item_ids):
        captions.setdefault(a["item"], []).append(a["caption"])
    marks = dict(zip(marked.tolist(), keep.tolist()))
    return Judged(marks, parts.catalog.verdicts(item_ids), captions)
