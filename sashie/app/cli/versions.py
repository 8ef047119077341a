"""`sashie versions`: the model versions `adapt` made; switch between them, delete them."""

from __future__ import annotations

import click

from ...library import Library
from .common import LIBRARY, echo_json


@click.group("versions")
def versions() -> None:
    """Model versions made by `sashie adapt`: list, switch (instant), delete.

    \b
    sashie versions list LIB          the versions, their data and settings (* = active)
    sashie versions use LIB base      searches use the base model again; `use LIB v1` back
    sashie versions remove LIB v1     delete a version that is not active, and its vectors
    """


@versions.command("list")
@click.argument("library", type=LIBRARY)
@click.option("--model", "-m", metavar="SPEC_OR_ID", help="Which of the library's models.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def versions_list(library, model, as_json):
    """The model versions of LIBRARY, oldest first; * marks the active one.

    Each version's kind says what it learnt: captions (the captions' words), paraphrase
    (their other wordings, ParaCLIP), images (image-to-image search, MCIP) and realign (the
    text encoder re-aligned after images). --json has every setting."""
    described = Library(library).versions.list(model)
    if as_json:
        echo_json(described)
        return
    click.echo(f"model {described['model']}")
    rows = [("", "version", "made", "kind", "data")]
    rows.append(("*" if described["active"] == "base" else "", "base", "", "the model itself", ""))
    for v in described["versions"]:
        if "damaged" in v:
            rows.append(("", v["name"], "", "damaged", f"{v['damaged']} (sashie check --repair)"))
            continue
        rows.append(
            (
                "*" if described["active"] == v["name"] else "",
                v["name"],
                str(v.get("created", "")).replace("T", " ")[:16],
                v.get("kind", "?"),
                f"{v['pairs']} pairs of {v['captions']} captions from {v['annotations']} "
                f"({v['data_hash']})",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(1, 4)]
    for mark, *cells, data in rows:
        click.echo(
            f"{mark or ' '} " + "  ".join(c.ljust(w) for c, w in zip(cells, widths)) + "  " + data
        )
    for name in described.get("unfinished", []):
        click.echo(
            f"  {name:<4} unfinished (an adaptation that was stopped; remove it with "
            f"`sashie versions remove {library} {name}`)"
        )


@versions.command("use")
@click.argument("library", type=LIBRARY)
@click.argument("version")
@click.option("--model", "-m", metavar="SPEC_OR_ID", help="Which of the library's models.")
def versions_use(library, version, model):
    """Make VERSION (v1, v2, ... or base) the active one: searches use it from now on."""
    Library(library).versions.use(version, model)
    click.echo(f"active model version: {version}", err=True)


@versions.command("remove")
@click.argument("library", type=LIBRARY)
@click.argument("version")
@click.option("--model", "-m", metavar="SPEC_OR_ID", help="Which of the library's models.")
def versions_remove(library, version, model):
    """Delete VERSION (not the active one): its adapter, text encoder and vectors, or what an
    adaptation that was stopped left behind."""
    Library(library).versions.remove(version, model)
    click.echo(f"removed model version {version}", err=True)
