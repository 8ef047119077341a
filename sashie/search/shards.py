"""Sharded search: the rows of a library's vectors split among shards, each searched where it
is held (a Ray actor on a machine of a cluster, or in this process), and the partial top-k
lists merged exactly.

Each shard returns its own top k, found and scored as `VectorIndex.search` finds and scores
them: a row's score is a float64 sum of its float16 values times the query, the same on any
shard. The top k of the union of the shards' lists is then the top k of every row: the same
ids in the same order as one index holding them all (equal scores: the smaller item id
first), for exact scans; with ANN indexes each shard's candidates are its own index's.
Feedback is learned once, where the query is asked (from the marked items' vectors), and
applied by every shard to its own rows (sashie/search/feedback.py: `Learned`, `ranked`).

Ray actors, not Ray Serve deployments: a shard is one long-lived process holding its rows
and answering one method; Serve would put an HTTP proxy, a controller and autoscaling
between the caller and the same actor (and needs gRPC and more installed), for nothing a
fan-out to a fixed set of shards uses. A shard that does not answer is reported, by name:
one clear error, or, when the caller accepts it, results marked partial with the shards
that are missing.
"""

from __future__ import annotations

import hashlib
import itertools
import time
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ShardDown
from .ann import AnnIndex
from .feedback import Learned, ranked
from .ranking import AnnSearch, VectorIndex, mapped_path, top_k

SHARD_TIMEOUT = 30.0  # seconds a query waits for a shard's answer
# seconds shards may take to start (each may build an ANN index: 24 min at 10 M rows)
STARTING_TIMEOUT = 6 * 3600.0


@dataclass(frozen=True)
class Found:
    """A sharded search's results; `missing`: the shards that did not answer (their rows are
    not among the results)."""

    ids: np.ndarray
    scores: np.ndarray
    missing: tuple[int, ...] = ()
    slowest_ms: float = 0.0  # the slowest shard's own search time

    @property
    def partial(self) -> bool:
        return bool(self.missing)


@dataclass(frozen=True)
class Asked:
    """A search as every shard is asked it (one object: each argument of a Ray call is sent
    on its own, and costs as much)."""

    query: np.ndarray
    k: int
    dims: np.ndarray | None = None
    examples: np.ndarray | None = None
    weight: float = 1.0
    sharpness: float = 5.0
    how: AnnSearch | None = None


class Shard:
    """One shard's rows and its searches (what a Ray actor holds, or this process). Each
    search takes `excluded` first: packed bits (little-endian), one a row, set for rows
    never to return (None: none)."""

    def __init__(self, index: VectorIndex) -> None:
        self.index = index

    def size(self) -> int:
        return len(self.index)

    def search(
        self, excluded: np.ndarray | None, asked: Asked
    ) -> tuple[np.ndarray, np.ndarray, float]:
        """(item ids, scores, milliseconds taken) of this shard's k best rows."""
        started = time.perf_counter()
        ids, scores = self.index.search(
            asked.query, asked.k, asked.dims, self._mask(excluded), asked.examples,
            asked.weight, asked.sharpness, how=asked.how or AnnSearch(),
        )  # fmt: skip
        return ids, scores, (time.perf_counter() - started) * 1000

    def feedback(
        self, excluded: np.ndarray | None, learned: Learned, k: int
    ) -> tuple[np.ndarray, np.ndarray, float, np.ndarray]:
        """(item ids, scores, milliseconds taken, ranking keys) of this shard's k first rows
        by what feedback learned."""
        started = time.perf_counter()
        ids, scores, keys = ranked(self.index, learned, k, self._mask(excluded))
        return ids, scores, (time.perf_counter() - started) * 1000, keys

    def _mask(self, excluded: np.ndarray | None) -> np.ndarray | None:
        if excluded is None:
            return None
        return np.unpackbits(excluded, count=len(self.index), bitorder="little").astype(bool)


def _shard_index(
    vectors: np.ndarray,
    item_ids: np.ndarray,
    precision: str | None,
    ann: str | None,
    kept_in: str | None = None,
) -> VectorIndex:
    """A shard's rows as an index, with an ANN index of kind `ann` over them (None: scanned
    exactly): read from the folder `kept_in` when it holds the index of these very rows,
    else built, and written there when it can be."""
    index = None
    if ann:
        path = None if kept_in is None else Path(kept_in) / shard_index_name(item_ids, ann)
        if path is not None and path.is_file() and not path.is_symlink():  # never read a link
            index = AnnIndex.load(path, vectors.shape[1], len(vectors))
        if index is None or index.rows != len(vectors) or index.kind != ann:
            index = AnnIndex.build(ann, vectors)
            if path is not None:
                with suppress(OSError):  # a folder this process cannot write: built each start
                    index.save(path)
    return VectorIndex(vectors, item_ids, ann=index, precision=precision)


def shard_runs(rows: int, count: int) -> list[tuple[int, int]]:
    """The (first, end) rows of each of `count` shards of `rows` rows, in order."""
    bounds = np.linspace(0, rows, count + 1).astype(int)
    return [(int(a), int(b)) for a, b in itertools.pairwise(bounds)]


def shard_index_name(item_ids: np.ndarray, kind: str) -> str:
    """The file name of a shard's ANN index: its kind, rows and a digest of its item ids (the
    index of other rows never matches)."""
    digest = hashlib.sha256(np.ascontiguousarray(item_ids, np.int64).tobytes()).hexdigest()
    return f"{kind}-{len(item_ids)}-{digest[:20]}.ann"


def _use_threads(threads: int | None) -> None:
    """Keep this process's numeric libraries to `threads` threads (None: as they are): shards
    sharing one machine's cores each spinning up every core only wait on each other."""
    if threads is None:
        return
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(threads)
    threadpool_limits(threads)  # OpenMP (FAISS) and BLAS


class FileShard(Shard):
    """A run of rows of a float16 vector file (`path`, the byte `offset` of its row 0) from
    row `first` on, one a given item id, memory-mapped where the shard runs (the form a Ray
    actor is started in, on a machine that sees the file); `threads`: see `_use_threads`."""

    def __init__(
        self,
        path: str,
        offset: int,
        dim: int,
        first: int,
        item_ids: np.ndarray,
        precision: str | None = None,
        threads: int | None = None,
        ann: str | None = None,
        kept_in: str | None = None,
    ) -> None:
        _use_threads(threads)
        start = offset + first * dim * 2
        shape = (len(item_ids), dim)
        vectors = np.memmap(path, np.float16, "r", offset=start, shape=shape)
        super().__init__(_shard_index(vectors, item_ids, precision, ann, kept_in))


class HeldShard(Shard):
    """Rows given as an array (vectors not read from a file as they are: a model version's
    adapted vectors), for a Ray actor."""

    def __init__(
        self,
        vectors: np.ndarray,
        item_ids: np.ndarray,
        precision: str | None,
        threads: int | None = None,
        ann: str | None = None,
        kept_in: str | None = None,
    ) -> None:
        _use_threads(threads)
        super().__init__(_shard_index(vectors, item_ids, precision, ann, kept_in))


def merge(
    parts: list[tuple[np.ndarray, np.ndarray]], k: int, keys: list[np.ndarray] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The k best of the shards' (ids, scores) lists: higher score (or `keys`, one array a
    part, when given) first, then smaller id."""
    if not parts:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    ids = np.concatenate([np.asarray(i, np.int64) for i, _ in parts])
    scores = np.concatenate([np.asarray(s, np.float32) for _, s in parts])
    rank = scores if keys is None else np.concatenate([np.asarray(k_, np.float32) for k_ in keys])
    best = top_k(rank, k, ids)
    return ids[best], scores[best]


class Shards:
    """Shards to fan a query out to: in this process or Ray actors, each holding a
    contiguous run of an index's rows in its order (`of_index`)."""

    def __init__(self, shards: list[Any], sizes: list[int], *, ray: Any = None) -> None:
        self.shards = shards
        self.sizes = sizes
        self.ray = ray  # the Ray module when the shards are actors
        self.starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)

    def __len__(self) -> int:
        return int(self.starts[-1])

    @classmethod
    def of_index(
        cls,
        index: VectorIndex,
        count: int,
        *,
        ray: Any = None,
        threads: int | None = None,
        ann: str | None = None,
        kept_in: Path | None = None,
    ) -> Shards:
        """`index`'s rows split into `count` shards: held here, or with `ray` (the module,
        connected to a cluster) Ray actors, each mapping its run of the vector file where
        the rows are a run of one (else sent its rows: a model version's adapted vectors),
        each using `threads` threads (None: as many as its machine's libraries choose).
        `ann`: each shard has an ANN index of that kind over its rows (candidates from it,
        re-scored exactly; None: exact scans), kept in the folder `kept_in` between starts
        (None: built at each start)."""
        runs = shard_runs(len(index), count)
        kept = None if kept_in is None else str(kept_in)
        if ray is None:
            precision = index.precision
            shards = [
                Shard(_shard_index(index.vectors[a:b], index.item_ids[a:b], precision, ann, kept))
                for a, b in runs
            ]
            return cls(shards, [s.size() for s in shards])
        where = mapped_path(index.vectors)  # a run of a file's rows: each maps its own
        from_file, held = ray.remote(num_cpus=0)(FileShard), ray.remote(num_cpus=0)(HeldShard)
        actors: list[Any] = []
        for a, b in runs:
            ids = np.ascontiguousarray(index.item_ids[a:b])
            if where is not None:
                actor = from_file.remote(
                    where[0], where[1], index.dim, int(a), ids, index.precision, threads, ann, kept
                )
            else:
                rows = np.ascontiguousarray(index.vectors[a:b])
                actor = held.remote(rows, ids, index.precision, threads, ann, kept)
            actors.append(actor)
        sizes = ray.get([actor.size.remote() for actor in actors], timeout=STARTING_TIMEOUT)
        return cls(actors, sizes, ray=ray)

    def search(
        self,
        query: np.ndarray,
        k: int = 100,
        *,
        dims: np.ndarray | None = None,
        exclude: np.ndarray | None = None,
        examples: np.ndarray | None = None,
        weight: float = 1.0,
        sharpness: float = 5.0,
        how: AnnSearch | None = None,
        partial: bool = False,
        timeout: float = SHARD_TIMEOUT,
    ) -> Found:
        """The k best rows of every shard (`exclude`: a mask over all rows, in shard order).
        A shard that does not answer raises `ShardDown`, or with `partial` is left out and
        named in `Found.missing`."""
        asked = Asked(query, k, dims, examples, weight, sharpness, how)
        answers, missing = self._fan_out("search", (asked,), exclude, partial, timeout)
        ids, scores = merge([(a[0], a[1]) for a in answers], k)
        return Found(ids, scores, missing, max((a[2] for a in answers), default=0.0))

    def feedback(
        self,
        learned: Learned,
        k: int = 100,
        *,
        exclude: np.ndarray | None = None,
        partial: bool = False,
        timeout: float = SHARD_TIMEOUT,
    ) -> Found:
        """The k first rows of every shard by what feedback learned (as `search`)."""
        answers, missing = self._fan_out("feedback", (learned, k), exclude, partial, timeout)
        ids, scores = merge([(a[0], a[1]) for a in answers], k, [a[3] for a in answers])
        return Found(ids, scores, missing, max((a[2] for a in answers), default=0.0))

    def _fan_out(
        self, method: str, args: tuple, exclude: np.ndarray | None, partial: bool, timeout: float
    ) -> tuple[list[tuple], tuple[int, ...]]:
        """Every shard's answer to `method` (with its part of `exclude` first), and the
        shards that did not answer (only with `partial`; else `ShardDown` names the first)."""
        if exclude is not None and len(exclude) != len(self):
            raise ValueError(f"exclude has {len(exclude)} rows, the shards {len(self)}")
        asks = []
        for i, shard in enumerate(self.shards):
            bits = None
            if exclude is not None:
                part = exclude[self.starts[i] : self.starts[i + 1]]
                bits = np.packbits(part, bitorder="little")
            if self.ray:
                asks.append(getattr(shard, method).remote(bits, *args))
            else:
                asks.append((getattr(shard, method), (bits, *args)))
        deadline = time.monotonic() + timeout
        answers = self._all_answers(asks, timeout)
        got, missing = [], []
        for i, ask in enumerate(asks):
            left = max(0.0, deadline - time.monotonic())  # the query's time, not each shard's
            try:
                got.append(answers[i] if answers else self._answer(ask, left))
            except ShardDown as e:
                if not partial:
                    said = f"shard {i + 1} of {len(self.shards)} did not answer: {e}"
                    raise ShardDown(said) from None
                missing.append(i)
        return got, tuple(missing)

    def _all_answers(self, asks: list, timeout: float) -> list | None:
        """Every Ray shard's answer at once (one wait, not one a shard); None when one failed
        (each is then asked for alone, to name it)."""
        if self.ray is None:
            return None
        try:
            return self.ray.get(asks, timeout=timeout)
        except (self.ray.exceptions.GetTimeoutError, self.ray.exceptions.RayError):
            return None

    def _answer(self, ask: Any, timeout: float) -> tuple:
        if self.ray is None:
            method, args = ask
            return method(*args)
        try:
            return self.ray.get(ask, timeout=timeout)
        except self.ray.exceptions.GetTimeoutError:
            raise ShardDown(f"no answer in {timeout:g} s") from None
        except self.ray.exceptions.RayError as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ShardDown(first) from None
