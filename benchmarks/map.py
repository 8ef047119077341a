"""The map (issue 42): how long a layout takes, what a first view sends, how smoothly the page
pans a million points, and how well the map keeps like near like.

    python benchmarks/map.py scale [--sizes 100000 1000000]
    python benchmarks/map.py fps [--points 1000000]
    python benchmarks/map.py quality [--seed 61] [--pages 160] [--screenshot docs/images/map.jpg]

scale    `lib.map`'s layout (sashie/map/layout.py: t-SNE of SAMPLE items, the rest placed) on
         synthetic 512-number vectors in 400 clusters, and the bytes of a first view (the
         points `/api/map/points` sends the page at first: FIRST_VIEW of them).
fps      the map page (an exported one: its own code, regl-scatterplot) with that many
         points in headless Chromium with software WebGL (SwiftShader), dragged for 4 s:
         frames drawn a second.
quality  on an evaluation world (sashie.eval.world, `--seed`), each item's 10 nearest items on
         the map: the share that show one of its concepts; against the same for a random
         layout and for the 10 nearest by the model's own vectors. Items with no concept
         (text) are left out as askers, counted as neighbours. --screenshot: the map page of
         that library searched for one of the world's concepts (Chromium, 1366 x 820).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sashie.map.layout import BLOCK, SAMPLE, fit

FIRST_VIEW = 200_000  # what map.js asks for first
DIM = 512


def synthetic(count: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(400, DIM)).astype(np.float32)
    out = np.empty((count, DIM), np.float32)
    for start in range(0, count, 100_000):
        n = min(100_000, count - start)
        block = centres[rng.integers(0, 400, n)] + rng.normal(0, 0.6, (n, DIM)).astype(np.float32)
        out[start : start + n] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def scale(sizes: list[int]) -> None:
    import os

    print(f"{os.cpu_count()} cores; t-SNE of {SAMPLE:,} items, the rest placed among them\n")
    print("| items | lay out the sample s | place the rest s | all s | first view bytes |")
    print("|---|---|---|---|---|")
    for count in sizes:
        vectors = synthetic(count)
        rng = np.random.default_rng(0)
        rows = np.sort(rng.permutation(count)[: min(SAMPLE, count)])
        started = time.perf_counter()
        layout = fit(vectors[rows], seed=0)
        laid = time.perf_counter() - started
        rest = np.setdiff1d(np.arange(count), rows)
        started = time.perf_counter()
        layout.place(vectors[rest[i : i + BLOCK]] for i in range(0, len(rest), BLOCK))
        placed = time.perf_counter() - started
        first = 16 + min(FIRST_VIEW, count) * (8 + 4 + 4 + 4 + 2 + 2)
        print(f"| {count:,} | {laid:.0f} | {placed:.0f} | {laid + placed:.0f} | {first:,} |")
        del vectors


def fps(points: int) -> None:
    import base64
    import json

    from playwright.sync_api import sync_playwright

    from sashie.app.cli.mapping import write_map_page

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from conftest import CHROMIUM, CHROMIUM_FLAGS

    rng = np.random.default_rng(0)
    centres = rng.uniform(-0.9, 0.9, (300, 2))
    xy = (centres[rng.integers(0, 300, points)] + rng.normal(0, 0.03, (points, 2))).astype("<f4")
    head = np.array([0x50414D53, points, points, 0], "<u4")
    binary = b"".join(
        a.tobytes()
        for a in (
            head, xy, np.arange(1, points + 1, dtype="<u4"), np.zeros(points, "<u4"),
            np.full(points, np.nan, "<f4"), rng.integers(0, 40, points).astype("<u2"),
            np.zeros(points, "<u2"),
        )
    )  # fmt: skip
    meta = {"map": {"model": "synthetic", "version": "base", "items": points}, "clusters": []}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        data = {"meta": meta | {"thumbnails": 0}, "points": base64.b64encode(binary).decode()}
        (folder / "map-data.js").write_text(f"window.SASHIE_MAP = {json.dumps(data)};")
        write_map_page(folder)
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS
            )
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            started = time.perf_counter()
            page.goto((folder / "index.html").as_uri())
            page.wait_for_function(
                "() => window.sashieMap && window.sashieMap.ready", timeout=600_000
            )
            ready = time.perf_counter() - started
            renderer = page.evaluate(
                "() => { const gl = document.createElement('canvas').getContext('webgl');"
                " if (!gl) return 'none';"
                " const i = gl.getExtension('WEBGL_debug_renderer_info');"
                " return gl.getParameter(i ? i.UNMASKED_RENDERER_WEBGL : gl.RENDERER); }"
            )
            page.evaluate(
                "() => { window.frames_ = 0; const tick = () => { window.frames_++;"
                " requestAnimationFrame(tick); }; requestAnimationFrame(tick); }"
            )
            box = page.locator("#canvas").bounding_box()
            cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
            page.mouse.move(cx, cy)
            page.mouse.down()
            page.evaluate("() => { window.frames_ = 0; }")
            started = time.perf_counter()
            step = 0
            while time.perf_counter() - started < 4:
                step += 1
                page.mouse.move(cx + 200 * np.sin(step / 10), cy + 120 * np.cos(step / 10))
            frames = page.evaluate("() => window.frames_")
            seconds = time.perf_counter() - started
            page.mouse.up()
            browser.close()
    print(
        f"{points:,} points: page ready in {ready:.1f} s; panning {frames / seconds:.1f} "
        f"frames/s in headless Chromium, WebGL by {renderer}"
    )


def quality(seed: int, pages: int, screenshot: Path | None) -> None:
    from sashie.eval.bench_adapt import concepts_of_items
    from sashie.eval.world import make_world, read_truth
    from sashie.library import Library

    with tempfile.TemporaryDirectory() as tmp:
        world = make_world(Path(tmp) / "world", pages=pages, seed=seed)
        lib = Library(Path(tmp) / "lib", create=True)
        lib.add([str(world / "pages")])
        concepts = concepts_of_items(lib, read_truth(world))
        index = lib.index()
        items = index.item_ids
        vectors = index.take(np.arange(len(items)))
        asked = [i for i, item in enumerate(items) if concepts.get(int(item))]
        print(
            f"evaluation world seed {seed}: {pages} pages, {len(items):,} items, "
            f"{len(asked):,} with a concept; 10 nearest neighbours\n"
        )
        print("| neighbours by | share showing one of the item's concepts |")
        print("|---|---|")

        def alike(near: np.ndarray) -> float:
            hits = [
                np.mean(
                    [
                        bool(concepts[int(items[i])] & concepts.get(int(items[j]), set()))
                        for j in near[i]
                    ]
                )
                for i in asked
            ]
            return float(np.mean(hits))

        def nearest(points: np.ndarray, metric: str) -> np.ndarray:
            if metric == "cosine":
                gaps = -(points @ points.T)
            else:
                gaps = ((points[:, None] - points[None]) ** 2).sum(-1)
            np.fill_diagonal(gaps, np.inf)
            return np.argsort(gaps, axis=1)[:, :10]

        rng = np.random.default_rng(seed)
        rows = {
            "a random layout": nearest(rng.uniform(-1, 1, (len(items), 2)), "l2"),
            "the model's vectors (cosine)": nearest(vectors, "cosine"),
        }
        for sample in (len(items), len(items) // 4):
            lib.map.draw(sample=sample, seed=seed)
            points = lib.map.points()
            at = {int(i): p for i, p in zip(points.items, points.places, strict=True)}
            places = np.stack([at[int(i)] for i in items])
            share = (
                "every item laid out"
                if sample == len(items)
                else f"{sample:,} laid out, the rest placed"
            )
            rows[f"the map ({share})"] = nearest(places, "l2")
        for name, near in rows.items():
            print(f"| {name} | {alike(near):.3f} |")
        if screenshot:
            lib.map.draw(seed=seed)
            shoot(Path(tmp) / "lib", screenshot)


def shoot(library: Path, out: Path) -> None:
    """The map page of `library`, searched for a concept, saved as a JPEG."""
    import io

    from PIL import Image
    from playwright.sync_api import sync_playwright

    from sashie.app import server
    from sashie.eval.world.vocab import vocabulary

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from conftest import CHROMIUM, CHROMIUM_FLAGS, serving

    concept = vocabulary().by_key[vocabulary().query_seen[0]].en
    with serving(server.create_app(library)) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1366, "height": 820})
        page.goto(f"{url}/map?q={concept.replace(' ', '+')}")
        page.wait_for_selector("#status:has-text('hits')", timeout=120_000)
        time.sleep(1)
        shot = page.screenshot()
        browser.close()
    Image.open(io.BytesIO(shot)).convert("RGB").save(out, quality=80)
    print(f"\nthe map page, searched for {concept!r}: {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    s = sub.add_parser("scale")
    s.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    f = sub.add_parser("fps")
    f.add_argument("--points", type=int, default=1_000_000)
    q = sub.add_parser("quality")
    q.add_argument("--seed", type=int, default=61)
    q.add_argument("--pages", type=int, default=160)
    q.add_argument("--screenshot", type=Path, help="save the map page here (a JPEG)")
    args = parser.parse_args()
    if args.what == "scale":
        scale(args.sizes)
    elif args.what == "fps":
        fps(args.points)
    else:
        quality(args.seed, args.pages, args.screenshot)


if __name__ == "__main__":
    main()
