"""A composer's settings, with their defaults, and its record file (composer.json): what a
command reads before any model loads, so no torch here."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import SashieError

COMPOSE_DIR = "compose"  # in a library: compose/<model>/<version>/
RECORD = "composer.json"


@dataclass
class ComposeSettings:
    tokens: int = 2  # M pseudo-words a picture becomes (ISA: more can hurt; 2 chosen on seed 2000)
    steps: int = 1500  # token learner updates
    batch: int = 128
    negatives: int = 1024  # other items of the collection in each step's InfoNCE
    lr: float = 1e-3
    temperature: float = 0.05
    word_weight: float = 0.1  # the word-likeness regulariser
    light: bool = True  # also the asymmetric variant's light encoder
    light_side: int = 48  # the light encoder's input square
    light_width: int = 24  # its first layer's channels (later layers 2x, 4x, 8x)
    light_epochs: int = 12
    light_items: int = 20_000  # at most this many crops are decoded to train it
    light_steps: int = 500  # token learner updates on the light encoder's vectors
    seed: int = 0

    def check(self) -> None:
        if not 1 <= self.tokens <= 8:
            raise SashieError("--tokens must be between 1 and 8")
        if self.steps < 1 or self.batch < 2 or self.negatives < 0:
            raise SashieError("--steps must be at least 1")
        if not 16 <= self.light_side <= 224:
            raise SashieError("the light encoder's side must be between 16 and 224")
        if not 4 <= self.light_width <= 128:
            raise SashieError("the light encoder's width must be between 4 and 128")

    def as_dict(self) -> dict:
        return asdict(self)


def read_record(folder: Path) -> dict | None:
    """A composer's composer.json, or None when there is none or it is no JSON object
    (nothing else is loaded)."""
    try:
        record = json.loads((folder / RECORD).read_text(encoding="utf-8"))
        return record if isinstance(record, dict) else None
    except (OSError, ValueError):
        return None


def composer_folder(library: Path, vectors_slug: str, version: str) -> Path:
    """Where a model version's composer lives in a library."""
    return library / COMPOSE_DIR / vectors_slug / version
