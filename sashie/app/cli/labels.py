"""`sashie classify` and `sashie labels`: label every item with a curator's classes, then
narrow searches by them (`sashie search --label`) and export them."""

from __future__ import annotations

import click

from ...classify.coder import DEFAULT_METHOD, METHODS, OTHER_BELOW
from ...classify.generator import ChatServer
from ...library import Library
from .common import LIBRARY, TRUST_REMOTE_CODE, echo_json

SHOWN = 15  # labels listed after a run, most frequent first


@click.command()
@click.argument("library", type=LIBRARY)
@click.option(
    "--labels",
    "label_file",
    required=True,
    type=click.Path(dir_okay=False),
    metavar="FILE",
    help="The classes: a .csv, .json or .yaml label file (see below).",
)
@click.option("--name", metavar="NAME", help="The label set's name (default: the file's).")
@click.option(
    "--method",
    type=click.Choice(METHODS),
    default=DEFAULT_METHOD,
    show_default=True,
    help="prompt: each class's names in a few prompts; coder: also its attributes, similar "
    "classes and one-vs-one differences (CODER).",
)
@click.option(
    "--few-shot",
    is_flag=True,
    help="Learn from the library's annotations whose caption is a class's name (a "
    "Tip-Adapter cache of those examples).",
)
@click.option(
    "--no-rerank",
    is_flag=True,
    help="coder: keep the first scores, do not re-rank close calls.",
)
@click.option(
    "--nearest-words",
    type=click.IntRange(0, 50),
    default=0,
    show_default=True,
    metavar="N",
    help="Add to each class, as synonyms, the N words of the model's own vocabulary nearest "
    "its names.",
)
@click.option(
    "--generator",
    metavar="URL",
    help="An OpenAI-compatible server you run (llama.cpp, Ollama, vLLM) that writes more "
    "synonyms and attributes of each class; its key, if any, from SASHIE_GENERATOR_KEY.",
)
@click.option("--generator-model", metavar="NAME", help="The generator's model name.")
@click.option(
    "--other-below",
    type=click.FloatRange(0),
    default=OTHER_BELOW,
    show_default=True,
    metavar="Z",
    help="An item whose best class does not stand out from that class's typical score over "
    "the collection by Z robust deviations is labelled 'other' (none of these): higher keeps "
    "the classes purer, lower labels more items.",
)
@click.option(
    "--no-other", is_flag=True, help="Force every item into one of the classes (no 'other')."
)
@click.option("--model", "-m", metavar="SPEC_OR_ID", help="Which of the library's models.")
@TRUST_REMOTE_CODE
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.option("--json", "as_json", is_flag=True, help="Print the run's report as JSON.")
def classify(
    library,
    label_file,
    name,
    method,
    few_shot,
    no_rerank,
    nearest_words,
    generator,
    generator_model,
    other_below,
    no_other,
    model,
    trust_remote_code,
    quiet,
    as_json,
):
    """Label every item of LIBRARY with its best class from FILE, a score and the runner-up;
    an item that none of the classes fits is labelled 'other' (see --other-below).

    \b
    A label file, one class a row; several values in a cell joined by |:
      name,ja,synonyms,attributes,similar
      crane,鶴|たんちょう,red-crowned crane,long legs|白い,heron
      folding screen,屏風,byōbu,painted panels,
    (JSON or YAML: a list of such objects.) Only `name` is required.

    \b
    Then:
      sashie search LIB "a bird in snow" --label crane    narrow a search by class
      sashie search LIB "a bird" --label other            items no class fits
      sashie labels export LIB labels.csv                 every item's label, for a spreadsheet
      sashie info LIB                                     label sets and counts

    Run it again after indexing new pages: only the new items are labelled. A changed file,
    method or model version labels every item again; an interrupted run leaves the
    previous labels as they were.
    """
    server = ChatServer(generator, generator_model) if generator else None
    lib = Library(library, progress=not quiet and not as_json, trust_remote_code=trust_remote_code)
    report = lib.labels.classify(
        label_file,
        name=name,
        method=method,
        few_shot=few_shot,
        rerank=not no_rerank,
        model=model,
        generator=server,
        nearest_words=nearest_words,
        other_below=None if no_other else other_below,
    )
    if as_json:
        echo_json(report.as_dict())
        return
    how = "all items again" if report.relabelled else "new items only"
    shots = f", {report.examples} examples" if report.examples else ""
    click.echo(
        f"label set {report.label_set!r} (version {report.version}, {report.method}{shots}): "
        f"{report.labelled} items labelled ({how}) in {report.seconds:.1f} s; "
        f"{report.total} labelled in all"
    )
    for label, count in list(report.counts.items())[:SHOWN]:
        click.echo(f"{count:>8}  {label}")
    if len(report.counts) > SHOWN:
        click.echo(f"     ...  and {len(report.counts) - SHOWN} more labels")


@click.group("labels")
def labels_group() -> None:
    """The label sets `sashie classify` made: list, export, remove.

    \b
    sashie labels list LIB                    the sets, their classes and counts
    sashie labels export LIB out.csv          item, page, box, label, score, runner-up
    sashie labels export LIB out.parquet      the same as Parquet (the export extra)
    sashie labels remove LIB NAME             forget a set
    """


@labels_group.command("list")
@click.argument("library", type=LIBRARY)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_sets(library, as_json):
    """The label sets of LIBRARY, newest first, and how many items carry each label."""
    sets = Library(library).labels.list()
    if as_json:
        echo_json(sets)
        return
    if not sets:
        click.echo("no label sets: make one with `sashie classify LIB --labels FILE`")
    for name, entry in sets.items():
        click.echo(
            f"{name}: {entry['classes']} classes, {entry['items']} items labelled "
            f"({entry['method']}, model version {entry['model_version']}, "
            f"version {entry['version']})"
        )
        for label, count in list(entry["counts"].items())[:SHOWN]:
            click.echo(f"{count:>8}  {label}")


@labels_group.command("export")
@click.argument("library", type=LIBRARY)
@click.argument("out", type=click.Path(dir_okay=False))
@click.option("--label-set", metavar="NAME", help="Which set (default: the newest).")
def export_labels(library, out, label_set):
    """Write every item's label to OUT (.csv for a spreadsheet, or .parquet): item, page,
    x0, y0, x1, y1, label, score, runner-up, its score, the set's name and version."""
    rows = Library(library).labels.export(out, label_set=label_set)
    click.echo(f"{rows} items written to {out}")


@labels_group.command("remove")
@click.argument("library", type=LIBRARY)
@click.argument("name")
def remove(library, name):
    """Forget the label set NAME and the labels it gave."""
    Library(library).labels.remove(name)
    click.echo(f"label set {name!r} removed")
