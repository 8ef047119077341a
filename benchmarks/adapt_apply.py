"""Applying an adapter to the seed paper's index (1,140,000 x 512) vs re-encoding crops.

1. Random unit vectors are written as a library's float16 vector file; a trained-shape adapter
   (random weights, D -> D/4 -> D) is applied with the code `sashie adapt` uses
   (`write_version_vectors`: blocks read, adapted and written by a few threads into a partial
   file, synced, renamed). Reported: seconds, and the process's peak resident memory above
   what it held before (memory-mapped file pages count in it).
2. In the same run, 1,000 crops (JPEG files cut from evaluation pages) are indexed with the
   demo model, which is what re-encoding costs per 1,000 items; scaled to the index size.

    python benchmarks/adapt_apply.py [--rows 1140000] [--dim 512] [--crops 1000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from sashie.adapt.adapter import VisualAdapter
from sashie.adapt.version_files import APPLY_WORKERS, write_version_vectors
from sashie.eval.world import make_world, read_truth
from sashie.library import Library
from sashie.store.vectors import VectorFile


def peak_rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def reset_peak() -> None:
    """Start a new peak measurement (Linux: writing 5 to clear_refs resets VmHWM)."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


class AnonPeak:
    """The peak of the process's anonymous memory (not file pages), sampled every 5 ms."""

    def __init__(self) -> None:
        import threading

        self.base = self.now()
        self.peak = self.base
        self.running = True
        self.thread = threading.Thread(target=self.watch, daemon=True)
        self.thread.start()

    @staticmethod
    def now() -> int:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
        return 0

    def watch(self) -> None:
        while self.running:
            self.peak = max(self.peak, self.now())
            time.sleep(0.005)

    def stop(self) -> int:
        self.running = False
        self.thread.join()
        return self.peak - self.base


def make_vectors(folder: Path, rows: int, dim: int) -> VectorFile:
    rng = np.random.default_rng(0)
    files = VectorFile(folder, dim)
    step = 1 << 16
    for start in range(0, rows, step):
        block = rng.standard_normal((min(step, rows - start), dim)).astype(np.float32)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        files.write_at(start, block, np.arange(start, start + len(block)))
    return files


def make_crops(folder: Path, count: int) -> Path:
    """`count` illustration crops from a small evaluation world, as JPEG files."""
    from PIL import Image

    world = make_world(folder / "world", pages=max(20, count // 2), seed=77)
    crops = folder / "crops"
    crops.mkdir()
    made = 0
    for row in read_truth(world):
        if made >= count:
            break
        page = Image.open(row["page"]).convert("RGB")
        for box in [i["bbox"] for i in row["illustrations"]] + row["text_blocks"]:
            if made < count:
                page.crop(box).save(crops / f"{made:05d}.jpg", quality=90)
                made += 1
    while made < count:  # few illustrations: repeat crops under new names
        (crops / f"{made:05d}.jpg").write_bytes((crops / f"{made % 50:05d}.jpg").read_bytes())
        made += 1
    return crops


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_140_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--crops", type=int, default=1000)
    parser.add_argument("--ratio", type=float, default=0.2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="sashie-adapt-bench-") as tmp:
        tmp = Path(tmp)
        files = make_vectors(tmp / "base", args.rows, args.dim)
        torch.manual_seed(0)
        adapter = VisualAdapter(args.dim, args.ratio)
        torch.nn.init.normal_(adapter.up.weight, std=0.02)  # a trained adapter is not zero
        adapter.eval()
        base = files.vectors(args.rows)
        write_version_vectors(tmp / "warm", adapter, base[:50_000], np.arange(50_000))
        reset_peak()
        before = peak_rss_bytes()
        anon = AnonPeak()
        totals, computes = [], []
        for n in range(args.repeats):  # the machine is shared: the median of a few runs
            written = []
            started = time.perf_counter()
            # each run a new version folder, as `sashie adapt` makes (replacing the file of
            # the run before would time the deletion of 1 GB too)
            write_version_vectors(
                tmp / f"v{n + 1}",
                adapter,
                base,
                files.item_ids(args.rows),
                progress=lambda _, w=written: w.append(time.perf_counter()),
            )
            totals.append(time.perf_counter() - started)
            computes.append(written[-1] - started)
        apply_seconds, compute_seconds = float(np.median(totals)), float(np.median(computes))
        peak = peak_rss_bytes() - before
        anon_peak = anon.stop()
        check = np.memmap(tmp / "v1" / "vectors.f16", np.float16, "r", shape=(args.rows, args.dim))
        norms = np.linalg.norm(np.asarray(check[-1000:], np.float32), axis=1)
        assert np.allclose(norms, 1, atol=1e-2), "adapted rows are not unit vectors"

        crops = make_crops(tmp, args.crops)
        lib = Library(tmp / "library", create=True)
        started = time.perf_counter()
        report = lib.add([str(crops)], regions="whole")
        encode_seconds = time.perf_counter() - started
        model = lib.encoder().model_id

    per_crop = encode_seconds / max(1, report.vectors_added)
    gib = args.rows * args.dim * 2 / 2**30
    print(
        f"{args.rows:,} x {args.dim} float16 vectors ({gib:.2f} GiB), adapter "
        f"{args.dim} -> {args.dim // 4} -> {args.dim}, R = {args.ratio}; "
        f"{APPLY_WORKERS} threads, each reading, adapting (1 torch thread) and writing "
        f"blocks of rows\n"
    )
    rows = [
        (
            f"apply the adapter: read, adapt, write, sync, rename (median of {args.repeats})",
            f"{apply_seconds:.1f} s",
            "<= 5 s",
        ),
        ("  of which until the last block was written", f"{compute_seconds:.1f} s", ""),
        ("  fastest run", f"{min(totals):.1f} s", ""),
        ("peak resident memory added while applying", f"{peak / 2**20:.0f} MiB", ""),
        ("  of which anonymous (buffers, no file pages)", f"{anon_peak / 2**20:.0f} MiB", ""),
        (f"re-encode {report.vectors_added:,} crops ({model})", f"{encode_seconds:.1f} s", ""),
        (
            f"re-encode {args.rows:,} crops at that rate (estimate)",
            f"{per_crop * args.rows / 3600:.1f} h",
            "",
        ),
        (
            f"applying vs re-encoding {args.rows:,} items",
            f"{per_crop * args.rows / apply_seconds:.0f} x",
            "",
        ),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"| {'measure':<{width}} | {'value':>12} | target |")
    print(f"|{'-' * (width + 2)}|{'-' * 14}|--------|")
    for name, value, target in rows:
        print(f"| {name:<{width}} | {value:>12} | {target:<6} |")


if __name__ == "__main__":
    main()
