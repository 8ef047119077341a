"""Approximate nearest-neighbour candidates for large libraries (FAISS), re-scored exactly.

An ANN index proposes a few hundred candidate rows for a query; `VectorIndex.search` then
scores them exactly from the float16 vectors, so what a search returns is always ranked by
the true inner product, and the filter's exclusions hold (FAISS skips excluded rows while it
searches). The kinds, chosen by the number of rows (`choose_kind`, rules measured with
benchmarks/ann.py and written in docs/search.md):

    exact   no index: the float16 vectors are scanned (below EXACT_BELOW rows)
    ivf     inverted lists over float16 codes (k-means cells; `nprobe` of them are scanned):
            the default up to PQ_FROM rows
    ivfpq   inverted lists found by an HNSW graph over the cells, PQ fast-scan codes (4 bits
            a dimension: d/2 bytes a vector; 4 bits a pair of dimensions when those would
            take more than a quarter of the memory), 20 candidates a result re-scored from
            the vector file
    hnsw    an HNSW graph over float16 codes (2 bytes a dimension + the graph): the fastest
            queries, but its recall falls on collections of many near-duplicates (measured),
            so it is chosen only on request

The file `ann.index` is one line of JSON (kind, rows covered, dimension, settings) followed
by FAISS's serialized index. It is written under a temporary name, synced and renamed, so a
crash leaves the previous index or none. A file that does not read back as what its header
says is ignored (searches scan exactly), never trusted: a library folder may come from
anyone.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

ANN_FILE = "ann.index"
KINDS = ("exact", "hnsw", "ivf", "ivfpq")
EXACT_BELOW = 200_000  # rows; below, a scan of the float16 vectors takes < 25 ms
PQ_FROM = 2_000_000  # rows; from here ivf's float16 codes (1 KiB a vector) pass 2 GiB
HNSW_M = 32  # graph neighbours a node
HNSW_BUILD_EF = 64  # efConstruction
# A filter that lets through a share s of the rows: at s >= SELECTOR_BELOW (ivf, ivfpq) FAISS
# searches unfiltered for wanted / s x ASK_MORE rows and the excluded ones are dropped (its
# selector path scores codes about half as fast); below, FAISS skips excluded rows as it
# scans. The cells scanned hold at least `cover` x wanted allowed rows (more cells when the
# filter is narrow or the cells are small; `cover` below); an HNSW walk widens by
# s^-HNSW_WIDEN_POWER. SELECTOR_BELOW and ASK_MORE were chosen with benchmarks/book_filter.py's
# vectors (books given years of another seed: recall@100 as without a filter).
SELECTOR_BELOW = 0.15
ASK_MORE = 1.25
# How far a filter widens the cells depends on how the vectors cluster: the many small
# clusters of tests/search/test_ann.py need 8 (recall@100 0.94 with 4 at 10 % kept), the
# world's crops 4 (0.985-0.996 at a tenth and a thirtieth of the books, with 8 the search
# of a thirtieth took 1.9x as long; seed-2000 vectors, books' years of seed 5). So the index
# measures it when built: the smallest of COVERS whose filtered searches of sample queries
# find CALIBRATED_RECALL of the exact top 100 at each of CALIBRATION_SHARES (an index
# without the setting, made before, widens by the largest).
COVERS = (4, 6, 8)
CALIBRATION_SHARES = (0.3, 0.1, 0.03)
CALIBRATION_QUERIES = 48
CALIBRATED_RECALL = 0.985
# a filter's cells are widened as for this many candidates a result at least, whatever the
# index re-scores (tests/search/test_ann.py's clusters at 70 % out)
FILTERED_COVER = 2
HNSW_WIDEN_POWER = 1.5
DEFAULT_EF = 128  # efSearch of `hnsw` (and of the cell graph of `ivfpq`)
TRAIN_PER_CELL = 40  # k-means points a cell (FAISS asks for at least 39)
KMEANS_ITERATIONS = 10  # FAISS's default is 25; 10 cost no recall here (benchmarks/ann.py)
ADD_BLOCK = 1 << 16  # rows converted to float32 and added at once
HEADER_LIMIT = 4096  # bytes: a header longer than this is not ours


def choose_kind(rows: int, dim: int = 512, memory: int | None = None) -> str:
    """The index kind for a number of rows (the measured rules in the module docstring);
    `ivfpq` below PQ_FROM too when ivf's float16 codes would take more than a quarter of the
    machine's `memory` (bytes; by default what it has)."""
    if rows < EXACT_BELOW:
        return "exact"
    memory = physical_memory() if memory is None else memory
    if rows < PQ_FROM and rows * dim * 2 <= memory // 4:
        return "ivf"
    return "ivfpq"


def physical_memory() -> int:
    """This machine's memory in bytes."""
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def cells_for(rows: int) -> int:
    """Inverted lists of an IVF index: about 2 √rows, a power of two (2,048 cells at 1.14 M
    rows, 8,192 at 10 M: k-means on 40 points a cell stays within minutes on 2 cores)."""
    return int(min(1 << 16, max(64, 2 ** round(math.log2(2 * math.sqrt(max(rows, 1)))))))


def default_nprobe(kind: str, cells: int) -> int:
    """Cells scanned a query: for ivf 1/160 of them, at least 12 (12 of 2,048 at 1.14 M rows:
    p95 0.8 ms at recall@100 0.991 on text and image queries of the seed-2000 world, where
    1/128 gave p95 1.0 ms and 1/64 2.0 ms, benchmarks/ann.py); for ivfpq 1/64, at least 32
    (recall@100 ≥ 0.95 at 10 M rows of the same world)."""
    if kind == "ivf":
        return max(12, cells // 160)
    return max(32, cells // 64)


def pq_subquantizers(rows: int, dim: int, memory: int | None = None) -> int:
    """The 4-bit codes of an ivfpq index: one a dimension (d/2 bytes a vector; recall@100
    0.999 / 0.997 for text / image queries at 10 M rows of the seed-2000 world, where one a
    pair of dimensions gave 0.83 / 0.87 on seed 1000), or one a pair when the finer codes
    would take more than a quarter of the machine's `memory`."""
    memory = physical_memory() if memory is None else memory
    return dim if rows * dim // 2 <= memory // 4 else dim // 2


class AllowedBits:
    """FAISS's bitmap of the rows a boolean mask lets through. A mask that owns its memory and
    is read-only (a library's remembered filter) cannot change: its bitmap is kept for the
    next search with it; any other mask is packed afresh."""

    def __init__(self) -> None:
        self._kept: tuple[np.ndarray, int, np.ndarray] | None = None

    def of(self, excluded: np.ndarray, rows: int) -> np.ndarray:
        """The bitmap of the first `rows` rows of `excluded` (kept alive by the caller until
        FAISS has searched with it)."""
        kept = self._kept  # one read: another thread may replace it
        if kept is not None and kept[0] is excluded and kept[1] == rows:
            return kept[2]
        bits = ~np.packbits(excluded[:rows], bitorder="little")
        if not excluded.flags.writeable and excluded.base is None:
            self._kept = (excluded, rows, bits)
        return bits


class AnnIndex:
    """One FAISS index over the first `rows` rows of a vector file (row numbers are its ids)."""

    def __init__(self, index: Any, kind: str, rows: int, dim: int, settings: dict) -> None:
        self.index = index
        self.kind = kind
        self.rows = rows
        self.dim = dim
        self.settings = dict(settings)
        self._allowed = AllowedBits()

    # --- building --------------------------------------------------------------------------

    @classmethod
    def build(
        cls,
        kind: str,
        vectors: np.ndarray,
        *,
        nprobe: int | None = None,
        ef: int | None = None,
        seed: int = 0,
        progress: bool = False,
    ) -> AnnIndex:
        """An index of `kind` over every row of `vectors` (float16 unit vectors, rows x dim,
        memory-mapped is fine): trained on a sample, then filled block by block."""
        faiss = _faiss()
        if kind not in KINDS or kind == "exact":
            raise ValueError(f"cannot build an index of kind {kind!r}")
        rows, dim = vectors.shape
        settings: dict = {}
        if kind == "hnsw":
            index = faiss.IndexHNSWSQ(
                dim, faiss.ScalarQuantizer.QT_fp16, HNSW_M, faiss.METRIC_INNER_PRODUCT
            )
            index.hnsw.efConstruction = HNSW_BUILD_EF
            settings["ef"] = ef or DEFAULT_EF
        else:
            cells = min(cells_for(rows), max(1, rows // 39))  # k-means wants 39 points a cell
            if kind == "ivf":
                quantizer = faiss.IndexFlatIP(dim)
                index = faiss.IndexIVFScalarQuantizer(
                    quantizer, dim, cells, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT
                )
            else:
                codes = pq_subquantizers(rows, dim)
                index = faiss.index_factory(
                    dim, f"IVF{cells}_HNSW32,PQ{codes}x4fs", faiss.METRIC_INNER_PRODUCT
                )
            settings["cells"] = cells
            settings["nprobe"] = nprobe or default_nprobe(kind, cells)
            settings["ef"] = ef or DEFAULT_EF
            faiss.extract_index_ivf(index).cp.niter = KMEANS_ITERATIONS
            sample = _sample_rows(rows, min(rows, cells * TRAIN_PER_CELL), seed)
            index.train(_float32(vectors[sample]))
        built = cls(index, kind, 0, dim, settings)
        built.add(vectors, progress=progress, desc=f"building the {kind} index")
        if kind != "hnsw":
            built.settings["cover"] = built._calibrated_cover(vectors, seed)
        return built

    def _calibrated_cover(self, vectors: np.ndarray, seed: int, k: int = 100) -> int:
        """The smallest of COVERS with which filtered searches of sample queries (rows of the
        file, jittered) find CALIBRATED_RECALL of the exact top k among their candidates, for
        random filters keeping each of CALIBRATION_SHARES of the rows (the largest if none)."""
        rng = np.random.default_rng(seed)
        picked = vectors[_sample_rows(len(vectors), min(CALIBRATION_QUERIES, len(vectors)), seed)]
        queries = _float32(picked) + rng.normal(0, 0.3 / np.sqrt(self.dim), (len(picked), self.dim))
        queries = _float32(queries / np.linalg.norm(queries, axis=1, keepdims=True))
        filters = [rng.random(len(vectors), np.float32) >= s for s in CALIBRATION_SHARES]
        exact = _exact_best(vectors, queries, filters, k)
        wanted, cover_for = k * self.rerank, k * max(self.rerank, FILTERED_COVER)
        for cover in COVERS:
            self.settings["cover"] = cover
            found = [
                self.search(queries, wanted, excluded, cover_for=cover_for) for excluded in filters
            ]
            if all(
                _share_found(*each) >= CALIBRATED_RECALL for each in zip(found, exact, strict=True)
            ):
                return cover
        return COVERS[-1]

    def add(self, vectors: np.ndarray, *, progress: bool = False, desc: str = "") -> None:
        """Add rows `self.rows` onward of `vectors` (the whole committed file, float16)."""
        start = self.rows
        bar = tqdm(
            total=len(vectors) - start,
            desc=desc or "adding to the ANN index",
            unit="vec",
            unit_scale=True,
            disable=not progress,
            leave=False,
        )
        for first, block in _blocks(vectors, start):
            ids = np.arange(first, first + len(block), dtype=np.int64)
            if self.kind == "hnsw":  # an HNSW index numbers rows itself, in order
                self.index.add(block)
            else:
                self.index.add_with_ids(block, ids)
            self.rows = first + len(block)
            bar.update(len(block))
        bar.close()

    # --- searching -------------------------------------------------------------------------

    def search(
        self,
        queries: np.ndarray,
        wanted: int,
        excluded: np.ndarray | None = None,
        *,
        kept: int | None = None,
        nprobe: int | None = None,
        ef: int | None = None,
        cover_for: int | None = None,
    ) -> np.ndarray:
        """The `wanted` best rows of the vector file for each query (float32, queries x dim),
        best first, -1 where there are no more, never a row the boolean mask `excluded` (one
        per file row covered) marks (`kept`: how many rows it lets through, when the caller
        knows). A filter widens the search as if `cover_for` rows were wanted (default
        `wanted`)."""
        queries = np.ascontiguousarray(queries, np.float32).reshape(-1, self.dim)
        wanted = max(1, min(wanted, self.rows))
        if excluded is None:
            return self._search(queries, wanted, None, 1.0, nprobe, ef)
        excluded_whole, excluded = excluded, excluded[: self.rows]
        count = self.rows - int(np.count_nonzero(excluded)) if kept is None else kept
        if count == 0:
            return np.full((len(queries), wanted), -1, np.int64)
        share = min(1.0, count / self.rows)
        if self.kind == "hnsw":  # the graph is walked through excluded rows: a wider walk
            return self._filtered(
                queries, wanted, excluded_whole, share**-HNSW_WIDEN_POWER, nprobe, ef
            )
        # the cells scanned must hold several times the allowed rows wanted (on many small
        # clusters the nearest allowed rows lie in more cells than the nearest rows)
        cover = self.settings.get("cover", COVERS[-1]) * (cover_for or wanted)
        cover /= share * self.rows / self.settings["cells"]
        widen = max(1.0, cover / (nprobe or self.settings["nprobe"]))
        if share < SELECTOR_BELOW:
            return self._filtered(queries, wanted, excluded_whole, widen, nprobe, ef)
        # a broad filter (a date range, the keep/exclude filter): FAISS scores codes fastest
        # without a selector; ask for the allowed share's worth more and drop the rest
        asked = min(self.rows, int(wanted / share * ASK_MORE) + 8)
        return _allowed_first(
            self._search(queries, asked, None, widen, nprobe, ef), excluded, wanted
        )

    def _filtered(self, queries, wanted: int, excluded, widen: float, nprobe, ef) -> np.ndarray:
        """FAISS's search of the allowed rows only (it skips the others as it scans)."""
        bits = self._allowed.of(excluded, self.rows)  # lives until FAISS has searched
        faiss = _faiss()
        selector = faiss.IDSelectorBitmap(self.rows, faiss.swig_ptr(bits))
        rows = self._search(queries, wanted, selector, widen, nprobe, ef)
        del bits
        return rows

    def _search(self, queries, wanted: int, selector, widen: float, nprobe, ef) -> np.ndarray:
        faiss = _faiss()
        ef = ef or self.settings.get("ef", DEFAULT_EF)
        if self.kind == "hnsw":
            params = faiss.SearchParametersHNSW(
                efSearch=int(min(max(ef, wanted) * widen, 1 << 14)), sel=selector
            )
        else:
            cells = self.settings["cells"]
            probes = int(min((nprobe or self.settings["nprobe"]) * widen, cells))
            params = faiss.SearchParametersIVF(nprobe=probes, sel=selector)
            if self.kind == "ivfpq":  # its cells are found through an HNSW graph
                params.quantizer_params = faiss.SearchParametersHNSW(efSearch=max(ef, 2 * probes))
        _, rows = self.index.search(queries, wanted, params=params)
        return rows.astype(np.int64)

    @property
    def rerank(self) -> int:
        """How many candidates a result to re-score (the index's `rerank` setting, else by
        kind): the 4-bit codes of `ivfpq` rank coarsely (20 gave recall@100 0.994 for text
        at 1.14 M rows of the tuning world with one code a pair of dimensions, 10 0.974);
        the float16 codes of `ivf` rank as the exact scores do (1 and 2 a result: the same
        recall at 1.14 M rows of the seed-2000 world, 0.2 ms apart; with rows excluded the
        cells are widened instead, ranking.py); an `hnsw` walk needs 2
        (tests/search/test_ann.py)."""
        default = {"ivfpq": 20, "ivf": 1}.get(self.kind, 2)
        return int(self.settings.get("rerank", default))

    # --- the file --------------------------------------------------------------------------

    def save(self, path: Path) -> None:
        """Write to `path` crash-safely (a temporary file, synced, renamed)."""
        faiss = _faiss()
        header = {
            "format": "sashie-ann",
            "version": 1,
            "kind": self.kind,
            "rows": self.rows,
            "dim": self.dim,
            "settings": self.settings,
        }
        temporary = path.with_name(path.name + ".tmp")
        with open(temporary, "wb") as out:
            out.write(json.dumps(header).encode() + b"\n")
            faiss.write_index(self.index, faiss.PyCallbackIOWriter(out.write))  # streamed
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
        _sync_folder(path.parent)

    @staticmethod
    def header(path: Path, dim: int, max_rows: int) -> dict | None:
        """The header of the index in `path` (kind, rows, settings), if it is a sound one."""
        try:
            with open(path, "rb") as f:
                header = json.loads(f.readline(HEADER_LIMIT))
        except (OSError, ValueError):
            return None
        return header if _sound_header(header, dim, max_rows) else None

    @classmethod
    def load(cls, path: Path, dim: int, max_rows: int) -> AnnIndex | None:
        """The index in `path`, or None when there is none or it is not a sound index of
        `dim`-dimensional vectors over at most `max_rows` rows."""
        faiss = _faiss()
        try:
            with open(path, "rb") as f:
                header = json.loads(f.readline(HEADER_LIMIT))
                if not _sound_header(header, dim, max_rows):
                    return None
                index = faiss.read_index(faiss.PyCallbackIOReader(f.read))  # streamed
        except (OSError, ValueError, RuntimeError):
            return None
        if index.d != dim or index.ntotal != header["rows"] or not _is_kind(index, header["kind"]):
            return None
        return cls(index, header["kind"], header["rows"], dim, header["settings"])


def ann_path(folder: Path) -> Path:
    return folder / ANN_FILE


def _sound_header(header: object, dim: int, max_rows: int) -> bool:
    if not isinstance(header, dict) or header.get("format") != "sashie-ann":
        return False
    rows, settings = header.get("rows"), header.get("settings")
    if header.get("kind") not in KINDS[1:] or header.get("dim") != dim:
        return False
    if not isinstance(rows, int) or not 0 < rows <= max_rows or not isinstance(settings, dict):
        return False
    return all(
        isinstance(settings.get(key, 1), int) and 0 < settings.get(key, 1) <= 1 << 16
        for key in ("ef", "nprobe", "cells", "rerank", "cover")
    )


def _is_kind(index: Any, kind: str) -> bool:
    faiss = _faiss()
    index = faiss.downcast_index(index)
    if kind == "hnsw":
        return isinstance(index, faiss.IndexHNSWSQ)
    if kind == "ivf":
        return isinstance(index, faiss.IndexIVFScalarQuantizer)
    return isinstance(index, faiss.IndexIVFPQFastScan)


def _faiss() -> Any:
    """FAISS, imported when an index is used (its type stubs cover too little to check)."""
    import faiss

    return faiss


def _sample_rows(rows: int, count: int, seed: int) -> np.ndarray:
    return np.sort(np.random.default_rng(seed).choice(rows, size=count, replace=False))


def _float32(block: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(block, dtype=np.float32)


def _blocks(vectors: np.ndarray, start: int) -> Iterator[tuple[int, np.ndarray]]:
    for first in range(start, len(vectors), ADD_BLOCK):
        yield first, _float32(vectors[first : first + ADD_BLOCK])


def _sync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _exact_best(
    vectors: np.ndarray, queries: np.ndarray, filters: list[np.ndarray], k: int
) -> list[np.ndarray]:
    """For each filter, the rows of the exact top k of each query (queries x k; fewer where
    fewer are allowed) that it lets through, found block by block (memory: a block's scores)."""
    best: list[list[np.ndarray]] = [[] for _ in filters]  # each block's top k, as rows
    scores: list[list[np.ndarray]] = [[] for _ in filters]
    for first, block in _blocks(vectors, 0):
        products = block @ queries.T  # rows x queries
        for i, excluded in enumerate(filters):
            rows = first + np.flatnonzero(~excluded[first : first + len(block)])
            part = products[rows - first]
            if len(part) > k:
                top = np.argpartition(-part, k, axis=0)[:k]
            else:
                top = np.argsort(-part, axis=0)
            best[i].append(rows[top])
            scores[i].append(np.take_along_axis(part, top, axis=0))
    out = []
    for found, values in zip(best, scores, strict=True):
        rows_all, values_all = np.concatenate(found), np.concatenate(values)
        order = np.argsort(-values_all, axis=0)[:k]
        out.append(np.take_along_axis(rows_all, order, axis=0).T)
    return out


def _share_found(found: np.ndarray, best: np.ndarray) -> float:
    """The mean share of each line of `best` found in that line of `found`."""
    shares = []
    for line, wanted in zip(found, best, strict=True):
        shares.append(len(np.intersect1d(line, wanted)) / max(1, len(wanted)))
    return float(np.mean(shares))


def _allowed_first(rows: np.ndarray, excluded: np.ndarray, wanted: int) -> np.ndarray:
    """The first `wanted` rows of each line of `rows` that `excluded` does not mark (-1 after
    the last)."""
    out = np.full((len(rows), wanted), -1, np.int64)
    for line, found in zip(out, rows, strict=True):
        found = found[found >= 0]
        found = found[~excluded[found]][:wanted]
        line[: len(found)] = found
    return out
