"""Region detection on an evaluation world: recall of ground-truth illustrations at IoU >= 0.5,
precision of proposals, items per page and pages per second, for each detector and combined.

    python benchmarks/regions.py [--pages 200] [--seed 11] [--world DIR]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from PIL import Image

from sashie.eval.world import make_world, read_truth
from sashie.ingest.images import load_image
from sashie.regions import iou, load_detectors


def evaluate(truth: list[dict], names: list[str]) -> dict:
    detectors = load_detectors(names)
    found = total = proposals = matched = 0
    seconds = 0.0
    for row in truth:
        image = load_image(row["page"])
        start = time.perf_counter()
        boxes = [r.bbox for d in detectors for r in d.detect(image, None)]
        seconds += time.perf_counter() - start
        truths = [ill["bbox"] for ill in row["illustrations"]]
        total += len(truths)
        found += sum(any(iou(t, b) >= 0.5 for b in boxes) for t in truths)
        proposals += len(boxes)
        matched += sum(any(iou(t, b) >= 0.5 for t in truths) for b in boxes)
    return {
        "recall": found / max(total, 1),
        "precision": matched / max(proposals, 1),
        "items_per_page": proposals / len(truth),
        "pages_per_s": len(truth) / seconds,
        "illustrations": total,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=200)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--world", type=Path, help="an existing world (else one is drawn)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        world = args.world or make_world(Path(tmp) / "world", pages=args.pages, seed=args.seed)
        truth = read_truth(world)
        with Image.open(truth[0]["page"]) as first:
            size = first.size
        print(
            f"{len(truth)} pages of {size[0]} x {size[1]}, "
            f"{sum(len(r['illustrations']) for r in truth)} illustrations; one core "
            "(decoding not counted)"
        )
        print(
            f"| {'regions':<14} | {'recall@0.5':>10} | {'precision':>9} | {'items/page':>10} "
            f"| {'pages/s':>7} |"
        )
        print(f"|{'-' * 16}|{'-' * 12}|{'-' * 11}|{'-' * 12}|{'-' * 9}|")
        for names in (["whole"], ["layout"], ["layout", "whole"]):
            m = evaluate(truth, names)
            print(
                f"| {'+'.join(names):<14} | {m['recall']:10.3f} | {m['precision']:9.3f} | "
                f"{m['items_per_page']:10.1f} | {m['pages_per_s']:7.1f} |"
            )


if __name__ == "__main__":
    main()
