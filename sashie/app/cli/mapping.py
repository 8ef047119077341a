"""`sashie map LIB`: a map of every item, for the web page's Map (and `--export` for a folder
that opens without a server)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

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
@click.option(
    "--export", "out", type=click.Path(file_okay=False),
    help="Also write the map to the folder OUT: a page that opens without sashie (from a "
    "disk, or any web server: a library's exhibition page).",
)  # fmt: skip
@click.option(
    "--thumbnails", default=20_000, show_default=True, type=click.IntRange(0, 1_000_000),
    help="--export: thumbnails written (of an even sample of the items; the rest show as points).",
)  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print JSON, with every field kept.")
def map_command(library, redraw, sample, seed, model, out, thumbnails, as_json):
    """Draw a map of LIBRARY: every item placed so that like lies near like, in clusters
    named by the library's label set (`sashie classify`) or by the model's own words.

    The first run lays the map out (a million items in a few minutes); later runs place only
    the items indexed since, so nothing you found on the map moves. The map belongs to the
    model version that is active: after `sashie adapt` or `versions use`, draw it again.
    `sashie serve LIB` shows it under Map.

    \b
    sashie map books.sashie
    sashie map books.sashie --redraw --sample 50000
    sashie map books.sashie --export exhibition/      # then open exhibition/index.html"""
    lib = Library(library, progress=not as_json)
    if redraw or not lib.map.exists(model):
        report = lib.map.draw(model=model, sample=sample, seed=seed)
    else:
        report = lib.map.update(model=model)
    clusters = lib.map.clusters(model=model)
    written = None
    if out:
        written = lib.map.export(out, thumbnails=thumbnails, model=model)
        write_map_page(Path(out))
    if as_json:
        exported = {"export": written.as_dict()} if written else {}
        echo_json({"report": report.as_dict(), "clusters": clusters} | exported)
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
    if written:
        missing = f" ({written.missing} could not be made)" if written.missing else ""
        click.echo(
            f"wrote the map to {written.folder}: {written.points:,} points, "
            f"{written.thumbnails:,} thumbnails{missing}; open {written.folder / 'index.html'}"
        )


def write_map_page(folder: Path) -> None:
    """The map page's own files, its data read from map-data.js beside it."""
    web = resources.files("sashie.app") / "web"
    page = (web / "map.html").read_text(encoding="utf-8")
    page = page.replace('<html lang="en">', '<html lang="en" data-static="1">', 1)
    page = page.replace(
        '<script src="map.js">', '<script src="map-data.js"></script>\n<script src="map.js">', 1
    )
    (folder / "index.html").write_text(page, encoding="utf-8")
    for name in ("map.js", "scatterplot.js", "scatterplot.LICENSES.txt", "THIRD-PARTY.md"):
        (folder / name).write_bytes((web / name).read_bytes())
