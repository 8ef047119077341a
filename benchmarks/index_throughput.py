"""Indexing throughput: pages and items per second from page files to committed vectors.

Indexes N pages (an evaluation world's with --world, else N page-sized synthetic JPEGs: 1600 x
2400, noisy paper with dark strokes) with the default regions (or --regions), with each
engine asked for:
the local one with 1 reader thread and then the default (so the effect of decoding in parallel
workers shows), and the Ray one (a local Ray started for the run, its start included). The
default model is a tiny random CLIP (the model's own cost then is small and the table shows
the pipeline); pass --model to time a real one (sashie-demo, hf:DIR, ...).

    python benchmarks/index_throughput.py [--pages 60] [--world WORLD] [--model SPEC]
        [--engine local|ray|both] [--regions NAMES]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from sashie import Library
from sashie.regions import DEFAULT_DETECTORS

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))


def write_pages(folder: Path, count: int) -> None:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    for i in range(count):
        paper = rng.normal(225, 12, (2400, 1600, 1)).clip(0, 255) * np.array([1.0, 0.95, 0.85])
        for _ in range(40):
            x, y = rng.integers(100, 1500), rng.integers(100, 2300)
            paper[y : y + 60, x : x + 8] = 40
        Image.fromarray(paper.astype(np.uint8)).save(folder / f"page{i:04d}.jpg", quality=85)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=60)
    parser.add_argument("--world", type=Path, help="index this world's first pages instead")
    parser.add_argument("--model", help="model spec (default: a tiny random CLIP)")
    parser.add_argument("--engine", choices=("local", "ray", "both"), default="both")
    parser.add_argument("--regions", default=DEFAULT_DETECTORS, help="region detectors")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.world:
            pages = sorted(str(p) for p in (args.world / "pages").rglob("*") if p.is_file())
            pages = pages[: args.pages]
            what = f"{len(pages)} pages of {args.world}"
        else:
            write_pages(tmp / "pages", args.pages)
            pages, what = [str(tmp / "pages")], f"{args.pages} pages of 1600 x 2400 JPEG"
        model = args.model
        if model is None:
            from tiny_clip import build_tiny_clip

            model = f"hf:{build_tiny_clip(tmp / 'tiny-clip', image_size=224)}"
        print(f"{what}, regions {args.regions}, model {model}, {os.cpu_count()} cores")
        print("| engine | readers | pages/s | items/s | seconds |")
        print("|---|---|---|---|---|")
        runs = [("local", 1), ("local", None)] if args.engine != "ray" else []
        runs += [("ray", None)] if args.engine != "local" else []
        for engine, workers in runs:
            lib = Library(tmp / f"lib-{engine}-{workers}", create=True, progress=False)
            lib.encoder(model)  # loaded before the clock starts
            report = lib.add(
                pages, model=model, workers=workers, engine=engine, regions=args.regions
            )
            print(
                f"| {engine} | {workers or 'default'} "
                f"| {report.pages_indexed / report.seconds:.1f} "
                f"| {report.vectors_added / report.seconds:.1f} | {report.seconds:.1f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
