"""Search latency and memory on the seed paper's filtered index size (1,140,000 x 512).

Random unit vectors are written to a library vector file (float16), loaded the way a library
loads them (memory-mapped float16), and queried exactly: a single-vector top-100, a
multi-image subspace top-100 (d = 192, lowest-CV dimensions of 8 examples), beside a plain
NumPy float32 matrix-vector product with top-100 on a float32 copy (what sashie held before
issue 23), measured in the same run. Prints a table. (The ANN index: benchmarks/ann.py.)

    python benchmarks/search_latency.py [--rows 1140000] [--dim 512] [--repeats 15]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from sashie.search.ranking import VectorIndex, cv_dimensions
from sashie.store.vectors import VectorFile


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def median_ms(fn, queries) -> float:
    fn(queries[0])  # warm up
    times = []
    for q in queries:
        start = time.perf_counter()
        fn(q)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_140_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--d", type=int, default=192, help="dimensions kept (subspace query)")
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    rng = np.random.default_rng(0)

    with tempfile.TemporaryDirectory() as tmp:
        files = VectorFile(Path(tmp), args.dim)
        written = 0
        for start in range(0, args.rows, 100_000):
            block = rng.standard_normal((min(100_000, args.rows - start), args.dim), np.float32)
            block /= np.linalg.norm(block, axis=1, keepdims=True)
            ids = np.arange(start, start + len(block), dtype=np.int64)
            written = files.write_at(written, block, ids)
        gc.collect()
        before = rss_bytes()
        started = time.perf_counter()
        index = VectorIndex(files.load_rows(written), files.item_ids(written))
        index.search(index.take([0])[0], 100)  # every row read once: mapped and resident
        load_s = time.perf_counter() - started
        gc.collect()
        resident = rss_bytes() - before
        X = index.take(np.arange(len(index)))  # the float32 matrix of the baseline

    queries = [X[i] for i in rng.integers(0, args.rows, args.repeats)]
    example_sets = [X[rng.integers(0, args.rows, 8)] + q for q in queries]
    subspaces = [(e.mean(0), cv_dimensions(e, args.d)) for e in example_sets]

    def numpy_baseline(q):
        scores = X @ q
        top = np.argpartition(-scores, 99)[:100]
        return top[np.argsort(-scores[top])]

    def naive_subspace(pair):
        q, dims = pair
        sub = X[:, dims]
        sub = sub / np.linalg.norm(sub, axis=1, keepdims=True)
        scores = sub @ (q[dims] / np.linalg.norm(q[dims]))
        return np.argpartition(-scores, 99)[:100]

    baseline = median_ms(numpy_baseline, queries)
    single = median_ms(lambda q: index.search(q, 100), queries)
    subspace = median_ms(lambda pair: index.search(pair[0], 100, pair[1]), subspaces)
    naive = median_ms(naive_subspace, subspaces[:3])
    float32_bytes = args.rows * args.dim * 4

    print(
        f"{args.rows:,} x {args.dim} vectors, top-100, median of {args.repeats} queries; "
        f"loaded and first searched in {load_s:.1f} s"
    )
    print(f"| {'measure':<44} | {'value':>10} | {'ratio':>14} | {'target':>8} |")
    print(f"|{'-' * 46}|{'-' * 12}|{'-' * 16}|{'-' * 10}|")
    rows = [
        ("NumPy float32 X @ q + top-100 (baseline)", f"{baseline:.1f} ms", "", ""),
        (
            "sashie single-vector query (exact, float16)",
            f"{single:.1f} ms",
            f"{single / baseline:.2f}x baseline",
            "<= 1.5x",
        ),
        (
            f"sashie subspace query (d = {args.d})",
            f"{subspace:.1f} ms",
            f"{subspace / single:.2f}x single",
            "<= 3x",
        ),
        (
            f"naive X[:, S] subspace query (d = {args.d})",
            f"{naive:.1f} ms",
            f"{naive / single:.2f}x single",
            "",
        ),
        (
            "resident memory of the searched vectors",
            f"{resident / 2**30:.2f} GiB",
            f"{resident / float32_bytes:.2f}x float32",
            "<= 0.55x",
        ),
    ]
    for name, value, ratio, target in rows:
        print(f"| {name:<44} | {value:>10} | {ratio:>14} | {target:>8} |")


if __name__ == "__main__":
    main()
