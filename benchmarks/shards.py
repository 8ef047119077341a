"""Sharded search against one index of the same rows: the same top 100 to the last id, and
what the fan-out costs.

Unit vectors in clusters (as benchmarks/search_latency.py makes them) are written to one
vector file. One `VectorIndex` of every row is searched in this process; then the same rows
are split into `--shards` Ray actors on a local Ray (sashie/search/shards.py), each memory-
mapping its run of the file, and the same queries fanned out to them and merged. For each
query: whether the sharded top 100 equals the single index's (ids and scores), the sharded
time, and the slowest shard's own search time (measured inside the actor): the overhead is
what the fan-out and merge add on top of that slowest shard. Exact scans in the machine's
precision; `--exclude` also masks that share of the rows (a filter, sent to the shards).
With `--ann KIND` the one index and each shard (over its own rows) build an ANN index, and
recall@100 against the exact top 100 is printed for both.

    python benchmarks/shards.py [--rows 1000000] [--shards 4] [--queries 50] [--ann ivf]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from sashie.search.ann import AnnIndex
from sashie.search.ranking import VectorIndex
from sashie.search.shards import Shards

sys.path.insert(0, str(Path(__file__).resolve().parent))
from search_latency import clustered_library


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--exclude", type=float, default=0.3, help="share of rows masked")
    parser.add_argument(
        "--ann",
        choices=("ivf", "ivfpq", "hnsw"),
        help="each shard (and the one index) builds an ANN index of this kind: recall@100 "
        "against the exact top 100 is reported instead of sameness",
    )
    args = parser.parse_args()
    import ray

    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        files, written, queries = clustered_library(
            Path(tmp), args.rows, args.dim, rng, args.queries
        )
        vectors = files.vectors(written)
        masks = [None, rng.random(written) < args.exclude]

        one = VectorIndex(vectors, files.item_ids(written))
        one.search(queries[0], 100)  # its scan built
        exact = {
            (m, i): one.search(q, 100, exclude=mask)[0]
            for m, mask in enumerate(masks)
            for i, q in enumerate(queries)
        }
        precision = one.precision
        if args.ann:
            one = VectorIndex(
                vectors, files.item_ids(written), ann=AnnIndex.build(args.ann, vectors),
                precision=precision,
            )  # fmt: skip
        single = {}
        for m, mask in enumerate(masks):
            for i, q in enumerate(queries):
                started = time.perf_counter()
                single[m, i] = (*one.search(q, 100, exclude=mask), time.perf_counter() - started)
        del one

        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
        started = time.perf_counter()
        threads = max(1, (os.cpu_count() or 1) // args.shards)  # the shards share the cores
        index = VectorIndex(vectors, files.item_ids(written), precision=precision)
        shards = Shards.of_index(index, args.shards, ray=ray, threads=threads, ann=args.ann)
        shards.search(queries[0], 100)  # every shard's scan built
        ready_s = time.perf_counter() - started
        same, total, slowest, hits, one_hits = [], [], [], [], []
        for m, mask in enumerate(masks):
            for i, q in enumerate(queries):
                started = time.perf_counter()
                found = shards.search(q, 100, exclude=mask)
                total.append((time.perf_counter() - started) * 1000)
                slowest.append(found.slowest_ms)
                ids, scores, _ = single[m, i]
                same.append(np.array_equal(found.ids, ids) and np.array_equal(found.scores, scores))
                hits.append(len(np.intersect1d(found.ids, exact[m, i])) / 100)
                one_hits.append(len(np.intersect1d(ids, exact[m, i])) / 100)
        ray.shutdown()

    one_ms = np.array([t for *_, t in single.values()]) * 1000
    total, slowest = np.array(total), np.array(slowest)
    overhead = total - slowest
    print(
        f"{written:,} x {args.dim} float16, top 100, {args.queries} queries x (no filter, "
        f"{args.exclude:.0%} of rows excluded); "
        + (f"an {args.ann} index in each" if args.ann else f"exact scans in {precision}")
        + "; "
        f"{args.shards} Ray actor shards of {written // args.shards:,} rows on this machine "
        f"({os.cpu_count()} cores), ready in {ready_s:.1f} s"
    )
    print("| search | p50 ms | p95 ms |")
    print("|---|---|---|")
    print(f"| one index | {np.median(one_ms):.1f} | {np.percentile(one_ms, 95):.1f} |")
    print(f"| sharded, whole | {np.median(total):.1f} | {np.percentile(total, 95):.1f} |")
    print(f"| sharded, slowest shard's own search | {np.median(slowest):.1f} "
          f"| {np.percentile(slowest, 95):.1f} |")  # fmt: skip
    print(f"| fan-out overhead (whole - slowest shard) | {np.median(overhead):.1f} "
          f"| {np.percentile(overhead, 95):.1f} |")  # fmt: skip
    print(f"the same top 100 as one index (ids and scores): {sum(same)} of {len(same)} searches")
    print(
        f"recall@100 against the exact top 100: sharded {np.mean(hits):.3f}, "
        f"one index {np.mean(one_hits):.3f}"
    )


if __name__ == "__main__":
    main()
