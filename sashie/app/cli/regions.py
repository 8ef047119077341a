"""`sashie regions`: teach the region detector a collection from boxes a curator drew."""

from __future__ import annotations

import sys

import click

from ...library import Library
from .common import LIBRARY, echo_json


@click.group("regions")
def regions_group() -> None:
    """The illustrations a library cuts from its pages: teach the network behind the
    `hybrid` (default) and `learned` detectors.

    \b
    sashie regions train LIB --boxes voc-folder/     Pascal VOC files beside their images
    sashie regions train LIB --boxes boxes.json      a COCO file beside its images
    sashie regions train LIB --boxes annos.json      a IIIF AnnotationPage on the
                                                     library's canvases (xywh=)
    sashie regions train LIB                         the boxes drawn on the web page
                                                     (open a result, Draw boxes)
    sashie reindex LIB --regions hybrid              cut every page again with it
    sashie index LIB scans/                          new pages too (the default,
                                                     hybrid,whole, uses it)
    sashie index LIB scans/ --regions learned,whole  the tuned network's own boxes only
    """


@regions_group.command("train")
@click.argument("library", type=LIBRARY)
@click.option(
    "--boxes",
    "source",
    type=click.Path(exists=True),
    help="A folder of Pascal VOC files (NAME.xml beside NAME.jpg), a COCO .json file "
    "beside its images, or a IIIF AnnotationPage .json whose targets are canvases the "
    "library indexed (canvas#xywh=x,y,w,h). Default: the boxes drawn on the library's "
    "pages in `sashie serve`'s page view. Box every illustration of each page given: the "
    "rest of a page is taught as no illustration.",
)
@click.option(
    "--label",
    "labels",
    multiple=True,
    metavar="NAME",
    help="With --boxes: the box label that marks an illustration (repeatable; default: any "
    "label holding illustration, figure, picture or image).",
)
@click.option(
    "--steps",
    type=click.IntRange(1, 100_000),
    default=300,
    show_default=True,
    help="Training steps (about 0.3 s each on two CPU cores).",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def regions_train(library, source, labels, steps, seed, as_json):
    """Fine-tune the `learned` region detector of LIBRARY on boxes a curator drew.

    Training starts from the library's detector (its own, or the shipped one) and is saved
    in LIBRARY/regions/learned/; later indexing uses it wherever `learned` or `hybrid` is
    asked for.
    """
    if labels and source is None:
        raise click.UsageError("--label needs --boxes: boxes drawn on the web page have no label")
    lib = Library(library, progress=not as_json and sys.stderr.isatty())
    report = lib.regions.train(source, labels=labels or None, steps=steps, seed=seed)
    if as_json:
        echo_json(report.as_dict())
    else:
        click.echo(report.summary())
        for name, reason in report.skipped[:10]:
            click.echo(f"skipped {name}: {reason}", err=True)
