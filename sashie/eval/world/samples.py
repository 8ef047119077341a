"""Training samples for the demo model: small images with what is in them, not yet captioned.

Each sample is rendered the way sashie will later see such a thing: an illustration cut from
paper with a little margin, a Twemoji picture on its own (the only place that style may
appear in training), a piece of text, a stain, blank paper, or a whole small page, then
resized like the model's image processor does (shortest side to R, centre crop). Captions are
written at training time, so that each epoch words the same picture differently. Held-out
concepts are never drawn here.

Half the pictures draw their concepts as a training collection would (made like an evaluation
collection with another seed: ConceptPicker's frequencies, held-out concepts left out), half
uniformly over all seen concepts, so that rare names are learnt too.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from . import ConceptPicker
from .artists import Artists, Concept
from .pages import draw_illustration, ink, make_page, paper_patch, stains, text_column_layer
from .vocab import vocabulary
from .woodblock import render_svg

KINDS = ("illustration", "twemoji", "text", "stain", "blank", "page")
KIND_SHARES = (0.55, 0.2, 0.09, 0.03, 0.03, 0.10)
COLLECTION_SHARE = 0.5  # pictures whose concepts follow a collection's frequencies


@dataclass(frozen=True)
class SampleMeta:
    kind: str
    style: str  # "ink", "colour", "flat" or "" for non-pictures
    concepts: tuple[int, ...]  # indices into the seen concepts
    drawing: int = -1  # a clipart sample's drawing, an index into the list it was given


def square(image: Image.Image, resolution: int) -> np.ndarray:
    """Shortest side to `resolution` (bicubic), then the centre square: the processor's way."""
    scale = resolution / min(image.size)
    size = (
        max(resolution, round(image.width * scale)),
        max(resolution, round(image.height * scale)),
    )
    image = image.convert("RGB").resize(size, Image.Resampling.BICUBIC)
    left, top = (size[0] - resolution) // 2, (size[1] - resolution) // 2
    return np.asarray(image.crop((left, top, left + resolution, top + resolution)))


def _count(rng) -> int:
    return int(rng.choice([1, 2, 3, 4], p=[0.55, 0.28, 0.12, 0.05]))


def pick_concepts(
    rng: np.random.Generator, seen: tuple[Concept, ...], picker: ConceptPicker, n: int
) -> list[int]:
    """`n` distinct seen concepts (indices): a collection's frequencies or uniform, half each."""
    if rng.random() < COLLECTION_SHARE:
        index = {c.key: i for i, c in enumerate(seen)}
        return [index[c.key] for c in picker(rng, n)]
    return [int(i) for i in rng.choice(len(seen), n, replace=False)]


def render_sample(
    rng: np.random.Generator,
    artists: Artists,
    seen: tuple[Concept, ...],
    picker: ConceptPicker,
    resolution: int,
) -> tuple[np.ndarray, SampleMeta]:
    kind = KINDS[int(rng.choice(len(KINDS), p=KIND_SHARES))]
    if kind == "illustration":
        picked = pick_concepts(rng, seen, picker, _count(rng))
        artist = "noto" if rng.random() < 0.6 else "openmoji"
        w, h = int(rng.integers(140, 320)), int(rng.integers(140, 320))
        patch = paper_patch(rng, (w + 80, h + 80))
        bbox, _ = draw_illustration(
            rng, artists, [seen[i] for i in picked], artist, (40, 40, 40 + w, 40 + h), patch
        )
        pad = int(rng.integers(0, 30))
        crop = patch.crop(
            (
                max(0, bbox[0] - pad),
                max(0, bbox[1] - pad),
                min(patch.width, bbox[2] + pad),
                min(patch.height, bbox[3] + pad),
            )
        )
        style = "ink" if artist == "noto" else "colour"
        return square(crop, resolution), SampleMeta(kind, style, tuple(int(i) for i in picked))
    if kind == "twemoji":
        picked = pick_concepts(rng, seen, picker, 1 if rng.random() < 0.85 else 2)
        background = (255, 255, 255) if rng.random() < 0.6 else tuple(rng.integers(200, 256, 3))
        canvas = Image.new("RGB", (128 * len(picked), 128), tuple(int(v) for v in background))
        for slot, i in enumerate(picked):
            size = int(rng.integers(80, 122))
            art = artists.draw(seen[i], "twemoji", size).rotate(
                float(rng.normal(0, 6)), expand=True
            )
            x = slot * 128 + int(rng.integers(0, max(1, 128 - art.width)))
            y = int(rng.integers(0, max(1, 128 - art.height)))
            canvas.paste(art, (x, y), art)
        return square(canvas, resolution), SampleMeta(kind, "flat", tuple(int(i) for i in picked))
    if kind == "page":

        def pick(page_rng, n):
            return [seen[i] for i in pick_concepts(page_rng, seen, picker, n)]

        page, truth = make_page(rng, artists, pick, (400, 600))
        keys = {c.key: i for i, c in enumerate(seen)}
        concepts = [keys[k] for ill in truth.illustrations for k in ill.concepts][:4]
        if concepts:
            style = truth.illustrations[0].style
            return square(page, resolution), SampleMeta("page", style, tuple(concepts))
        return square(page, resolution), SampleMeta(
            "blank" if truth.kind == "blank" else "text", "", ()
        )
    w, h = int(rng.integers(100, 400)), int(rng.integers(100, 400))
    patch = paper_patch(rng, (w, h))
    if kind == "text":
        size = int(rng.integers(30, 52))
        layer = text_column_layer(
            rng, artists, h, size, max(1, w // int(size * 1.4)), int(size * 0.4)
        )
        ink(patch, layer, (max(0, w - layer.width), 0))
    elif kind == "stain":
        stains(rng, patch, int(rng.integers(2, 6)), 2.0)
    return square(patch, resolution), SampleMeta(kind, "", ())


def render_clipart(
    rng: np.random.Generator, files: tuple[str, ...], resolution: int
) -> tuple[np.ndarray, SampleMeta] | None:
    """One of `files` (Openclipart drawings) on a piece of paper; None if it does not render."""
    index = int(rng.integers(len(files)))
    art = render_svg(Path(files[index]), int(rng.integers(96, 200)))
    if art is None:
        return None
    pad = int(rng.integers(4, 30))
    patch = paper_patch(rng, (art.width + 2 * pad, art.height + 2 * pad))
    patch.paste(art, (pad, pad), art)
    return square(patch, resolution), SampleMeta("clipart", "", (), index)


_state: dict = {}


def _render_chunk(job: tuple) -> tuple[np.ndarray, list[SampleMeta]]:
    seed, chunk, count, resolution, files, share = job
    if "artists" not in _state:
        _state["artists"] = Artists()
        vocab = vocabulary()
        _state["seen"] = vocab.seen
        _state["picker"] = ConceptPicker(vocab, exclude=vocab.heldout)
    rng = np.random.default_rng([seed, chunk])
    rendered: list[tuple[np.ndarray, SampleMeta]] = []
    while len(rendered) < count:
        # a drawing that does not render gives way to an ordinary sample
        if files and rng.random() < share and (drawn := render_clipart(rng, files, resolution)):
            rendered.append(drawn)
            continue
        rendered.append(
            render_sample(rng, _state["artists"], _state["seen"], _state["picker"], resolution)
        )
    return np.stack([r[0] for r in rendered]), [r[1] for r in rendered]


def make_samples(
    count: int,
    *,
    seed: int,
    resolution: int,
    workers: int | None = None,
    progress: bool = False,
    clipart: tuple[str, ...] = (),
    clipart_share: float = 0.0,
) -> tuple[np.ndarray, list[SampleMeta]]:
    """`count` samples as an N x R x R x 3 uint8 array and their metadata; `clipart_share`
    of them drawings of `clipart` (Openclipart files; their metas' `drawing` indexes it)."""
    from tqdm import tqdm

    chunk = 500
    jobs = [
        (seed, i, min(chunk, count - i * chunk), resolution, clipart, clipart_share)
        for i in range((count + chunk - 1) // chunk)
    ]
    images, metas = [], []
    with ProcessPoolExecutor(workers or os.cpu_count() or 1) as pool:
        for pixels, meta in tqdm(
            pool.map(_render_chunk, jobs),
            total=len(jobs),
            unit="chunk",
            desc="samples",
            disable=not progress,
        ):
            images.append(pixels)
            metas += meta
    return np.concatenate(images), metas
