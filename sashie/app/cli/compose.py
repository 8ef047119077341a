"""`sashie compose train`: teach a library composed search (a picture changed by words)."""

from __future__ import annotations

import os
from pathlib import Path

import click

from ...compose.settings import ComposeSettings
from ...errors import SashieError
from ...library import Library
from ...sources.images import IMAGE_EXTENSIONS
from .common import LIBRARY, TRUST_REMOTE_CODE, echo_json

DEFAULTS = ComposeSettings()


def picture_files(folder: str, limit: int) -> list[str]:
    """The image files in a folder and below, sorted, at most `limit` (links not followed)."""
    found = []
    for root, _, names in os.walk(folder):
        for name in sorted(names):
            path = Path(root) / name
            if path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file() and not path.is_symlink():
                found.append(str(path))
    return sorted(found)[:limit]


@click.group("compose")
def compose_group() -> None:
    """Composed search: a picture changed by words ("this crane, but hand-coloured").

    \b
    sashie compose train LIB                     learn it from the library's own items
    sashie search LIB -i crane.png --modify "hand-coloured"   then search with it

    Without training, `--modify` adds the picture's and the words' vectors (the `sum`
    method); after it, the picture becomes a few pseudo-words that the model's text encoder
    reads with your words (the `tokens` method, the default once trained).
    """


@compose_group.command("train")
@click.argument("library", type=LIBRARY)
@click.option(
    "--tokens",
    default=DEFAULTS.tokens,
    show_default=True,
    type=click.IntRange(1, 8),
    metavar="M",
    help="Pseudo-words a picture becomes (more can hurt).",
)
@click.option(
    "--steps",
    default=DEFAULTS.steps,
    show_default=True,
    type=click.IntRange(1),
    help="Training steps of the token learner.",
)
@click.option(
    "--light/--no-light",
    default=DEFAULTS.light,
    show_default=True,
    help="Also train the light query-side image encoder (the asymmetric method, "
    "`--modify-method light`); it decodes crops of the library's pages.",
)
@click.option(
    "--light-epochs",
    default=DEFAULTS.light_epochs,
    show_default=True,
    type=click.IntRange(1, 1000),
    help="Epochs of the light encoder's distillation.",
)
@click.option(
    "--pictures",
    type=click.Path(file_okay=False, exists=True),
    metavar="DIR",
    help="A folder of pictures like those you will search with, when they differ from the "
    "collection's (photographs, clip-art): the light encoder learns them too. No labels.",
)
@click.option("--seed", type=int, default=DEFAULTS.seed, show_default=True)
@click.option("--model", "-m", metavar="SPEC_OR_ID", help="Which of the library's models.")
@click.option("--device", metavar="DEVICE", help="cpu or cuda (default: cuda when present).")
@TRUST_REMOTE_CODE
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.option("--json", "as_json", is_flag=True, help="Print the composer's record as JSON.")
def train(
    library,
    tokens,
    steps,
    light,
    light_epochs,
    pictures,
    seed,
    model,
    device,
    trust_remote_code,
    quiet,
    as_json,
):
    """Train LIBRARY's composer for its active model version, on its own items.

    No labels and no captions: the token learner learns to turn each item's vector into
    pseudo-words that the frozen text encoder, in "a picture of *", reads back as that
    item; the light encoder learns the model's vectors from the items' crops. Later
    `sashie search --modify` uses it; `sashie info` shows it. Train again after
    `sashie adapt` (a composer belongs to one model version).
    """
    settings = ComposeSettings(
        tokens=tokens, steps=steps, light=light, light_epochs=light_epochs, seed=seed
    )
    lib = Library(library, progress=not quiet and not as_json, trust_remote_code=trust_remote_code)
    found = picture_files(pictures, DEFAULTS.light_items) if pictures else []
    if pictures and not found:
        raise SashieError(f"no pictures in {pictures}")
    report = lib.composer.train(settings, pictures=found, model=model, device=device)
    if as_json:
        echo_json({"folder": str(report.folder), **report.record})
        return
    record = report.record
    click.echo(
        f"composer trained on {report.items} items in {report.token_seconds:.0f} s "
        f"(loss {record['token_losses'][0]} -> {record['token_losses'][-1]})"
    )
    if report.crops:
        click.echo(
            f"light encoder: {report.crops} crops + {record['light_query_like']} pictures, "
            f"{report.light_seconds:.0f} s, "
            f"{record['light_parameters']:,} parameters, "
            f"{record['light_flops'] / 1e6:.1f} MFLOPs a picture; "
            f"cosine to the model's vectors {record['light_agreement']}"
        )
    click.echo(f"saved in {report.folder}; `sashie search --modify` now uses it")
