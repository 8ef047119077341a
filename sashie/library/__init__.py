"""The `Library` facade, its sub-objects, and the library's own files.

library.py          Library: add, recut, reindex, search, feedback, query, info, export (the
                    CLI and the server use only its verbs and its sub-objects')
searching.py        one search: the query built (`Asked`), the items it looks at (`Filters`),
                    its results (`Result`)
arranging.py        results sorted by year, grouped by book, counted (facets), their knee
indexing.py         indexing and recutting pages; the ANN index rebuilt
filtering.py        lib.filter: keep/exclude marks and the filter trained on them
annotations.py      lib.annotations: captions; as training pairs; their export
versions.py         lib.versions: adapt, use, remove model versions
labels.py           lib.labels: classify, label sets, the classes that narrow searches
composers.py        lib.composer: composed search's composer of each version
regions.py          lib.regions: drawn boxes and the library's own detector
parts.py            what they share: the files, the write lock, encoders, loaded vectors
manifest.py         manifest.json: models, versions, the default model
stored.py           a model's committed vectors and which items still exist
version_folders.py  each model version's folder, record, catching up
ann_files.py        the ANN index file of each model version
adapting.py         one adaptation run, crash-safe from training to the manifest
classifying.py      one labelling run; the export of labels
composing.py        one composer training run
export.py           one row per item for other tools: vectors .npy, crops, Parquet
iiif.py             regions on IIIF canvases, Content States, AnnotationPages
pictures.py         crops and pages to show
region_model.py     a library's own region detector, tuned on boxes a curator drew
checking.py         `sashie check`: what in the folder is damaged; repairs that lose nothing
facts.py            what `sashie info` tells
"""

from ..ingest.indexer import AddReport, Interrupted
from ..store.catalog import ItemRow
from .adapting import AdaptReport
from .arranging import SORTS, BookHits, book_facets, by_book, knee, sort_results
from .export import ExportReport
from .library import Library
from .manifest import BASE
from .region_model import MAX_DRAWN
from .searching import Asked, Filters, Result

__all__ = [
    "BASE",
    "MAX_DRAWN",
    "SORTS",
    "AdaptReport",
    "AddReport",
    "Asked",
    "BookHits",
    "ExportReport",
    "Filters",
    "Interrupted",
    "ItemRow",
    "Library",
    "Result",
    "book_facets",
    "by_book",
    "knee",
    "sort_results",
]
