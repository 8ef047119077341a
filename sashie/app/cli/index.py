"""`sashie index`: sources into a library."""

from __future__ import annotations

import sys

import click

from ...errors import SashieError
from ...library import Interrupted, Library
from ...regions import DEFAULT_DETECTORS
from ...regions.zeroshot import DEFAULT_MODEL, DEFAULT_PROMPT, DEFAULT_THRESHOLD
from ...sources.images import DEFAULT_MAX_PIXELS
from .common import INDEX_KINDS, LIBRARY, TRUST_REMOTE_CODE, ann_setting, echo_json


@click.command()
@click.argument("library", type=click.Path(file_okay=False))
@click.argument("sources", nargs=-1, required=True)
@click.option(
    "--model",
    "-m",
    metavar="SPEC",
    help="Encoder: sashie-demo, hf:HUB_ID_OR_DIR or openclip:ARCH/TAG. "
    "Default: the library's, or sashie-demo for a new library.",
)
@click.option(
    "--regions",
    default=DEFAULT_DETECTORS,
    show_default=True,
    metavar="NAMES",
    help="Region detectors, comma-separated: layout (illustrations found by page "
    "analysis), learned (a small network trained on scanned spreads: few boxes, nearly all "
    "illustrations), hybrid (layout's boxes the network confirms, and its own: few boxes on "
    "real scans), whole (the page), tiles (overlapping tiles of large pages), zeroshot (an "
    "open-vocabulary detector; see --detector-model).",
)
@click.option(
    "--detector-model",
    metavar="HUB_ID_OR_DIR",
    help=f"zeroshot: an OWLv2, OWL-ViT or Grounding DINO model (default {DEFAULT_MODEL}).",
)
@click.option(
    "--detector-prompt", metavar="TEXT", help=f"zeroshot: what to find (default {DEFAULT_PROMPT})."
)
@click.option(
    "--detector-threshold",
    type=click.FloatRange(0, 1),
    metavar="S",
    help=f"zeroshot: lowest box score kept (default {DEFAULT_THRESHOLD}).",
)
@TRUST_REMOTE_CODE
@click.option("--device", metavar="DEV", help="cpu or cuda (default: cuda when present).")
@click.option(
    "--batch-size",
    type=click.IntRange(1),
    metavar="N",
    help="Items per model batch (default 32 on CPU, 256 on CUDA).",
)
@click.option(
    "--workers",
    type=click.IntRange(1),
    metavar="N",
    help="Readers of pages: threads (local) or Ray actors (ray); default: one per core, at most 8.",
)
@click.option(
    "--engine",
    type=click.Choice(("local", "ray")),
    default="local",
    show_default=True,
    help="local: reader threads feed the model here. ray: pages are read and embedded on a "
    "Ray cluster (the ray extra), one model per GPU, and written here.",
)
@click.option(
    "--address",
    metavar="HOST:PORT",
    help="--engine ray: the Ray cluster to join (default: start one on this machine). Its "
    "workers must see the same page files and have sashie installed.",
)
@click.option(
    "--max-pixels",
    type=click.IntRange(1),
    default=DEFAULT_MAX_PIXELS,
    show_default=True,
    help="Larger images are skipped (decompression bombs).",
)
@click.option(
    "--index-kind",
    type=click.Choice(INDEX_KINDS),
    help="The ANN index searches use (remembered): auto builds one when the library "
    "passes 200,000 items; see `sashie reindex -h`.",
)
@click.option(
    "--metadata",
    type=click.Path(dir_okay=False),
    metavar="FILE",
    help="A CSV or JSON of the books: one row per folder (or file) of scans, keyed by a "
    "'folder' (or 'file', 'key') column, with title, creator, date, place, rights... in "
    "English or Japanese (書名, 著者, 刊年). A manifest describes its own book.",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def index(
    library,
    sources,
    model,
    regions,
    detector_model,
    detector_prompt,
    detector_threshold,
    trust_remote_code,
    device,
    batch_size,
    workers,
    engine,
    address,
    max_pixels,
    index_kind,
    metadata,
    quiet,
    as_json,
):
    """Index SOURCES into LIBRARY (created if missing).

    A source is a folder (searched recursively), a text file listing image paths or URLs, a
    IIIF manifest (v2 or v3, file or URL), or one image. Run it again to add new or changed
    pages only; an interrupted run resumes where it stopped.

    Each manifest is a book; so is each folder that holds images (its pages in name order),
    each list, each image named alone. `sashie books LIB` lists them; --metadata describes
    the folders' books.
    """
    zeroshot = {
        key: value
        for key, value in (
            ("model", detector_model),
            ("prompt", detector_prompt),
            ("threshold", detector_threshold),
        )
        if value is not None
    }
    lib = Library(
        library,
        create=True,
        progress=not (quiet or as_json),
        trust_remote_code=trust_remote_code,
    )
    try:
        report = lib.add(
            list(sources),
            model=model,
            regions=regions,
            detector_options={"zeroshot": zeroshot},
            trust_remote_code=trust_remote_code,
            device=device,
            batch_size=batch_size,
            workers=workers,
            max_pixels=max_pixels,
            index_kind=index_kind,
            engine=engine,
            address=address,
            metadata=metadata,
        )
    except Interrupted as stop:
        if lib.discard():
            click.echo("interrupted before any page was saved", err=True)
        else:
            click.echo(
                f"interrupted: {stop.report.pages_indexed} pages saved; "
                "run the same command again to resume",
                err=True,
            )
        sys.exit(130)
    except BaseException:
        lib.discard()  # a first run that failed leaves no empty library behind
        raise
    if as_json:
        echo_json(report.as_dict())
    else:
        click.echo(report.summary(), err=True)


@click.command()
@click.argument("library", type=LIBRARY)
@click.option("--model", "-m", metavar="SPEC_OR_ID", help="Which of the library's models.")
@click.option(
    "--index-kind",
    type=click.Choice(INDEX_KINDS),
    help="Remembered; default: the kind chosen before, else auto. auto: by size (exact "
    "below 200,000 items, ivf below 2 million, ivfpq above); exact: no index, every "
    "search scans; ivf: k-means cells of float16 codes; ivfpq: cells of 4-bit codes, for "
    "tens of millions; hnsw: a graph (fast, weaker on many near-duplicates).",
)
@ann_setting(
    "--nprobe",
    "ivf / ivfpq: cells a search scans (remembered; default: ivf 1/160 of them, at least "
    "12; ivfpq 1/64, at least 32).",
)
@ann_setting("--ef", "hnsw: breadth of the graph search (remembered; default 128).")
@click.option("--version", "version", metavar="NAME", help="A model version (default: active).")
@click.option(
    "--regions",
    metavar="NAMES",
    help="Instead: run these region detectors again on every page (after `sashie regions "
    "train`, --regions hybrid): boxes cut again keep their items, boxes no longer cut "
    "go, and only new boxes are encoded.",
)
@click.option(
    "--drop",
    metavar="NAMES",
    help="With --regions: the items these detectors cut go (a library indexed with layout "
    "moving to hybrid: --regions hybrid --drop layout). Other detectors' items stay.",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def reindex(library, model, index_kind, nprobe, ef, version, regions, drop, quiet, as_json):
    """Build the ANN index of LIBRARY's active model version anew; or, with --regions, cut
    the pages again with a retrained region detector.

    Large libraries search through an approximate nearest-neighbour index (FAISS): it
    proposes candidates and each is scored exactly from the stored vectors. `sashie index`
    builds it when the library grows past 200,000 items and adds new items to it; run this
    to choose another kind or to rebuild. Searches go on meanwhile, with the old index.

    \b
      sashie reindex LIB                      rebuild, the kind chosen by size
      sashie reindex LIB --index-kind hnsw    a graph index instead
      sashie reindex LIB --index-kind exact   no index: every search scans
      sashie search LIB "a crane" --exact     one search without the index
      sashie reindex LIB --regions hybrid     re-cut with the library's tuned detector
      sashie reindex LIB --regions hybrid --drop layout
                                              move from layout's crops to hybrid's
    """
    lib = Library(library, progress=not (quiet or as_json))
    if drop and not regions:
        raise SashieError("--drop goes with --regions (the detectors that cut instead)")
    if regions:
        if index_kind or nprobe or ef or version:
            raise SashieError("--regions re-cuts pages; the index options are for a rebuild")
        report = lib.recut(regions, drop=drop or (), model=model)
        if as_json:
            echo_json(report.as_dict())
        else:
            click.echo(report.summary(), err=True)
        return
    done = lib.reindex(model, kind=index_kind, nprobe=nprobe, ef=ef, version=version)
    if as_json:
        echo_json(done)
        return
    found = done["index"]
    if found is None:
        click.echo(f"{done['version']}: no ANN index; searches scan every vector", err=True)
        return
    click.echo(
        f"{done['version']}: {found['kind']} index of {found['rows']:,} vectors, "
        f"{found['bytes'] / 2**20:.1f} MiB, settings {found['settings']}",
        err=True,
    )
