"""`sashie annotations`: captions people give items, the data that teaches a model."""

from __future__ import annotations

import click

from ...library import Library
from .common import LIBRARY


@click.group("annotations")
def annotations_group() -> None:
    """Captions people give items: the data that teaches a model a collection's words.

    \b
    sashie annotations add LIB 几帳 12 40 41      caption items (ids from search --json)
    sashie annotations list LIB
    sashie annotations export LIB OUT/           OUT/annotations.jsonl + OUT/crops/*.jpg
    """


@annotations_group.command("add")
@click.argument("library", type=LIBRARY)
@click.argument("caption")
@click.argument("items", nargs=-1, type=int, required=True)
def annotations_add(library, caption, items):
    """Give ITEMS of LIBRARY the CAPTION."""
    added = Library(library).annotate(list(items), caption)
    click.echo(f"{added} new annotations", err=True)


@annotations_group.command("list")
@click.argument("library", type=LIBRARY)
def annotations_list(library):
    """Every annotation: item id and caption."""
    for a in Library(library).annotations():
        click.echo(f"{a['item']}\t{a['caption']}")


@annotations_group.command("export")
@click.argument("library", type=LIBRARY)
@click.argument("out_dir", type=click.Path(file_okay=False))
def annotations_export(library, out_dir):
    """Write the (crop, caption) pairs to OUT_DIR, ready for fine-tuning."""
    out = Library(library).export_annotations(out_dir)
    click.echo(f"exported to {out / 'annotations.jsonl'}", err=True)
