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
    """The model versions of LIBRARY, oldest first; * marks the active one."""
    described = Library(library).versions(model)
    if as_json:
        echo_json(described)
        return
    click.echo(f"model {described['model']}")
    click.echo(f"{'*' if described['active'] == 'base' else ' '} base")
    for v in described["versions"]:
        mark = "*" if described["active"] == v["name"] else " "
        s = v["settings"]
        parts = (
            "adapter+text"
            if s["train_adapter"] and s["train_text"]
            else ("adapter" if s["train_adapter"] else "text")
        )
        click.echo(
            f"{mark} {v['name']:<4} {v['created']}  {v['pairs']} pairs, "
            f"{v['captions']} captions, data {v['data_hash']}, {parts}, "
            f"{s['epochs']} epochs, lr {s['lr']:g}, R {s['ratio']:g}"
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
    Library(library).use(version, model)
    click.echo(f"active model version: {version}", err=True)


@versions.command("remove")
@click.argument("library", type=LIBRARY)
@click.argument("version")
@click.option("--model", "-m", metavar="SPEC_OR_ID", help="Which of the library's models.")
def versions_remove(library, version, model):
    """Delete VERSION (not the active one): its adapter, text encoder and vectors, or what an
    adaptation that was stopped left behind."""
    Library(library).remove_version(version, model)
    click.echo(f"removed model version {version}", err=True)
