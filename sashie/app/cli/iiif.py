"""`sashie export-iiif` and `sashie iiif-link`: found regions for IIIF viewers and annotation
tools (docs/iiif.md)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ...errors import SashieError
from ...library import Filters, Library
from ...search.query import parse_ids
from ...search.ranking import DEFAULT_K
from .common import LIBRARY, TRUST_REMOTE_CODE, echo_json


@click.command("export-iiif")
@click.argument("library", type=LIBRARY)
@click.argument("out", type=click.Path(dir_okay=False))
@click.option("--query", "-q", metavar="TEXT", help="The results of this search.")
@click.option("--caption", help="The items with this caption.")
@click.option("--mark", type=click.Choice(["keep", "exclude"]), help="The items so marked.")
@click.option("--label", "old_mark", type=click.Choice(["keep", "exclude"]), hidden=True)
@click.option("--items", metavar="IDS", help="These items (comma-separated ids).")
@click.option(
    "--k",
    "-k",
    type=click.IntRange(1),
    default=DEFAULT_K,
    show_default=True,
    help="With --query: how many results.",
)
@click.option("--all", "all_items", is_flag=True, help="With --query: also filtered-out items.")
@click.option(
    "--curation",
    is_flag=True,
    help="Write a IIIF Curation JSON (cr:Curation, CODH's IIIF Curation Viewer) instead of an "
    "AnnotationPage: one selection per manifest, its regions as canvas#xywh=.",
)
@TRUST_REMOTE_CODE
def export_iiif(
    library, out, query, caption, mark, old_mark, items, k, all_items, curation, trust_remote_code
):
    """Write found regions to OUT as a IIIF Presentation 3 AnnotationPage (or, --curation, a
    IIIF Curation JSON): a search's results (with their scores), the items with a caption,
    those marked keep or exclude, or given items. Each region carries its captions. Items
    that are not from a IIIF manifest have no canvas and are left out.

    \b
    sashie export-iiif LIB cranes.json --query "a crane and a pine tree" -k 50
    sashie export-iiif LIB kicho.json --caption 几帳 --curation
    """
    if old_mark is not None:
        click.echo(
            "note: --label is now spelled --mark; the old spelling goes in the next release",
            err=True,
        )
        mark = mark or old_mark
    if sum(x is not None for x in (query, caption, mark, items)) != 1:
        raise SashieError("name one of --query, --caption, --mark or --items")
    lib = Library(library, progress=True, trust_remote_code=trust_remote_code)
    if query is not None:
        results = lib.search(query, k, where=Filters(all_items=all_items))
        export = lib.iiif_annotations(
            [r.item for r in results],
            scores=[r.score for r in results],
            title=query,
            curation=curation,
        )
    elif items is not None:
        export = lib.iiif_annotations(parse_ids(items), curation=curation)
    else:
        export = lib.iiif_annotations(caption=caption, mark=mark, curation=curation)
    text = json.dumps(export.page, indent=2, ensure_ascii=False) + "\n"
    try:
        Path(out).write_text(text, encoding="utf-8")
    except OSError as e:
        raise SashieError(f"cannot write {out} ({e.strerror or e})") from None
    left_out = f"; {export.skipped} not from a IIIF manifest, left out" if export.skipped else ""
    click.echo(f"{export.annotations} regions written to {out}{left_out}", err=True)


@click.command("iiif-link")
@click.argument("library", type=LIBRARY)
@click.argument("item", type=int)
@click.option("--json", "as_json", is_flag=True, help="Print everything as JSON.")
def iiif_link(library, item, as_json):
    """Where ITEM lies on its IIIF canvas: the region (canvas#xywh=), a IIIF Image API URL
    of it, and a Content State that opens a viewer there (its ?iiif-content= value)."""
    target = Library(library).iiif_target(item)
    if as_json:
        echo_json(target)
        return
    click.echo(f"region         {target['region']}")
    if target["manifest"]:
        click.echo(f"manifest       {target['manifest']}")
    if target["image_region"]:
        click.echo(f"image region   {target['image_region']}")
    click.echo(f"iiif-content   {target['iiif_content']}")
