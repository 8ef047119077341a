"""Composed search's trained part in a library: training a composer for the active model
version on the library's own items, and where it lives.

    compose/<model>/<version>/composer.safetensors, composer.json

A composer belongs to one model version (its text tower and its vectors): searching under
another version uses the `sum` method and says why, until one is trained for that version.

Training takes minutes to hours (the token learner runs the text tower forward and back at
every step), so a run in a terminal first times a few steps of each stage on this machine,
prints what it will do and about how long it will take (`ComposePlan`), and shows one bar
for the whole run with the time left.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..compose.composer import Composer
from ..compose.models import count_flops, to_square
from ..compose.settings import ComposeSettings
from ..compose.slots import TokenSlots
from ..compose.token_training import train_light_encoder, train_token_learner
from ..encoders import Encoder
from ..errors import SashieError
from ..store.catalog import ItemRow
from .pictures import Pictures

MIN_ITEMS = 16  # fewer items than this teach a token learner nothing


@dataclass(frozen=True, kw_only=True)
class ComposePlan:
    """What a composer's training will do and about how long each part takes here: seconds
    a unit, timed on a few steps of each stage before the run."""

    token_steps: int  # the token learner's, on the items' vectors
    pages: int  # pages decoded for the light encoder's crops (0: no light encoder)
    crops: int
    light_steps: int  # the light encoder's updates
    light_token_steps: int  # the token learner's again, on the light encoder's vectors
    per_token_step: float
    per_page: float  # with the page readers working side by side
    per_light_step: float

    def stages(self) -> list[tuple[str, float]]:
        """(stage, planned seconds), in the order they run (as `progress` names them)."""
        stages = [("tokens", self.token_steps * self.per_token_step)]
        if self.pages:
            stages += [
                ("crops", self.pages * self.per_page),
                ("light", self.light_steps * self.per_light_step),
                ("tokens", self.light_token_steps * self.per_token_step),
            ]
        return stages

    @property
    def seconds(self) -> float:
        return sum(seconds for _, seconds in self.stages())

    def describe(self) -> str:
        """One line: the work and the time it should take."""
        steps = self.token_steps + self.light_token_steps
        text = f"about {_duration(self.seconds)}: {steps:,} token-learner steps"
        if self.pages:
            text += (
                f", {self.crops:,} crops from {self.pages:,} pages and {self.light_steps:,} "
                "light-encoder steps"
            )
        return text + f" (a token-learner step takes {self.per_token_step:.2f} s here)"


class PlannedBar:
    """One terminal bar for the whole run, in planned seconds: each stage's progress fills
    its share of the estimate, so the time left covers the stages still to come."""

    def __init__(self, plan: ComposePlan) -> None:
        self.stages = plan.stages()
        self.index = -1
        self.stage: str | None = None
        self.bar = tqdm(
            total=max(1, round(plan.seconds)),
            desc="composer",
            bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed} elapsed, {remaining} left",
            leave=False,
        )

    def update(self, stage: str, done: int, total: int) -> None:
        if stage != self.stage:
            self.stage, self.index = stage, min(self.index + 1, len(self.stages) - 1)
        before = sum(seconds for _, seconds in self.stages[: self.index])
        position = before + self.stages[self.index][1] * done / max(total, 1)
        self.bar.update(max(0, round(position) - self.bar.n))

    def close(self) -> None:
        self.bar.close()


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    if seconds < 5400:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


@dataclass(kw_only=True)
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
    progress: Callable[[dict], None] | None = None,
    query_like: tuple[np.ndarray, np.ndarray] | None = None,
    terminal: bool = False,
) -> ComposeReport:
    """Train the token learner on `vectors` (the live, kept items of the active version) and,
    with `settings.light`, the light encoder on crops of up to `light_items` of them, plus
    `query_like` (pictures like those searched with, as light-encoder squares, and the
    gallery model's vectors of them); save the composer into `folder` (replacing one there,
    only once all is trained). `terminal`: print the plan and its estimate first, then show
    one bar with the time left (stderr)."""
    if len(vectors) < MIN_ITEMS:
        raise SashieError(
            f"the library has {len(vectors)} items to learn from; composed search needs at "
            f"least {MIN_ITEMS} (index more pages first)"
        )
    slots = TokenSlots(encoder)
    rng = np.random.default_rng(settings.seed)
    chosen = np.sort(rng.permutation(len(item_ids))[: settings.light_items])
    light_rows = rows_of([int(i) for i in item_ids[chosen]]) if settings.light else []
    extra = 0 if query_like is None else len(query_like[0])
    plan = None
    if terminal:
        plan = plan_composer(slots, vectors, light_rows, pictures, settings, device, extra)
        tqdm.write(f"composer: {plan.describe()}", file=sys.stderr)
    bar = None if plan is None else PlannedBar(plan)
    report = _reporter(progress, bar)
    started = time.perf_counter()

    try:
        learner, losses = train_token_learner(
            slots, vectors, vectors, vectors, settings,
            steps=settings.steps, device=device, progress=report,
        )  # fmt: skip
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
        if plan is not None:
            record["estimated_seconds"] = round(plan.seconds, 1)
        composer = Composer(learner, record)
        crops = 0
        light_seconds = 0.0
        if settings.light:
            crops, light_seconds = _add_light(
                composer=composer, slots=slots, vectors=vectors, chosen=chosen,
                light_rows=light_rows, pictures=pictures, settings=settings, device=device,
                report=report, query_like=query_like,
            )  # fmt: skip
        _save(composer, folder)
        return ComposeReport(
            folder=folder, items=len(vectors), crops=crops, token_seconds=token_seconds,
            light_seconds=light_seconds, record=record,
        )  # fmt: skip
    finally:
        if bar is not None:
            bar.close()


def _reporter(
    progress: Callable[[dict], None] | None, bar: PlannedBar | None
) -> Callable[[dict], None]:
    """Where a stage's progress goes: the caller's callback and the terminal's bar."""

    def report(update: dict) -> None:
        if progress is not None:
            progress(update)
        if bar is not None:
            bar.update(update["stage"], update["done"], update["total"])

    return report


def _add_light(
    *,
    composer: Composer,
    slots: TokenSlots,
    vectors: np.ndarray,
    chosen: np.ndarray,
    light_rows: list[ItemRow],
    pictures: Pictures,
    settings: ComposeSettings,
    device: str,
    report: Callable[[dict], None],
    query_like: tuple[np.ndarray, np.ndarray] | None,
) -> tuple[int, float]:
    """The light encoder, distilled on the crops of `light_rows` (the `chosen` rows of
    `vectors`), and a token learner tuned on its vectors, into `composer` and its record;
    the crops it learnt from and the seconds it took."""
    started = time.perf_counter()
    pixels, kept = _crops(light_rows, pictures, settings.light_side, report)
    targets = vectors[chosen][kept]
    light, light_losses, agreement = train_light_encoder(
        pixels, targets, settings, device=device, progress=report, extra=query_like
    )
    light_learner, tuned_losses = train_token_learner(
        slots,
        light.encode(pixels),
        targets,
        vectors,
        settings,
        steps=settings.light_steps,
        device=device,
        start=composer.learner,
        progress=report,
    )
    seconds = time.perf_counter() - started
    composer.light, composer.light_learner = light, light_learner
    composer.record.update(
        light_seconds=round(seconds, 1),
        light_crops=len(pixels),
        light_query_like=0 if query_like is None else len(query_like[0]),
        light_losses=light_losses,
        light_agreement=round(agreement, 4),
        light_flops=count_flops(light, torch.zeros(1, 3, light.side, light.side)),
        light_parameters=sum(p.numel() for p in light.parameters()),
        light_token_losses=tuned_losses,
    )
    return len(pixels), seconds


def plan_composer(
    slots: TokenSlots,
    vectors: np.ndarray,
    light_rows: list[ItemRow],
    pictures: Pictures,
    settings: ComposeSettings,
    device: str,
    extra: int,
) -> ComposePlan:
    """Time three token-learner steps, one page read and two light-encoder steps here, and
    plan the run from them (a few seconds)."""
    marks: list[float] = []
    train_token_learner(
        slots, vectors, vectors, vectors, settings, steps=3, device=device,
        progress=lambda _: marks.append(time.perf_counter()),
    )  # fmt: skip
    per_token = (marks[-1] - marks[0]) / 2  # the first step, warming up, is not counted
    pages = per_page = per_light = 0.0
    crops = light_steps = 0
    if light_rows:
        first = [r for r in light_rows if r.page == light_rows[0].page]
        started = time.perf_counter()
        with suppress(SashieError, OSError):  # the run will say so
            pictures.crops_of_page(first, 2 * settings.light_side)
        per_page = (time.perf_counter() - started) / _readers()
        pages = len({r.page for r in light_rows})
        crops = len(light_rows)
        train = crops - (crops // 10 if crops >= 20 else 0) + extra
        batch = min(256, train)
        light_steps = max(1, train // batch) * settings.light_epochs
        per_light = _light_step_seconds(settings, vectors.shape[1], batch, device)
    return ComposePlan(
        token_steps=settings.steps,
        pages=int(pages),
        crops=crops,
        light_steps=light_steps,
        light_token_steps=settings.light_steps if light_rows else 0,
        per_token_step=per_token,
        per_page=per_page,
        per_light_step=per_light,
    )


def _light_step_seconds(settings: ComposeSettings, dim: int, batch: int, device: str) -> float:
    """One light-encoder update's time here: two updates on random pictures, the second
    timed."""
    rng = np.random.default_rng(0)
    count = batch + batch // 8 + 2  # a tenth is held out: one full batch remains
    squares = rng.integers(0, 256, (count, settings.light_side, settings.light_side, 3), np.uint8)
    targets = rng.normal(size=(count, dim)).astype(np.float32)
    targets /= np.linalg.norm(targets, axis=1, keepdims=True)
    marks: list[float] = []
    train_light_encoder(
        squares, targets, replace(settings, light_epochs=2), device=device,
        progress=lambda _: marks.append(time.perf_counter()),
    )  # fmt: skip
    return marks[-1] - marks[-2] if len(marks) >= 2 else 0.0


def _readers() -> int:
    return min(4, os.cpu_count() or 1)


def _crops(
    rows: list[ItemRow],
    pictures: Pictures,
    side: int,
    progress: Callable[[dict], None],
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
    with ThreadPoolExecutor(_readers()) as pool:
        for finished in pool.map(cut, by_page.values()):
            ok[finished] = True
            done += 1
            progress({"stage": "crops", "done": done, "total": len(by_page), "loss": None})
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
