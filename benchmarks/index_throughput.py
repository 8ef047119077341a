"""Indexing throughput: pages per second from JPEG scans to committed vectors.

Writes N page-sized JPEGs (1600 x 2400, noisy paper with dark strokes) and indexes them with
`--regions whole` using 1 reader thread and then the default, so the effect of decoding in
parallel workers shows. The default model is a tiny random CLIP (the model's own cost then
is small and the table shows the pipeline); pass --model to time a real one.

    python benchmarks/index_throughput.py [--pages 60] [--model SPEC]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from sashie import Library

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
    parser.add_argument("--model", help="model spec (default: a tiny random CLIP)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_pages(tmp / "pages", args.pages)
        model = args.model
        if model is None:
            from tiny_clip import build_tiny_clip

            model = f"hf:{build_tiny_clip(tmp / 'tiny-clip', image_size=224)}"
        print(f"{args.pages} pages of 1600 x 2400 JPEG, --regions whole, model {model}")
        print(f"| {'reader threads':<16} | {'pages/s':>8} | {'seconds':>8} |")
        print(f"|{'-' * 18}|{'-' * 10}|{'-' * 10}|")
        for label, workers in (("1", 1), ("default", None)):
            lib = Library(tmp / f"lib-{label}", create=True)
            report = lib.add([str(tmp / "pages")], model=model, workers=workers)
            rate = report.pages_indexed / report.seconds
            print(f"| {label:<16} | {rate:8.1f} | {report.seconds:8.1f} |")


if __name__ == "__main__":
    main()
