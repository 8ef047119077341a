"""The `sashie` command: a thin layer over `Library`."""

from __future__ import annotations

import json
import sys

import click

from .adapt import AdaptSettings
from .errors import SashieError
from .feedback import DEFAULT_LEARNER, FEEDBACK_LEARNERS
from .images import DEFAULT_MAX_PIXELS
from .indexer import Interrupted
from .library import Library
from .query import parse_dims

_ADAPT = AdaptSettings()  # the defaults `sashie adapt` shows


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
    sashie filter train LIB                      keep illustrations, drop text (see filter -h)
    sashie annotations add LIB 几帳 12 40         caption items you found
    sashie adapt LIB                             teach the model those captions (see adapt -h)
    sashie serve LIB                             the web page: search, feedback, captions
    sashie info LIB                              what the library holds, what was skipped
    sashie export LIB OUT/                       vectors (.npy) and metadata (Parquet)
    """


@main.command()
@click.argument("library", type=click.Path(file_okay=False))
@click.argument("sources", nargs=-1, required=True)
@click.option("--model", "-m", metavar="SPEC",
              help="Encoder: sashie-demo, hf:HUB_ID_OR_DIR or openclip:ARCH/TAG. "
                   "Default: the library's, or sashie-demo for a new library.")
@click.option("--regions", default="layout", show_default=True, metavar="NAMES",
              help="Region detectors, comma-separated: layout (illustrations found by page "
                   "analysis), whole (the page), tiles (overlapping tiles of large pages), "
                   "zeroshot (an open-vocabulary detector; see --detector-model).")
@click.option("--detector-model", metavar="HUB_ID_OR_DIR",
              help="zeroshot: an OWLv2, OWL-ViT or Grounding DINO model "
                   "(default google/owlv2-base-patch16-ensemble).")
@click.option("--detector-prompt", metavar="TEXT", help="zeroshot: what to find (default object).")
@click.option("--detector-threshold", type=click.FloatRange(0, 1), metavar="S",
              help="zeroshot: lowest box score kept (default 0.1).")
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
def index(library, sources, model, regions, detector_model, detector_prompt, detector_threshold,
          trust_remote_code, device, batch_size, workers, max_pixels, quiet):
    """Index SOURCES into LIBRARY (created if missing).

    A source is a folder (searched recursively), a text file listing image paths or URLs, a
    IIIF manifest (v2 or v3, file or URL), or one image. Run it again to add new or changed
    pages only; an interrupted run resumes where it stopped.
    """
    zeroshot = {key: value for key, value in (("model", detector_model),
                                              ("prompt", detector_prompt),
                                              ("threshold", detector_threshold))
                if value is not None}
    lib = Library(library, create=True, progress=not quiet)
    try:
        report = lib.add(list(sources), model=model, regions=regions,
                         detector_options={"zeroshot": zeroshot},
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
@click.option("--all", "all_items", is_flag=True,
              help="Search every item, also those the keep/exclude filter excluded.")
@click.option("--relevant", metavar="IDS",
              help="Relevance feedback: item ids marked relevant (comma-separated).")
@click.option("--irrelevant", metavar="IDS", help="Item ids marked not relevant.")
@click.option("--learner", type=click.Choice(FEEDBACK_LEARNERS), default=DEFAULT_LEARNER,
              show_default=True, help="How feedback is learnt.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def search(library, query, images, k, dims, select, seed, model, all_items, relevant,
           irrelevant, learner, as_json):
    """Search LIBRARY by text, by example images, or by a sum of both.

    \b
    QUERY is text, or terms joined by ' + ' and ' - ', each optionally weighted:
      "crane"                     text
      '"crane" + pine.jpg'        text plus an image
      'pine.jpg - 0.5*"text"'     an image, less some of a text
    A term naming an existing file or an image URL is an image; quote it to search the text.
    """
    lib = Library(library, progress=True)
    if relevant or irrelevant:
        results = lib.feedback(query, images=images, relevant=_ids(relevant),
                               irrelevant=_ids(irrelevant), learner=learner, k=k, model=model,
                               all_items=all_items)
    else:
        results = lib.search(query, images=images, k=k, dims=parse_dims(dims), select=select,
                             seed=seed, model=model, all_items=all_items)
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


def _ids(text: str | None) -> list[int]:
    try:
        return [int(part) for part in (text or "").split(",") if part.strip()]
    except ValueError:
        raise SashieError(f"expected item ids like 12,40,41, got {text!r}") from None


@main.command()
@click.argument("library", type=click.Path(file_okay=False, exists=True))
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; another than this machine's needs --allow-remote.")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option("--allow-remote", is_flag=True,
              help="Allow a non-local --host; requests then need the access token.")
@click.option("--token", metavar="TEXT", help="The access token (default: a random one).")
def serve(library, host, port, allow_remote, token):
    """Serve the web page and HTTP API of LIBRARY (API docs at /docs).

    Search by text or dropped images, see each result on its page, mark results right or
    wrong and refine, caption results, and label items keep/exclude for the filter.
    """
    from .server import serve as run_server

    run_server(library, host=host, port=port, allow_remote=allow_remote, token=token,
               echo=click.echo)


@main.group("annotations")
def annotations_group() -> None:
    """Captions people give items: the data that teaches a model a collection's words.

    \b
    sashie annotations add LIB 几帳 12 40 41      caption items (ids from search --json)
    sashie annotations list LIB
    sashie annotations export LIB OUT/           OUT/annotations.jsonl + OUT/crops/*.jpg
    """


@annotations_group.command("add")
@click.argument("library", type=click.Path(file_okay=False, exists=True))
@click.argument("caption")
@click.argument("items", nargs=-1, type=int, required=True)
def annotations_add(library, caption, items):
    """Give ITEMS of LIBRARY the CAPTION."""
    added = Library(library).annotate(list(items), caption)
    click.echo(f"{added} new annotations", err=True)


@annotations_group.command("list")
@click.argument("library", type=click.Path(file_okay=False, exists=True))
def annotations_list(library):
    """Every annotation: item id and caption."""
    for a in Library(library).catalog.annotations():
        click.echo(f"{a['item']}\t{a['caption']}")


@annotations_group.command("export")
@click.argument("library", type=click.Path(file_okay=False, exists=True))
@click.argument("out_dir", type=click.Path(file_okay=False))
def annotations_export(library, out_dir):
    """Write the (crop, caption) pairs to OUT_DIR, ready for fine-tuning."""
    out = Library(library).export_annotations(out_dir)
    click.echo(f"exported to {out / 'annotations.jsonl'}", err=True)


@main.command()
@click.argument("library", type=click.Path(file_okay=False, exists=True))
@click.option("--annotations", "annotations_file", type=click.Path(dir_okay=False, exists=True),
              metavar="FILE", help="Train on an annotations.jsonl (from `annotations export`) "
                                   "instead of the library's annotations.")
@click.option("--epochs", default=_ADAPT.epochs, show_default=True,
              type=click.IntRange(1, 1000))
@click.option("--batch", default=_ADAPT.batch, show_default=True, type=click.IntRange(2, 65536),
              help="Pairs a step; the other pairs of a batch are the negatives.")
@click.option("--min-steps", default=_ADAPT.min_steps, show_default=True,
              type=click.IntRange(0), help="Repeat epochs until this many steps were taken.")
@click.option("--lr", default=_ADAPT.lr, show_default=True, type=float,
              help="Learning rate of the text encoder (the paper's 5e-5 barely moves a word "
                   "in a hundred steps).")
@click.option("--adapter-lr", default=_ADAPT.adapter_lr, show_default=True, type=float,
              help="Learning rate of the visual adapter.")
@click.option("--ratio", default=_ADAPT.ratio, show_default=True, type=click.FloatRange(0, 1),
              metavar="R", help="Adapter blend: V' = normalize(R*adapter(V) + (1-R)*V).")
@click.option("--negatives", default=_ADAPT.negatives, show_default=True,
              type=click.IntRange(0),
              help="Other items' vectors each caption is told apart from, a step.")
@click.option("--keep-weight", default=_ADAPT.keep_weight, show_default=True,
              type=click.FloatRange(0),
              help="How strongly the adapter must leave other items' vectors where they were.")
@click.option("--anchor-weight", default=_ADAPT.anchor_weight, show_default=True,
              type=click.FloatRange(0),
              help="How strongly the model's own words (from its tokenizer) keep their meaning.")
@click.option("--example-weight", default=_ADAPT.example_weight, show_default=True,
              type=click.FloatRange(0),
              help="How much a query for a taught caption also ranks items by their likeness "
                   "to the captioned examples (0: the tuned text vector alone).")
@click.option("--only", type=click.Choice(["adapter", "text"]),
              help="Train only the visual adapter, or only the text encoder (default both).")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--device", metavar="DEV", help="cpu or cuda (default: cuda when present).")
@click.option("--use", "use_version", metavar="VERSION",
              help="Do not train: make VERSION (v1, v2, ... or base) the active one.")
@click.option("--list", "list_versions", is_flag=True, help="Do not train: list the versions.")
@click.option("--remove", "remove_version", metavar="VERSION",
              help="Do not train: delete VERSION (not the active one) and its vectors.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def adapt(library, annotations_file, epochs, batch, min_steps, lr, adapter_lr, ratio, negatives,
          keep_weight, anchor_weight, example_weight, only, seed, device,
          use_version, list_versions, remove_version, as_json):
    """Teach the model LIBRARY's own words from its annotations, without re-encoding images.

    Trains a visual adapter on the stored vectors of the annotated items and fine-tunes the
    text encoder on their captions (symmetric InfoNCE, AdamW; always from the base model, so
    rounds of annotate -> adapt do not drift). The result is a new model version: every vector
    is passed through the adapter into a new vector file (the old ones stay), searches then
    use the tuned text encoder, and pages indexed later go through the adapter too. The
    version also remembers the captioned examples: a text query for a taught caption ranks
    items by their likeness to them as well (--example-weight 0 turns that off).

    \b
    sashie annotations add LIB 几帳 12 40 41      caption what you found (or on the web page)
    sashie adapt LIB                             train v1, v2, ... and make it active
    sashie adapt LIB --list                      the versions, their data and settings
    sashie adapt LIB --use base                  switch back (instant); --use v1 again
    sashie adapt LIB --remove v1                 delete a version you no longer want
    """
    from .adapt import loss_table

    lib = Library(library, progress=not as_json and sys.stderr.isatty())
    if use_version:
        lib.use(use_version)
        click.echo(f"active model version: {use_version}", err=True)
        return
    if remove_version:
        lib.remove_version(remove_version)
        click.echo(f"removed model version {remove_version}", err=True)
        return
    if list_versions:
        versions = lib.versions()
        if as_json:
            click.echo(json.dumps(versions, indent=2, ensure_ascii=False))
            return
        click.echo(f"model {versions['model']}")
        mark = "*" if versions["active"] == "base" else " "
        click.echo(f"{mark} base")
        for v in versions["versions"]:
            mark = "*" if versions["active"] == v["name"] else " "
            s = v["settings"]
            parts = "adapter+text" if s["train_adapter"] and s["train_text"] else (
                "adapter" if s["train_adapter"] else "text")
            click.echo(f"{mark} {v['name']:<4} {v['created']}  {v['pairs']} pairs, "
                       f"{v['captions']} captions, data {v['data_hash']}, {parts}, "
                       f"{s['epochs']} epochs, lr {s['lr']:g}, R {s['ratio']:g}")
        return
    settings = AdaptSettings(epochs=epochs, batch=batch, min_steps=min_steps, lr=lr,
                             adapter_lr=adapter_lr, ratio=ratio, negatives=negatives,
                             keep_weight=keep_weight, anchor_weight=anchor_weight,
                             example_weight=example_weight, train_adapter=only != "text",
                             train_text=only != "adapter", seed=seed)
    report = lib.adapt(annotations=annotations_file, settings=settings, device=device)
    if as_json:
        click.echo(json.dumps({"version": report.version, "folder": str(report.folder),
                               "pairs": report.pairs, "captions": report.captions,
                               "epoch_losses": report.trained.epoch_losses,
                               "train_seconds": round(report.trained.seconds, 2),
                               "apply_seconds": report.apply_seconds, "rows": report.rows}))
        return
    click.echo(f"trained on {report.pairs} pairs ({report.captions} captions) in "
               f"{report.trained.seconds:.1f} s")
    click.echo(loss_table(report.trained))
    click.echo(f"loss curve: {report.folder / 'loss.png'}")
    if lib.memory() is not None:
        click.echo(f"remembers the {report.pairs} captioned examples: a query for a taught "
                   "caption also ranks items by their likeness to them")
    click.echo(f"{report.rows} vectors adapted in {report.apply_seconds:.1f} s")
    click.echo(f"active model version: {report.version} (back to the base: "
               f"sashie adapt {library} --use base)")


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
        if m["versions"]:
            mark += (f", model version {m['active_version']} active "
                     f"(versions: base, {', '.join(m['versions'])})")
        click.echo(f"model     {m['id']}{mark}: {m['vectors']} vectors x {m['dim']} dims")
    labels = facts["labels"]
    if labels["keep"] or labels["exclude"]:
        click.echo(f"labels    {labels['keep']} keep, {labels['exclude']} exclude")
    f = facts["filter"]
    if f:
        click.echo(f"filter    {f['learner']} (weighted F1 {f['test_metrics']['weighted_f1']:.3f} "
                   f"on held-out labels): {f['kept']} items kept, {f['excluded']} excluded")
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
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True,
              help="Port of the web page opened at the end.")
@click.option("--no-serve", is_flag=True, help="Print the searches only; no web page.")
def demo(folder, pages, seed, port, no_serve):
    """Draw a small book collection, index it with the demo model, search it, and open the
    web page on it.

    Offline, a few minutes on a laptop CPU. FOLDER (default ./sashie-demo) keeps the world,
    the library and the query pictures, so you can go on searching it.
    """
    from pathlib import Path

    from .demo import run_demo
    from .server import serve

    run_demo(folder, pages=pages, seed=seed, echo=click.echo)
    if not no_serve:
        click.echo("\nthe web page (Ctrl-C to stop):")
        serve(Path(folder) / "library", port=port, echo=click.echo)


@main.command("bench")
@click.option("--quick", is_flag=True, help="300 pages (under 5 minutes) instead of 2,000.")
@click.option("--pages", type=click.IntRange(1), help="Pages in the evaluation world.")
@click.option("--seed", type=int, default=1000, show_default=True,
              help="The world's seed (the demo model never trained on it).")
@click.option("--model", "-m", metavar="SPEC", help="Model to measure (default sashie-demo).")
@click.option("--keep", metavar="DIR", type=click.Path(file_okay=False),
              help="Keep the world and library in DIR (default: a temporary folder).")
@click.option("--world", "world_dir", metavar="WORLD", type=click.Path(file_okay=False,
                                                                       exists=True),
              help="Measure on this world (from `sashie world`; its pages and seed) instead "
                   "of drawing one: large worlds take a while to draw.")
@click.option("--adapt", is_flag=True,
              help="Also the adaptation experiment: a simulated annotator captions held-out "
                   "concepts it finds, the library is adapted, queries are measured before "
                   "and after (adds an index of layout regions + filter).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object of figures.")
def bench_command(quick, pages, seed, model, keep, world_dir, adapt, as_json):
    """Measure search quality on a fresh evaluation world with ground truth.

    Text -> illustration P@10/P@100/mAP (English, Japanese; seen and held-out concepts),
    cross-artist image queries, the seed paper's multi-image experiment (CV vs random vs
    all dimensions), zero-shot classification and the share of text crops in results.
    """
    from . import bench

    result = bench.bench(quick=quick, pages=pages, seed=seed, model=model, keep=keep,
                         progress=not as_json, adapt=adapt, world=world_dir)
    click.echo(bench.as_json(result) if as_json else bench.format_table(result))



@main.group("filter")
def filter_group() -> None:
    """Keep illustrations, drop text, stains and blank paper: label, train, apply.

    \b
    sashie filter label LIB --interactive --n 100   look at crops, answer k / e
    sashie filter label LIB --csv marks.csv         rows: item,keep|exclude
    sashie filter label LIB --ground-truth WORLD    for experiments on `sashie world`
    sashie filter train LIB                         five learners; best kept, applied
    sashie filter apply LIB                         score every item again
    sashie filter evaluate LIB --ground-truth WORLD  the saved filter against the truth
    Searches then cover kept items only (sashie search --all to see every item).
    """


@filter_group.command("label")
@click.argument("library", type=click.Path(file_okay=False, exists=True))
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False, exists=True),
              help="A CSV of item,label (keep/exclude, 1/0).")
@click.option("--ground-truth", "world", type=click.Path(file_okay=False, exists=True),
              help="An evaluation world: label a random sample from its ground truth.")
@click.option("--interactive", is_flag=True, help="Show crops one by one and ask.")
@click.option("--n", type=click.IntRange(1), default=1000, show_default=True,
              help="How many items to sample (--ground-truth, --interactive).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the sample.")
def filter_label(library, csv_path, world, interactive, n, seed):
    """Mark items of LIBRARY keep (an illustration) or exclude."""
    from .labelling import ground_truth_labels, read_label_csv

    if sum(map(bool, (csv_path, world, interactive))) != 1:
        raise SashieError("give exactly one of --csv, --ground-truth and --interactive")
    lib = Library(library)
    if interactive:
        ids, keep = _ask_labels(lib, n, seed)
        source = "interactive"
    elif csv_path:
        ids, keep = read_label_csv(csv_path)
        source = "csv"
    else:
        ids, keep = ground_truth_labels(lib, world, n, seed)
        source = "ground-truth"
    lib.label(ids, keep, source)
    counts = lib.catalog.label_counts()
    click.echo(f"labelled {len(ids)} items ({sum(keep)} keep); the library now has "
               f"{counts['keep']} keep and {counts['exclude']} exclude labels", err=True)


def _ask_labels(lib: Library, n: int, seed: int) -> tuple[list[int], list[bool]]:
    import tempfile
    from pathlib import Path

    from .labelling import sample_items, save_crop

    ids, keep = [], []
    with tempfile.TemporaryDirectory(prefix="sashie-label-") as folder:
        sample = sample_items(lib, n, seed)
        for number, item in enumerate(sample, start=1):
            crop = save_crop(lib, item, Path(folder))
            click.echo(f"[{number}/{len(sample)}] item {item}: {crop}")
            answer = click.prompt("  keep, exclude, skip or quit", default="s",
                                  type=click.Choice(["k", "e", "s", "q"]), show_choices=True)
            if answer == "q":
                break
            if answer in "ke":
                ids.append(item)
                keep.append(answer == "k")
    return ids, keep


@filter_group.command("train")
@click.argument("library", type=click.Path(file_okay=False, exists=True))
@click.option("--learners", metavar="NAMES",
              help="Comma-separated subset of random_forest,xgboost,lightgbm,svm,mlp "
                   "(default: all five).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the 80/20 split, the folds and the learners.")
@click.option("--json", "as_json", is_flag=True, help="Print the tables as JSON.")
def filter_train(library, learners, seed, as_json):
    """Fit the learners on the labelled items, keep the best and apply it.

    Each learner is tuned by grid search with 5-fold cross-validation on 80 % of the labels
    and scored on the other 20 % (Table 1: weighted figures; Table 2: per class).
    """
    from .filter import parse_learners, table_overall, table_per_class

    lib = Library(library, progress=not as_json)
    report = lib.train_filter(learners=parse_learners(learners), seed=seed)
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
        return
    click.echo(table_overall(report))
    click.echo()
    click.echo(table_per_class(report))
    counts = lib.catalog.filter_counts()
    click.echo(f"\nkept {report.best.name}; applied: {counts['kept']} items kept, "
               f"{counts['excluded']} excluded")


@filter_group.command("apply")
@click.argument("library", type=click.Path(file_okay=False, exists=True))
def filter_apply(library):
    """Score every item of LIBRARY with its saved filter (new items are scored on indexing)."""
    done = Library(library, progress=True).apply_filter()
    click.echo(f"scored {done['scored']} items in {done['seconds']:.1f} s: {done['kept']} kept, "
               f"{done['excluded']} excluded")


@filter_group.command("evaluate")
@click.argument("library", type=click.Path(file_okay=False, exists=True))
@click.option("--ground-truth", "world", type=click.Path(file_okay=False, exists=True),
              help="Judge every item against an evaluation world's ground truth.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def filter_evaluate(library, world, as_json):
    """The saved filter's verdicts against the ground truth of every item, or against the
    library's labels (which include those it was trained on: an optimistic figure)."""
    from .labelling import judge_library_items

    lib = Library(library)
    if world:
        ids, keep, _ = judge_library_items(lib, world)
        figures = lib.evaluate_filter(ids, keep)
        figures["against"] = "the ground truth"
    else:
        figures = lib.evaluate_filter()
    if as_json:
        click.echo(json.dumps(figures, indent=2))
        return
    m = figures["overall"]
    click.echo(f"{figures['items']} items judged by {figures['against']}: weighted precision "
               f"{m['weighted_precision']:.3f}, recall {m['weighted_recall']:.3f}, "
               f"F1 {m['weighted_f1']:.3f}, accuracy {m['accuracy']:.3f}")
    for name, c in figures["per_class"].items():
        click.echo(f"  {name:<7}  precision {c['precision']:.3f}  recall {c['recall']:.3f}  "
                   f"F1 {c['f1']:.3f}  support {c['support']}")


@filter_group.command("remove")
@click.argument("library", type=click.Path(file_okay=False, exists=True))
def filter_remove(library):
    """Forget LIBRARY's filter: every item is searched again (labels are kept)."""
    Library(library).remove_filter()
    click.echo("filter removed", err=True)


if __name__ == "__main__":
    main()
