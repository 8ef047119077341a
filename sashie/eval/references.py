"""The reference pictures a user brings to a search: Twemoji drawings (an artist never seen
on the world's pages), rotated, on tinted paper, sometimes grey or blurred."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter

from .world.artists import Artists, Concept

REFERENCES = 6  # L, pictures per theme in the multi-image experiment


def reference_pictures(
    artists: Artists, concept: Concept, count: int, seed: int
) -> list[Image.Image]:
    """A Twemoji picture and augmentations of it: the references a user brings along."""
    rng = np.random.default_rng(seed)
    pictures = []
    for i in range(count):
        size = int(rng.integers(70, 120))
        art = artists.draw(concept, "twemoji", size).rotate(float(rng.normal(0, 10)), expand=True)
        background = (
            (255, 255, 255) if i % 2 == 0 else tuple(int(v) for v in rng.integers(200, 256, 3))
        )
        canvas = Image.new("RGB", (128, 128), background)
        canvas.paste(
            art,
            (
                int(rng.integers(0, max(1, 128 - art.width))),
                int(rng.integers(0, max(1, 128 - art.height))),
            ),
            art,
        )
        if i % 3 == 2:
            canvas = canvas.convert("L").convert("RGB")
        if i % 4 == 3:
            canvas = canvas.filter(ImageFilter.GaussianBlur(1.0))
        pictures.append(canvas)
    return pictures
