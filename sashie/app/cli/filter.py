"""`sashie filter`: keep illustrations, drop text, stains and blank paper."""

from __future__ import annotations

import tempfile
from pathlib import Path

import click

from ...errors import SashieError
from ...extras import research
from ...filter.learners import parse_learners, table_overall, table_per_class
from ...filter.marking import read_mark_csv, sample_items, save_crop
from ...library import Library
from .common import LIBRARY, echo_json, old_spelling


@click.group("filter")
def filter_() -> None:
    """Keep illustrations, drop text, stains and blank paper: mark, train, apply.

    \b
    sashie filter mark LIB --interactive --n 100    look at crops, answer k / e
    sashie filter mark LIB --csv marks.csv          rows: item,keep|exclude
    sashie filter mark LIB --ground-truth WORLD     for experiments on `sashie world`
    sashie filter train LIB                         five learners; best kept, applied
    sashie filter apply LIB                         score every item again
    sashie filter unmark LIB 12 40                  forget marks (--all: every one)
    sashie filter evaluate LIB --ground-truth WORLD  the saved filter against the truth
    Searches then cover kept items only (sashie search --all to see every item).
    """


@filter_.command("mark")
@click.argument("library", type=LIBRARY)
@click.option(
    "--csv",
    "csv_path",
    type=click.Path(dir_okay=False, exists=True),
    help="A CSV of item,mark (keep/exclude, 1/0).",
)
@click.option(
    "--ground-truth",
    "world",
    type=click.Path(file_okay=False, exists=True),
    help="An evaluation world: mark a random sample from its ground truth.",
)
@click.option("--interactive", is_flag=True, help="Show crops one by one and ask.")
@click.option(
    "--n",
    type=click.IntRange(1),
    default=1000,
    show_default=True,
    help="How many items to sample (--ground-truth, --interactive).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the sample.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def filter_mark(library, csv_path, world, interactive, n, seed, as_json):
    """Mark items of LIBRARY keep (an illustration) or exclude."""
    if sum(map(bool, (csv_path, world, interactive))) != 1:
        raise SashieError("give exactly one of --csv, --ground-truth and --interactive")
    lib = Library(library)
    if interactive:
        ids, keep = _ask_marks(lib, n, seed)
        source = "interactive"
    elif csv_path:
        ids, keep = read_mark_csv(csv_path)
        source = "csv"
    else:
        truth = research("truth", "--ground-truth")  # evaluation worlds only
        ids, keep = truth.ground_truth_marks(lib, world, n, seed)
        source = "ground-truth"
    lib.filter.mark(ids, keep, source)
    counts = lib.counts()
    if as_json:
        echo_json(
            {
                "marked": len(ids),
                "marked_keep": int(sum(keep)),
                "keep": counts["marked_keep"],
                "exclude": counts["marked_exclude"],
            }
        )
        return
    click.echo(
        f"marked {len(ids)} items ({sum(keep)} keep); the library now has "
        f"{counts['marked_keep']} keep and {counts['marked_exclude']} exclude marks",
        err=True,
    )


@filter_.command("unmark")
@click.argument("library", type=LIBRARY)
@click.argument("items", nargs=-1, type=int)
@click.option("--all", "all_items", is_flag=True, help="Forget every mark.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def filter_unmark(library, items, all_items, as_json):
    """Forget the keep/exclude marks of ITEMS (or --all); the filter is not retrained."""
    if bool(items) == all_items:
        raise SashieError("name the items whose marks to forget, or give --all")
    lib = Library(library)
    removed = lib.filter.unmark(None if all_items else list(items))
    counts = lib.counts()
    if as_json:
        echo_json(
            {
                "removed": removed,
                "keep": counts["marked_keep"],
                "exclude": counts["marked_exclude"],
            }
        )
        return
    click.echo(
        f"{removed} marks forgotten; the library now has {counts['marked_keep']} keep "
        f"and {counts['marked_exclude']} exclude marks",
        err=True,
    )


def _ask_marks(lib: Library, n: int, seed: int) -> tuple[list[int], list[bool]]:
    ids, keep = [], []
    with tempfile.TemporaryDirectory(prefix="sashie-mark-") as folder:
        sample = sample_items(lib, n, seed)
        for number, item in enumerate(sample, start=1):
            crop = save_crop(lib, item, Path(folder))
            click.echo(f"[{number}/{len(sample)}] item {item}: {crop}")
            answer = click.prompt(
                "  keep, exclude, skip or quit",
                default="s",
                type=click.Choice(["k", "e", "s", "q"]),
                show_choices=True,
            )
            if answer == "q":
                break
            if answer in "ke":
                ids.append(item)
                keep.append(answer == "k")
    return ids, keep


@filter_.command("train")
@click.argument("library", type=LIBRARY)
@click.option(
    "--learners",
    metavar="NAMES",
    help="Comma-separated subset of random_forest,xgboost,lightgbm,svm,mlp (default: all five).",
)
@click.option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    help="Seed of the 80/20 split, the folds and the learners.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the tables as JSON.")
def filter_train(library, learners, seed, as_json):
    """Fit the learners on the marked items, keep the best and apply it.

    Each learner is tuned by grid search with 5-fold cross-validation on 80 % of the marks
    and scored on the other 20 % (Table 1: weighted figures; Table 2: per class).
    """
    lib = Library(library, progress=not as_json)
    report = lib.filter.train(learners=parse_learners(learners), seed=seed)
    if as_json:
        echo_json(report.as_dict())
        return
    click.echo(table_overall(report))
    click.echo()
    click.echo(table_per_class(report))
    counts = lib.counts()
    click.echo(
        f"\nkept {report.best.name}; applied: {counts['kept']} items kept, "
        f"{counts['excluded']} excluded"
    )


@filter_.command("apply")
@click.argument("library", type=LIBRARY)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def filter_apply(library, as_json):
    """Score every item of LIBRARY with its saved filter (new items are scored on indexing)."""
    done = Library(library, progress=not as_json).filter.apply()
    if as_json:
        echo_json(done)
        return
    click.echo(
        f"scored {done['scored']} items in {done['seconds']:.1f} s: {done['kept']} kept, "
        f"{done['excluded']} excluded"
    )


@filter_.command("evaluate")
@click.argument("library", type=LIBRARY)
@click.option(
    "--ground-truth",
    "world",
    type=click.Path(file_okay=False, exists=True),
    help="Judge every item against an evaluation world's ground truth.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def filter_evaluate(library, world, as_json):
    """The saved filter's verdicts against the ground truth of every item, or against the
    library's marks (which include those it was trained on: an optimistic figure)."""
    lib = Library(library)
    if world:
        truth = research("truth", "--ground-truth")  # evaluation worlds only
        ids, keep, _ = truth.judge_library_items(lib, world)
        figures = lib.filter.evaluate(ids, keep)
        figures["against"] = "the ground truth"
    else:
        figures = lib.filter.evaluate()
    if as_json:
        echo_json(figures)
        return
    m = figures["overall"]
    click.echo(
        f"{figures['items']} items judged by {figures['against']}: weighted precision "
        f"{m['weighted_precision']:.3f}, recall {m['weighted_recall']:.3f}, "
        f"F1 {m['weighted_f1']:.3f}, accuracy {m['accuracy']:.3f}"
    )
    for name, c in figures["per_class"].items():
        click.echo(
            f"  {name:<7}  precision {c['precision']:.3f}  recall {c['recall']:.3f}  "
            f"F1 {c['f1']:.3f}  support {c['support']}"
        )


@filter_.command("remove")
@click.argument("library", type=LIBRARY)
def filter_remove(library):
    """Forget LIBRARY's filter: every item is searched again (marks are kept)."""
    Library(library).filter.remove()
    click.echo("filter removed", err=True)


filter_.add_command(old_spelling(filter_mark, "label"))
filter_.add_command(old_spelling(filter_unmark, "unlabel"))
