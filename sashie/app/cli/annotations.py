"""`sashie annotations`: captions people give items, the data that teaches a model."""

from __future__ import annotations

import click

from ...errors import SashieError
from ...library import Library
from .common import LIBRARY, echo_json

JSON = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


@click.group("annotations")
def annotations_group() -> None:
    """Captions people give items: the data that teaches a model a collection's words.

    \b
    sashie annotations add LIB 几帳 12 40 41      caption items (ids from search --json)
    sashie annotations remove LIB 几帳 40         take a caption back (from items, or all)
    sashie annotations list LIB
    sashie annotations export LIB OUT/           OUT/annotations.jsonl + OUT/crops/*.jpg
    sashie annotations import LIB curation.json  a IIIF Curation or AnnotationPage's regions
    """


@annotations_group.command("add")
@click.argument("library", type=LIBRARY)
@click.argument("caption")
@click.argument("items", nargs=-1, type=int, required=True)
@JSON
def annotations_add(library, caption, items, as_json):
    """Give ITEMS of LIBRARY the CAPTION."""
    lib = Library(library)
    added = lib.annotations.add(list(items), caption)
    if as_json:
        echo_json({"added": added, "annotations": lib.counts()["annotations"]})
    else:
        click.echo(f"{added} new annotations", err=True)


@annotations_group.command("remove")
@click.argument("library", type=LIBRARY)
@click.argument("caption_and_items", metavar="[CAPTION] [ITEMS]...", nargs=-1, required=True)
@JSON
def annotations_remove(library, caption_and_items, as_json):
    """Take annotations back: CAPTION from every item, CAPTION from ITEMS, or every caption
    of ITEMS (a first argument that is not an item id is the caption)."""
    caption = None if caption_and_items[0].isdigit() else caption_and_items[0]
    ids = caption_and_items[0 if caption is None else 1 :]
    bad = [i for i in ids if not i.isdigit()]
    if bad:
        raise SashieError(f"expected item ids after the caption, got {bad[0]!r}")
    lib = Library(library)
    removed = lib.annotations.remove([int(i) for i in ids] or None, caption)
    if as_json:
        echo_json({"removed": removed, "annotations": lib.counts()["annotations"]})
    else:
        click.echo(f"{removed} annotations removed", err=True)


@annotations_group.command("list")
@click.argument("library", type=LIBRARY)
@JSON
def annotations_list(library, as_json):
    """Every annotation: item id and caption."""
    annotations = Library(library).annotations.list()
    if as_json:
        echo_json({"annotations": annotations})
        return
    for a in annotations:
        click.echo(f"{a['item']}\t{a['caption']}")


@annotations_group.command("export")
@click.argument("library", type=LIBRARY)
@click.argument("out_dir", type=click.Path(file_okay=False))
@JSON
def annotations_export(library, out_dir, as_json):
    """Write the (crop, caption) pairs to OUT_DIR, ready for fine-tuning."""
    out = Library(library).annotations.export(out_dir)
    if as_json:
        echo_json({"file": str(out / "annotations.jsonl")})
    else:
        click.echo(f"exported to {out / 'annotations.jsonl'}", err=True)


@annotations_group.command("import")
@click.argument("library", type=LIBRARY)
@click.argument("file", type=click.Path(dir_okay=False, exists=True))
@JSON
def annotations_import(library, file, as_json):
    """Bring in the captioned regions of FILE: a IIIF Curation (cr:Curation, as
    `export-iiif --curation` and CODH's IIIF Curation Viewer write), a IIIF AnnotationPage
    or AnnotationList, or a list of W3C Web Annotations, on canvases of LIBRARY. Each region
    is the item that covers it, or a new item cut from its page and encoded; its captions
    are added to it. A canvas the library lacks is skipped: index its manifest first."""
    report = Library(library, progress=not as_json).annotations.import_regions(file)
    if as_json:
        echo_json(report.as_dict())
        return
    click.echo(
        f"{report.regions} regions: {report.items_found} items found, {report.items_made} "
        f"cut anew; {report.annotations} new annotations",
        err=True,
    )
    for entry, reason in report.skipped[:20]:
        click.echo(f"  skipped {entry}: {reason}", err=True)
    if len(report.skipped) > 20:
        click.echo(f"  ... and {len(report.skipped) - 20} more (--json lists all)", err=True)
