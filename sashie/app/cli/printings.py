"""`sashie printings LIB ITEM`: where else an item's picture is printed; `--all`: the whole
library in sets of printings; `--export FILE`: those sets written out."""

from __future__ import annotations

import click

from ...library import Library
from .common import LIBRARY, echo_json


@click.command()
@click.argument("library", type=LIBRARY)
@click.argument("item", type=int, required=False)
@click.option(
    "--all", "everything", is_flag=True,
    help="Group the whole library into sets of printings, looking only at items not "
    "looked at before; the sets are kept in the library.",
)  # fmt: skip
@click.option(
    "--export", "out", type=click.Path(dir_okay=False),
    help="Write the sets found by --all to FILE: .csv or .parquet (a row a member, in its "
    "books' order of years) or .json (a IIIF AnnotationPage linking each set's regions).",
)  # fmt: skip
@click.option(
    "--candidates", default=50, show_default=True, type=click.IntRange(1, 1000),
    help="Nearest items each query vector (the item's, its mirror image's, its parts') "
    "proposes for verification.",
)  # fmt: skip
@click.option("--model", help="Whose vectors propose the candidates (default: the library's).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON, with every field kept.")
def printings(library, item, everything, out, candidates, model, as_json):
    """Find the other printings of ITEM's picture in LIBRARY: a reprint of its block, a
    re-cut, a mirror copy, a crop of it, a hand-coloured copy. Items close to it in the
    vector index (and, once the library is grouped, by the fingerprints of their local
    features) are verified on local features (SIFT, an affine map fitted by MAGSAC); each
    found one is shown with its evidence (agreeing matches), its scale against ITEM, its
    rotation, whether it is mirrored and the share of the picture it shows.

    \b
    sashie printings books.sashie 1234
    sashie printings books.sashie 1234 --json
    sashie printings books.sashie --all                  # group the library (again: new pages)
    sashie printings books.sashie --export sets.csv      # or sets.parquet, sets.json (IIIF)"""
    if item is None and not everything and not out:
        raise click.UsageError("name an ITEM, or give --all or --export")
    if item is not None and (everything or out):
        raise click.UsageError("an ITEM is looked for alone: leave out --all and --export")
    lib = Library(library, progress=not as_json)
    if everything:
        report = lib.printings.group()
        if as_json and not out:
            echo_json(report.as_dict())
        else:
            click.echo(
                f"{report.looked} items looked at and {report.compared} compared now "
                f"({report.items} in the library, {report.seconds:.0f} s); {report.verified} "
                f"pairs verified now, {report.pairs} in all: {report.groups} sets of "
                f"printings holding {report.grouped} items",
                err=as_json,
            )
    if out:
        written = lib.printings.export(out)
        if as_json:
            echo_json(written.as_dict())
        else:
            left = (
                f" ({written.left_out} not on a IIIF canvas left out)" if written.left_out else ""
            )
            click.echo(
                f"{written.groups} sets, {written.items} items written to {written.path}{left}"
            )
        return
    if everything:
        return
    found = lib.printings(item, candidates=candidates, model=model)
    if as_json:
        echo_json([p.as_dict() for p in found])
        return
    if not found:
        click.echo(f"no other printing of item {item} found", err=True)
        return
    click.echo(
        f"{'item':>8}  {'score':>5}  {'matches':>7}  {'scale':>5}  {'turn':>6}  mirror  shows"
    )
    for p in found:
        click.echo(
            f"{p.item:>8}  {p.score:>5.2f}  {p.inliers:>7}  {p.scale:>5.2f}  {p.rotation:>5.1f}°  "
            f"{'yes' if p.mirrored else 'no':<6}  {p.crop:.0%}"
        )
