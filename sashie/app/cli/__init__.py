"""The `sashie` command: a thin layer over `Library`, one module per command group."""

from __future__ import annotations

import click

from .adapt import adapt
from .annotations import annotations_group
from .common import SashieGroup
from .compose import compose_group
from .evaluation import bench_command, demo, world
from .filter import filter_
from .iiif import export_iiif, iiif_link
from .index import index, reindex
from .info import books, check, export, info
from .labels import classify, labels_group
from .mapping import map_command
from .printings import printings
from .regions import regions_group
from .search import search
from .serve import serve
from .versions import versions


@click.group(cls=SashieGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="sashie")
def main() -> None:
    """Search the illustrations inside large digitized collections.

    \b
    sashie demo                                  a small book collection, indexed and served
    sashie index LIB scans/ --model hf:DIR       index a folder (again: only what is new)
    sashie reindex LIB                           rebuild the ANN index of a large library
    sashie search LIB "a crane and a pine tree"  search by text
    sashie search LIB -i a.jpg -i b.jpg          by several example images
    sashie search LIB '"crane" + pine.jpg - "handwriting"'       by a sum of terms
    sashie serve LIB                             the web page: search, feedback, captions
    sashie filter train LIB                      keep illustrations, drop text (see filter -h)
    sashie regions train LIB --boxes voc/        teach the detector a collection's pictures
    sashie annotations add LIB 几帳 12 40         caption items you found
    sashie adapt LIB                             teach the model those captions (see adapt -h)
    sashie compose train LIB                     then: search -i crane.png --modify "in ink"
    sashie classify LIB --labels labels.csv      label every item; then search --label 鳥
    sashie versions list LIB                     the model versions; `versions use` switches
    sashie info LIB                              what the library holds, what was skipped
    sashie check LIB --repair                    what in a library folder is damaged
    sashie books LIB                             its books; search --book ID, --where "year<1700"
    sashie printings LIB ITEM                    the same picture printed elsewhere
    sashie map LIB                               a map of every item (the web page's Map)
    sashie export LIB OUT/                       crops, vectors, metadata for clip-retrieval
    sashie export-iiif LIB OUT.json -q "crane"   found regions for IIIF viewers (iiif-link: one)
    """


for command in (
    index,
    reindex,
    search,
    serve,
    info,
    books,
    printings,
    map_command,
    check,
    export,
    export_iiif,
    iiif_link,
    annotations_group,
    filter_,
    regions_group,
    adapt,
    compose_group,
    classify,
    labels_group,
    versions,
    world,
    bench_command,
    demo,
):
    main.add_command(command)
