"""One model's vectors in a library: float16 rows on disk, memory-mapped, with their item ids.

Two flat files in the model's folder, `vectors.f16` (rows x dim, float16) and `items.i64`
(one item id a row). The number of rows that count is kept in the catalog and changes only in
the same SQLite transaction that records the items, after the rows are written and synced.
Rows past that number are left-overs of an interrupted run: they are ignored on reading and
overwritten by the next write, so a crash at any moment leaves a consistent library.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..errors import Damaged

VECTOR_FILE = "vectors.f16"
ITEM_FILE = "items.i64"


class VectorFile:
    def __init__(self, folder: Path, dim: int) -> None:
        self.folder = folder
        self.dim = dim
        self.vector_path = folder / VECTOR_FILE
        self.item_path = folder / ITEM_FILE

    def write_at(self, row: int, vectors: np.ndarray, item_ids: np.ndarray) -> int:
        """Write rows starting at `row` (the committed count), sync them, return the new count."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float16)
        item_ids = np.ascontiguousarray(item_ids, dtype=np.int64)
        if vectors.shape != (len(item_ids), self.dim):
            raise ValueError(f"expected {len(item_ids)}x{self.dim} vectors, got {vectors.shape}")
        self.folder.mkdir(parents=True, exist_ok=True)
        end = row + len(item_ids)
        for path, data, width in (
            (self.vector_path, vectors, self.dim * 2),
            (self.item_path, item_ids, 8),
        ):
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                os.pwrite(fd, data.tobytes(), row * width)
                os.ftruncate(fd, end * width)
                os.fsync(fd)
            finally:
                os.close(fd)
        return end

    def vectors(self, rows: int) -> np.ndarray:
        """The first `rows` vectors, memory-mapped read-only (rows x dim float16)."""
        if rows == 0:
            return np.zeros((0, self.dim), np.float16)
        self._holds(self.vector_path, rows, self.dim * 2)
        return np.memmap(self.vector_path, dtype=np.float16, mode="r", shape=(rows, self.dim))

    def item_ids(self, rows: int) -> np.ndarray:
        if rows == 0:
            return np.zeros(0, np.int64)
        self._holds(self.item_path, rows, 8)
        return np.fromfile(self.item_path, dtype=np.int64, count=rows)

    def _holds(self, path: Path, rows: int, width: int) -> None:
        """Raise `Damaged` unless the file holds at least the rows the catalog counts."""
        try:
            held = path.stat().st_size // width
        except OSError:
            held = 0
        if held < rows:
            raise Damaged(str(path), f"it holds {held:,} rows; the catalog counts {rows:,}")

    def load_rows(
        self,
        rows: int,
        keep: np.ndarray | None = None,
        *,
        step: int = 1 << 16,
        progress: bool = False,
    ) -> np.ndarray:
        """The kept rows among the first `rows`, float16: the memory map itself when every
        row is kept (nothing is read until used), else a copy in RAM made block by block."""
        stored = self.vectors(rows)
        if keep is None or keep.all():
            return stored
        matrix = np.empty((int(keep.sum()), self.dim), np.float16)
        filled = 0
        bar = tqdm(
            total=rows,
            desc="loading vectors",
            unit="vec",
            unit_scale=True,
            disable=not progress or rows < 8 * step,
            leave=False,
        )
        for start in range(0, rows, step):
            block = stored[start : start + step][keep[start : start + step]]
            matrix[filled : filled + len(block)] = block
            filled += len(block)
            bar.update(min(step, rows - start))
        bar.close()
        return matrix
