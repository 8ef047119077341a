"""`sashie serve`: the web page and the HTTP API."""

from __future__ import annotations

import errno
import socket

import click

from ...errors import SashieError
from .common import LIBRARY, TRUST_REMOTE_CODE


@click.command()
@click.argument("library", type=LIBRARY)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on; another than this machine's needs --allow-remote.",
)
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option(
    "--allow-remote",
    is_flag=True,
    help="Allow a non-local --host; requests then need the access token.",
)
@click.option("--token", metavar="TEXT", help="The access token (default: a random one).")
@click.option(
    "--allowed-host",
    "hosts",
    multiple=True,
    metavar="NAME",
    help="Another name the server is reached by (e.g. search.example.org); requests naming "
    "any other Host are refused. Repeatable.",
)
@click.option(
    "--read-only",
    is_flag=True,
    help="Search and show only: every request that would change the library is refused, "
    "and the page hides the controls that would (a library this process cannot write, on a "
    "read-only mount or another user's, is served so by itself).",
)
@click.option(
    "--read-token",
    metavar="TEXT",
    help="A second token, for readers: who has it may search and show, not change the "
    "library (--token, made when not given, stays the writers').",
)
@click.option(
    "--cluster",
    metavar="ADDRESS",
    help="Search through shards of the library's rows held by Ray actors on the cluster at "
    "ADDRESS (HOST:PORT of its head; 'local': a Ray started on this machine). Every machine "
    "must see the library's folder at the same path. Needs the ray extra.",
)
@click.option(
    "--shards",
    type=click.IntRange(1, 4096),
    default=4,
    show_default=True,
    help="With --cluster: how many shards (actors) the rows are split into.",
)
@TRUST_REMOTE_CODE
def serve(
    library,
    host,
    port,
    allow_remote,
    token,
    hosts,
    read_only,
    read_token,
    cluster,
    shards,
    trust_remote_code,
):
    """Serve the web page and HTTP API of LIBRARY (API docs at /docs).

    Search by text or dropped images, see each result on its page, mark results right or
    wrong and refine, caption results, and mark items keep/exclude for the filter.
    """
    from ..server import serve as run_server

    check_port(host, port)
    run_server(
        library,
        host=host,
        port=port,
        allow_remote=allow_remote,
        token=token,
        hosts=hosts,
        trust_remote_code=trust_remote_code,
        read_only=read_only,
        read_token=read_token,
        cluster=cluster,
        shards=shards,
        echo=click.echo,
    )


def check_port(host: str, port: int) -> None:
    """One error line, before anything is loaded or printed, when the server could not
    listen on host:port (another server has the port, or the address is not this machine's)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind((host, port))
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise SashieError(
                    f"port {port} on {host} is in use (another server?); choose another with --port"
                ) from None
            raise SashieError(f"cannot listen on {host} port {port} ({e.strerror or e})") from None
