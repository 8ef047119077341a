"""What `sashie printings LIB --all` would cost on a large library (issue 41): each of its
stages measured where it can be, on this machine, and added up for 100,000 and 1.14 M items.

    python benchmarks/printings_scale.py [--items 100000] [--seed 5] [--blocks 60]

- look: reading a picture (PNG from disk, made 512 px), its features and fingerprint, a
  thread a core, measured on the pictures of a printings world drawn from --seed;
- compare, search: the fingerprints of --items items (the world's, repeated with noise
  to that many) in the index `--all` builds for that many (exhaustive up to 20,000, an
  inverted file beyond), built and asked by 4,096 items and their mirrors; the time a
  query is scaled to 1.14 M by the share of the fingerprints an inverted file reads;
- compare, verify: each item's likely printings (as many as --all verifies, NEIGHBOURS at
  most) verified on local features, a thread a core, measured on the world's items;
- the pairs' rows written to the catalog are not counted (a transaction a step of 2,048).

The world's pictures hold more printings than a real collection does, so more of the pairs
verified go on to MAGSAC: the verify figure is a high one.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from PIL import Image
from threadpoolctl import threadpool_limits

from sashie.eval.world.reprints import make_printings_world, read_printings
from sashie.library import printing_groups as grouping
from sashie.printings.fingerprints import codebook
from sashie.printings.matching import features, match, mirrored

FULL = 1_140_000
ASKED = 4096


class Held:
    """Fingerprints as the library's stored features give them."""

    def __init__(self, rows: np.ndarray) -> None:
        self.rows = rows.astype(np.float32)

    def fingerprints_of(self, items: list[int]) -> np.ndarray:
        return self.rows[items]


def look(path: Path):
    picture = Image.open(path).convert("RGB")
    picture.thumbnail((grouping.CROP_SIDE, grouping.CROP_SIDE))
    return features(picture)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--blocks", type=int, default=60)
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    book = codebook()
    with tempfile.TemporaryDirectory() as tmp, threadpool_limits(1):
        import cv2

        cv2.setNumThreads(1)
        world = make_printings_world(Path(tmp) / "world", blocks=args.blocks, seed=args.seed)
        pages = [Path(row["page"]) for row in read_printings(world)]
        started = time.perf_counter()
        with ThreadPoolExecutor(cores) as pool:
            found = list(pool.map(look, pages))
        prints = np.stack([book.fingerprint(f) for f in found])
        look_ms = (time.perf_counter() - started) / len(pages) * 1000

        rng = np.random.default_rng(0)
        many = prints[rng.integers(0, len(prints), args.items)]
        many = many + rng.normal(0, 0.02, many.shape).astype(np.float32)
        many /= np.linalg.norm(many, axis=1, keepdims=True)
        pages_of = {i: i for i in range(args.items)}
        started = time.perf_counter()
        base = grouping._Base(Held(many), list(range(args.items)), pages_of)
        build_s = time.perf_counter() - started
        asked = np.concatenate([many[:ASKED], many[ASKED : 2 * ASKED]]).astype(np.float32)
        started = time.perf_counter()
        base._index.search(asked, grouping.REACH)
        search_ms = (time.perf_counter() - started) / ASKED * 1000  # an item and its mirror
        inverted = args.items > grouping.FLAT_UP_TO

        # verification: each world item against its NEIGHBOURS nearest fingerprints
        sims = prints @ prints.T
        np.fill_diagonal(sims, -1)
        mirrors = np.stack([book.fingerprint(mirrored(f)) for f in found])
        sims = np.maximum(sims, mirrors @ prints.T)
        pairs = sorted(  # each pair once, as --all verifies it (found from either side)
            {
                (min(a, int(b)), max(a, int(b)))
                for a in range(len(found))
                for b in np.argsort(-sims[a])[: grouping.NEIGHBOURS]
                if sims[a, b] >= grouping.LIKENESS
            }
        )

        def verify(pair):
            a, b = pair
            return match(found[a], mirrored(found[a]), found[b])

        started = time.perf_counter()
        with ThreadPoolExecutor(cores) as pool:
            verified = sum(m is not None for m in pool.map(verify, pairs))
        verify_ms = (time.perf_counter() - started) / len(found) * 1000

    def scaled_search(items: int) -> float:
        """ms a query at `items`: an inverted file reads PROBED of 4 sqrt(N) cells."""
        if items <= grouping.FLAT_UP_TO:
            return search_ms * items / args.items if not inverted else search_ms
        share_here = min(1.0, grouping.PROBED / (4 * np.sqrt(args.items)))
        share_there = min(1.0, grouping.PROBED / (4 * np.sqrt(items)))
        flat_here = search_ms if not inverted else search_ms / share_here
        return flat_here * share_there

    print(
        f"{cores} cores; look and verify measured on {len(pages)} pictures of a printings "
        f"world (seed {args.seed}), {len(pairs) / len(found):.1f} pairs verified an item "
        f"({verified} printings); search on {args.items:,} fingerprints "
        f"({'inverted file' if inverted else 'exhaustive'}, index built in {build_s:.0f} s)\n"
    )
    print("| stage | ms an item | 100,000 items | 1,140,000 items |")
    print("|---|---|---|---|")
    rows = {
        "look (read, features, fingerprint)": (look_ms, look_ms),
        "compare: search fingerprints": (scaled_search(100_000), scaled_search(FULL)),
        "compare: verify": (verify_ms, verify_ms),
    }
    totals = [build_s / 60, build_s * FULL / args.items / 3600]  # training grows ~ with N
    print(
        f"| build the fingerprint index (once a run) | | {totals[0]:.1f} min | {totals[1]:.2f} h |"
    )
    for name, (at_100k, at_full) in rows.items():
        totals[0] += at_100k * 100_000 / 60_000
        totals[1] += at_full * FULL / 3_600_000
        print(
            f"| {name} | {at_100k:.2f} / {at_full:.2f} | {at_100k * 100_000 / 60_000:.1f} min "
            f"| {at_full * FULL / 3_600_000:.2f} h |"
        )
    print(f"| all | | {totals[0]:.1f} min | {totals[1]:.2f} h |")


if __name__ == "__main__":
    main()
