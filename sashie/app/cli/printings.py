"""`sashie printings LIB ITEM`: where else an item's picture is printed."""

from __future__ import annotations

import click

from ...library import Library
from .common import LIBRARY, echo_json


@click.command()
@click.argument("library", type=LIBRARY)
@click.argument("item", type=int)
@click.option(
    "--candidates", default=50, show_default=True, type=click.IntRange(1, 1000),
    help="Nearest items each query vector (the item's, its mirror image's, its parts') "
    "proposes for verification.",
)  # fmt: skip
@click.option("--model", help="Whose vectors propose the candidates (default: the library's).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON, with every field kept.")
def printings(library, item, candidates, model, as_json):
    """Find the other printings of ITEM's picture in LIBRARY: a reprint of its block, a
    re-cut, a mirror copy, a crop of it, a hand-coloured copy. Items close to it in the
    vector index are verified on local features (SIFT, an affine map fitted by MAGSAC);
    each found one is shown with its evidence (agreeing matches), its scale against ITEM,
    its rotation, whether it is mirrored and the share of the picture it shows.

    \b
    sashie printings books.sashie 1234
    sashie printings books.sashie 1234 --json"""
    found = Library(library).printings(item, candidates=candidates, model=model)
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
