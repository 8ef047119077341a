"""How few captioned examples are too few for `sashie adapt` (the warning's threshold).

On an evaluation world indexed as a user would (layout regions, a filter trained on ground-
truth labels), the simulated annotator of `sashie bench --adapt` finds up to 25 items of each
of the 12 held-out query concepts (names the demo model never read). Then, for each N, the
first N of each concept are captioned with its English and its Japanese name (N examples per
caption), the library is adapted with the default recipe, and text queries are measured:
held-out and seen P@10 (mean of English and Japanese), over the kept items that none of the
runs captioned, so every row is scored on the same items.

    python benchmarks/adapt_few_pairs.py --seed 1000           # choose the threshold here
    python benchmarks/adapt_few_pairs.py --seed 2000           # report it here
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from sashie.eval.bench_adapt import annotate, concepts_of_items, layout_library, measure
from sashie.eval.world import make_world, read_truth
from sashie.eval.world.vocab import vocabulary
from sashie.library import BASE

PER_CAPTION = (1, 2, 3, 5, 10, 20)


def p10(row: dict, group: str) -> float:
    return (row[f"{group}_p10_en"] + row[f"{group}_p10_ja"]) / 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=1000)
    parser.add_argument("--pages", type=int, default=2000)
    parser.add_argument("--size", default="800x1200", help="page size, WxH")
    parser.add_argument("--keep", metavar="DIR", help="work here (kept) instead of a temp dir")
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(args.keep or scratch)
        started = time.perf_counter()
        world = work / "world"
        if not world.is_dir():
            make_world(world, pages=args.pages, seed=args.seed, size=size)  # type: ignore[arg-type]
        lib, label = layout_library(work / "library", world, None, seed=args.seed, progress=False)
        vocab = vocabulary()
        concepts = concepts_of_items(lib, read_truth(world))
        names = {c.key: (c.en, c.ja) for c in vocab.concepts}
        heldout = {k: names[k] for k in vocab.query_heldout}
        groups = {"heldout": heldout, "seen": {k: names[k] for k in vocab.query_seen}}
        relevant = {
            k: {item for item, c in concepts.items() if k in c} for g in groups.values() for k in g
        }
        found, _ = annotate(lib, {k: relevant[k] for k in heldout}, heldout, vocab, seed=args.seed)
        skip = {item for items in found.values() for item in items}
        before = measure(lib, relevant, groups, skip)
        print(
            f"world seed {args.seed}, {args.pages} pages {args.size}, {label}; found per "
            f"concept: {sorted(len(v) for v in found.values())}; P@10 over items outside "
            f"every run's captions"
        )
        print("| examples per caption | pairs | held-out P@10 | seen P@10 | train s |")
        print("|---|---|---|---|---|")
        print(f"| 0 (base) | 0 | {p10(before, 'heldout'):.3f} | {p10(before, 'seen'):.3f} | |")
        for n in PER_CAPTION:
            lib.annotations.remove(item_ids=sorted(skip))
            for key, items in found.items():
                for name in heldout[key]:  # each example captioned in English and Japanese
                    lib.annotations.add(items[:n], name)
            report = lib.versions.adapt()
            after = measure(lib, relevant, groups, skip)
            print(
                f"| {n} | {report.pairs} | {p10(after, 'heldout'):.3f} | "
                f"{p10(after, 'seen'):.3f} | {report.trained.seconds:.1f} |",
                flush=True,
            )
            lib.versions.use(BASE)
            lib.versions.remove(report.version)
        print(f"({time.perf_counter() - started:.0f} s in all)")


if __name__ == "__main__":
    main()
