"""Ranking: top-k by inner product over float16 vectors (memory-mapped or in RAM).

The vectors stay float16: no float32 copy of the collection is ever held. A plain query is
scanned roughly in the precision this machine scans fastest within the memory allowed
(scan.py: 8-bit codes unless told otherwise), and every row within the rounding error of the
k-th best is re-scored exactly, so the ranking is the exact one. Large libraries have an ANN
index (sashie/search/ann.py) that proposes candidates instead of the scan; they are re-scored
exactly the same way.

A query is a vector, optionally with a set of dimensions S. With S, every library vector is
restricted to S and re-normalized before the inner product, as the seed paper's multi-image
query does. That is computed block by block: the dot product with the query (zero outside S)
and each row's norm over S. With an ANN index, the candidates come from the full query and are
re-ranked in the subspace (more of them; an exact scan when too few are allowed).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

import numpy as np

from .ann import FILTERED_COVER, AnnIndex
from .scan import BLOCK_ROWS, MachineScans, RoughScan, build, torch_blocks, torch_view

# torch is imported by the methods that scan (a cached import after the first): a command
# that only reads a library, or reports a mistake, starts without it

DEFAULT_K = 100  # results a search returns unless asked for another number
FLOAT32_TOLERANCE = 1e-4  # a float32 sum of 512 products is within 1e-6 of the float64 one
# ANN candidates a result for a query restricted to dimensions, found by the restricted query
# in the index's usual cells (seed-2000 world at 1.14 M rows, multi-image: 15 a result 0.986,
# 20 0.988, 10 0.975 with 12 cells; 20 with 36 cells 0.995 at 1.5x the time)
SUBSPACE_CANDIDATES = 20
FEW_ALLOWED = 8192  # rows a filter leaves or fewer: each is scored, no index asked
READ_ROWS = 16_384  # rows taken at once or fewer are read from the file, not the map
INLINE_VALUES = 16_384  # under torch's grain (32,768): an operation this small stays in this thread


def cv_dimensions(examples: np.ndarray, d: int) -> np.ndarray:
    """The d dimensions whose coefficient of variation σ_j/|μ_j| over the examples is lowest."""
    examples = np.asarray(examples, dtype=np.float64)
    mean = examples.mean(axis=0)
    std = examples.std(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        cv = np.where(np.abs(mean) > 0, std / np.abs(mean), np.inf)
    d = min(d, examples.shape[1])
    return np.sort(np.argsort(cv, kind="stable")[:d])


def random_dimensions(dim: int, d: int, seed: int) -> np.ndarray:
    """The paper's control: d dimensions drawn at random with a seed."""
    return np.sort(np.random.default_rng(seed).choice(dim, size=min(d, dim), replace=False))


def restrict(vector: np.ndarray, dims: np.ndarray | None) -> np.ndarray:
    """The vector zeroed outside `dims` (all kept when None), re-normalized, float32."""
    vector = np.asarray(vector, dtype=np.float32)
    if dims is not None:
        kept = np.zeros_like(vector)
        kept[dims] = vector[dims]
        vector = kept
    norm = np.linalg.norm(vector)
    if norm == 0:
        raise ValueError("the query vector is zero on the selected dimensions")
    return vector / norm


def top_k_allowed(scores: np.ndarray, k: int, exclude: np.ndarray | None) -> np.ndarray:
    """Indices of the k highest scores, best first, never a row the mask `exclude` marks
    (`scores` is changed in place)."""
    if exclude is not None:
        scores[exclude] = -np.inf
    best = top_k(scores, k)
    return best[np.isfinite(scores[best])]


def top_k(scores: np.ndarray, k: int, ties: np.ndarray | None = None) -> np.ndarray:
    """Indices of the k highest scores, best first; equal scores in the order of `ties`
    (item ids; None: the indices), so that a ranking never depends on how it was found."""
    k = min(k, len(scores))
    if k <= 0:
        return np.zeros(0, np.int64)
    if k < len(scores):
        kth = np.partition(scores, len(scores) - k)[len(scores) - k]
        candidates = np.flatnonzero(scores >= kth)
    else:
        candidates = np.arange(len(scores))
    order = np.lexsort((candidates if ties is None else ties[candidates], -scores[candidates]))
    return candidates[order[:k]]


@dataclass(frozen=True)
class AnnSearch:
    """How a search uses the ANN index: not at all (`exact`), or with these settings."""

    exact: bool = False
    nprobe: int | None = None
    ef: int | None = None


class VectorIndex:
    """The searchable rows of one model version: unit vectors as float16 (the memory-mapped
    vector file, or a copy in RAM), the item id of each row, and optionally an ANN index
    over the vector file's rows (`file_rows[i]` is row i's row in that file). `precision`:
    the exact scan's (scan.py; None: the one this machine scans fastest)."""

    def __init__(
        self,
        vectors: np.ndarray,
        item_ids: np.ndarray,
        *,
        ann: AnnIndex | None = None,
        file_rows: np.ndarray | None = None,
        precision: str | None = None,
    ) -> None:
        if vectors.dtype != np.float16:
            vectors = np.ascontiguousarray(vectors, np.float16)
        if not vectors.flags.c_contiguous:
            raise ValueError("VectorIndex needs C-contiguous rows")
        self.vectors = vectors
        self.item_ids = np.asarray(item_ids, dtype=np.int64)
        self._half = torch_view(vectors)
        self.ann = ann
        self.file_rows = np.arange(len(vectors)) if file_rows is None else file_rows
        self._positions: np.ndarray | None = None  # file row -> row here (-1: none)
        self._identity: bool | None = None  # whether each row here is the same file row
        self.precision = precision
        self._file: tuple | None = None  # (open file, byte offset of row 0), at first read
        self._scan: RoughScan | None = None  # built at the first exact scan
        self._scan_lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.item_ids)

    @property
    def dim(self) -> int:
        return self.vectors.shape[1]

    def take(self, rows: np.ndarray, *, read: bool = False) -> np.ndarray:
        """These rows as float32 (rows x dim). With `read`, a few rows of a memory-mapped
        file are read, not touched through the map: each touch maps its neighbours too (the
        kernel maps 64 KiB around a fault), and a few thousand searches would hold the whole
        file resident beside a scan's codes (reading costs 2.5 µs a row, the map 1)."""
        return widened(self._stored(rows, read=read), np.float32)

    def _stored(self, rows: np.ndarray, *, read: bool = False) -> np.ndarray:
        """These rows as they are stored (float16 in a library): `take` before widening."""
        rows = np.asarray(rows)
        if read and 0 < len(rows) <= READ_ROWS and rows.min() >= 0:
            if self._file is None:
                self._file = mapped_file(self.vectors)
            if self._file:
                return read_rows(self._file, rows, self.dim)
        return self.vectors[rows]

    def blocks(self, step: int = BLOCK_ROWS):
        """(first row, float32 block) over every row: for passes that need every vector.
        Each block is written into the same buffer: use it before asking for the next."""
        for start, block in self._torch_blocks(step):
            yield start, block.numpy()

    def products(self, columns: np.ndarray) -> np.ndarray:
        """Every row's exact inner products with the columns (dim x c float32): rows x c."""
        import torch

        cols = torch.from_numpy(np.ascontiguousarray(columns, np.float32))
        out = torch.empty((len(self), cols.shape[1]), dtype=torch.float32)
        for start, block in self._torch_blocks():
            torch.mm(block, cols, out=out[start : start + len(block)])
        return out.numpy()

    def scores(
        self,
        query: np.ndarray,
        dims: np.ndarray | None = None,
        examples: np.ndarray | None = None,
        weight: float = 1.0,
        sharpness: float = 5.0,
    ) -> np.ndarray:
        """Inner products with every row (float32 sums); with `dims`, of rows restricted to
        them and re-normed.

        With `examples` (unit vectors of pictures the query is known to mean, see memory.py),
        each row also gains weight · exp(−sharpness · (1 − its best similarity to one))."""
        query = restrict(query, dims)
        if examples is not None and len(examples) and dims is not None:
            raise ValueError("examples and dimension selection do not combine")
        # in torch throughout: NumPy's BLAS threads between torch's calls would fight its
        # threads for the cores (ten times slower, measured)
        import torch

        q = torch.from_numpy(query)
        out = torch.empty(len(self), dtype=torch.float32)
        if examples is not None and len(examples):
            cols = torch.from_numpy(np.ascontiguousarray(np.vstack([query, examples]).T))
            for start, block in self._torch_blocks():
                products = block @ cols
                nearest = products[:, 1:].amax(dim=1)
                boost = weight * torch.exp(-sharpness * (1.0 - nearest))
                out[start : start + len(block)] = products[:, 0] + boost
        elif dims is not None:
            mask = torch.zeros(self.dim)
            mask[torch.from_numpy(np.asarray(dims, np.int64))] = 1.0
            squares = torch.empty((BLOCK_ROWS, self.dim))
            for start, block in self._torch_blocks():
                square = squares[: len(block)]
                torch.mul(block, block, out=square)
                norms = (square @ mask).clamp_min(1e-12).sqrt()
                out[start : start + len(block)] = (block @ q) / norms
        else:
            for start, block in self._torch_blocks():
                torch.mv(block, q, out=out[start : start + len(block)])
        return out.numpy()

    def _torch_blocks(self, step: int = BLOCK_ROWS):
        """(first row, float32 torch block) over every row, in one reused buffer."""
        return torch_blocks(self._half, step)

    def search(
        self,
        query: np.ndarray,
        k: int = 100,
        dims: np.ndarray | None = None,
        exclude: np.ndarray | None = None,
        examples: np.ndarray | None = None,
        weight: float = 1.0,
        sharpness: float = 5.0,
        how: AnnSearch = AnnSearch(),
        kept: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(item ids, scores) of the k best rows, best first; rows where the boolean mask
        `exclude` is true are never returned (`kept`: how many it lets through, when the
        caller knows). `examples`: see `scores`. With an ANN index (unless `how.exact`),
        candidates come from it and are re-scored exactly."""
        score = _scorer(restrict(query, dims), dims, examples, weight, sharpness)
        rows: np.ndarray | None
        read = False  # the rows re-scored come through the memory map
        if exclude is None:
            kept = len(self)
        elif kept is None:
            kept = len(exclude) - int(np.count_nonzero(exclude))
        if exclude is not None and kept <= FEW_ALLOWED:
            rows = np.flatnonzero(~exclude)  # a narrow filter (a book, a class): scored exactly
        elif self.ann is not None and not how.exact:
            rows = self._ann_candidates(query, k, dims, exclude, kept, examples, how)
        elif dims is None and examples is None:
            scan = self.scan()
            rows = scan.candidates(restrict(query, None), k, exclude)
            read = scan.holds_codes
        else:
            rows = None
        if rows is None:  # a float32 pass over every row, the rows near the k-th re-scored
            rough = self.scores(query, dims, examples, weight, sharpness)
            best = top_k_allowed(rough, k, exclude)
            if len(best) == 0:
                return self.item_ids[best], rough[best]
            rows = np.flatnonzero(rough >= rough[best[-1]] - FLOAT32_TOLERANCE)
        scores = score(self._stored(rows, read=read))  # widened once, by the scorer
        best = top_k(scores, k, self.item_ids[rows])
        return self.item_ids[rows[best]], scores[best]

    def scan(self) -> RoughScan:
        """The exact scan of these rows, built at its first use (int8 codes take a pass over
        the rows: about 3 s a million on two cores)."""
        with self._scan_lock:
            if self._scan is None:
                if self.precision is None:
                    self.precision, _ = MachineScans().choice(self.dim)
                self._scan = build(self.precision, self.vectors)
            return self._scan

    def with_ann(self, ann: AnnIndex | None) -> VectorIndex:
        """The same rows (and exact scan, if built) with another ANN index."""
        index = VectorIndex(
            self.vectors, self.item_ids, ann=ann, file_rows=self.file_rows,
            precision=self.precision,
        )  # fmt: skip
        index._scan = self._scan
        return index

    def _ann_candidates(
        self,
        query: np.ndarray,
        k: int,
        dims: np.ndarray | None,
        exclude: np.ndarray | None,
        kept: int,
        examples: np.ndarray | None,
        how: AnnSearch,
    ) -> np.ndarray | None:
        """Rows the ANN index proposes for the query (and for each example), plus every row
        it does not cover yet; None when too few are allowed to fill k (scan instead)."""
        ann = self.ann
        assert ann is not None
        positions = self._file_positions()
        excluded_rows = None  # every row of the file is allowed: no mask to pass
        allowed_count = len(self)
        if exclude is not None and len(exclude) == len(positions) and self._rows_are_file_rows():
            excluded_rows = exclude  # every row of the file is an item here, in its order
            allowed_count = kept
        elif exclude is not None or len(self) < len(positions):
            excluded_rows = positions < 0
            if exclude is not None:
                excluded_rows[self.file_rows[exclude]] = True
            allowed_count = len(excluded_rows) - int(np.count_nonzero(excluded_rows))
        per_result = SUBSPACE_CANDIDATES if dims is not None else ann.rerank
        wanted = min(k * per_result, allowed_count)
        # a query restricted to dimensions asks the index for the rows nearest it within them
        # (the numerator of their score there), not for those nearest the whole query
        searches = [restrict(query, dims)]
        if examples is not None and len(examples):
            searches += list(np.asarray(examples, np.float32))
        covered = excluded_rows is not None and len(excluded_rows) == ann.rows
        found = ann.search(
            np.stack(searches), wanted, excluded_rows, nprobe=how.nprobe, ef=how.ef,
            kept=allowed_count if covered else None,
            cover_for=k * max(per_result, FILTERED_COVER),
        )  # fmt: skip
        rows = found[found >= 0]
        uncovered = np.arange(ann.rows, len(positions))
        if excluded_rows is not None:
            uncovered = uncovered[~excluded_rows[ann.rows :]]
        candidates = positions[np.unique(np.concatenate([rows, uncovered]))]
        candidates = candidates[candidates >= 0]
        if len(candidates) < min(k, allowed_count):
            return None
        return candidates

    def _rows_are_file_rows(self) -> bool:
        """Whether row r here is row r of the vector file, for every r (no item gone)."""
        if self._identity is None:
            rows = self.file_rows
            self._identity = bool(len(rows) == 0 or (rows[0] == 0 and (np.diff(rows) == 1).all()))
        return self._identity

    def _file_positions(self) -> np.ndarray:
        """For each row of the vector file, its row here (-1: not an item of this index);
        computed once, never to be changed."""
        if self._positions is None:
            size = int(self.file_rows.max()) + 1 if len(self.file_rows) else 0
            if self.ann is not None:
                size = max(size, self.ann.rows)
            positions = np.full(size, -1, np.int64)
            positions[self.file_rows] = np.arange(len(self.file_rows))
            self._positions = positions
        return self._positions


def mapped_path(vectors: np.ndarray) -> tuple[str, int] | None:
    """(the file's path, the byte offset of the first row) of rows that are a memory map
    (np.memmap) of a file or a run of its rows; None for an array in RAM."""
    top = vectors
    while isinstance(top, np.memmap) and isinstance(top.base, np.memmap):
        top = top.base
    if not isinstance(top, np.memmap) or top.filename is None:
        return None
    start = vectors.__array_interface__["data"][0] - top.__array_interface__["data"][0]
    return str(top.filename), int(top.offset) + start


def mapped_file(vectors: np.ndarray) -> tuple:
    """(the file, opened for reading; the byte offset of the first row) of rows that are a
    memory map of a file (`mapped_path`); () for an array in RAM."""
    where = mapped_path(vectors)
    if where is None:
        return ()
    try:
        return open(where[0], "rb", buffering=0), where[1]
    except OSError:
        return ()


def read_rows(file, rows: np.ndarray, dim: int) -> np.ndarray:
    """Rows of float16 vectors read from `file` = (open file, offset of row 0)."""
    handle, first = file
    size = dim * 2
    out = np.empty((len(rows), dim), np.float16)
    fd = handle.fileno()
    for n, row in enumerate(rows.tolist()):
        out[n] = np.frombuffer(os.pread(fd, size, first + row * size), np.float16)
    return out


def widened(rows: np.ndarray, dtype: type) -> np.ndarray:
    """Rows (float16 or float32) as `dtype` (float32 or float64), converted by torch (NumPy
    converts float16 one value at a time: 1.7 ms for a million values here, torch 0.2) in
    pieces small enough to stay in this thread: torch's thread pool, woken between FAISS's
    calls, left both spinning for the two cores (text searches' p95 went from 0.9 to 4 ms)."""
    import torch

    out: np.ndarray = np.empty(rows.shape, dtype)
    if rows.size == 0:
        return out
    source = torch.from_numpy(np.ascontiguousarray(rows)).reshape(len(rows), -1)
    target = torch.from_numpy(out).reshape(len(rows), -1)
    step = max(1, INLINE_VALUES // max(1, source.shape[1]))
    for start in range(0, len(rows), step):
        target[start : start + step].copy_(source[start : start + step])
    return out


def _scorer(query: np.ndarray, dims, examples, weight: float, sharpness: float):
    """A function from float32 rows to their scores for the (restricted) query, float32,
    summed in float64: a row's score is the same whichever rows it is scored with, so a
    search through the ANN index and an exact one agree to the last bit."""
    query = query.astype(np.float64)
    if examples is not None and len(examples):
        if dims is not None:
            raise ValueError("examples and dimension selection do not combine")
        columns = np.ascontiguousarray(np.vstack([query, examples]).T, np.float64)

        def with_examples(rows: np.ndarray) -> np.ndarray:
            products = widened(rows, np.float64) @ columns
            nearest = products[:, 1:].max(axis=1)
            boost = weight * np.exp(-sharpness * (1.0 - nearest))
            return (products[:, 0] + boost).astype(np.float32)

        return with_examples
    if dims is None:
        return lambda rows: (widened(rows, np.float64) @ query).astype(np.float32)
    kept = np.unique(np.asarray(dims, np.int64))
    query = np.ascontiguousarray(query[kept])  # zero elsewhere (restricted)

    def in_subspace(rows: np.ndarray) -> np.ndarray:
        # only the chosen dimensions are taken (np.take: about twice as fast as
        # rows[:, kept]) and widened; widening whole rows was most of a subspace query's scoring
        rows = widened(np.take(rows, kept, axis=1), np.float64)
        norms = np.sqrt(np.maximum(np.einsum("ij,ij->i", rows, rows), 1e-12))
        return ((rows @ query) / norms).astype(np.float32)

    return in_subspace
