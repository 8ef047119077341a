"""Where keep/exclude labels come from: a CSV, a person at the terminal, or a world's ground
truth (for experiments). Each returns item ids and keep flags for `Library.label`."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

from .errors import SashieError

TRUE_WORDS = {"keep", "1", "true", "yes", "k", "illustration"}
FALSE_WORDS = {"exclude", "0", "false", "no", "e", "drop"}


def sample_items(lib, n: int, seed: int, *, unlabelled: bool = True) -> list[int]:
    """`n` items drawn at random (seeded), by default among those not labelled yet."""
    ids = lib.catalog.live_item_ids()
    if unlabelled:
        ids = ids[~np.isin(ids, lib.catalog.labels()[0])]
    if len(ids) == 0:
        raise SashieError("no items to label" + (" left" if unlabelled else ""))
    chosen = np.random.default_rng(seed).choice(len(ids), min(n, len(ids)), replace=False)
    return sorted(int(i) for i in ids[chosen])


def read_label_csv(path: str | os.PathLike) -> tuple[list[int], list[bool]]:
    """Rows `item,label` (label keep/exclude, 1/0, yes/no); a header row is allowed."""
    ids, keep = [], []
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            for number, row in enumerate(csv.reader(f), start=1):
                if not row or not "".join(row).strip():
                    continue
                if len(row) < 2:
                    raise SashieError(f"{path}:{number}: expected item,label")
                item, label = row[0].strip(), row[1].strip().lower()
                if number == 1 and not item.isdigit():
                    continue  # a header
                if not item.isdigit() or label not in TRUE_WORDS | FALSE_WORDS:
                    raise SashieError(f"{path}:{number}: expected an item id and keep/exclude, "
                                      f"got {','.join(row)!r}")
                ids.append(int(item))
                keep.append(label in TRUE_WORDS)
    except OSError as e:
        raise SashieError(f"cannot read {path} ({e.strerror})") from None
    return ids, keep


def judge_library_items(lib, world: str | os.PathLike, item_ids: list[int] | None = None
                        ) -> tuple[list[int], np.ndarray, np.ndarray]:
    """(item ids, keep, text_only) of the library's items on the world's pages, judged by its
    ground truth (see `judge_items`); all items when `item_ids` is None."""
    from .world import judge_items, read_truth

    if not (Path(world) / "truth.jsonl").is_file():
        raise SashieError(f"{world} is not an evaluation world (no truth.jsonl)")
    truth = read_truth(world)
    pages = {row["page"] for row in truth}
    rows = [r for r in lib.catalog.items(item_ids) if r.page in pages]
    if not rows:
        raise SashieError(f"none of the library's pages are in {world}")
    keep, text_only = judge_items([(r.page, r.bbox) for r in rows], truth)
    return [r.id for r in rows], keep, text_only


def ground_truth_labels(lib, world: str | os.PathLike, n: int, seed: int
                        ) -> tuple[list[int], list[bool]]:
    """`n` random items labelled from an evaluation world's ground truth."""
    ids, keep, _ = judge_library_items(lib, world, sample_items(lib, n, seed, unlabelled=False))
    return ids, keep.tolist()


def save_crop(lib, item_id: int, folder: Path) -> Path:
    """The item's crop as a PNG in `folder`, for a person to look at."""
    from .images import load_image

    row = lib.catalog.items([item_id])[0]
    image = load_image(row.page).crop(row.bbox)
    image.thumbnail((800, 800))
    path = folder / f"item-{item_id}.png"
    image.save(path)
    return path
