"""Region detection: recall of the illustrations, precision of proposals, items per page and
pages per second, for each detector and combined; on an evaluation world we draw, or on real
scans with boxes people drew (`--real`, a Pascal VOC folder such as NDL-DocL's).

    python benchmarks/regions.py [--pages 200] [--seed 11] [--version 2|3] [--world DIR]
    python benchmarks/regions.py --real ../shared/real-pages/ndl-docl [--filter LIB]

With `--filter LIB` the real-page table also has each detector's proposals after the
keep/exclude filter of that library (trained with its model, e.g. `sashie demo`'s library):
each proposal is cut, encoded with the library's model and kept when the filter keeps it.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

from sashie.eval.real_pages import format_table, measure
from sashie.eval.world import make_world, read_truth
from sashie.regions import iou, load_detectors
from sashie.regions.boxes import read_voc_folder
from sashie.sources.images import load_image

DETECTOR_SETS = (
    ["whole"],
    ["layout"],
    ["learned"],
    ["hybrid"],
    ["layout", "whole"],
    ["learned", "whole"],
    ["hybrid", "whole"],
)


def evaluate(truth: list[dict], names: list[str], options: dict) -> dict:
    detectors = load_detectors(names, options)
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


def on_world(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        world = args.world or make_world(
            Path(tmp) / "world", pages=args.pages, seed=args.seed, version=args.version
        )
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
        for names in DETECTOR_SETS:
            m = evaluate(truth, names, detector_options(args))
            print(
                f"| {'+'.join(names):<14} | {m['recall']:10.3f} | {m['precision']:9.3f} | "
                f"{m['items_per_page']:10.1f} | {m['pages_per_s']:7.1f} |"
            )


def filtered(propose, library: Path):
    """The proposals the library's keep/exclude filter keeps (crops encoded by its model)."""
    from sashie import Library
    from sashie.filter.model import THRESHOLD

    lib = Library(library)
    keep = lib.filter.load()
    if keep is None:
        sys.exit(f"{library} has no keep/exclude filter (sashie filter train)")
    encoder = lib.encoder()

    def kept(image: Image.Image) -> list:
        boxes = propose(image)
        if not boxes:
            return boxes
        scores = keep.scores(encoder.encode_images([image.crop(b) for b in boxes]))
        order = sorted(range(len(boxes)), key=lambda i: -scores[i])  # best first
        return [boxes[i] for i in order if scores[i] >= THRESHOLD]

    return kept


def draw_boxes(pages: list, found: list[list], out: Path) -> None:
    """Each page with the people's illustration boxes (green) and the proposals (red)."""
    from PIL import ImageDraw

    out.mkdir(parents=True, exist_ok=True)
    for page, boxes in zip(pages, found):
        image = load_image(str(page.image)).convert("RGB")
        draw = ImageDraw.Draw(image)
        for box in page.labelled({"4_illustration"}):
            draw.rectangle(box, outline=(0, 170, 0), width=7)
        for box in boxes:
            draw.rectangle(box, outline=(220, 0, 0), width=3)
        image.save(out / f"{page.image.stem}.jpg", quality=85)


def best_first(detectors: list, image: Image.Image) -> list:
    """The detectors' boxes for a page, the best-scored first (a detector without scores
    keeps its own order)."""
    regions = [r for d in detectors for r in d.detect(image, None)]
    return [r.bbox for r in sorted(regions, key=lambda r: -r.score)]


def detector_options(args: argparse.Namespace) -> dict:
    if not args.learned:
        return {}
    return {name: {"model": args.learned} for name in ("learned", "hybrid")}


def on_real(args: argparse.Namespace) -> None:
    pages, skipped = read_voc_folder(args.real)
    for name, reason in skipped:
        print(f"skipped {name}: {reason}", file=sys.stderr)
    if not pages:
        sys.exit(f"no VOC pages in {args.real}")
    sizes = sorted({p.size for p in pages})
    print(
        f"{len(pages)} real pages ({', '.join(f'{w} x {h}' for w, h in sizes)}) from "
        f"{args.real}, {sum(len(p.labelled({'4_illustration'})) for p in pages)} illustration "
        "boxes drawn by people; one core (decoding not counted; with the filter, encoding "
        "counted)"
    )
    rows = []
    for names in DETECTOR_SETS:
        detectors = load_detectors(names, detector_options(args))

        found: list[list] = []

        def propose(image, detectors=detectors, found=found):
            found.append(best_first(detectors, image))
            return found[-1]

        rows.append(("+".join(names), measure(pages, propose)))
        if args.draw:
            draw_boxes(pages, found, args.draw / "+".join(names))
        if args.filter:
            rows.append(
                ("+".join(names) + " + filter", measure(pages, filtered(propose, args.filter)))
            )
    print(format_table(rows))


def on_real_tuned(args: argparse.Namespace) -> None:
    """What K boxed pages add: the detector fine-tuned on K pages drawn at random, measured on
    the others beside the same detector untuned (`sashie regions train`'s training)."""
    import numpy as np

    from sashie.library.region_model import fine_tune
    from sashie.regions.learned import DEFAULT_MODEL, model_folder, save_model

    pages, _ = read_voc_folder(args.real)
    base = args.learned or model_folder(DEFAULT_MODEL)
    rows = []
    for count in args.tune:
        if not 0 < count < len(pages):
            sys.exit(f"--tune {count}: the folder has {len(pages)} pages")
        order = np.random.default_rng(args.seed).permutation(len(pages))
        taught = [pages[i] for i in sorted(order[:count])]
        rest = [pages[i] for i in sorted(order[count:])]
        with tempfile.TemporaryDirectory() as tmp:
            net, config, boxes, _ = fine_tune(base, taught, steps=args.steps, progress=True)
            save_model(net, config, Path(tmp))
            for kind in ("learned", "hybrid"):
                for name, folder in (
                    (f"{kind}, others of {count}", base),
                    (f"{kind} tuned on {count}", tmp),
                ):
                    [detector] = load_detectors([kind], {kind: {"model": folder}})
                    found = measure(rest, lambda image, d=detector: best_first([d], image))
                    rows.append((name, {"all": found["all"]}))
        print(f"tuned on {count} pages ({boxes} illustration boxes), measured on the others")
    print(format_table(rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=200)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--world", type=Path, help="an existing world (else one is drawn)")
    parser.add_argument(
        "--version", type=int, default=2, help="the world drawn: 2 pages, 3 scanned spreads"
    )
    parser.add_argument("--real", type=Path, help="a folder of real pages with VOC boxes")
    parser.add_argument(
        "--filter",
        type=Path,
        metavar="LIB",
        help="with --real: a library whose filter is applied too",
    )
    parser.add_argument(
        "--learned",
        type=Path,
        metavar="DIR",
        help="the learned detector's weights (default: shipped)",
    )
    parser.add_argument(
        "--draw", type=Path, metavar="OUT", help="with --real: save each page with its boxes"
    )
    parser.add_argument(
        "--tune",
        type=lambda text: [int(v) for v in text.split(",")],
        metavar="K,K",
        help="with --real: fine-tune on K pages drawn at random (--seed) and measure the rest",
    )
    parser.add_argument("--steps", type=int, default=300, help="with --tune: training steps")
    args = parser.parse_args()
    import cv2
    import torch

    cv2.setNumThreads(1)  # the tables say "one core": keep both libraries to it
    torch.set_num_threads(1)
    if args.real and args.tune:
        on_real_tuned(args)
    elif args.real:
        on_real(args)
    else:
        on_world(args)


if __name__ == "__main__":
    main()
