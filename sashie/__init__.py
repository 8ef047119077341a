"""sashie: search the illustrations inside large digitized collections.

from sashie import Library
lib = Library("books.sashie", create=True)
lib.add(["scans/"])
hits = lib.search("a folding screen with cranes")
"""

from .errors import BadInput, NotFound, SashieError
from .library import AddReport, Asked, Filters, Interrupted, Library, Result

__all__ = [
    "AddReport",
    "Asked",
    "BadInput",
    "Filters",
    "Interrupted",
    "Library",
    "NotFound",
    "Result",
    "SashieError",
]
__version__ = "0.3.0"
