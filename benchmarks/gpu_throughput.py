"""GPU indexing throughput: the model's pure forward rate, and the whole pipeline's rate.

For each model (the demo model, and a ViT-B/16 CLIPModel built from OpenAI's shapes with
random weights: speed does not depend on the weights):
1. forward: random pixel batches already on the device, the image tower alone (the encoder's
   dtype: float16 on CUDA), after a warm-up, synchronized: crops/s;
2. pipeline: `Library.add` of pages (an evaluation world's, or synthetic JPEG scans) from the
   files to committed vectors, with the engine asked for: crops/s, and its share of (1).
The target (issue 24): the pipeline reaches at least 80 % of the forward rate, and ViT-B/16
fp16 at least 1,500 crops/s on an H100.

    python benchmarks/gpu_throughput.py [--world WORLD] [--device cuda] [--batch-size 256]
        [--models demo,vit-b16] [--engine local|ray] [--pages 400] [--batches 20]
    python benchmarks/gpu_throughput.py --device cpu --smoke     # a few batches, tiny models
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

from sashie.encoders import DEMO_MODEL, load_encoder
from sashie.library import Library

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def build_model(name: str, folder: Path, smoke: bool) -> str:
    """The spec of a model to time: the demo model, or a random CLIP of ViT-B/16's shapes (a
    tiny CLIP in a smoke run)."""
    if name == "demo":
        return DEMO_MODEL
    from tiny_clip import VIT_B_16, build_clip, build_tiny_clip

    if name != "vit-b16":
        raise SystemExit(f"unknown model {name!r}: demo or vit-b16")
    if smoke:
        return f"hf:{build_tiny_clip(folder / 'vit-b16-stand-in', image_size=64)}"
    return f"hf:{build_clip(folder / 'vit-b16', **VIT_B_16)}"


def forward_rate(spec: str, device: str, batch_size: int, batches: int) -> dict:
    """Crops/s of the image tower on pixels already on the device."""
    encoder = load_encoder(spec, device=device)
    pixels = torch.randn(
        batch_size, 3, encoder.image_size, encoder.image_size, device=encoder.device
    ).to(encoder.dtype)  # type: ignore[attr-defined]
    sync = torch.cuda.synchronize if encoder.device.startswith("cuda") else (lambda: None)
    with torch.inference_mode():
        for _ in range(3):
            encoder.image_features(pixels)  # type: ignore[attr-defined]
        sync()
        started = time.perf_counter()
        for _ in range(batches):
            encoder.image_features(pixels)  # type: ignore[attr-defined]
        sync()
    seconds = time.perf_counter() - started
    return {
        "crops_s": batches * batch_size / seconds,
        "dtype": str(encoder.dtype).replace("torch.", ""),  # type: ignore[attr-defined]
        "image_size": encoder.image_size,
    }


def pipeline_rate(
    spec: str, pages: list[str], device: str, batch_size: int, engine: str, folder: Path
) -> dict:
    """Crops/s of `Library.add` over the pages, files to committed vectors (the model's load
    apart: it is loaded first)."""
    lib = Library(folder, create=True, progress=False)
    lib.encoder(spec, device=device)
    report = lib.add(pages, model=spec, device=device, batch_size=batch_size, engine=engine)
    return {
        "crops_s": report.vectors_added / report.seconds,
        "pages_s": report.pages_indexed / report.seconds,
        "crops": report.vectors_added,
        "seconds": report.seconds,
    }


def world_pages(world: Path | None, count: int, folder: Path) -> list[str]:
    """Up to `count` page files of the world, or as many synthetic scans written here."""
    if world is not None:
        found = sorted(p for p in (world / "pages").rglob("*") if p.is_file())
        if not found:
            raise SystemExit(f"{world} has no pages/ folder of images")
        return [str(p) for p in found[:count]]
    from index_throughput import write_pages

    write_pages(folder, count)
    return [str(folder)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--world", type=Path, help="an evaluation world (sashie world)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--models", default="demo,vit-b16")
    parser.add_argument("--engine", choices=("local", "ray"), default="local")
    parser.add_argument("--pages", type=int, default=400)
    parser.add_argument("--batches", type=int, default=20, help="forward batches timed")
    parser.add_argument("--smoke", action="store_true", help="tiny models, a few batches")
    args = parser.parse_args()
    if args.smoke:
        args.batch_size, args.batches, args.pages = min(args.batch_size, 8), 2, min(args.pages, 6)
    device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "CPU"
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        pages = world_pages(args.world, args.pages, tmp / "pages")
        source = f"world {args.world}" if args.world else "synthetic 1600 x 2400 JPEG scans"
        print(
            f"{device_name}; batch {args.batch_size}; pipeline: {args.pages} pages of {source}, "
            f"default regions, engine {args.engine}"
        )
        print("| model | dtype | forward crops/s | pipeline crops/s | pages/s | share |")
        print("|---|---|---|---|---|---|")
        for name in args.models.split(","):
            spec = build_model(name, tmp, args.smoke)
            forward = forward_rate(spec, args.device, args.batch_size, args.batches)
            pipe = pipeline_rate(
                spec, pages, args.device, args.batch_size, args.engine, tmp / f"lib-{name}"
            )
            share = pipe["crops_s"] / forward["crops_s"]
            print(
                f"| {name} ({forward['image_size']} px) | {forward['dtype']} "
                f"| {forward['crops_s']:,.0f} | {pipe['crops_s']:,.0f} | {pipe['pages_s']:.1f} "
                f"| {share:.0%} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
