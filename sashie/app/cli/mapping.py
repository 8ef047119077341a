"""`sashie map LIB`: a map of every item, for the web page's Map (and `--export` for a folder
that opens without a server)."""

from __future__ import annotations

import click

from ...library import Library
from ...map.layout import SAMPLE
from .common import LIBRARY, echo_json


@click.command(name="map")
@click.argument("library", type=LIBRARY)
@click.option(
    "--redraw", is_flag=True,
    help="Lay the map out anew (otherwise a library that has one only places its new items).",
)  # fmt: skip
@click.option(
    "--sample", default=SAMPLE, show_default=True, type=click.IntRange(2, 200_000),
    help="Items laid out by t-SNE; the others are placed among their nearest of them.",
)  # fmt: skip
@click.option("--seed", default=0, show_default=True, type=int, help="The sample and t-SNE's seed.")
@click.option(
    "--model", help="Whose vectors are mapped (default: the library's, its active version)."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON, with every field kept.")
def map_command(library, redraw, sample, seed, model, as_json):
    """Draw a map of LIBRARY: every item placed so that like lies near like, in clusters
    named by the library's label set (`sashie classify`) or by the model's own words.

    The first run lays the map out (a million items in a few minutes); later runs place only
    the items indexed since, so nothing you found on the map moves. The map belongs to the
    model version that is active: after `sashie adapt` or `versions use`, draw it again.
    `sashie serve LIB` shows it under Map.

    \b
    sashie map books.sashie
    sashie map books.sashie --redraw --sample 50000"""
    lib = Library(library, progress=not as_json)
    if redraw or not lib.map.exists(model):
        report = lib.map.draw(model=model, sample=sample, seed=seed)
    else:
        report = lib.map.update(model=model)
    clusters = lib.map.clusters(model=model)
    if as_json:
        echo_json({"report": report.as_dict(), "clusters": clusters})
        return
    done = (
        f"{report.laid_out:,} laid out and {report.placed:,} placed among them"
        if report.laid_out
        else f"{report.placed:,} new items placed"
    )
    click.echo(
        f"map of {report.items:,} items ({report.model}, version {report.version}): {done}, "
        f"{report.clusters} clusters, in {report.seconds:.0f} s"
    )
    for c in sorted(clusters, key=lambda c: -c["items"])[:12]:
        named = f"{c['label']} ({c['share']:.0%})" if c["label"] else ", ".join(c["words"])
        click.echo(f"{c['items']:>9,}  {named}")
