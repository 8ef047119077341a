"""Approximate nearest-neighbour search at 1.14 M and 10 M vectors: build time, size on disk,
resident memory, p50 / p95 latency of a top-100 search and recall@100 against the exact scan,
for text queries and image queries separately, for each ANN index kind, with the exact
float16 scan (and, where it fits, the float32 scan sashie used before) measured in the same
run.

    python benchmarks/ann.py --rows 1140000 [--library LIB] [--kinds exact,hnsw,ivf,ivfpq]
    python benchmarks/ann.py --rows 10000000 --kinds exact,ivfpq

The vectors look like real ones: they are made from the demo model's vectors of an
evaluation world's items (`--library`: an indexed world; by default a 200-page world of
`--seed` 1000 is made and indexed), written as a library writes them (float16 rows).
`--data mix` (the default): each row lies between a real vector and one of its 10 nearest
real neighbours (a uniform mix of the two) plus N(0, 0.01) a dimension, re-normalised: new
pictures between existing ones. `--data jitter`: a real vector plus N(0, 0.02) a dimension,
so each real vector has about rows / items near-copies at almost the same distance from any
query, a worst case for graph indexes. Text queries are the world's concept names in
English and Japanese through the text tower; image queries are the world's Twemoji pictures
through the image tower. Each search runs through `VectorIndex.search`, the code behind
`Library.search`: candidates from the index, re-scored exactly from the float16 rows. Each
kind is built and measured in its own process, so that its memory is its own; "RSS anon" is
the memory the process holds, "RSS file" the part of the page cache it has mapped.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

K = 100
JITTER = 0.02
MIX_NOISE = 0.01
BLOCK = 1 << 17


def rss() -> dict[str, float]:
    """This process's resident memory in GiB: anonymous and file-backed."""
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("RssAnon", "RssFile", "VmHWM"):
            out[key] = int(value.split()[0]) / 2**20
    return out


def world_vectors(
    library: str | None, work: Path, count: int, seed: int = 1000
) -> tuple[np.ndarray, dict]:
    """The seed vectors (every item of the library) and the query vectors by kind."""
    from sashie.eval.references import reference_pictures
    from sashie.eval.world import make_world
    from sashie.eval.world.artists import Artists
    from sashie.eval.world.vocab import vocabulary
    from sashie.library import Library

    if library is None:
        world = make_world(work / "world", pages=200, seed=seed, progress=True)
        lib = Library(work / "seed-library", create=True, progress=True)
        lib.add([str(world / "pages")], regions="layout,whole")
    else:
        lib = Library(library)
    index = lib.index(version="base")
    seeds = index.take(np.arange(len(index)))
    vocab = vocabulary()
    keys = (vocab.query_seen + vocab.query_heldout)[:count]
    names = [vocab.by_key[k].en for k in keys] + [vocab.by_key[k].ja for k in keys]
    encoder = lib.encoder()
    text = encoder.encode_texts(names[: 2 * count])
    artists = Artists()
    pictures = [reference_pictures(artists, vocab.by_key[k], 1, seed=0)[0] for k in keys]
    image = encoder.encode_images(pictures)
    return seeds, {"text": text.astype(np.float32), "image": image.astype(np.float32)}


def multi_image_queries(library: str | None, work: Path, count: int) -> None:
    """Multi-image queries (three Twemoji pictures of a concept: their mean and the 192
    lowest-CV dimensions, as `sashie search -i a -i b -i c` makes them) and their exact
    answers, for the recall of subspace ranking over ANN candidates."""
    from sashie.eval.references import reference_pictures
    from sashie.eval.world.artists import Artists
    from sashie.eval.world.vocab import vocabulary
    from sashie.library import Library
    from sashie.search.query import DEFAULT_DIMS
    from sashie.search.ranking import AnnSearch, cv_dimensions

    lib = Library(library or work / "seed-library")
    vocab = vocabulary()
    keys = (vocab.query_seen + vocab.query_heldout)[:count]
    encoder, artists = lib.encoder(), Artists()
    means, dims = [], []
    for key in keys:
        vectors = encoder.encode_images(reference_pictures(artists, vocab.by_key[key], 3, seed=1))
        means.append(vectors.mean(0))
        dims.append(cv_dimensions(vectors, DEFAULT_DIMS))
    index = open_index(work, "exact")
    truth = [index.search(q, K, d, how=AnnSearch(exact=True))[0] for q, d in zip(means, dims)]
    np.save(work / "queries-multi.npy", np.stack(means).astype(np.float32))
    np.save(work / "dims-multi.npy", np.stack(dims))
    np.save(work / "truth-multi.npy", np.stack(truth))


def write_vectors(seeds: np.ndarray, rows: int, work: Path, data: str) -> None:
    from sashie.store.vectors import VectorFile

    rng = np.random.default_rng(0)
    files = VectorFile(work / "vectors", seeds.shape[1])
    neighbours = np.argsort(-(seeds @ seeds.T), axis=1)[:, 1:11]  # each one's 10 nearest
    done = 0
    while done < rows:
        n = min(BLOCK, rows - done)
        first = rng.integers(0, len(seeds), n)
        if data == "jitter":
            block = seeds[first] + rng.normal(0, JITTER, (n, seeds.shape[1]))
        else:
            second = neighbours[first, rng.integers(0, neighbours.shape[1], n)]
            share = rng.uniform(0, 1, (n, 1))
            block = share * seeds[first] + (1 - share) * seeds[second]
            block += rng.normal(0, MIX_NOISE, block.shape)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        done = files.write_at(done, block.astype(np.float16), np.arange(done, done + n))
        print(f"\rwriting vectors {done:,}/{rows:,}", end="", file=sys.stderr)
    print(file=sys.stderr)


def open_index(work: Path, kind: str):
    from sashie.search.ann import AnnIndex
    from sashie.search.ranking import VectorIndex
    from sashie.store.vectors import VectorFile

    meta = json.loads((work / "meta.json").read_text())
    vectors = VectorFile(work / "vectors", meta["dim"]).vectors(meta["rows"])
    ann = None
    if kind != "exact":
        ann = AnnIndex.load(work / f"{kind}.index", meta["dim"], meta["rows"])
        assert ann is not None, kind
    return VectorIndex(vectors, np.arange(meta["rows"]), ann=ann)


def build(work: Path, kind: str) -> dict:
    from sashie.search.ann import AnnIndex
    from sashie.store.vectors import VectorFile

    meta = json.loads((work / "meta.json").read_text())
    vectors = VectorFile(work / "vectors", meta["dim"]).vectors(meta["rows"])
    started = time.perf_counter()
    index = AnnIndex.build(kind, vectors, progress=True)
    index.save(work / f"{kind}.index")
    return {
        "build_s": time.perf_counter() - started,
        "bytes": (work / f"{kind}.index").stat().st_size,
        "build_peak_gib": rss()["VmHWM"],
        "settings": index.settings,
    }


def measure(
    work: Path, kind: str, nprobe: int | None, ef: int | None, rerank: int | None = None
) -> dict:
    from sashie.search.ranking import AnnSearch

    index = open_index(work, kind)
    if rerank and index.ann is not None:
        index.ann.settings["rerank"] = rerank
    how = AnnSearch(exact=kind == "exact", nprobe=nprobe, ef=ef)
    out: dict = {}
    for name in ("text", "image", "multi"):
        if not (work / f"truth-{name}.npy").exists():
            continue
        queries = np.load(work / f"queries-{name}.npy")
        truth = np.load(work / f"truth-{name}.npy")
        dims = np.load(work / "dims-multi.npy") if name == "multi" else [None] * len(queries)
        for q, d in zip(queries[:3], dims):  # warm: the page cache and FAISS's first call
            index.search(q, K, d, how=how)
        times, hits = [], []
        for q, d, true in zip(queries, dims, truth):
            started = time.perf_counter()
            found, _ = index.search(q, K, d, how=how)
            times.append((time.perf_counter() - started) * 1000)
            hits.append(len(set(found.tolist()) & set(true.tolist())) / K)
        out[name] = {
            "p50_ms": float(np.percentile(times, 50)),
            "p95_ms": float(np.percentile(times, 95)),
            "recall": float(np.mean(hits)),
        }
    out["rss"] = rss()
    out["precision"] = index.precision  # the exact scan's, once it has scanned
    return out


def float32_scan(work: Path) -> dict:
    """The scan sashie did before: a float32 copy of every vector in RAM, x @ q, top 100."""
    from sashie.search.ranking import top_k

    meta = json.loads((work / "meta.json").read_text())
    index = open_index(work, "exact")
    matrix = np.empty((meta["rows"], meta["dim"]), np.float32)
    for start, block in index.blocks(BLOCK):
        matrix[start : start + len(block)] = block
    del index
    out = {}
    for name in ("text", "image"):
        times = []
        for q in np.load(work / f"queries-{name}.npy"):
            started = time.perf_counter()
            top_k(matrix @ q, K)
            times.append((time.perf_counter() - started) * 1000)
        out[name] = {"p50_ms": float(np.median(times)), "p95_ms": float(np.percentile(times, 95))}
    out["rss"] = rss()
    return out


def in_process(*args: str) -> dict:
    """Run one step of this script in a fresh process; its JSON answer."""
    done = subprocess.run(
        [sys.executable, __file__, *args], stdout=subprocess.PIPE, check=True, text=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_140_000)
    parser.add_argument("--library", help="an indexed evaluation world (default: make one)")
    parser.add_argument("--seed", type=int, default=1000, help="of the world made")
    parser.add_argument("--kinds", default="exact,hnsw,ivf,ivfpq")
    parser.add_argument("--data", choices=("mix", "jitter"), default="mix")
    parser.add_argument("--queries", type=int, default=100, help="of each kind (text: x2)")
    parser.add_argument("--work", help="a folder for the vectors (default: a temporary one)")
    parser.add_argument("--nprobe", type=int)
    parser.add_argument("--ef", type=int)
    parser.add_argument("--rerank", type=int, help="candidates re-scored a result")
    parser.add_argument("--no-float32", action="store_true", help="skip the float32 scan")
    parser.add_argument("--no-multi", action="store_true", help="skip multi-image queries")
    parser.add_argument("--step", nargs=2, metavar=("STEP", "KIND"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="sashie-ann-"))
    if args.step:  # one step, in its own process: print its JSON
        step, kind = args.step
        if step == "build":
            answer = build(work, kind)
        elif step == "float32":
            answer = float32_scan(work)
        else:
            answer = measure(work, kind, args.nprobe, args.ef, args.rerank)
        print(json.dumps(answer))
        return

    work.mkdir(parents=True, exist_ok=True)
    if (
        not (work / "meta.json").exists()
        or json.loads((work / "meta.json").read_text())["rows"] != args.rows
    ):
        seeds, queries = world_vectors(args.library, work, args.queries, args.seed)
        write_vectors(seeds, args.rows, work, args.data)
        for name, q in queries.items():
            np.save(work / f"queries-{name}.npy", q)
        (work / "meta.json").write_text(
            json.dumps(
                {
                    "rows": args.rows,
                    "dim": int(seeds.shape[1]),
                    "seeds": len(seeds),
                    "data": args.data,
                }
            )
        )
        from sashie.search.ranking import AnnSearch

        index = open_index(work, "exact")
        for name, q in queries.items():  # the exact answers recall is measured against
            truth = [index.search(v, K, how=AnnSearch(exact=True))[0] for v in q]
            np.save(work / f"truth-{name}.npy", np.stack(truth))
    if not (work / "truth-multi.npy").exists() and not args.no_multi:
        multi_image_queries(args.library, work, args.queries)
    meta = json.loads((work / "meta.json").read_text())
    print(
        f"{meta['rows']:,} vectors x {meta['dim']} ({meta['data']} of {meta['seeds']:,} items), "
        f"{work}"
    )
    multi = [
        "multi-image queries (3 pictures, the 192 lowest-CV dimensions): "
        "ANN candidates of the query restricted to them, re-ranked in the subspace",
        "| index | p50 / p95 ms | recall@100 |",
        "|---|---|---|",
    ]
    lines = [
        f"{meta['rows']:,} x {meta['dim']} float16 ({meta['data']} of {meta['seeds']:,} "
        f"items); top {K}; "
        f"{len(np.load(work / 'queries-text.npy'))} text and "
        f"{len(np.load(work / 'queries-image.npy'))} image queries, one at a time",
        "| index | build | on disk | RSS anon / file | text p50 / p95 ms | text recall@100 "
        "| image p50 / p95 ms | image recall@100 |",
        "|---|---|---|---|---|---|---|---|",
    ]

    def row(name: str, built: dict | None, got: dict) -> None:
        t, i, r = got["text"], got["image"], got["rss"]
        lines.append(
            f"| {name} | {built['build_s'] / 60:.1f} min | {built['bytes'] / 2**30:.2f} GiB "
            if built
            else f"| {name} | - | - "
        )
        lines[-1] += (
            f"| {r['RssAnon']:.2f} / {r['RssFile']:.2f} GiB "
            f"| {t['p50_ms']:.1f} / {t['p95_ms']:.1f} | {t.get('recall', 1):.3f} "
            f"| {i['p50_ms']:.1f} / {i['p95_ms']:.1f} | {i.get('recall', 1):.3f} |"
        )
        print(lines[-1], flush=True)
        if "multi" in got:
            m = got["multi"]
            multi.append(f"| {name} | {m['p50_ms']:.1f} / {m['p95_ms']:.1f} | {m['recall']:.3f} |")

    if not args.no_float32:
        row(
            "float32 scan (before)", None, in_process("--work", str(work), "--step", "float32", "-")
        )
    extra = [*(["--nprobe", str(args.nprobe)] if args.nprobe else [])]
    extra += [*(["--ef", str(args.ef)] if args.ef else [])]
    extra += [*(["--rerank", str(args.rerank)] if args.rerank else [])]
    for kind in args.kinds.split(","):
        built = None
        if kind != "exact":
            if not (work / f"{kind}.index").exists():
                built = in_process("--work", str(work), "--step", "build", kind)
                (work / f"{kind}.build.json").write_text(json.dumps(built))
            built = json.loads((work / f"{kind}.build.json").read_text())
            print(f"{kind}: {built}", file=sys.stderr)
        got = in_process("--work", str(work), "--step", "measure", kind, *extra)
        row(kind if kind != "exact" else f"exact scan ({got['precision']})", built, got)
    print("\n".join(lines))
    print("\n".join(multi))


if __name__ == "__main__":
    main()
