"""`lib.books`: the books a library's pages are of (a manifest, a folder of scans, a list;
sashie/sources/books.py), and the pages of one with the items found on each."""

from __future__ import annotations

import builtins

from ..errors import NotFound
from .parts import Parts

MAX_PAGES = 2000  # of one book, as `pages` gives them


class Books:
    """The books of one library."""

    def __init__(self, parts: Parts) -> None:
        self._parts = parts

    def list(self) -> builtins.list[dict]:
        """Every book: what its source says of it, its page and item counts, by id."""
        return self._parts.catalog.books.all()

    def pages(self, book_id: int) -> builtins.list[dict]:
        """A book's pages in order (at most MAX_PAGES), each with its number, its size, one
        of its items (to show the page by) and the items found on it: {"page_number",
        "page_size", "item", "items": [{"item", "detector", "bbox"}]}."""
        catalog = self._parts.catalog
        if int(book_id) not in catalog.books.get([int(book_id)]):
            raise NotFound(f"no book {book_id} in this library")
        out = []
        for page_id, number in catalog.books.pages_of(int(book_id))[:MAX_PAGES]:
            found = catalog.page_items(page_id)
            if not found:
                continue
            rows = catalog.items([found[0][0]])
            out.append(
                {
                    "page_number": number,
                    "page_size": list(rows[0].page_size) if rows else None,
                    "item": found[0][0],
                    "items": [
                        {"item": item, "detector": detector, "bbox": list(box)}
                        for item, detector, box in found
                    ],
                }
            )
        return out
