"""The exact scan: every row scored roughly in the precision this machine scans fastest, then
the rows near the k-th re-scored exactly (ranking.py), so the top k is the exact one.

Which precision is fastest depends on the CPU, by a factor of ten: a float16 matrix product is
native on CPUs with AVX512-FP16 and emulated elsewhere (275 ms for 1.14 M rows on an AMD EPYC,
against 107 ms for float32); bfloat16 is native where AVX512-BF16 or AMX is; FAISS's 8-bit
scalar-quantised scan is fast everywhere. So a machine measures each precision it offers on a
131,072 vectors of a library's width, once, and remembers the figures (a JSON file in the user's
cache folder, keyed by CPU, libraries and dimension).

Each precision knows how far its rough score can be from the exact one (its `error`), so the
rows kept for re-scoring are every row whose rough score lies within twice that of the k-th
best: the precision never changes which rows are returned, only how fast.

| precision | what is scanned | resident bytes a value | error of a rough score |
|---|---|---|---|
| int8 | FAISS's 8-bit codes, each dimension over its own range | 1 | Σ|q_i|·range_i/510 |
| bfloat16 | a bfloat16 copy (torch) | 2 | 3 · 2⁻⁹ |
| float16 | the float16 vector file itself (torch) | 2 | 0.002 (measured 0.0003) |
| float32 | the float16 file, converted block by block | 2 | 0.0001 |
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import mmap
import os
import platform
import time
import warnings
from abc import ABC, abstractmethod
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from .ann import AllowedBits, _faiss

PRECISIONS = ("int8", "bfloat16", "float16", "float32")
BYTES = {"int8": 1, "bfloat16": 2, "float16": 2, "float32": 2}
DEFAULT_MEMORY = 1.0  # bytes a value the scan may hold resident unless told (int8: a quarter
# of a float32 matrix)
MEMORY_VARIABLE = "SASHIE_SCAN_MEMORY"  # bytes a value: 2 lets the 16-bit scans compete
CACHE_FILE = "scan-precision.json"
CALIBRATION_ROWS = 131_072  # rows each precision is measured on
CALIBRATION_REPEATS = 5
BLOCK_ROWS = 2048  # rows converted to float32 at once (4 MiB at 512 dims)
HALF_ERROR = 2e-3  # a float16 product's score is within 3e-4 of the exact one (measured)
FLOAT32_ERROR = 1e-4  # a float32 sum of 512 products is within 1e-6 of the float64 one
BFLOAT16_ERROR = 3 * 2.0**-9  # query, row and result each rounded to 8 significant bits
INT8_SLACK = 1e-4  # FAISS's float32 sums of the decoded values, beside the codes' own error


class RoughScan(ABC):
    """The rows that may be in a query's exact top k, found from rough scores of every row."""

    precision: str
    # the scan holds codes of its own, not the rows: the rows it hands on for re-scoring are
    # best read from the file, so that they do not become resident through the memory map
    holds_codes = False

    def __init__(self, vectors: np.ndarray) -> None:
        self.vectors = vectors  # float16, rows x dim (a memory map or an array in RAM)

    @abstractmethod
    def error(self, query: np.ndarray) -> float:
        """The most a rough score for `query` can differ from the exact one."""

    @abstractmethod
    def candidates(self, query: np.ndarray, k: int, exclude: np.ndarray | None) -> np.ndarray:
        """Sorted rows whose rough score lies within twice the error of the k-th best allowed
        one (rows where the mask `exclude` is true never): the exact top k is among them."""


class TorchScan(RoughScan):
    """A scan that scores every row with torch, then keeps the rows near the k-th."""

    def __init__(self, vectors: np.ndarray) -> None:
        super().__init__(vectors)
        self.half = torch_view(vectors)  # the float16 rows as they are, no copy

    @abstractmethod
    def rough(self, query: np.ndarray) -> np.ndarray:
        """Every row's rough score (float32, a fresh array)."""

    def candidates(self, query, k, exclude):
        rough = self.rough(query)
        if exclude is not None:
            rough[exclude] = -np.inf
        k = min(k, len(rough))
        if k <= 0:
            return np.zeros(0, np.int64)
        kth = np.partition(rough, len(rough) - k)[len(rough) - k]
        if not np.isfinite(kth):
            return np.flatnonzero(np.isfinite(rough))
        return np.flatnonzero(rough >= kth - 2 * self.error(query))


class Float16Scan(TorchScan):
    """torch's float16 matrix product over the vectors as stored (no copy)."""

    precision = "float16"

    def rough(self, query):
        import torch

        column = torch.from_numpy(np.asarray(query, np.float32)).half()[:, None]
        return torch.mm(self.half, column)[:, 0].float().numpy()  # mm: faster than mv

    def error(self, query):
        return HALF_ERROR


class Float32Scan(TorchScan):
    """The float16 rows converted to float32 a block at a time, in one reused buffer."""

    precision = "float32"

    def rough(self, query):
        import torch

        q = torch.from_numpy(np.asarray(query, np.float32))
        out = torch.empty(len(self.vectors), dtype=torch.float32)
        for start, block in torch_blocks(self.half):
            torch.mv(block, q, out=out[start : start + len(block)])
        return out.numpy()

    def error(self, query):
        return FLOAT32_ERROR


class BFloat16Scan(TorchScan):
    """A bfloat16 copy of the rows (half the memory of float32), scanned by torch."""

    precision = "bfloat16"
    holds_codes = True

    def __init__(self, vectors: np.ndarray) -> None:
        super().__init__(vectors)
        import torch

        self.codes = torch.empty(tuple(self.half.shape), dtype=torch.bfloat16)
        for start in range(0, len(self.half), 1 << 16):
            self.codes[start : start + (1 << 16)].copy_(self.half[start : start + (1 << 16)])
        _release(vectors)

    def rough(self, query):
        import torch

        column = torch.from_numpy(np.asarray(query, np.float32)).bfloat16()[:, None]
        return torch.mm(self.codes, column)[:, 0].float().numpy()

    def error(self, query):
        return BFLOAT16_ERROR


class Int8Scan(RoughScan):
    """FAISS's scan of 8-bit codes, each dimension quantised over its own range (min to max
    of the rows): a quarter of a float32 matrix. A code decodes to within range/510 of the
    stored value, so a rough score is within Σ|q_i|·range_i/510 of the exact one."""

    precision = "int8"
    holds_codes = True

    def __init__(self, vectors: np.ndarray) -> None:
        super().__init__(vectors)
        import faiss

        dim = vectors.shape[1]
        low = np.full(dim, np.inf, np.float32)
        high = np.full(dim, -np.inf, np.float32)
        for _, block in _float32_blocks(vectors):  # fmin/fmax: a NaN row (a damaged file)
            np.fmin(low, np.fmin.reduce(block, axis=0), out=low)  # narrows no range
            np.fmax(high, np.fmax.reduce(block, axis=0), out=high)
        low[~np.isfinite(low)], high[~np.isfinite(high)] = -1.0, 1.0
        high = np.maximum(high, low + 1e-6)  # a constant dimension still has a range
        self.index = faiss.IndexScalarQuantizer(
            dim, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
        )
        self.index.train(np.stack([low, high]))
        self._allowed = AllowedBits()
        trained = faiss.vector_to_array(self.index.sq.trained)
        self.step = trained[dim:].astype(np.float64) / 510  # the most a value decodes off by
        self.index.codes.resize(len(vectors) * dim)  # once: adding would grow it by doubling
        if len(vectors):
            codes = faiss.rev_swig_ptr(self.index.codes.data(), len(vectors) * dim)
            codes = codes.reshape(len(vectors), dim)
            for start, block in _float32_blocks(vectors):
                codes[start : start + len(block)] = self.index.sa_encode(block)
        self.index.ntotal = len(vectors)
        _release(vectors)

    def error(self, query):
        return float(np.abs(np.asarray(query, np.float64)) @ self.step) + INT8_SLACK

    def candidates(self, query, k, exclude):
        faiss = _faiss()
        rows = self.index.ntotal
        k = min(k, rows)
        if k <= 0:
            return np.zeros(0, np.int64)
        q = np.ascontiguousarray(query, np.float32).reshape(1, -1)
        params, bits = None, None
        if exclude is not None:
            bits = self._allowed.of(exclude, rows)  # lives until FAISS has searched
            params = faiss.SearchParameters(sel=faiss.IDSelectorBitmap(rows, faiss.swig_ptr(bits)))
        floor, window = -np.inf, 2 * self.error(q[0])
        wanted = min(rows, max(4 * k, k + 1024))
        while True:  # FAISS's range search is ten times slower than a wider top list
            scores, found = self.index.search(q, wanted, params=params)
            kept = found[0] >= 0
            scores, found = scores[0][kept], found[0][kept].astype(np.int64)
            if len(found) < k:  # fewer rows allowed than asked for: every one of them
                break
            floor = float(scores[k - 1]) - window
            if len(found) < wanted or wanted == rows or scores[-1] < floor:
                break
            wanted = min(rows, 4 * wanted)  # rows beyond the list may lie above the floor
        del bits
        return np.sort(found[scores >= floor])


SCANS: dict[str, type[RoughScan]] = {
    "int8": Int8Scan,
    "bfloat16": BFloat16Scan,
    "float16": Float16Scan,
    "float32": Float32Scan,
}


def offered() -> list[str]:
    """The precisions this machine scans natively or nearly so (bfloat16 only where the CPU
    has bfloat16 instructions: emulated, it is never the fastest)."""
    import torch

    names = ["int8", "float16", "float32"]
    if torch.ops.mkldnn._is_mkldnn_bf16_supported():
        names.insert(1, "bfloat16")
    return names


def build(precision: str, vectors: np.ndarray) -> RoughScan:
    """The scan of `vectors` (float16 rows) in this precision."""
    if precision not in SCANS:
        raise ValueError(f"no scan precision {precision!r}: one of {', '.join(PRECISIONS)}")
    return SCANS[precision](vectors)


def calibration_sample(dim: int, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(CALIBRATION_ROWS float16 unit rows in clusters, as a collection's are; a few queries
    near them), drawn with the seed."""
    rng = np.random.default_rng(seed)
    rows = clustered_rows(rng, rng.standard_normal((256, dim)).astype(np.float32), CALIBRATION_ROWS)
    return rows.astype(np.float16), rows[rng.integers(0, len(rows), CALIBRATION_REPEATS)]


def clustered_rows(rng: np.random.Generator, centres: np.ndarray, count: int) -> np.ndarray:
    """`count` float32 unit rows, each a centre drawn by `rng` plus as much noise again."""
    rows = centres[rng.integers(0, len(centres), count)]
    rows += rng.standard_normal(rows.shape).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def calibrate(dim: int, *, seed: int = 0, precisions: list[str] | None = None) -> dict:
    """Nanoseconds a row each precision's scan takes to find a top 100's candidates in the
    calibration sample of `dim` dimensions (median of CALIBRATION_REPEATS queries)."""
    sample, queries = calibration_sample(dim, seed=seed)
    costs = {}
    for name in precisions or offered():
        rough = build(name, sample)
        rough.candidates(queries[0], 100, None)  # warm up
        times = []
        for q in queries:
            started = time.perf_counter()
            rough.candidates(q, 100, None)
            times.append(time.perf_counter() - started)
        costs[name] = round(float(np.median(times)) / len(sample) * 1e9, 3)
    return costs


def choose(costs: dict, memory: float = DEFAULT_MEMORY) -> str:
    """The fastest precision whose resident bytes a value are at most `memory` (ties: the
    smaller, then the order of PRECISIONS); int8 when none measured fits."""
    fits = [p for p in PRECISIONS if p in costs and BYTES[p] <= memory]
    if not fits:
        return "int8"
    return min(fits, key=lambda p: (costs[p], BYTES[p], PRECISIONS.index(p)))


def memory_bound() -> float:
    """Bytes a value the scan may hold resident: SASHIE_SCAN_MEMORY, else 1 (int8)."""
    raw = os.environ.get(MEMORY_VARIABLE, "")
    try:
        value = float(raw) if raw else DEFAULT_MEMORY
    except ValueError:
        value = DEFAULT_MEMORY
    return value if np.isfinite(value) and value > 0 else DEFAULT_MEMORY


class MachineScans:
    """What this machine measured for each width of vectors, remembered in the user's cache
    folder (measured again where it cannot be written)."""

    def __init__(self, folder: Path | None = None) -> None:
        self.path = (folder or _cache_folder()) / CACHE_FILE

    def costs(self, dim: int) -> dict:
        """Nanoseconds a row of each precision for vectors of `dim` dimensions on this
        machine: remembered, or measured now (`calibrate`) and remembered."""
        costs = self.remembered(dim)
        if costs is None:
            costs = calibrate(dim)
            known = self._read()
            known[machine_key(dim)] = {"ns_per_row": costs, "rows": CALIBRATION_ROWS}
            self._write(known)
        return costs

    def remembered(self, dim: int) -> dict | None:
        """The costs measured here before for `dim` dimensions (None: never, or unreadable)."""
        entry = self._read().get(machine_key(dim))
        if isinstance(entry, dict) and _sound_costs(entry.get("ns_per_row")):
            return dict(entry["ns_per_row"])
        return None

    def choice(self, dim: int) -> tuple[str, dict]:
        """The precision to scan vectors of `dim` dimensions in, and the costs it is chosen
        by (SASHIE_SCAN_MEMORY: the bytes a value it may hold)."""
        costs = self.costs(dim)
        return choose(costs, memory_bound()), costs

    def _read(self) -> dict:
        try:
            known = json.loads(self.path.read_text("utf-8"))
        except (OSError, ValueError):
            return {}
        return known if isinstance(known, dict) else {}

    def _write(self, known: dict) -> None:
        try:  # a read-only home (a server's account) only means measuring again next time
            self.path.parent.mkdir(parents=True, exist_ok=True)
            temporary = self.path.with_suffix(f".{os.getpid()}.tmp")
            temporary.write_text(json.dumps(known, indent=1, sort_keys=True), "utf-8")
            temporary.replace(self.path)
        except OSError:
            pass


def exact_scan_facts(dim: int) -> dict:
    """What `sashie info` says of the exact scan for vectors of `dim` dimensions here: the
    precision chosen and what each cost (ns a row), as this machine measured them at its
    first exact scan (precision None: not measured yet; nothing is measured here), and the
    memory allowed (bytes a value)."""
    costs = MachineScans().remembered(dim)
    return {
        "precision": None if costs is None else choose(costs, memory_bound()),
        "ns_per_row": costs or {},
        "memory_bytes": memory_bound(),
    }


def machine_key(dim: int) -> str:
    """This machine, as far as scan speed goes: CPU model and flags, library versions,
    cores, and the vectors' width (read without importing torch or FAISS)."""
    model, flags = _cpu()
    digest = hashlib.sha256(flags.encode()).hexdigest()[:12]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (
        f"{model} [{digest}] torch {_version('torch')} faiss {_version('faiss-cpu', 'faiss')} "
        f"cores {cores} dim {dim}"
    )


def _version(*names: str) -> str:
    for name in names:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return "?"


def _cpu() -> tuple[str, str]:
    model, flags = platform.processor() or platform.machine(), ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            name, _, value = line.partition(":")
            if name.strip() == "model name" and model in ("", platform.machine(), "x86_64"):
                model = value.strip()
            elif name.strip() in ("flags", "Features") and not flags:
                flags = value.strip()
    except OSError:
        pass
    return model, flags


def _cache_folder() -> Path:
    """SASHIE_CACHE, else sashie's folder in the user's cache folder."""
    if os.environ.get("SASHIE_CACHE"):
        return Path(os.environ["SASHIE_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "sashie"


def _sound_costs(costs: Any) -> bool:
    return (
        isinstance(costs, dict)
        and bool(costs)
        and all(
            p in PRECISIONS and isinstance(v, (int, float)) and v >= 0 for p, v in costs.items()
        )
    )


def _release(vectors: np.ndarray) -> None:
    """Unmap from this process the pages of a memory-mapped vector file read once (they stay
    in the page cache, for whoever reads them next): the codes are what the scan keeps."""
    mapping = getattr(vectors, "_mmap", None)
    if mapping is not None and hasattr(mapping, "madvise") and hasattr(mmap, "MADV_DONTNEED"):
        with contextlib.suppress(OSError, ValueError):
            mapping.madvise(mmap.MADV_DONTNEED)


def torch_view(vectors: np.ndarray):
    """The float16 rows as a torch tensor sharing their memory (a memory map included)."""
    import torch

    with warnings.catch_warnings():  # a read-only memory map: torch only reads it
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(vectors)


def torch_blocks(half, step: int = BLOCK_ROWS):
    """(first row, float32 torch block) over every row of the float16 tensor `half`, each
    written into one reused buffer: use it before asking for the next."""
    import torch

    buffer = torch.empty((step, half.shape[1]), dtype=torch.float32)
    for start in range(0, len(half), step):
        part = half[start : start + step]
        block = buffer[: len(part)]
        block.copy_(part)
        yield start, block


def _float32_blocks(vectors: np.ndarray, step: int = 1 << 15):
    for start in range(0, len(vectors), step):
        yield start, np.ascontiguousarray(vectors[start : start + step], np.float32)
