"""sashie: search the illustrations inside large digitized collections."""

from .errors import BadInput, SashieError
from .indexer import AddReport, Interrupted
from .library import Library, Result

__all__ = ["AddReport", "BadInput", "Interrupted", "Library", "Result", "SashieError"]
__version__ = "0.1.0"
