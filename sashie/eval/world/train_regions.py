"""Train the `learned` region detector on the evaluation world: spreads and pages.

    python -m sashie.eval.world.train_regions --out sashie/models/sashie-regions \\
        --spreads 3000 --pages 800 --seed 100 [--steps 2000] [--crop 320]
    python -m sashie.eval.world.train_regions --out DIR --world SPREADS --world PAGES

Draws the spreads of the world's version 3 and pages of its version 2 (so that the detector
keeps the single pages it is measured on too), or reads worlds already drawn, reads each at
the network's input size, and trains on random crops (flips, tone and grey changes) to mark the
illustrations' boxes and their cores (learned.py says why both). Writes config.json,
model.safetensors and TRAINING.json (the command, data, time and hardware).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from ...errors import SashieError
from ...regions.detector_training import train, training_sample
from ...regions.learned import INPUT_SIDE, SHRINK, NetConfig, save_model
from . import SPREAD_VERSION, make_world, read_truth, world_meta


def read_spreads(world: Path, config: NetConfig, progress: bool = True):
    """Each page or spread of a world at the network's size, and its target."""
    images, targets = [], []
    for row in tqdm(read_truth(world), desc="reading", unit="spread", disable=not progress):
        with Image.open(row["page"]) as image:
            array, target = training_sample(
                image, [i["bbox"] for i in row["illustrations"]], config
            )
        images.append(array)
        targets.append(target)
    return images, targets


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Train the `learned` region detector.")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument(
        "--world", type=Path, action="append", help="a world already drawn (repeatable)"
    )
    parser.add_argument("--spreads", type=int, default=3000, help="version-3 spreads to draw")
    parser.add_argument("--pages", type=int, default=800, help="version-2 pages to draw")
    parser.add_argument("--seed", type=int, default=100, help="the spreads' seed (pages: +1)")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=12)
    parser.add_argument("--crop", type=int, default=320)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument(
        "--input-side", type=int, default=INPUT_SIDE, help="the longer side the network reads"
    )
    parser.add_argument(
        "--widths",
        default=",".join(str(w) for w in NetConfig().widths),
        help="the network's channels at 1/2, 1/4, 1/8, 1/16 and in its context layers",
    )
    parser.add_argument("--device", default="cpu", help="cpu, or cuda on a machine with a GPU")
    args = parser.parse_args(argv)
    import torch

    try:
        config = NetConfig.from_dict(
            {"widths": args.widths.split(","), "input_side": args.input_side, "shrink": SHRINK}
        )
    except SashieError as e:
        parser.error(f"--widths or --input-side: {e}")
    images: list[np.ndarray] = []
    targets: list[np.ndarray] = []
    worlds = []
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        folders = args.world or [
            make_world(Path(tmp) / "spreads", pages=args.spreads, seed=args.seed,
                       version=SPREAD_VERSION, progress=True),
            make_world(Path(tmp) / "pages", pages=args.pages, seed=args.seed + 1, progress=True),
        ]  # fmt: skip
        for world in folders:
            meta = world_meta(world)
            worlds.append(
                {"version": meta["world_version"], "seed": meta["seed"], "pages": meta["pages"]}
            )
            more_images, more_targets = read_spreads(world, config)
            images += more_images
            targets += more_targets
    render_seconds = time.perf_counter() - start
    start = time.perf_counter()
    net, losses = train(
        images, targets, config, steps=args.steps, batch_size=args.batch, crop=args.crop,
        lr=args.lr, seed=0, device=args.device,
    )  # fmt: skip
    train_seconds = time.perf_counter() - start
    save_model(net, config, args.out)
    weights = (args.out / "model.safetensors").stat().st_size
    record = {
        "command": "python -m sashie.eval.world.train_regions " + " ".join(argv or sys.argv[1:]),
        "worlds": worlds,
        "steps": args.steps,
        "batch": args.batch,
        "crop": args.crop,
        "lr": args.lr,
        "input_side": args.input_side,
        "widths": list(config.widths),
        "render_seconds": round(render_seconds),
        "train_seconds": round(train_seconds),
        "hardware": f"{platform.machine()}, {os.cpu_count()} cores, {args.device}; "
        f"torch {torch.__version__}",
        "parameters": sum(p.numel() for p in net.parameters()),
        "weights_bytes": weights,
        "loss_first_last": [
            round(float(np.mean(losses[:50])), 4),
            round(float(np.mean(losses[-50:])), 4),
        ],
        "data": "the spread world: emoji artists' drawings (see world.json's credits), "
        "Openclipart (public domain), Aoyagi/Kouzan brush fonts (public domain)",
    }
    (args.out / "TRAINING.json").write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
