"""`python -m sashie` is the `sashie` command."""

from .app.cli import main

main()
