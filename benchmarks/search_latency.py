"""The exact scan in every precision, side by side, on the seed paper's filtered index size
(1,140,000 x 512), with the float32 scan sashie did before, in one run.

Unit vectors in clusters (256 centres; a row is its centre plus noise) are written to a
library vector file (float16) and loaded the way a library loads them (memory-mapped). For
each precision (sashie/search/scan.py) a fresh index is opened, its scan built, and top-100
searches timed through `VectorIndex.search` (rough scan, then the rows near the 100th
re-scored exactly); its resident memory is what the process holds beyond the bare memory map
(anonymous memory gained, and the pages of the vector file it keeps mapped). Then the
baseline: a float32 copy of every vector in RAM, NumPy X @ q and top 100. Each search's top
100 is checked against the float32 scan's to the last id. Last, a multi-image subspace query
(d = 192 lowest-CV dimensions of 8 examples), which scans in float32 blocks.

    python benchmarks/search_latency.py [--rows 1140000] [--dim 512] [--queries 30]
"""

from __future__ import annotations

import argparse
import gc
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from sashie.search import scan
from sashie.search.ranking import VectorIndex, cv_dimensions, top_k
from sashie.search.scan import clustered_rows
from sashie.store.vectors import VectorFile


def resident() -> tuple[float, float]:
    """This process's resident memory in bytes: anonymous, and file pages mapped."""
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("RssAnon", "RssFile"):
            out[key] = int(value.split()[0]) * 1024
    return out["RssAnon"], out["RssFile"]


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.partition(":")[2].strip()
    return platform.processor() or platform.machine()


def timed(fn, queries) -> tuple[list, np.ndarray]:
    fn(queries[0])  # warm up
    answers, times = [], []
    for q in queries:
        started = time.perf_counter()
        answers.append(fn(q))
        times.append((time.perf_counter() - started) * 1000)
    return answers, np.array(times)


def clustered_library(
    folder: Path, rows: int, dim: int, rng: np.random.Generator, count: int
) -> tuple[VectorFile, int, np.ndarray]:
    """(a vector file of `rows` unit rows in 256 clusters, its row count, `count` queries:
    rows of it with a little noise)."""
    centres = rng.standard_normal((256, dim)).astype(np.float32)
    files = VectorFile(folder, dim)
    written = 0
    for start in range(0, rows, 100_000):
        block = clustered_rows(rng, centres, min(100_000, rows - start))
        written = files.write_at(written, block, np.arange(start, start + len(block)))
    queries = np.asarray(files.vectors(written)[rng.integers(0, written, count)], np.float32)
    queries += rng.normal(0, 0.02, queries.shape).astype(np.float32)
    return files, written, queries / np.linalg.norm(queries, axis=1, keepdims=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_140_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--d", type=int, default=192, help="dimensions kept (subspace query)")
    parser.add_argument("--queries", type=int, default=30)
    parser.add_argument("--precisions", default=",".join(scan.offered()))
    args = parser.parse_args()
    rng = np.random.default_rng(0)

    with tempfile.TemporaryDirectory() as tmp:
        files, written, queries = clustered_library(
            Path(tmp), args.rows, args.dim, rng, args.queries
        )
        ids = files.item_ids(written)

        for precision in args.precisions.split(","):  # libraries loaded, threads started
            small = VectorIndex(files.vectors(written)[:1000], ids[:1000], precision=precision)
            small.search(queries[0], 100)
            del small
        results = {}
        for precision in args.precisions.split(","):
            gc.collect()
            vectors = files.load_rows(written)  # a fresh memory map, nothing read yet
            anon, mapped = resident()
            started = time.perf_counter()
            index = VectorIndex(vectors, ids, precision=precision)
            rough = index.scan()
            build_s = time.perf_counter() - started
            answers, times = timed(index.search, queries)
            window = np.mean([len(rough.candidates(q, 100, None)) for q in queries[:5]])
            now_anon, now_mapped = resident()
            results[precision] = (build_s, times, window, now_anon - anon, now_mapped - mapped)
            results[precision] += ([a[0] for a in answers],)
            del index, rough, vectors, answers
        whole = VectorIndex(files.load_rows(written), ids)
        stored = files.vectors(written)
        examples = [stored[rng.integers(0, args.rows, 8)].astype(np.float32) + q for q in queries]
        subspaces = [(e.mean(0), cv_dimensions(e, args.d)) for e in examples[:10]]
        _, subspace = timed(lambda pair: whole.search(pair[0], 100, pair[1]), subspaces)
        whole = stored = None  # the memory map let go
        gc.collect()
        before, _ = resident()
        X = np.asarray(files.vectors(written), np.float32)  # the float32 matrix of before
        float32_bytes = resident()[0] - before

    def numpy_baseline(q):
        return ids[top_k(X @ q, 100, ids)]

    def exact(q):  # float64 sums over the float32 scan's top 400: the true top 100
        rows = top_k(X @ q, 400)
        scores = (X[rows].astype(np.float64) @ q.astype(np.float64)).astype(np.float32)
        return ids[rows[top_k(scores, 100, ids[rows])]]

    _, baseline = timed(numpy_baseline, queries)
    truth = [exact(q) for q in queries]

    print(
        f"{args.rows:,} x {args.dim} float16 (clusters of 256 centres), top 100, "
        f"{args.queries} queries one at a time; {cpu_name()}, "
        f"{__import__('torch').get_num_threads()} threads; this machine's costs: "
        f"{scan.MachineScans().costs(args.dim)}"
    )
    print(
        "| scan | build s | p50 ms | p95 ms | p50 x float32 | rows re-scored "
        "| resident GiB (held + file pages) | x float32 matrix | the exact top 100 |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    b50, b95 = np.percentile(baseline, 50), np.percentile(baseline, 95)
    print(
        f"| float32 matrix, NumPy (before) | - | {b50:.1f} | {b95:.1f} | 1.00 | - "
        f"| {float32_bytes / 2**30:.2f} + 0 | 1.00 | - |"
    )
    for precision, (build_s, times, window, held, pages, found) in results.items():
        memory = held + pages
        same = all(np.array_equal(f, t) for f, t in zip(found, truth))
        p50, p95 = np.percentile(times, 50), np.percentile(times, 95)
        print(
            f"| {precision} | {build_s:.1f} | {p50:.1f} | {p95:.1f} | {p50 / b50:.2f} "
            f"| {window:,.0f} | {held / 2**30:.2f} + {pages / 2**30:.2f} "
            f"| {memory / float32_bytes:.2f} "
            f"| {'yes' if same else 'NO'} |"
        )
    print(
        f"multi-image subspace query (d = {args.d}, float32 blocks): p50 "
        f"{np.percentile(subspace, 50):.1f} ms, p95 {np.percentile(subspace, 95):.1f} ms"
    )


if __name__ == "__main__":
    main()
