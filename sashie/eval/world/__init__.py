"""The evaluation world: synthetic book pages with real artists' drawings and ground truth.

    make_world(out, pages=2000, seed=7)               # version 2: single pages
    make_world(out, pages=2000, seed=7, version=3)    # version 3: scanned spreads

writes OUT/pages/000000.jpg ..., OUT/truth.jsonl (one line a page: its illustrations with
bbox, concepts and style, its text blocks), OUT/world.json (seed, sizes, the vocabulary
split, the concepts with their names, the artists' credits) and OUT/labels.csv (every
concept as a class with its CLDR keywords: `sashie classify LIB --labels OUT/labels.csv`).
Same seed and version, same bytes.

Version 2 draws single pages (1600 x 2400) with emoji illustrations; every figure measured
before the spread world was drawn on it. Version 3 draws two-page spreads as a library scans
them (1600 x 1200: scanner bed, colour chart, ruler, label, brush-written columns, woodblock
line art; `spreads.py`); it needs Debian's brush fonts, openclipart-svg and librsvg2-bin.
"""

from __future__ import annotations

import io
import json
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ...errors import SashieError
from .artists import CREDITS, Artists, Concept
from .labels import write_label_file
from .pages import PAGE_SIZE, make_page
from .spreads import SPREAD_SIZE, check_installed, make_spread
from .vocab import QUERY_SHARE, Vocabulary, vocabulary
from .woodblock import CLIPART_CREDIT
from .writing import FONT_CREDIT

WORLD_VERSION = 2  # 2: the truth holds a box for each concept's figure
SPREAD_VERSION = 3  # 3: two-page spreads as scanned, with the scanner's furniture
VERSIONS = (WORLD_VERSION, SPREAD_VERSION)


class ConceptPicker:
    """Chooses the concepts of an illustration: query concepts take QUERY_SHARE of draws.

    `exclude` leaves concepts out (training collections never draw the held-out ones)."""

    def __init__(self, vocab: Vocabulary, exclude: frozenset[str] = frozenset()) -> None:
        by_key = vocab.by_key
        self.query = [by_key[k] for k in vocab.query if k not in exclude]
        query = set(vocab.query)
        self.rest = [c for c in vocab.concepts if c.key not in query and c.key not in exclude]

    def __call__(self, rng: np.random.Generator, n: int) -> list[Concept]:
        chosen: list[Concept] = []
        while len(chosen) < n:
            pool = self.query if rng.random() < QUERY_SHARE else self.rest
            concept = pool[int(rng.integers(len(pool)))]
            if concept not in chosen:
                chosen.append(concept)
        return chosen


_worker_state: dict = {}


def _render(job: tuple[int, int, tuple[int, int], int]) -> tuple[bytes, dict]:
    seed, index, size, version = job
    if "artists" not in _worker_state:
        _worker_state["artists"] = Artists()
        _worker_state["picker"] = ConceptPicker(vocabulary())
    rng = np.random.default_rng([seed, index])
    draw = make_spread if version == SPREAD_VERSION else make_page
    image, truth = draw(rng, _worker_state["artists"], _worker_state["picker"], size)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=85)
    return buffer.getvalue(), truth.as_dict()


def make_world(
    out: str | os.PathLike,
    *,
    pages: int,
    seed: int,
    size: tuple[int, int] | None = None,
    version: int = WORLD_VERSION,
    workers: int | None = None,
    progress: bool = False,
) -> Path:
    """Generate a collection of `pages` pages (spreads in version 3) with ground truth into
    `out`; `size` defaults to the version's own (1600 x 2400 pages, 1600 x 1200 spreads)."""
    out = Path(out)
    if pages < 1:
        raise SashieError("--pages must be at least 1")
    if version not in VERSIONS:
        raise SashieError(f"world version {version} is not drawn here; choose 2 or 3")
    if version == SPREAD_VERSION:
        check_installed()
    size = size or (SPREAD_SIZE if version == SPREAD_VERSION else PAGE_SIZE)
    if out.exists() and any(out.iterdir()):
        raise SashieError(f"{out} exists and is not empty; choose a new folder")
    vocab = vocabulary()
    (out / "pages").mkdir(parents=True, exist_ok=True)
    jobs = [(seed, i, size, version) for i in range(pages)]
    workers = workers or os.cpu_count() or 1
    lines = []
    with ProcessPoolExecutor(workers) as pool:
        results = pool.map(_render, jobs, chunksize=4)
        for i, (jpeg, truth) in enumerate(
            tqdm(results, total=pages, unit="page", desc="world", disable=not progress)
        ):
            name = f"pages/{i:06d}.jpg"
            (out / name).write_bytes(jpeg)
            lines.append(json.dumps({"page": name, **truth}, ensure_ascii=False))
    (out / "truth.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    meta = {
        "world_version": version,
        "seed": seed,
        "pages": pages,
        "page_size": list(size),
        "vocabulary": vocab.as_dict(),
        "concepts": [
            {"key": c.key, "char": c.char, "en": c.en, "ja": c.ja} for c in vocab.concepts
        ],
        "artists": CREDITS
        | ({"openclipart": CLIPART_CREDIT, "brush fonts": FONT_CREDIT} if version == 3 else {}),
    }
    (out / "world.json").write_text(
        json.dumps(meta, ensure_ascii=False, indent=1) + "\n", encoding="utf-8"
    )
    write_label_file(out / "labels.csv", vocab.concepts)
    return out


def world_meta(world: str | os.PathLike) -> dict:
    """A world's world.json: its seed, page count, vocabulary and credits."""
    path = Path(world) / "world.json"
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise SashieError(f"{world} is not a world made by `sashie world` ({e})") from None
    if meta.get("world_version") not in VERSIONS:
        raise SashieError(
            f"{world} was drawn by another version of `sashie world` "
            f"({meta.get('world_version')}, this one draws {' and '.join(map(str, VERSIONS))})"
        )
    return meta


def read_truth(world: str | os.PathLike, name: str = "truth.jsonl") -> list[dict]:
    """The ground truth of a world, one dict a page, with `page` made an absolute path
    (`name`: the truth's file: printings.jsonl for a printings world)."""
    world = Path(world)
    rows = []
    for line in (world / name).read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        row["page"] = str((world / row["page"]).resolve())
        rows.append(row)
    return rows
