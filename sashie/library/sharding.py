"""A library searched through shards (sashie/search/shards.py): its rows split among Ray
actors on a cluster (or held in this process), each query and each feedback fanned out to
them and their lists merged, exactly as one index would rank.

Everything a search is narrowed by (the keep/exclude filter, labels, books, dates) is a
mask over the library's rows, computed where the query is asked and sent to each shard as
its part, in packed bits; feedback is learned there too, from the marked items' vectors,
and applied by each shard to its rows. The shards map their runs of the library's vector
file where they run (a folder every machine of the cluster sees at the same path), so the
rows pages indexed later add (with `--engine ray` or not) are in the library's files: the
shards are made again from them at the next search after the rows change. A library with an
ANN index has each shard hold one over its rows (the kind a library of the shard's size would
have), kept in the model version's folder (`shards/`) between starts where the library can be
written, else built at each start.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Any

from ..errors import SashieError
from ..search.ann import choose_kind
from ..search.ranking import VectorIndex
from ..search.shards import Shards, shard_index_name, shard_runs


class Sharding:
    """How a library's searches fan out: `count` shards, Ray actors on the cluster at
    `address` ("local": a Ray started on this machine), or held in this process (None)."""

    def __init__(
        self,
        count: int,
        address: str | None = None,
        kept_in: Callable[[str], Path | None] = lambda model_id: None,
    ) -> None:
        if not 1 <= count <= 4096:
            raise SashieError("the number of shards must be 1 to 4096")
        self.count = count
        self.address = address
        self.kept_in = kept_in  # the folder a model's shards keep their ANN indexes in
        self._lock = threading.Lock()
        self._made: dict[str, tuple[VectorIndex, Shards]] = {}  # by model id
        self._ray = self._joined()

    def shards(self, model_id: str, index: VectorIndex) -> Shards:
        """The shards of the model's rows: made at its first search, and again when the
        rows changed (pages indexed, items removed, another version made active)."""
        with self._lock:
            made = self._made.get(model_id)
            if made is None or not _same_rows(made[0], index):
                # the old shards' actors end when the last search holding them lets go
                # (Ray ends an actor with its last handle), not in the middle of one
                local = self.address == "local"  # shards on this machine share its cores
                threads = max(1, (os.cpu_count() or 1) // self.count) if local else None
                ann = _shard_ann(index, self.count)
                folder = self.kept_in(model_id) if ann else None
                shards = Shards.of_index(
                    index, self.count, ray=self._ray, threads=threads, ann=ann, kept_in=folder
                )
                if folder is not None and ann is not None:
                    _forget_others(folder, index, self.count, ann)
                self._made[model_id] = (index, shards)
            return self._made[model_id][1]

    def _joined(self) -> Any:
        """Ray, joined to the cluster (None: shards in this process). Joined when made, in
        the caller's thread: a Ray started here lives as long as the thread that started it
        (its processes are told to end with it), and a server's request threads come and go."""
        if self.address is None:
            return None
        from ..ingest.ray_engine import join_cluster, ray_module

        ray = ray_module("sharded search")
        join_cluster(ray, None if self.address == "local" else self.address, os.cpu_count() or 1)
        return ray


def _same_rows(a: VectorIndex, b: VectorIndex) -> bool:
    """Whether two loaded indexes hold the same rows (a new ANN file keeps the rows)."""
    return a.vectors is b.vectors and a.item_ids is b.item_ids


def _shard_ann(index: VectorIndex, count: int) -> str | None:
    """The ANN index each shard builds over its rows when it starts: the kind a library of
    its size would have, where the library has one (None: exact scans)."""
    if index.ann is None:
        return None
    kind = choose_kind(len(index) // count, index.dim)
    return None if kind == "exact" else kind


def _forget_others(folder: Path, index: VectorIndex, count: int, kind: str) -> None:
    """Remove the shard indexes in `folder` of rows no shard holds now (after pages were
    indexed the runs move): only files of the shards' own names, never a link."""
    runs = shard_runs(len(index), count)
    wanted = {shard_index_name(index.item_ids[a:b], kind) for a, b in runs}
    for entry in folder.glob("*.ann"):
        if entry.name not in wanted and entry.is_file() and not entry.is_symlink():
            with suppress(OSError):
                entry.unlink()
