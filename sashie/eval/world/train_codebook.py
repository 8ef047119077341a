"""Learning the printings codebook (sashie/printings/fingerprints.py) that ships with sashie:

    python -m sashie.eval.world.train_codebook sashie/printings/codebook.safetensors

draws a printings world of the codebook's own seed (TRAINING_SEED, never one the benchmark
reports), finds each picture's features (matching.features, from the picture as drawn),
and learns the descriptors' reduction and visual words from them.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from PIL import Image

from ...printings.fingerprints import TRAINING_SEED, train
from ...printings.matching import features
from .reprints import make_printings_world, read_printings


def main() -> None:
    """Learn the codebook on a printings world drawn from TRAINING_SEED."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("out", type=Path, help="the codebook file to write")
    parser.add_argument("--blocks", type=int, default=200, help="blocks of the world")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        world = make_printings_world(
            Path(tmp) / "world", blocks=args.blocks, seed=TRAINING_SEED, progress=True
        )
        pages = [row["page"] for row in read_printings(world)]
        found = [features(Image.open(page).convert("RGB")).descriptors for page in pages]
    book = train(found, seed=TRAINING_SEED)
    book.save(args.out, {"world_seed": str(TRAINING_SEED), "pictures": str(len(found))})
    print(f"{args.out}: {len(found)} pictures")


if __name__ == "__main__":
    main()
