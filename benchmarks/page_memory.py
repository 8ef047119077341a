"""Peak memory to index one very large page, in bytes per pixel of the page.

Writes a PNG of the given size (white paper with a few framed pictures: a small file that
decodes to a large picture), then, in a fresh process, indexes a small page first (the
model, OpenCV and the rest loaded: the baseline) and the large page after it with the
default region detectors and a tiny random CLIP. The peak resident memory (VmHWM)
above the baseline, divided by the page's pixels, is what one reader thread needs per
pixel of the largest page it decodes.

    python benchmarks/page_memory.py [--size 15000x16000] [--regions layout,whole]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))


def write_page(path: Path, width: int, height: int) -> None:
    page = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(page)
    for i in range(12):  # framed pictures, for layout to find
        x, y = (i % 3) * width // 3 + width // 12, (i // 3) * height // 4 + height // 16
        box, ink = (x, y, x + width // 6, y + height // 8), (30 + 10 * i, 30, 40)
        draw.rectangle(box, outline=ink, width=max(2, width // 300))
        draw.line(box, fill=ink, width=max(2, width // 300))
    path.parent.mkdir(parents=True, exist_ok=True)
    page.save(path)


def peak_rss() -> int:
    """This process's peak resident memory so far, in bytes: Linux's VmHWM (ru_maxrss would
    count the parent's memory at the fork too)."""
    status = Path("/proc/self/status").read_text()
    return int(status.split("VmHWM:", 1)[1].split()[0]) * 1024


def measure(folder: Path, model: str, regions: str) -> None:
    """In the child process: index the small page, then the large one; print the figures."""
    from sashie import Library

    with Library(folder / "lib", create=True) as lib:
        lib.add([str(folder / "small")], model=model, regions=regions, workers=1)
        baseline = peak_rss()
        started = time.perf_counter()
        report = lib.add([str(folder / "large")], model=model, regions=regions, workers=1)
        seconds = time.perf_counter() - started
    print(
        json.dumps(
            {
                "baseline": baseline,
                "peak": peak_rss(),
                "seconds": seconds,
                "items": report.items_added,
                "skipped": [s.reason for s in report.skipped],
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="15000x16000", help="WIDTHxHEIGHT of the large page")
    parser.add_argument("--regions", default="layout,whole")
    parser.add_argument("--measure", help=argparse.SUPPRESS)  # the child's folder
    parser.add_argument("--model", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        measure(Path(args.measure), args.model, args.regions)
        return
    width, height = (int(v) for v in args.size.lower().split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_page(folder / "small" / "small.png", 1000, 1000)
        write_page(folder / "large" / "large.png", width, height)
        from tiny_clip import build_tiny_clip

        model = f"hf:{build_tiny_clip(folder / 'tiny-clip', image_size=224)}"
        child = [sys.executable, __file__, "--measure", tmp, "--model", model]
        done = subprocess.run([*child, "--regions", args.regions], capture_output=True, text=True)
        if done.returncode:
            sys.exit(done.stderr)
        figures = json.loads(done.stdout.strip().splitlines()[-1])
        size = (folder / "large" / "large.png").stat().st_size
    pixels = width * height
    above = figures["peak"] - figures["baseline"]
    print(
        f"a {width} x {height} PNG ({size / 1e3:.0f} KB), --regions {args.regions}, "
        f"1 reader: {figures['items']} items"
    )
    print(f"| {'baseline RSS':>12} | {'peak RSS':>9} | {'above':>9} | {'bytes/pixel':>11} | s |")
    print(f"|{'-' * 14}|{'-' * 11}|{'-' * 11}|{'-' * 13}|---|")
    print(
        f"| {figures['baseline'] / 2**20:9.0f} MiB | {figures['peak'] / 2**20:5.0f} MiB "
        f"| {above / 2**20:5.0f} MiB | {above / pixels:11.2f} | {figures['seconds']:.0f} |"
    )
    if figures["skipped"]:
        print(f"skipped: {figures['skipped']}")


if __name__ == "__main__":
    main()
