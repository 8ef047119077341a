"""Response times of the web page's API on a library of 100,000 items (issue 6's target: results
within a second on our CPU), or of a million with its ANN index (issue 23).

    python benchmarks/web_latency.py [--items 100000] [--index-kind auto]

Builds a library of 20,000 pages (hard links to 20 pages of an evaluation world, 1600 x 2400)
with 5 items each, whose vectors are the demo model's vectors of real crops, jittered; serves
it with uvicorn on localhost and times, over HTTP as the page does: a text search (top 100),
the next 100, a three-image search, the first 24 thumbnails (one screenful) fetched 6 at a
time as a browser does, a page view, and feedback rounds with each learner.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import io
import os
import socket
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import uvicorn

from sashie.app import server
from sashie.eval.references import reference_pictures
from sashie.eval.world import make_world
from sashie.eval.world.artists import Artists
from sashie.eval.world.vocab import vocabulary
from sashie.library import Library
from sashie.library.manifest import Manifest
from sashie.search.feedback import FEEDBACK_LEARNERS
from sashie.store.catalog import Catalog
from sashie.store.vectors import VectorFile

PER_PAGE = 5


def build(root: Path, items: int) -> Path:
    world = make_world(root / "world", pages=20, seed=77, progress=True)
    seed_lib = Library(root / "seed", create=True)
    seed_lib.add([str(world / "pages")], regions="layout,whole")
    index = seed_lib.index()
    rows = seed_lib.items(index.item_ids.tolist())
    pages = sorted((world / "pages").iterdir())
    (root / "pages").mkdir()
    # a large library written straight at the storage layer (indexing 20,000 pages would
    # take an hour): the manifest, the catalog and the vector file, as `Library.add` writes
    encoder = seed_lib.encoder()
    manifest = Manifest.create(root / "lib")
    model_id = manifest.register("sashie-demo", encoder, False)
    catalog = Catalog(root / "lib" / "catalog.sqlite")
    vector_file = VectorFile(root / "lib" / manifest.models[model_id]["vectors"], encoder.dim)
    rng = np.random.default_rng(0)
    picks = rng.integers(0, len(rows), items)
    with catalog.transaction() as tx:
        for n in range(items // PER_PAGE):
            path = root / "pages" / f"{n:06d}.jpg"
            os.link(pages[n % len(pages)], path)
            page_id = tx.put_page(
                str(path), str(root / "pages"), 1600, 2400, None, None, f"{n:064x}", {}, False
            )
            for j in range(PER_PAGE):
                row = rows[picks[n * PER_PAGE + j]]
                tx.add_item(page_id, row.detector, row.bbox, 1.0, f"{n}-{j}")
        vectors = index.vectors[picks] + rng.normal(0, 0.02, (items, index.dim))
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        ids = np.arange(1, items + 1)
        rows_written = vector_file.write_at(0, vectors, ids)
        tx.set_vector_rows(model_id, rows_written)
    catalog.close()
    return root / "lib"


def timed(call) -> tuple[float, object]:
    started = time.perf_counter()
    out = call()
    return (time.perf_counter() - started) * 1000, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument(
        "--index-kind",
        default="auto",
        help="the ANN index built before serving, as `sashie reindex` builds it (auto: by size)",
    )
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="sashie-web-"))
    library = build(root, args.items)
    started = time.perf_counter()
    built = Library(library, progress=True).reindex(kind=args.index_kind)
    index_s = time.perf_counter() - started
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    uv = uvicorn.Server(
        uvicorn.Config(server.create_app(library), host="127.0.0.1", port=port, log_level="warning")
    )
    threading.Thread(target=uv.run, daemon=True).start()
    while not uv.started:
        time.sleep(0.05)
    base = f"http://127.0.0.1:{port}"
    http = httpx.Client(base_url=base, timeout=60)
    vocab = vocabulary()
    names = [vocab.by_key[k].en for k in vocab.query_seen]
    lines = [
        f"{args.items:,} items on {args.items // PER_PAGE:,} pages; times over HTTP, "
        "median of 5 (ms)",
        "| request | ms |",
        "|---|---|",
    ]
    kind = built["index"]["kind"] if built["index"] else "exact scan, no index"
    lines.append(f"| (ANN index: {kind}, built in {index_s:.0f} s before serving) | |")

    first, _ = timed(lambda: http.post("/api/search", data={"text": names[0]}).json())
    lines.append(f"| first text search (loads the vectors) | {first:.0f} |")
    times, found = [], None
    for name in names[1:6]:
        ms, found = timed(lambda n=name: http.post("/api/search", data={"text": n}).json())
        times.append(ms)
    lines.append(f"| text search, top 100 | {np.median(times):.0f} |")
    times = [
        timed(lambda: http.get(f"/api/search/{found['query']}", params={"offset": 100}).json())[0]
        for _ in range(5)
    ]
    lines.append(f"| the next 100 | {np.median(times):.0f} |")
    concept = vocab.by_key[vocab.query_seen[0]]
    files = []
    for i, picture in enumerate(reference_pictures(Artists(), concept, 3, seed=0)):
        out = io.BytesIO()
        picture.save(out, "PNG")
        files.append(("images", (f"{i}.png", out.getvalue(), "image/png")))
    times = [timed(lambda: http.post("/api/search", files=files).json())[0] for _ in range(5)]
    lines.append(f"| three-image search (CV, d = 192), top 100 | {np.median(times):.0f} |")

    def screenful(results) -> float:
        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            ms, _ = timed(
                lambda: list(pool.map(lambda r: http.get(r["thumbnail"]).content, results[:24]))
            )
        return ms

    times = []
    for name in names[6:11]:
        results = http.post("/api/search", data={"text": name}).json()["results"]
        times.append(screenful(results))
    lines.append(f"| first 24 thumbnails, 6 at a time (uncached) | {np.median(times):.0f} |")
    item = found["results"][0]["item"]
    times = [timed(lambda: http.get(f"/api/items/{item}").json())[0] for _ in range(5)]
    lines.append(f"| item details | {np.median(times):.0f} |")
    ms, _ = timed(lambda: http.get(f"/api/items/{found['results'][50]['item']}/page").content)
    lines.append(f"| page view image (uncached) | {ms:.0f} |")
    items = [r["item"] for r in found["results"]]
    for learner in FEEDBACK_LEARNERS:
        times = [
            timed(
                lambda learner=learner: http.post(
                    "/api/feedback",
                    json={
                        "query": found["query"],
                        "relevant": items[2:5],
                        "irrelevant": items[:2],
                        "learner": learner,
                    },
                ).json()
            )[0]
            for _ in range(5)
        ]
        lines.append(f"| feedback round ({learner}) | {np.median(times):.0f} |")
    uv.should_exit = True
    print("\n".join(lines))


if __name__ == "__main__":
    main()
