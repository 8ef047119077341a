"""Where keep/exclude marks come from: a CSV, or a person at the terminal looking at crops.
Each gives item ids and keep flags for `lib.filter.mark` (an evaluation world's ground truth
gives them too: `sashie.eval.truth.ground_truth_marks`)."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

from ..errors import SashieError

TRUE_WORDS = {"keep", "1", "true", "yes", "k", "illustration"}
FALSE_WORDS = {"exclude", "0", "false", "no", "e", "drop"}


def sample_items(lib, n: int, seed: int, *, unmarked: bool = True) -> list[int]:
    """`n` items drawn at random (seeded), by default among those not marked yet."""
    ids = lib.item_ids()
    if unmarked:
        ids = ids[~np.isin(ids, lib.filter.marks()[0])]
    if len(ids) == 0:
        raise SashieError("no items to mark" + (" left" if unmarked else ""))
    chosen = np.random.default_rng(seed).choice(len(ids), min(n, len(ids)), replace=False)
    return sorted(int(i) for i in ids[chosen])


def read_mark_csv(path: str | os.PathLike) -> tuple[list[int], list[bool]]:
    """Rows `item,mark` (keep/exclude, 1/0, yes/no); a header row is allowed."""
    ids, keep = [], []
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            for number, row in enumerate(csv.reader(f), start=1):
                if not row or not "".join(row).strip():
                    continue
                if len(row) < 2:
                    raise SashieError(f"{path}:{number}: expected item,mark")
                item, mark = row[0].strip(), row[1].strip().lower()
                if number == 1 and not item.isdigit():
                    continue  # a header
                if not item.isdigit() or mark not in TRUE_WORDS | FALSE_WORDS:
                    raise SashieError(
                        f"{path}:{number}: expected an item id and keep/exclude, "
                        f"got {','.join(row)!r}"
                    )
                ids.append(int(item))
                keep.append(mark in TRUE_WORDS)
    except OSError as e:
        raise SashieError(f"cannot read {path} ({e.strerror})") from None
    return ids, keep


def save_crop(lib, item_id: int, folder: Path) -> Path:
    """The item's crop as a PNG in `folder` (at most 800 pixels a side), for a person to see."""
    path = folder / f"item-{item_id}.png"
    lib.crop(item_id, size=800).save(path)
    return path
