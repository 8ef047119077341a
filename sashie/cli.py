"""The `sashie` command: a thin layer over `Library`."""

from __future__ import annotations

import json
import sys

import click

from .errors import SashieError
from .images import DEFAULT_MAX_PIXELS
from .indexer import Interrupted
from .library import Library
from .query import parse_dims


class SashieGroup(click.Group):
    """Turns sashie's own errors into one line on stderr and a non-zero exit."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except SashieError as e:
            click.echo(f"error: {e}", err=True)
            ctx.exit(1)


@click.group(cls=SashieGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="sashie")
def main() -> None:
    """Search the illustrations inside large digitized collections.

    \b
    sashie index LIB scans/ --model hf:DIR       index a folder (again: only what is new)
    sashie search LIB "a crane and a pine tree"  search by text
    sashie search LIB -i a.jpg -i b.jpg          by several example images
    sashie search LIB '"crane" + pine.jpg - "handwriting"'       by a sum of terms
    sashie info LIB                              what the library holds, what was skipped
    sashie export LIB OUT/                       vectors (.npy) and metadata (Parquet)
    """


@main.command()
@click.argument("library", type=click.Path(file_okay=False))
@click.argument("sources", nargs=-1, required=True)
@click.option("--model", "-m", metavar="SPEC",
              help="Encoder: sashie-demo, hf:HUB_ID_OR_DIR or openclip:ARCH/TAG. "
                   "Default: the library's, or sashie-demo for a new library.")
@click.option("--regions", default="whole", show_default=True, metavar="NAMES",
              help="Region detectors, comma-separated.")
@click.option("--trust-remote-code", is_flag=True,
              help="Allow the model's own Python code (e.g. clip-japanese-base).")
@click.option("--device", metavar="DEV", help="cpu or cuda (default: cuda when present).")
@click.option("--batch-size", type=click.IntRange(1), metavar="N",
              help="Items per model batch (default 32 on CPU, 256 on CUDA).")
@click.option("--workers", type=click.IntRange(1), metavar="N",
              help="Threads reading and cutting pages (default: one per core, at most 8).")
@click.option("--max-pixels", type=click.IntRange(1), default=DEFAULT_MAX_PIXELS,
              show_default=True, help="Larger images are skipped (decompression bombs).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def index(library, sources, model, regions, trust_remote_code, device, batch_size, workers,
          max_pixels, quiet):
    """Index SOURCES into LIBRARY (created if missing).

    A source is a folder (searched recursively), a text file listing image paths or URLs, a
    IIIF manifest (v2 or v3, file or URL), or one image. Run it again to add new or changed
    pages only; an interrupted run resumes where it stopped.
    """
    lib = Library(library, create=True, progress=not quiet)
    try:
        report = lib.add(list(sources), model=model, regions=regions,
                         trust_remote_code=trust_remote_code, device=device,
                         batch_size=batch_size, workers=workers, max_pixels=max_pixels)
    except Interrupted as stop:
        click.echo(f"interrupted: {stop.report.pages_indexed} pages saved; "
                   "run the same command again to resume", err=True)
        sys.exit(130)
    click.echo(report.summary(), err=True)


@main.command()
@click.argument("library", type=click.Path(file_okay=False))
@click.argument("query", required=False)
@click.option("--image", "-i", "images", multiple=True, metavar="PATH_OR_URL",
              help="An example image; give several for a multi-image query.")
@click.option("--k", "-k", type=click.IntRange(1), default=100, show_default=True,
              help="How many results.")
@click.option("--dims", default="192", show_default=True, metavar="D|all",
              help="Multi-image queries: dimensions kept; 'all' keeps every one.")
@click.option("--select", type=click.Choice(["cv", "random"]), default="cv", show_default=True,
              help="Multi-image queries: lowest coefficient of variation, or a random control.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for --select random.")
@click.option("--model", "-m", metavar="SPEC_OR_ID", help="Which of the library's models.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def search(library, query, images, k, dims, select, seed, model, as_json):
    """Search LIBRARY by text, by example images, or by a sum of both.

    \b
    QUERY is text, or terms joined by ' + ' and ' - ', each optionally weighted:
      "crane"                     text
      '"crane" + pine.jpg'        text plus an image
      'pine.jpg - 0.5*"text"'     an image, less some of a text
    A term naming an existing file or an image URL is an image; quote it to search the text.
    """
    lib = Library(library, progress=True)
    results = lib.search(query, images=images, k=k, dims=parse_dims(dims), select=select,
                         seed=seed, model=model)
    if as_json:
        click.echo(json.dumps({"results": [
            {"rank": r.rank, "item": r.item, "score": round(r.score, 6), "page": r.page,
             "bbox": list(r.bbox)} for r in results]}, ensure_ascii=False))
        return
    if not results:
        click.echo("no results: the library has no items for this model")
        return
    click.echo(f"{'rank':>4}  {'score':>6}  {'item':>7}  {'bbox':<24}  page")
    for r in results:
        bbox = ",".join(map(str, r.bbox))
        click.echo(f"{r.rank:>4}  {r.score:6.3f}  {r.item:>7}  {bbox:<24}  {r.page}")


@main.command()
@click.argument("library", type=click.Path(file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def info(library, as_json):
    """Show pages, items, models and skipped inputs of LIBRARY."""
    facts = Library(library).info()
    if as_json:
        click.echo(json.dumps(facts, indent=2, ensure_ascii=False))
        return
    click.echo(f"library   {facts['path']} (format {facts['format_version']}, "
               f"{facts['disk_bytes'] / 1e6:.1f} MB)")
    by_detector = ", ".join(f"{n} {d}" for d, n in facts["items_by_detector"].items())
    click.echo(f"pages     {facts['pages']}")
    click.echo(f"items     {facts['items']}" + (f" ({by_detector})" if by_detector else ""))
    for m in facts["models"]:
        mark = " (default)" if m["default"] else ""
        click.echo(f"model     {m['id']}{mark}: {m['vectors']} vectors x {m['dim']} dims")
    click.echo(f"skipped   {facts['skipped']}")
    for reason, n in sorted(facts["skipped_by_reason"].items(), key=lambda x: -x[1]):
        click.echo(f"  {n:>6}  {reason}")
    shown = facts["skipped_inputs"][:20]
    for s in shown:
        click.echo(f"          {s['uri']}: {s['reason']}")
    if len(facts["skipped_inputs"]) > len(shown):
        click.echo(f"          ... and {len(facts['skipped_inputs']) - len(shown)} more "
                   "(--json lists all)")


@main.command()
@click.argument("library", type=click.Path(file_okay=False))
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--model", "-m", metavar="SPEC_OR_ID", help="Which of the library's models.")
def export(library, out_dir, model):
    """Export vectors (.npy) and item metadata (Parquet) to OUT_DIR."""
    out = Library(library).export(out_dir, model=model)
    click.echo(f"exported to {out}", err=True)


@main.command()
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--pages", type=click.IntRange(1), default=300, show_default=True,
              help="How many pages.")
@click.option("--seed", type=int, default=0, show_default=True, help="Same seed, same bytes.")
@click.option("--workers", type=click.IntRange(1), metavar="N",
              help="Processes drawing pages (default: one per core).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def world(out, pages, seed, workers, quiet):
    """Generate an evaluation collection with ground truth into OUT.

    Pages that look like scans of Edo-period printed books, with illustrations drawn by real
    artists (Noto Emoji in ink, OpenMoji hand-coloured) and complete ground truth:
    OUT/pages/*.jpg, OUT/truth.jsonl, OUT/world.json. Needs the `world` extra.
    """
    from .world import make_world

    make_world(out, pages=pages, seed=seed, workers=workers, progress=not quiet)
    click.echo(f"{pages} pages with ground truth in {out}", err=True)


@main.command()
@click.argument("folder", default="sashie-demo", type=click.Path(file_okay=False))
@click.option("--pages", type=click.IntRange(1), default=300, show_default=True)
@click.option("--seed", type=int, default=42, show_default=True)
def demo(folder, pages, seed):
    """Draw a small book collection, index it with the demo model and search it.

    Offline, a few minutes on a laptop CPU. FOLDER (default ./sashie-demo) keeps the world,
    the library and the query pictures, so you can go on searching it.
    """
    from .demo import run_demo

    run_demo(folder, pages=pages, seed=seed, echo=click.echo)


@main.command("bench")
@click.option("--quick", is_flag=True, help="300 pages (under 5 minutes) instead of 2,000.")
@click.option("--pages", type=click.IntRange(1), help="Pages in the evaluation world.")
@click.option("--seed", type=int, default=1000, show_default=True,
              help="The world's seed (the demo model never trained on it).")
@click.option("--model", "-m", metavar="SPEC", help="Model to measure (default sashie-demo).")
@click.option("--keep", metavar="DIR", type=click.Path(file_okay=False),
              help="Keep the world and library in DIR (default: a temporary folder).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object of figures.")
def bench_command(quick, pages, seed, model, keep, as_json):
    """Measure search quality on a fresh evaluation world with ground truth.

    Text -> illustration P@10/P@100/mAP (English, Japanese; seen and held-out concepts),
    cross-artist image queries, the seed paper's multi-image experiment (CV vs random vs
    all dimensions), zero-shot classification and the share of text crops in results.
    """
    from . import bench

    result = bench.bench(quick=quick, pages=pages, seed=seed, model=model, keep=keep,
                         progress=not as_json)
    click.echo(bench.as_json(result) if as_json else bench.format_table(result))


if __name__ == "__main__":
    main()
