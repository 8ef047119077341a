"""Composed search's trained part in a library: training a composer for the active model
version on the library's own items, and where it lives.

    compose/<model>/<version>/composer.safetensors, composer.json

A composer belongs to one model version (its text tower and its vectors): searching under
another version uses the `sum` method and says why, until one is trained for that version.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..compose.composer import Composer
from ..compose.models import count_flops, to_square
from ..compose.settings import ComposeSettings
from ..compose.slots import TokenSlots
from ..compose.training import train_light_encoder, train_token_learner
from ..encoders import Encoder
from ..errors import SashieError
from ..store.catalog import ItemRow
from .pictures import Pictures

MIN_ITEMS = 16  # fewer items than this teach a token learner nothing


@dataclass
class ComposeReport:
    folder: Path
    items: int  # vectors the token learner trained on
    crops: int  # crops the light encoder trained on (0: no light encoder)
    token_seconds: float
    light_seconds: float
    record: dict


def data_hash(item_ids: np.ndarray, vectors: np.ndarray) -> str:
    digest = hashlib.sha256(np.ascontiguousarray(item_ids, np.int64).tobytes())
    digest.update(np.ascontiguousarray(vectors, np.float32).tobytes())
    return digest.hexdigest()[:16]


def train_composer(
    *,
    folder: Path,
    encoder: Encoder,
    version: str,
    item_ids: np.ndarray,
    vectors: np.ndarray,
    rows_of: Callable[[list[int]], list[ItemRow]],
    pictures: Pictures,
    settings: ComposeSettings,
    device: str,
    progress: Callable[[str, int, int, float | None], None],
    query_like: tuple[np.ndarray, np.ndarray] | None = None,
) -> ComposeReport:
    """Train the token learner on `vectors` (the live, kept items of the active version) and,
    with `settings.light`, the light encoder on crops of up to `light_items` of them, plus
    `query_like` (pictures like those searched with, as light-encoder squares, and the
    gallery model's vectors of them); save the composer into `folder` (replacing one there,
    only once all is trained)."""
    if len(vectors) < MIN_ITEMS:
        raise SashieError(
            f"the library has {len(vectors)} items to learn from; composed search needs at "
            f"least {MIN_ITEMS} (index more pages first)"
        )
    slots = TokenSlots(encoder)
    started = time.perf_counter()

    def report(update: dict) -> None:
        progress(update["stage"], update["done"], update["total"], update.get("loss"))

    learner, losses = train_token_learner(
        slots,
        vectors,
        vectors,
        vectors,
        settings,
        steps=settings.steps,
        device=device,
        progress=report,
    )
    token_seconds = time.perf_counter() - started
    record = {
        "model_id": encoder.model_id,
        "version": version,
        "items": len(vectors),
        "data_hash": data_hash(item_ids, vectors),
        "settings": settings.as_dict(),
        "trained": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "token_seconds": round(token_seconds, 1),
        "token_losses": losses,
    }
    composer = Composer(learner, record)
    crops = 0
    light_seconds = 0.0
    if settings.light:
        started = time.perf_counter()
        rng = np.random.default_rng(settings.seed)
        chosen = np.sort(rng.permutation(len(item_ids))[: settings.light_items])
        pixels, kept = _crops(
            rows_of([int(i) for i in item_ids[chosen]]), pictures, settings.light_side, progress
        )
        targets = vectors[chosen][kept]
        light, light_losses, agreement = train_light_encoder(
            pixels, targets, settings, device=device, progress=report, extra=query_like
        )
        light_inputs = light.encode(pixels)
        light_learner, tuned_losses = train_token_learner(
            slots,
            light_inputs,
            targets,
            vectors,
            settings,
            steps=settings.light_steps,
            device=device,
            start=learner,
            progress=report,
        )
        light_seconds = time.perf_counter() - started
        crops = len(pixels)
        composer.light, composer.light_learner = light, light_learner
        record.update(
            light_seconds=round(light_seconds, 1),
            light_crops=crops,
            light_query_like=0 if query_like is None else len(query_like[0]),
            light_losses=light_losses,
            light_agreement=round(agreement, 4),
            light_flops=count_flops(light, torch.zeros(1, 3, light.side, light.side)),
            light_parameters=sum(p.numel() for p in light.parameters()),
            light_token_losses=tuned_losses,
        )
    _save(composer, folder)
    return ComposeReport(folder, len(vectors), crops, token_seconds, light_seconds, record)


def _crops(
    rows: list[ItemRow],
    pictures: Pictures,
    side: int,
    progress: Callable[[str, int, int, float | None], None],
) -> tuple[np.ndarray, np.ndarray]:
    """The items' pictures as side x side squares, each page decoded once; returns them and
    the positions (in `rows`) of the items whose page could be read."""
    by_page: dict[str, list[int]] = defaultdict(list)
    for position, row in enumerate(rows):
        by_page[row.page].append(position)
    out = np.zeros((len(rows), side, side, 3), np.uint8)
    ok = np.zeros(len(rows), bool)

    def cut(positions: list[int]) -> list[int]:
        try:
            images = pictures.crops_of_page([rows[p] for p in positions], 2 * side)
        except (SashieError, OSError):
            return []
        for position, image in zip(positions, images):
            out[position] = to_square(image, side)
        return positions

    done = 0
    with ThreadPoolExecutor(min(4, os.cpu_count() or 1)) as pool:
        for finished in pool.map(cut, by_page.values()):
            ok[finished] = True
            done += 1
            progress("crops", done, len(by_page), None)
    kept = np.nonzero(ok)[0]
    if len(kept) < MIN_ITEMS:
        raise SashieError("too few of the library's pages could be read to train the light encoder")
    return out[kept], kept


def _save(composer: Composer, folder: Path) -> None:
    """Write beside the target, then swap: a crash leaves the old composer or the new one."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".new-", dir=folder.parent))
    try:
        composer.save(staging)
        old = None
        if folder.exists():
            old = folder.with_name(f".old-{folder.name}-{os.getpid()}")
            folder.rename(old)
        staging.rename(folder)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
