"""`sashie world`, `sashie bench` and `sashie demo`: evaluation worlds, measuring, showing."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ...extras import research


@click.command()
@click.argument("out", type=click.Path(file_okay=False))
@click.option(
    "--pages", type=click.IntRange(1), default=300, show_default=True, help="How many pages."
)
@click.option("--seed", type=int, default=0, show_default=True, help="Same seed, same bytes.")
@click.option(
    "--workers",
    type=click.IntRange(1),
    metavar="N",
    help="Processes drawing pages (default: one per core).",
)
@click.option(
    "--version",
    "version",
    type=click.Choice(["2", "3"]),
    default="2",
    show_default=True,
    help="2: single pages (every figure so far); 3: two-page spreads as a library scans them.",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def world(out, pages, seed, workers, version, quiet):
    """Generate an evaluation collection with ground truth into OUT.

    Pages that look like scans of Edo-period printed books, with illustrations drawn by real
    artists (Noto Emoji in ink, OpenMoji hand-coloured) and complete ground truth:
    OUT/pages/*.jpg, OUT/truth.jsonl, OUT/world.json. Needs the `world` extra.

    --version 3 draws spreads on a scanner bed with a colour chart, a ruler and a label,
    brush-written columns and woodblock line art (also from Openclipart); it needs Debian's
    fonts-aoyagi-soseki, fonts-kouzan-mouhitsu, fonts-aoyagi-kouzan-t, openclipart-svg and
    librsvg2-bin.
    """
    research("world", "sashie world").make_world(
        out, pages=pages, seed=seed, workers=workers, version=int(version), progress=not quiet
    )
    what = "spreads" if version == "3" else "pages"
    click.echo(f"{pages} {what} with ground truth in {out}", err=True)


@click.command()
@click.argument("folder", default="sashie-demo", type=click.Path(file_okay=False))
@click.option("--pages", type=click.IntRange(1), default=300, show_default=True)
@click.option("--seed", type=int, default=42, show_default=True)
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=8000,
    show_default=True,
    help="Port of the web page opened at the end.",
)
@click.option("--no-serve", is_flag=True, help="Print the searches only; no web page.")
def demo(folder, pages, seed, port, no_serve):
    """Draw a small book collection, index it with the demo model, search it, and open the
    web page on it.

    Offline, a few minutes on a laptop CPU. FOLDER (default ./sashie-demo) keeps the world,
    the library and the query pictures, so you can go on searching it.
    """
    from ..server import serve

    shown = research("demo", "sashie demo")
    shown.run_demo(folder, pages=pages, seed=seed, echo=click.echo)
    if not no_serve:
        click.echo("\nthe web page (Ctrl-C to stop):")
        query = shown.example_query()
        serve(Path(folder) / "library", port=port, example_query=query, echo=click.echo)


@click.command("bench")
@click.option("--quick", is_flag=True, help="300 pages (under 5 minutes) instead of 2,000.")
@click.option("--pages", type=click.IntRange(1), help="Pages in the evaluation world.")
@click.option(
    "--seed",
    type=int,
    default=1000,
    show_default=True,
    help="The world's seed (the demo model never trained on it).",
)
@click.option("--model", "-m", metavar="SPEC", help="Model to measure (default sashie-demo).")
@click.option(
    "--keep",
    metavar="DIR",
    type=click.Path(file_okay=False),
    help="Keep the world and library in DIR (default: a temporary folder).",
)
@click.option(
    "--world",
    "world_dir",
    metavar="WORLD",
    type=click.Path(file_okay=False, exists=True),
    help="Measure on this world (from `sashie world`; its pages and seed) instead "
    "of drawing one: large worlds take a while to draw.",
)
@click.option(
    "--adapt",
    is_flag=True,
    help="Also the adaptation experiment: a simulated annotator captions held-out "
    "concepts it finds, the library is adapted, queries are measured before "
    "and after (adds an index of layout regions + filter).",
)
@click.option(
    "--compose",
    is_flag=True,
    help="Also composed search: a Twemoji picture changed by words (style, 'with Y', "
    "held-out concepts), by image, text, sum, tokens and light; trains each library's "
    "composer (adds an index of layout regions + filter).",
)
@click.option(
    "--classify",
    is_flag=True,
    help="Also labelling: top-1 accuracy of prompt, coder and its ablations over the seen "
    "and the held-out names, and few-shot (1-16 shots) on CODER vectors, stored vectors "
    "and a logistic-regression probe.",
)
@click.option(
    "--paraphrase",
    is_flag=True,
    help="Also paraphrased queries: AO@10, JS@10 and P@10 of held-out wordings of the query "
    "concepts, for the base and ParaCLIP-tuned versions (each term alone, one-step).",
)
@click.option(
    "--image-tuning",
    is_flag=True,
    help="Also image versions (MCIP, `adapt --for images`): image -> image mAP@100 and R@10 "
    "of a Twemoji picture (trained and untrained concepts, seen and held-out), text -> image "
    "P@10 and zero-shot accuracy, for the base, ArcMargin alone, MCIP and MCIP + Re-A, on "
    "oracle regions and on layout regions with the filter (adds that index).",
)
@click.option(
    "--printings",
    is_flag=True,
    help="Instead, the other printings of a picture (`sashie printings`) on a printings world "
    "of --blocks blocks, each printed again as an impression, a re-cut, a mirror copy, a crop "
    "or a coloured copy, beside near misses: precision and recall by kind against CLIP "
    "neighbours, near misses rejected, group purity, items/s.",
)
@click.option(
    "--blocks", type=click.IntRange(1), default=60, show_default=True,
    help="Blocks of the printings world (--printings): each printed 2-4 times.",
)  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object of figures.")
def bench_command(
    quick,
    pages,
    seed,
    model,
    keep,
    world_dir,
    adapt,
    compose,
    classify,
    paraphrase,
    image_tuning,
    printings,
    blocks,
    as_json,
):
    """Measure search quality on a fresh evaluation world with ground truth.

    Text -> illustration P@10/P@100/mAP (English, Japanese; seen and held-out concepts),
    cross-artist image queries, the seed paper's multi-image experiment (CV vs random vs
    all dimensions), zero-shot classification over the seen and the held-out names, the
    share of text crops in results, and other wordings of the query concepts: AO@10, JS@10
    and P@10 of the held-out CLDR keywords (`wording_*`) and, where WordNet and JMdict are
    installed, of dictionary wordings no training read (`dictionary_*`), and of paraphrases
    written by hand, against the canonical query (`handwritten_*`).
    """
    if printings:
        measured = research("bench_printings", "sashie bench --printings")
        figures = measured.bench(
            seed=seed, blocks=blocks, model=model, keep=keep, progress=not as_json
        )
        click.echo(json.dumps(figures) if as_json else measured.format_table(figures))
        return
    bench = research("bench", "sashie bench")
    result = bench.bench(
        quick=quick,
        pages=pages,
        seed=seed,
        model=model,
        keep=keep,
        progress=not as_json,
        adapt=adapt,
        compose=compose,
        classify=classify,
        paraphrase=paraphrase,
        image_tuning=image_tuning,
        world=world_dir,
    )
    click.echo(bench.as_json(result) if as_json else bench.format_table(result))
