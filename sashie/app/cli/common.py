"""What the command modules share: one `error:` line for sashie's own errors, item-id
parsing, and JSON output."""

from __future__ import annotations

import json
from typing import Any

import click

from ...errors import SashieError
from ...search.ann import KINDS


class SashieGroup(click.Group):
    """Turns sashie's own errors into one line on stderr and a non-zero exit."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except SashieError as e:
            click.echo(f"error: {e}", err=True)
            ctx.exit(1)


def echo_json(value: Any, *, indent: int | None = 2) -> None:
    click.echo(json.dumps(value, indent=indent, ensure_ascii=False))


# a library's folder; a missing one is `Library`'s one-line error, as for every other mistake
LIBRARY = click.Path(file_okay=False)
INDEX_KINDS = ("auto", *KINDS)  # of the ANN index: sashie/search/ann.py


def ann_setting(name: str, help: str):
    """`--nprobe` / `--ef`: how widely the ANN index searches (sashie/search/ann.py)."""
    return click.option(name, type=click.IntRange(1, 1 << 16), metavar="N", help=help)


# for every command that loads a library's model: remote code runs only when the user says so
TRUST_REMOTE_CODE = click.option(
    "--trust-remote-code",
    is_flag=True,
    help="Let the model run code from its own repository (Hugging Face trust_remote_code); "
    "only for a model you trust. A library's files never turn this on.",
)


def old_spelling(command: click.Command, old: str) -> click.Command:
    """The command under its name of sashie 0.3, hidden, for one more release: it runs as
    the new one does, after a note naming the new spelling."""
    assert command.callback is not None
    run = command.callback

    def callback(*args: Any, **kwargs: Any) -> Any:
        click.echo(
            f"note: `{old}` is now spelled `{command.name}`; the old spelling goes in the next "
            "release",
            err=True,
        )
        return run(*args, **kwargs)

    return click.Command(
        old, params=command.params, callback=callback, help=command.help, hidden=True
    )
