"""`sashie info`, `sashie check` and `sashie export`: what a library holds, what in it is
damaged, and its vectors for other tools."""

from __future__ import annotations

import click

from ...library import Library
from .common import LIBRARY, echo_json


@click.command()
@click.argument("library", type=LIBRARY)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def info(library, as_json):
    """Show pages, items, models and skipped inputs of LIBRARY."""
    facts = Library(library).info()
    if as_json:
        echo_json(facts)
        return
    click.echo(
        f"library   {facts['path']} (format {facts['format_version']}, "
        f"{facts['disk_bytes'] / 1e6:.1f} MB)"
    )
    by_detector = ", ".join(f"{n} {d}" for d, n in facts["items_by_detector"].items())
    copies = (
        f" (and {facts['copies']} copies of them, not indexed again)" if facts["copies"] else ""
    )
    click.echo(f"pages     {facts['pages']}{copies}")
    click.echo(f"items     {facts['items']}" + (f" ({by_detector})" if by_detector else ""))
    for m in facts["models"]:
        if m.get("damaged"):
            click.echo(f"model     {m['id']}: damaged (see below)")
            continue
        mark = " (default)" if m["default"] else ""
        if m["versions"]:
            mark += (
                f", model version {m['active_version']} active "
                f"(versions: base, {', '.join(m['versions'])})"
            )
        click.echo(f"model     {m['id']}{mark}: {m['vectors']} vectors x {m['dim']} dims")
        ann = m["ann_index"]
        click.echo(
            f"search    {ann['kind']} ANN index of {ann['rows']:,} vectors "
            f"({ann['bytes'] / 2**20:.1f} MiB; `sashie reindex` rebuilds it)"
            if ann
            else "search    exact scan (no ANN index: built from 200,000 items)"
        )
        scan = m["exact_scan"]
        costs = ", ".join(f"{p} {ns:.0f}" for p, ns in scan["ns_per_row"].items())
        click.echo(
            f"scan      in {scan['precision']}, the fastest here within {scan['memory_bytes']:g} "
            f"byte(s) a value (ns a row measured: {costs}; SASHIE_SCAN_MEMORY allows more)"
            if scan["precision"]
            else "scan      precisions not measured on this machine yet (at the first exact scan)"
        )
        for version, c in m["composers"].items():
            active = "" if version == m["active_version"] else " (not the active version)"
            click.echo(
                f"composer  for {version}{active}: trained {c['trained']} on {c['items']} items, "
                f"{c['tokens']} token(s), light encoder {'yes' if c['light'] else 'no'}, "
                f"{c['seconds']} s"
            )
    marks = facts["marks"]
    if marks["keep"] or marks["exclude"]:
        click.echo(f"marks     {marks['keep']} keep, {marks['exclude']} exclude")
    f = facts["filter"]
    if f:
        click.echo(
            f"filter    {f['learner']} (weighted F1 {f['test_metrics']['weighted_f1']:.3f} "
            f"on held-out marks): {f['kept']} items kept, {f['excluded']} excluded"
        )
    for name, entry in facts["label_sets"].items():
        top = ", ".join(f"{label} {n}" for label, n in list(entry["counts"].items())[:5])
        click.echo(
            f"label set {name}: {entry['classes']} classes, {entry['items']} items labelled "
            f"({entry['method']}, model version {entry['model_version']})"
            + (f"; most: {top}" if top else "")
        )
    printings = facts["printings"]
    if printings["compared"]:
        click.echo(
            f"printings {printings['pairs']} pairs of printings among {printings['compared']} "
            "items compared (sashie printings --all)"
        )
    for problem in facts["damaged"]:
        click.echo(f"damaged   {problem['part']}: {problem['reason']}")
    if facts["damaged"]:
        click.echo(f"          `sashie check {library}` checks every file; --repair repairs")
    click.echo(f"skipped   {facts['skipped']}")
    for reason, n in sorted(facts["skipped_by_reason"].items(), key=lambda x: -x[1]):
        click.echo(f"  {n:>6}  {reason}")
    shown = facts["skipped_inputs"][:20]
    for s in shown:
        click.echo(f"          {s['uri']}: {s['reason']}")
    if len(facts["skipped_inputs"]) > len(shown):
        click.echo(
            f"          ... and {len(facts['skipped_inputs']) - len(shown)} more (--json lists all)"
        )


@click.command()
@click.argument("library", type=LIBRARY)
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--model", "-m", metavar="SPEC_OR_ID", help="Which of the library's models.")
@click.option(
    "--version",
    metavar="NAME",
    help="Which model version's vectors: v1, v2, ... or base (default: the active one).",
)
@click.option("--no-crops", is_flag=True, help="Write no crop files (image_path stays empty).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def export(library, out_dir, model, version, no_crops, as_json):
    """Export one row per item to OUT_DIR, as clip-retrieval lays it out: vectors
    (img_emb/*.npy), crops (crops/*.jpg) and their metadata (metadata/*.parquet: image_path,
    url, caption, labels, filter verdict, page metadata). docs/export.md has the columns."""
    report = Library(library, progress=not as_json).export(
        out_dir, model=model, version=version, crops=not no_crops
    )
    if as_json:
        echo_json(report.as_dict())
        return
    click.echo(
        f"exported {report.items} items of {report.model_id} (version {report.version}, "
        f"{report.dim} dims) to {report.folder}; {report.crops} crops",
        err=True,
    )
    if report.crops_failed:
        click.echo(
            f"{report.crops_failed} items have no crop (their page could not be read), "
            f"e.g. {report.crops_failed_example}",
            err=True,
        )


@click.command()
@click.argument("library", type=LIBRARY)
@click.option(
    "--repair",
    is_flag=True,
    help="Repair what can be repaired without losing anything people made: build a damaged "
    "ANN index again; drop a damaged model version, composer, filter or label set.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def check(library, repair, as_json):
    """Check every file of LIBRARY against what sashie writes: the catalog, vectors, model
    versions, ANN indexes, the filter, composers and label sets. For a library folder someone
    sent you, or one a crash or a disk may have damaged. Exits 1 while a problem is left.

    \b
    sashie check LIB            list what is damaged (nothing is changed)
    sashie check LIB --repair   then repair what can be repaired
    """
    lib = Library(library, progress=not as_json)
    checkup = lib.check(repair=repair)
    if as_json:
        echo_json(checkup.as_dict())
    else:
        for problem in checkup.problems:
            done = problem.repair is not None and problem.repair in checkup.repaired
            click.echo(f"{problem.part}: {problem.reason}")
            if problem.repair is None:
                click.echo("    no safe repair (docs/security.md says what to do)")
            else:
                click.echo(f"    {'repaired: ' if done else '--repair would '}{problem.repair}")
        left = len(checkup.left)
        click.echo(
            "no problems found"
            if not checkup.problems
            else f"{len(checkup.problems)} problem(s), {left} left",
            err=True,
        )
    if checkup.left:
        raise SystemExit(1)


@click.command()
@click.argument("library", type=LIBRARY)
@click.option("--json", "as_json", is_flag=True, help="Print JSON, with every field kept.")
def books(library, as_json):
    """List the books of LIBRARY: each manifest, folder of scans or list it indexed, with
    what its source (or `index --metadata FILE`) says of it. Search within them with
    `sashie search LIB "..." --book ID` or `--where "year<1700"`."""
    found = Library(library).books.list()
    if as_json:
        echo_json(found)
        return
    if not found:
        click.echo("no books: index the pages again to record them (nothing is re-encoded)")
        return
    click.echo(f"{'id':>5}  {'pages':>5}  {'items':>6}  {'years':<9}  title · creator · date")
    for book in found:
        years = (
            ""
            if book["year_from"] is None
            else str(book["year_from"])
            if book["year_from"] == book["year_to"]
            else f"{book['year_from']}-{book['year_to']}"
        )
        told = " · ".join(filter(None, (book["title"], book["creator"], book["date"])))
        click.echo(f"{book['id']:>5}  {book['pages']:>5}  {book['items']:>6}  {years:<9}  {told}")
