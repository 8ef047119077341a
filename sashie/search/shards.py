"""Sharded search: the rows of a library's vectors split among shards, each searched where it
is held (a Ray actor on a machine of a cluster, or in this process), and the partial top-k
lists merged exactly.

Each shard returns its own top k, found and scored as `VectorIndex.search` finds and scores
them: a row's score is a float64 sum of its float16 values times the query, the same on any
shard. The top k of the union of the shards' lists is then the top k of every row: the same
ids in the same order as one index holding them all (equal scores: the smaller item id
first), for exact scans; with ANN indexes each shard's candidates are its own index's.

Ray actors, not Ray Serve deployments: a shard is one long-lived process holding its rows
and answering one method; Serve would put an HTTP proxy, a controller and autoscaling
between the caller and the same actor (and needs gRPC and more installed), for nothing a
fan-out to a fixed set of shards uses. A shard that does not answer is reported, by name:
one clear error, or, when the caller accepts it, results marked partial with the shards
that are missing.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SashieError
from .ranking import AnnSearch, VectorIndex, top_k

SHARD_TIMEOUT = 30.0  # seconds a query waits for a shard's answer


class ShardDown(SashieError):
    """A shard did not answer."""


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


class Shard:
    """One shard's rows and its search (what a Ray actor holds, or this process)."""

    def __init__(self, index: VectorIndex) -> None:
        self.index = index

    def size(self) -> int:
        return len(self.index)

    def search(
        self,
        query: np.ndarray,
        k: int,
        dims: np.ndarray | None = None,
        excluded: np.ndarray | None = None,
        examples: np.ndarray | None = None,
        weight: float = 1.0,
        sharpness: float = 5.0,
        how: AnnSearch | None = None,
    ) -> tuple[np.ndarray, np.ndarray, float]:
        """(item ids, scores, milliseconds taken) of this shard's k best rows; `excluded`:
        packed bits (little-endian), one a row, set for rows never to return."""
        started = time.perf_counter()
        exclude = None
        if excluded is not None:
            exclude = np.unpackbits(excluded, count=len(self.index), bitorder="little")
            exclude = exclude.astype(bool)
        ids, scores = self.index.search(
            query, k, dims, exclude, examples, weight, sharpness, how=how or AnnSearch()
        )
        return ids, scores, (time.perf_counter() - started) * 1000


class FileShard(Shard):
    """Rows first .. first + count of a vector file (sashie/store/vectors.py), memory-mapped
    where the shard runs (the form a Ray actor is started in)."""

    def __init__(
        self, folder: str, dim: int, first: int, count: int, precision: str | None = None
    ) -> None:
        from ..store.vectors import VectorFile

        files = VectorFile(Path(folder), dim)
        vectors = files.vectors(first + count)[first:]
        super().__init__(
            VectorIndex(vectors, files.item_ids(first + count)[first:], precision=precision)
        )


def merge(parts: list[tuple[np.ndarray, np.ndarray]], k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k best of the shards' (ids, scores) lists: higher score first, then smaller id."""
    if not parts:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    ids = np.concatenate([np.asarray(i, np.int64) for i, _ in parts])
    scores = np.concatenate([np.asarray(s, np.float32) for _, s in parts])
    best = top_k(scores, k, ids)
    return ids[best], scores[best]


class Shards:
    """Shards to fan a query out to: in this process (`in_process`) or Ray actors
    (`on_ray`), each holding a contiguous run of rows in the order given."""

    def __init__(self, shards: list[Any], sizes: list[int], *, ray: Any = None) -> None:
        self.shards = shards
        self.sizes = sizes
        self.ray = ray  # the Ray module when the shards are actors
        self.starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)

    def __len__(self) -> int:
        return int(self.starts[-1])

    @classmethod
    def in_process(cls, index: VectorIndex, count: int) -> Shards:
        """`index`'s rows split into `count` shards held here."""
        bounds = np.linspace(0, len(index), count + 1).astype(int)
        shards = [
            Shard(VectorIndex(index.vectors[a:b], index.item_ids[a:b], precision=index.precision))
            for a, b in itertools.pairwise(bounds)
        ]
        return cls(shards, [s.size() for s in shards])

    @classmethod
    def on_ray(
        cls,
        folder: Path,
        dim: int,
        rows: int,
        count: int,
        *,
        precision: str | None = None,
    ) -> Shards:
        """The first `rows` rows of the vector file in `folder` split into `count` Ray actors
        on the cluster this process is connected to."""
        import ray

        remote = ray.remote(num_cpus=0)(FileShard)
        bounds = np.linspace(0, rows, count + 1).astype(int)
        actors: list[Any] = [
            remote.remote(str(folder), dim, int(a), int(b - a), precision)
            for a, b in itertools.pairwise(bounds)
        ]
        sizes = ray.get([actor.size.remote() for actor in actors], timeout=600)
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
        if exclude is not None and len(exclude) != len(self):
            raise ValueError(f"exclude has {len(exclude)} rows, the shards {len(self)}")
        asks = []
        for i, shard in enumerate(self.shards):
            bits = None
            if exclude is not None:
                part = exclude[self.starts[i] : self.starts[i + 1]]
                bits = np.packbits(part, bitorder="little")
            args = (query, k, dims, bits, examples, weight, sharpness, how)
            asks.append(shard.search.remote(*args) if self.ray else (shard, args))
        deadline = time.monotonic() + timeout
        answers = self._all_answers(asks, timeout)
        parts, missing, slowest = [], [], 0.0
        for i, ask in enumerate(asks):
            left = max(0.0, deadline - time.monotonic())  # the query's time, not each shard's
            try:
                ids, scores, ms = answers[i] if answers else self._answer(ask, left)
            except ShardDown as e:
                if not partial:
                    said = f"shard {i + 1} of {len(self.shards)} did not answer: {e}"
                    raise ShardDown(said) from None
                missing.append(i)
                continue
            parts.append((ids, scores))
            slowest = max(slowest, ms)
        ids, scores = merge(parts, k)
        return Found(ids, scores, tuple(missing), slowest)

    def _all_answers(self, asks: list, timeout: float) -> list | None:
        """Every Ray shard's answer at once (one wait, not one a shard); None when one failed
        (each is then asked for alone, to name it)."""
        if self.ray is None:
            return None
        try:
            return self.ray.get(asks, timeout=timeout)
        except (self.ray.exceptions.GetTimeoutError, self.ray.exceptions.RayError):
            return None

    def _answer(self, ask: Any, timeout: float) -> tuple[np.ndarray, np.ndarray, float]:
        if self.ray is None:
            shard, args = ask
            return shard.search(*args)
        try:
            return self.ray.get(ask, timeout=timeout)
        except self.ray.exceptions.GetTimeoutError:
            raise ShardDown(f"no answer in {timeout:g} s") from None
        except self.ray.exceptions.RayError as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ShardDown(first) from None
