"""The keep/exclude filter on real scans: crops of real pages labelled from the boxes people
drew (illustrations kept; text lines and blocks, seals, the scanner's bed with its chart,
ruler and label, and blank paper excluded: sashie/eval/real_crops.py), judged by a library's
filter. Prints keep and exclude F1, weighted F1, and for each kind of crop how many the filter
judged right.

    python benchmarks/filter_real.py --real ../shared/real-pages/ndl-docl --filter LIB [...]
    python benchmarks/filter_real.py --real DIR --spreads 400 --seed 300 [--keep DIR]

`--filter LIB` (repeatable) measures filters already trained (the demo's: sashie-demo/library).
`--spreads N` first makes one the way a library would on spread scans: draws N spreads of the
world's version 3 (seed `--seed`), indexes them with the demo model and `learned,layout,whole`,
labels 1,000 items from the ground truth (the scanner's furniture, text and blank paper are
not illustrations) and trains the filter (random forest and SVM, the better kept).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from itertools import groupby
from pathlib import Path

from sashie import Library
from sashie.eval.real_crops import format_filter_table, labelled_crops, score_verdicts
from sashie.eval.truth import ground_truth_labels
from sashie.eval.world import SPREAD_VERSION, make_world
from sashie.filter.learners import table_overall
from sashie.filter.model import THRESHOLD
from sashie.regions.boxes import read_voc_folder
from sashie.sources.images import load_image

LABELS = 1000
LEARNERS = ("random_forest", "svm")


def spread_library(folder: Path, spreads: int, seed: int) -> Path:
    """A library of drawn spreads with a filter trained from their ground truth."""
    world = make_world(
        folder / "world", pages=spreads, seed=seed, version=SPREAD_VERSION, progress=True
    )
    lib = Library(folder / "library", create=True, progress=True)
    print(lib.add([str(world / "pages")], regions="learned,layout,whole").summary())
    lib.filter.mark(*ground_truth_labels(lib, world, LABELS, seed), source="ground-truth")
    print(table_overall(lib.filter.train(learners=LEARNERS, seed=seed)))
    return folder / "library"


def verdicts(library: Path, crops) -> list[bool]:
    """The library's filter's verdict on each crop: a page read once, its crops encoded and
    scored together."""
    lib = Library(library)
    keep = lib.filter.load()
    if keep is None:
        sys.exit(f"{library} has no keep/exclude filter (sashie filter train)")
    encoder = lib.encoder()
    kept: list[bool] = []
    for image_path, group in groupby(crops, key=lambda crop: crop.page.image):
        page = load_image(str(image_path))
        boxes = [crop.bbox for crop in group]
        scores = keep.scores(encoder.encode_images([page.crop(box) for box in boxes]))
        kept += [bool(score >= THRESHOLD) for score in scores]
    return kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--real", type=Path, required=True, help="a folder of VOC pages")
    parser.add_argument("--filter", type=Path, action="append", default=[], metavar="LIB")
    parser.add_argument("--spreads", type=int, default=0, help="make a spread library first")
    parser.add_argument("--seed", type=int, default=300)
    parser.add_argument("--keep", type=Path, help="where to keep the spread library made")
    args = parser.parse_args()
    pages, skipped = read_voc_folder(args.real)
    for name, reason in skipped:
        print(f"skipped {name}: {reason}", file=sys.stderr)
    crops = [c for page in pages for c in labelled_crops(page)]
    libraries = list(args.filter)
    with tempfile.TemporaryDirectory() as tmp:
        if args.spreads:
            folder = args.keep or Path(tmp)
            libraries.append(spread_library(folder, args.spreads, args.seed))
        if not libraries:
            sys.exit("name a library with --filter LIB, or make one with --spreads N")
        counts = {k: sum(c.kind == k for c in crops) for k in sorted({c.kind for c in crops})}
        print(
            f"{len(crops)} crops of {len(pages)} real pages from {args.real}: "
            + ", ".join(f"{n} {k}" for k, n in counts.items())
        )
        rows = [(str(lib)[-28:], score_verdicts(crops, verdicts(lib, crops))) for lib in libraries]
        print(format_filter_table(rows))


if __name__ == "__main__":
    main()
