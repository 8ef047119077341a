"""Regions and the keep/exclude filter, measured on an evaluation world (issue 5's figures).

    python benchmarks/filter.py --pages 2000 --seed 1000 [--world DIR] [--keep DIR]

Makes (or reuses) a world, indexes it with `layout,whole` and the demo model, and prints:
1. regions: recall of ground-truth illustrations at IoU >= 0.5, precision, items per page;
2. the filter's Table 1 and Table 2 after labelling 1,000 random items from the ground truth
   (keep = the crop is an illustration: IoU >= 0.5 with one, or mostly covered by them);
3. the index before and after filtering, and text queries (the seen query concepts, English
   and Japanese) with the filter off and on: Precision@100 (relevant = IoU >= 0.5 with an
   illustration of the concept, as in `sashie bench`) and the share of text-only items
   (touching no illustration) in the top 100;
4. the time to score 1,140,000 vectors with each learner, and to store 1,140,000 verdicts.
Pages per second of the detectors: benchmarks/regions.py.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from sashie.eval.truth import ground_truth_labels, item_concepts, judge_library_items
from sashie.eval.world import make_world, read_truth
from sashie.eval.world.vocab import vocabulary
from sashie.filter.learners import table_overall, table_per_class
from sashie.filter.model import THRESHOLD
from sashie.library import Filters, Library
from sashie.regions import iou
from sashie.store.catalog import Catalog

SCALE_ROWS = 1_140_000  # the seed paper's index after filtering


def region_table(lib: Library, truth: list[dict]) -> str:
    items = lib.items()
    by_page: dict[str, list] = {}
    for row in items:
        by_page.setdefault(row.page, []).append(row)
    pictures = [(row["page"], ill["bbox"]) for row in truth for ill in row["illustrations"]]
    truth_by_page = {row["page"]: row for row in truth}
    lines = [
        "| regions      | recall@0.5 | precision | items/page |",
        "|--------------|------------|-----------|------------|",
    ]
    for name, detectors in (
        ("whole", {"whole"}),
        ("layout", {"layout"}),
        ("layout+whole", {"layout", "whole"}),
    ):
        found = sum(
            any(iou(r.bbox, box) >= 0.5 for r in by_page.get(page, []) if r.detector in detectors)
            for page, box in pictures
        )
        chosen = [r for r in items if r.detector in detectors]
        matching = sum(
            any(iou(r.bbox, ill["bbox"]) >= 0.5 for ill in truth_by_page[r.page]["illustrations"])
            for r in chosen
        )
        lines.append(
            f"| {name:<12} | {found / max(1, len(pictures)):10.3f} | "
            f"{matching / max(1, len(chosen)):9.3f} | {len(chosen) / len(truth):10.1f} |"
        )
    return "\n".join(lines)


def text_query_table(lib: Library, truth: list[dict], world: Path) -> str:
    vocab = vocabulary()
    by_key = vocab.by_key
    ids, _, text_only = judge_library_items(lib, world)
    text_only_ids = set(np.asarray(ids)[text_only].tolist())
    rows = lib.items(ids)
    concepts = dict(zip(ids, item_concepts([(r.page, r.bbox) for r in rows], truth)))
    lines = [
        "| queries (24 seen concepts) | filter | Precision@100 | text-only share of top 100 |",
        "|----------------------------|--------|---------------|----------------------------|",
    ]
    for language in ("en", "ja"):
        for all_items in (True, False):
            precision, share = [], []
            for key in vocab.query_seen:
                name = by_key[key].en if language == "en" else by_key[key].ja
                hits = lib.search(name, 100, where=Filters(all_items=all_items))
                precision.append(np.mean([key in concepts[h.item] for h in hits]))
                share.append(np.mean([h.item in text_only_ids for h in hits]))
            lines.append(
                f"| {'English' if language == 'en' else 'Japanese':<26} | "
                f"{'off' if all_items else 'on':<6} | {np.mean(precision):13.3f} | "
                f"{np.mean(share):26.3f} |"
            )
    return "\n".join(lines)


def scale_table(lib: Library, report, workdir: Path, rows: int) -> str:
    base = lib.index().vectors
    rng = np.random.default_rng(0)
    big = base[rng.integers(0, len(base), rows)]
    big += rng.normal(0, 0.01, big.shape).astype(np.float32)
    lines = [f"| scoring {rows:,} vectors | seconds |", "|---|---|"]
    for result in report.results:
        started = time.perf_counter()
        scores = result.filter.scores(big)
        lines.append(f"| {result.name} | {time.perf_counter() - started:.1f} |")
    catalog = Catalog(workdir / "scratch.sqlite")  # the store itself is what is timed here
    catalog.db.execute("PRAGMA foreign_keys=OFF")  # verdicts for items this scratch file lacks
    started = time.perf_counter()
    with catalog.transaction() as tx:
        tx.set_filter_scores(range(1, rows + 1), scores.tolist(), THRESHOLD)
    lines.append(f"| storing {rows:,} verdicts (SQLite) | {time.perf_counter() - started:.1f} |")
    catalog.close()
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pages", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1000)
    parser.add_argument("--labels", type=int, default=1000)
    parser.add_argument("--world", type=Path, help="reuse this world instead of making one")
    parser.add_argument("--keep", type=Path, help="work here and keep the world and library")
    parser.add_argument("--model", help="model spec (default: the demo model)")
    parser.add_argument(
        "--scale-rows", type=int, default=SCALE_ROWS, help="vectors in the apply-speed measurement"
    )
    args = parser.parse_args()
    workdir = args.keep or Path(tempfile.mkdtemp(prefix="sashie-filter-"))
    workdir.mkdir(parents=True, exist_ok=True)
    world = args.world or make_world(
        workdir / "world", pages=args.pages, seed=args.seed, progress=True
    )
    truth = read_truth(world)
    lib = Library(workdir / "library", create=True, progress=True)
    started = time.perf_counter()
    lib.add([str(world / "pages")], model=args.model, regions="layout,whole")
    indexed = time.perf_counter() - started
    print(
        f"\n{len(truth)} pages, {lib.info()['items']} items, indexed in {indexed:.0f} s "
        f"({lib.encoder().model_id})\n"
    )
    print(region_table(lib, truth) + "\n")

    if lib.filter.exists:
        lib.filter.remove()
    lib.filter.unmark()  # a kept library (--keep) may hold the labels of an earlier run
    ids, keep = ground_truth_labels(lib, world, args.labels, seed=args.seed)
    lib.filter.mark(ids, keep, "ground-truth")
    report = lib.filter.train(seed=args.seed)
    print(table_overall(report) + "\n")
    print(table_per_class(report) + "\n")

    all_ids, truth_keep, _ = judge_library_items(lib, world)
    figures = lib.filter.evaluate(all_ids, truth_keep)["overall"]
    counts = lib.counts()
    total = counts["kept"] + counts["excluded"]
    dim = lib.index().dim
    print(
        f"the kept filter ({report.best.name}) on all {len(all_ids)} items, "
        f"against the ground truth: weighted F1 {figures['weighted_f1']:.3f}, "
        f"accuracy {figures['accuracy']:.3f}"
    )
    print(
        f"index: {total} items ({total * dim * 2 / 1e6:.1f} MB of float16 vectors) before, "
        f"{counts['kept']} ({counts['kept'] * dim * 2 / 1e6:.1f} MB) after filtering "
        f"({counts['kept'] / total:.1%} kept)\n"
    )
    print(text_query_table(lib, truth, world) + "\n")
    print(scale_table(lib, report, workdir, args.scale_rows))


if __name__ == "__main__":
    main()
