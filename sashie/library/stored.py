"""A model's stored vectors as the library sees them: the committed rows of its vector file,
each row's item, and which of those items still exist (a page that changed loses its items;
their rows stay in the file until it is rewritten)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import SashieError
from ..store.vectors import VectorFile


@dataclass(frozen=True)
class StoredVectors:
    """One vector file's committed rows: `item_ids[r]` is row r's item, `live[r]` whether it
    still exists."""

    file: VectorFile
    rows: int
    item_ids: np.ndarray
    live: np.ndarray

    @classmethod
    def read(cls, file: VectorFile, rows: int, live_ids: np.ndarray) -> StoredVectors:
        item_ids = file.item_ids(rows)
        return cls(file, rows, item_ids, np.isin(item_ids, live_ids))

    def vectors(self) -> np.ndarray:
        """Every committed row, memory-mapped (rows x dim float16)."""
        return self.file.vectors(self.rows)

    def load_live(self, *, progress: bool = False) -> np.ndarray:
        """The live rows, float16 (memory-mapped when every row is live)."""
        return self.file.load_rows(self.rows, self.live, progress=progress)

    def rows_of(self, wanted: np.ndarray) -> np.ndarray:
        """The row of each wanted item id (live items only)."""
        return rows_of(np.where(self.live, self.item_ids, -1), wanted)

    def sample(self, count: int, seed: int, *, avoid: np.ndarray) -> np.ndarray:
        """Up to `count` random live rows whose items are not in `avoid`, as float32 vectors
        read from the file (a few rows never load the whole index)."""
        live_rows = np.nonzero(self.live)[0]
        allowed = ~np.isin(self.item_ids[live_rows], avoid)
        candidates = np.nonzero(allowed)[0]
        rng = np.random.default_rng(seed)
        chosen = np.sort(rng.choice(candidates, min(count, len(candidates)), replace=False))
        return np.asarray(self.vectors()[live_rows[chosen]], np.float32)


def rows_of(row_ids: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """The row of each wanted item id in `row_ids`, or an error naming one that has none."""
    order = np.argsort(row_ids, kind="stable")
    known = row_ids[order]
    at = np.minimum(np.searchsorted(known, wanted), max(len(known) - 1, 0))
    found = known[at] == wanted if len(known) else np.zeros(len(wanted), bool)
    if not found.all():
        raise SashieError(f"item {int(wanted[~found][0])} has no vector of this model")
    return order[at]
