"""`sashie adapt`: teach the model a library's own words (a new model version)."""

from __future__ import annotations

import sys

import click

from ...adapt.settings import DEFAULTS, AdaptSettings
from ...classify.generator import ChatServer
from ...errors import SashieError
from ...library import AdaptReport, Library
from .common import LIBRARY, TRUST_REMOTE_CODE, echo_json


@click.command()
@click.argument("library", type=LIBRARY)
@click.option(
    "--annotations",
    "annotations_file",
    type=click.Path(dir_okay=False, exists=True),
    metavar="FILE",
    help="Train on an annotations.jsonl (from `annotations export`) "
    "instead of the library's annotations.",
)
@click.option("--epochs", default=DEFAULTS.epochs, show_default=True, type=click.IntRange(1, 1000))
@click.option(
    "--batch",
    default=DEFAULTS.batch,
    show_default=True,
    type=click.IntRange(2, 65536),
    help="Pairs a step; the other pairs of a batch are the negatives.",
)
@click.option(
    "--min-steps",
    default=DEFAULTS.min_steps,
    show_default=True,
    type=click.IntRange(0),
    help="Repeat epochs until this many steps were taken.",
)
@click.option(
    "--lr",
    default=DEFAULTS.lr,
    show_default=True,
    type=float,
    help="Learning rate of the text encoder (the paper's 5e-5 barely moves a word "
    "in a hundred steps).",
)
@click.option(
    "--adapter-lr",
    default=DEFAULTS.adapter_lr,
    show_default=True,
    type=float,
    help="Learning rate of the visual adapter.",
)
@click.option(
    "--ratio",
    default=DEFAULTS.ratio,
    show_default=True,
    type=click.FloatRange(0, 1),
    metavar="R",
    help="Adapter blend: V' = normalize(R*adapter(V) + (1-R)*V).",
)
@click.option(
    "--negatives",
    default=DEFAULTS.negatives,
    show_default=True,
    type=click.IntRange(0),
    help="Other items' vectors each caption is told apart from, a step.",
)
@click.option(
    "--keep-weight",
    default=DEFAULTS.keep_weight,
    show_default=True,
    type=click.FloatRange(0),
    help="How strongly the adapter must leave other items' vectors where they were.",
)
@click.option(
    "--anchor-weight",
    default=DEFAULTS.anchor_weight,
    show_default=True,
    type=click.FloatRange(0),
    help="How strongly the model's own words (from its tokenizer) keep their meaning.",
)
@click.option(
    "--example-weight",
    default=DEFAULTS.example_weight,
    show_default=True,
    type=click.FloatRange(0),
    help="How much a query for a taught caption also ranks items by their likeness "
    "to the captioned examples (0: the tuned text vector alone).",
)
@click.option(
    "--only",
    type=click.Choice(["adapter", "text"]),
    help="Train only the visual adapter, or only the text encoder (default both).",
)
@click.option(
    "--paraphrase",
    is_flag=True,
    help="Also teach other wordings of each caption (ParaCLIP): its paraphrases x' and x'' "
    "train the text encoder, so that 「鶴の絵」, 'a crane' and 'an old print of a crane' "
    "find the same pictures.",
)
@click.option(
    "--no-teach",
    is_flag=True,
    help="With --paraphrase: only the paraphrases, not the captions' pictures (the text "
    "encoder alone is tuned; the image side stays as it is).",
)
@click.option(
    "--paraphrase-weight",
    default=DEFAULTS.paraphrase_weight,
    show_default=True,
    type=click.FloatRange(0),
    help="How much the paraphrase terms weigh against the captions'.",
)
@click.option(
    "--paraphraser",
    metavar="URL",
    help="An OpenAI-compatible server you run (llama.cpp, Ollama, vLLM) that writes the "
    "paraphrases; its key, if any, from SASHIE_PARAPHRASER_KEY. Default: offline rules "
    "(templates, kana, the newest label set's names and attributes).",
)
@click.option("--paraphraser-model", metavar="NAME", help="The paraphraser's model name.")
@click.option(
    "--label-examples",
    default=0,
    show_default=True,
    type=click.IntRange(0, 1000),
    metavar="N",
    help="Also learn N items of each class of the newest label set (`sashie classify`), "
    "those it labelled most surely, captioned by their class.",
)
@click.option(
    "--for",
    "target",
    type=click.Choice(["text", "images"]),
    default=DEFAULTS.target,
    show_default=True,
    help="text: teach the captions' words. images: better image-to-image search (MCIP): "
    "the adapter learns each caption as a class (ArcMargin) while the captions' locked text "
    "vectors keep text search; the text encoder is not touched.",
)
@click.option(
    "--arc-scale",
    default=DEFAULTS.arc_scale,
    show_default=True,
    type=float,
    help="With --for images: ArcMargin's scale.",
)
@click.option(
    "--arc-margin",
    default=DEFAULTS.arc_margin,
    show_default=True,
    type=float,
    help="With --for images: ArcMargin's angular margin (radians).",
)
@click.option(
    "--realign",
    is_flag=True,
    help="With --for images: then tune the text encoder to the new image vectors (Re-A).",
)
@click.option("--seed", default=DEFAULTS.seed, show_default=True, type=int)
@click.option("--device", metavar="DEV", help="cpu or cuda (default: cuda when present).")
@TRUST_REMOTE_CODE
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def adapt(
    library,
    annotations_file,
    only,
    no_teach,
    paraphraser,
    paraphraser_model,
    label_examples,
    device,
    trust_remote_code,
    as_json,
    **settings,
):
    """Teach the model LIBRARY's own words from its annotations, without re-encoding images.

    Trains a visual adapter on the stored vectors of the annotated items and fine-tunes the
    text encoder on their captions (symmetric InfoNCE, AdamW; always from the base model, so
    rounds of annotate -> adapt do not drift). The result is a new model version, made the
    active one: every vector is passed through the adapter into a new vector file (the old
    ones stay), searches then use the tuned text encoder, and pages indexed later go through
    the adapter too. The version also remembers the captioned examples: a text query for a
    taught caption ranks items by their likeness to them as well (--example-weight 0 turns
    that off).

    \b
    sashie annotations add LIB 几帳 12 40 41      caption what you found (or on the web page)
    sashie adapt LIB                             train v1, v2, ... and make it active
    sashie versions list LIB                     the versions, their data and settings
    sashie versions use LIB base                 switch back (instant); use v1 again
    sashie adapt LIB --paraphrase                the captions and their other wordings
    sashie adapt LIB --for images                better "more like these" (MCIP)
    """
    lib = Library(
        library,
        progress=not as_json and sys.stderr.isatty(),
        trust_remote_code=trust_remote_code,
    )
    if (no_teach or paraphraser) and not settings["paraphrase"]:
        raise SashieError("--no-teach and --paraphraser go with --paraphrase")
    # the other options are AdaptSettings' fields, by name
    chosen = AdaptSettings.choose(only=only, teach=not no_teach, **settings)
    writer = ChatServer(paraphraser, paraphraser_model, "paraphraser") if paraphraser else None
    report = lib.versions.adapt(
        annotations=annotations_file,
        settings=chosen,
        device=device,
        paraphraser=writer,
        label_examples=label_examples,
    )
    if as_json:
        echo_json(report.as_dict(), indent=None)
        return
    _print_report(report, library)


def _print_report(report: AdaptReport, library: str) -> None:
    """One summary line of what the version learnt, its loss curve, the active version."""
    if report.warning:
        click.echo(f"warning: {report.warning}", err=True)
    losses = report.trained.epoch_losses
    click.echo(
        f"{report.version}: learnt {report.kind} ({report.parts}) from {report.pairs} pairs of "
        f"{report.captions} captions, {len(losses)} epochs in {report.trained.seconds:.1f} s, "
        f"loss {losses[0]:.3f} -> {losses[-1]:.3f}"
        + (f"; remembers the {report.remembered} examples" if report.remembered else "")
    )
    curve = report.loss_curve
    click.echo(
        f"loss curve: {curve}"
        if curve
        else "loss curve: not drawn (pip install 'sashie[plot]' for loss.png)"
    )
    click.echo(
        f"active model version: {report.version} ({report.rows:,} vectors adapted in "
        f"{report.apply_seconds:.1f} s; back to the base: sashie versions use {library} base)"
    )
