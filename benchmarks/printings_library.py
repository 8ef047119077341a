"""`sashie printings LIB --all` run end to end on a library of --items items (issue 41:
100,000 in under 30 minutes on our 2-core CPU), and the pairs it finds checked.

    python benchmarks/printings_library.py WORKDIR [--items 100000] [--blocks 1000] [--seed 31]
                                           [--again | --compare-again]

A printings world of --blocks blocks is drawn from --seed (sashie.eval.world.reprints), and
each of its pages is printed again, as many times as --items needs: another impression of the
whole plate (a margin trimmed, scaled, turned a little, lighter or darker, noise, one in ten
mirrored, a JPEG of its own). The copies go in books of 200 pages, indexed whole
(`--regions whole`), and `--all` groups them, timed by its passes (look, compare).

--again reuses the world, copies and library an earlier run left in WORKDIR (same settings):
their printings are forgotten (the features kept, the pairs, the items compared) and `--all`
is timed anew; --compare-again forgets only the pairs and the items compared, so that `--all`
compares everything again without looking (its look figure is then 0).

Every item here has printings (its page's other copies, its block's other printings), so
every candidate `--all` verifies goes on to the geometric check: its verify time is a high
one for a real collection, where most pictures are printed once.

A pair is right when its two items come from one page of the world, or from two printings of
one block (a near miss is not a printing). Sets are scored by purity (the share of a set's
items from the block, or unique page, most of it comes from), by the share of each kind of
later printing found in its original's set, of near misses kept out of it, and of pages
whose copies all share one set.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import sys
import time
from collections import Counter
from multiprocessing import Pool
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sashie import Library
from sashie.eval.world.reprints import KINDS, make_printings_world, read_printings

BOOK_PAGES = 200
FULL = 1_140_000


def reprint(job: tuple[str, str, int]) -> None:
    """Write a copy of the page at `source` to `out`: another impression of the plate."""
    source, out, seed = job
    rng = np.random.default_rng(seed)
    page = cv2.imread(source, cv2.IMREAD_COLOR)
    h, w = page.shape[:2]
    trim = (rng.uniform(0, 0.06, 4) * [w, h, w, h]).astype(int)
    page = page[trim[1] : h - trim[3], trim[0] : w - trim[2]]
    h, w = page.shape[:2]
    turn = cv2.getRotationMatrix2D((w / 2, h / 2), float(rng.normal(0, 1.5)), 1.0)
    page = cv2.warpAffine(page, turn, (w, h), borderValue=(235, 235, 235))
    scale = float(rng.uniform(0.7, 1.0))
    page = cv2.resize(page, (int(w * scale), int(h * scale)), interpolation=cv2.INTER_AREA)
    page = page.astype(np.float32) * rng.uniform(0.85, 1.1) + rng.uniform(-15, 15)
    page += rng.normal(0, 4, page.shape)
    page = np.clip(page, 0, 255).astype(np.uint8)
    if rng.random() < 0.1:
        page = page[:, ::-1]
    cv2.imwrite(out, page, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(75, 92))])


def forget_printings(library: Path, *, features: bool) -> None:
    """The library as before its first `--all`: no pairs or items compared (nor `features`)."""
    if features:
        shutil.rmtree(library / "printings", ignore_errors=True)
    with sqlite3.connect(library / "catalog.sqlite") as db:
        db.execute("DELETE FROM printing_pairs")
        db.execute("DELETE FROM printings_compared")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workdir", type=Path, help="a new folder for the world and library")
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--blocks", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=31)
    parser.add_argument("--again", action="store_true", help="reuse WORKDIR's library")
    parser.add_argument(
        "--compare-again", action="store_true", help="reuse its library and features too"
    )
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    times: dict[str, float] = {}

    library = args.workdir / "library"
    args.again = args.again or args.compare_again
    if args.again:
        world = args.workdir / "world"
        truth = read_printings(world)
        forget_printings(library, features=not args.compare_again)
    else:
        started = time.perf_counter()
        world = make_printings_world(args.workdir / "world", blocks=args.blocks, seed=args.seed)
        truth = read_printings(world)
        times["draw the world"] = time.perf_counter() - started
    pages = args.workdir / "pages"
    jobs, origin = [], {}
    for n in range(args.items):
        book = pages / f"book{n // BOOK_PAGES:04d}"
        out = book / f"{n % BOOK_PAGES:04d}.jpg"
        jobs.append((truth[n % len(truth)]["page"], str(out), n))
        origin[str(out.resolve())] = n % len(truth)
    if not args.again:
        started = time.perf_counter()
        for n in range(0, args.items, BOOK_PAGES):
            (pages / f"book{n // BOOK_PAGES:04d}").mkdir(parents=True, exist_ok=True)
        with Pool(cores) as pool:
            for _ in pool.imap_unordered(reprint, jobs, chunksize=64):
                pass
        times["print the copies"] = time.perf_counter() - started
        started = time.perf_counter()
        Library(library, create=True, progress=True).add([str(pages)], regions="whole")
        times["index (whole pages)"] = time.perf_counter() - started
    lib = Library(library, progress=True)

    marks: dict[str, float] = {}
    looked = [0]

    def progress(done: int, total: int) -> None:
        if "look" not in marks and done >= looked[0]:
            marks["look"] = time.perf_counter()

    shards = library / "printings"
    looked[0] = 0 if args.compare_again else len(lib.items())  # all looked at, then compared
    started = time.perf_counter()
    if not looked[0]:
        marks["look"] = started
    report = lib.printings.group(progress=progress)
    ended = time.perf_counter()
    look_s = marks.get("look", ended) - started
    times["--all: look"] = look_s
    times["--all: compare"] = ended - started - look_s

    source_of = {row.id: origin[str(Path(row.page).resolve())] for row in lib.items()}

    def family(item: int) -> tuple:
        row = truth[source_of[item]]
        if row["block"] is None or row["kind"] == "nearmiss":
            return ("page", source_of[item])
        return ("block", row["block"])

    groups = lib.printings.groups()
    with sqlite3.connect(
        f"file:{args.workdir / 'library' / 'catalog.sqlite'}?mode=ro", uri=True
    ) as db:
        stored = db.execute("SELECT a, b FROM printing_pairs").fetchall()
    right = sum(family(a) == family(b) for a, b in stored)
    with_mates = sum(len(g) for g in groups)
    purity = [Counter(map(family, g)).most_common(1)[0][1] / len(g) for g in groups]
    grouped_s = times["--all: look"] + times["--all: compare"]
    print(
        f"\n{cores} cores; {len(source_of):,} items: {len(truth):,} pages of a printings world "
        f"({args.blocks} blocks, seed {args.seed}) printed {args.items / len(truth):.1f} times "
        f"each; features {sum(f.stat().st_size for f in shards.glob('*')) / 1e9:.1f} GB\n"
    )
    print("| step | minutes | items/s |")
    print("|---|---|---|")
    for name, seconds in times.items():
        rate = f"{len(source_of) / seconds:.0f}" if seconds > 0.5 else "-"
        print(f"| {name} | {seconds / 60:.1f} | {rate} |")
    print(
        f"\n--all: {grouped_s / 60:.1f} min for {len(source_of):,} items, so "
        f"{grouped_s * FULL / len(source_of) / 3600:.1f} h for {FULL:,} (taken as linear); "
        f"{report.pairs:,} pairs verified, precision {right / max(1, len(stored)):.3f}; "
        f"{report.groups:,} sets holding {with_mates:,} items "
        f"({with_mates / len(source_of):.1%}), mean purity {np.mean(purity):.3f}"
    )
    set_of = {item: k for k, group in enumerate(groups) for item in group}
    first = {}  # a world page's first copy
    for item in sorted(source_of):
        first.setdefault(source_of[item], item)
    original = {row["block"]: n for n, row in enumerate(truth) if row["kind"] == "original"}

    def together(page: int, other: int) -> bool:
        a, b = first[page], first[other]
        return a in set_of and set_of.get(a) == set_of.get(b)

    print("\n| a later printing | in its original's set | printings |")
    print("|---|---|---|")
    for kind in KINDS:
        joined = [
            together(n, original[r["block"]]) for n, r in enumerate(truth) if r["kind"] == kind
        ]
        print(f"| {kind} | {np.mean(joined):.3f} | {len(joined)} |")
    misses = [
        together(n, original[r["block"]]) for n, r in enumerate(truth) if r["kind"] == "nearmiss"
    ]
    copies = [
        len({set_of.get(i, -i) for i in items}) == 1 for items in _by_page(source_of).values()
    ]
    print(
        f"\nnear misses kept out of their original's set: {1 - np.mean(misses):.3f} "
        f"({len(misses)}); a page's copies all in one set: {np.mean(copies):.3f}"
    )
    print(
        json.dumps({"report": report.as_dict(), "minutes": {k: v / 60 for k, v in times.items()}})
    )


def _by_page(source_of: dict[int, int]) -> dict[int, list[int]]:
    pages: dict[int, list[int]] = {}
    for item, page in source_of.items():
        pages.setdefault(page, []).append(item)
    return pages


if __name__ == "__main__":
    main()
