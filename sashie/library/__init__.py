"""The `Library` facade and the library's own files.

library.py      Library: add, search, feedback, label, train_filter, annotate, adapt,
                use, info, export (the CLI and the server use only its verbs)
manifest.py     manifest.json: models, versions, the default model
stored.py       a model's committed vectors and which items still exist
versions.py     a library's model versions: folders, records, catching up
adapting.py     one adaptation run, crash-safe from training to the manifest
annotations.py  annotations as training pairs; their export
export.py       one row per item for other tools: vectors .npy, crops, Parquet (clip-retrieval)
region_model.py a library's own region detector, tuned on boxes a curator drew
"""

from ..ingest.indexer import AddReport, Interrupted
from ..store.catalog import ItemRow
from .adapting import AdaptReport
from .export import ExportReport
from .library import Library
from .manifest import BASE
from .region_model import MAX_DRAWN
from .searching import Asked, Filters, Result

__all__ = [
    "BASE",
    "MAX_DRAWN",
    "AdaptReport",
    "AddReport",
    "Asked",
    "ExportReport",
    "Filters",
    "Interrupted",
    "ItemRow",
    "Library",
    "Result",
]
