"""The Ray engine (`sashie index --engine ray`): pages read and cut on a Ray cluster's CPU
workers, their crops embedded by model actors (one a GPU, or one on CPU when the cluster has
no GPU), the vectors streamed back to this process, which alone writes the library.

Ray Data runs the two stages as a stream: readers (an actor pool of `workers`, each holding
one PageCutter) turn page jobs into pages ready for the model, and embedders (an actor pool
of one model a GPU) turn those into vectors. Rows carry their job's key: Ray does not keep
the order, and the page that is written is the job this process planned for that key. A
page a worker cannot read is a Skip, as in the local engine. The library's crash-safe
protocol is the Indexer's: an interrupted or killed run loses at most the batch in flight,
and running it again embeds only what is missing.

Without an address a local Ray is started for the run (and stopped after it); with one, the
workers must see the same page files or URLs, and have sashie and the model installed. Rows
travel between Ray's processes pickled, as all Ray data does: a Ray cluster is a trusted
place (docs/security.md).
"""

from __future__ import annotations

import logging
import os
import pickle
import socket
import warnings
from collections.abc import Generator
from typing import Any

import numpy as np

from ..errors import SashieError
from .cutting import PageCopy, PageCutter, PageJob, PageWork, Skip
from .indexer import Batch

READ_BATCH = 4  # pages a reader takes at a time
MAX_BLOCKS = 10_000  # blocks the page list is cut into
CONNECT_TIMEOUT = 5.0  # seconds to wait for a cluster's address to answer


def ray_module(needs: str = "--engine ray") -> Any:
    """Ray, or one clear error (`needs` ...) when the extra is not installed."""
    try:
        import ray
        import ray.data
    except ImportError:
        raise SashieError(f"{needs} needs Ray; install it with pip install 'sashie[ray]'") from None
    return ray


def join_cluster(ray: Any, address: str | None, cpus: int) -> bool:
    """Join the Ray cluster at `address` (or the one this process is already connected to),
    or start one here with `cpus` CPUs; True when started here. One error line when the
    cluster cannot be reached."""
    where = f"at {address}" if address else "on this machine"
    try:
        if address:
            check_reachable(address)
        if ray.is_initialized():
            return False
        for name in ("ray", "ray.data"):  # Ray's notices and bars: the callers report
            logging.getLogger(name).setLevel(logging.ERROR)
        options: dict = {
            "include_dashboard": False,
            "log_to_driver": False,
            "logging_level": logging.ERROR,
        }
        if address:
            ray.init(address=address, **options)
        else:
            ray.init(num_cpus=cpus, **options)
    except (OSError, RuntimeError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise SashieError(f"cannot reach a Ray cluster {where} ({first})") from None
    return True


class RayEngine:
    """Reads, cuts and embeds on Ray; yields about `batch_size` items at a time."""

    def __init__(
        self,
        spec: str,
        *,
        batch_size: int | None = None,
        workers: int | None = None,
        device: str | None = None,
        address: str | None = None,
        trust_remote_code: bool = False,
    ) -> None:
        self.spec = spec
        self.batch_size = batch_size  # None: 256 with GPUs, else 32
        self.workers = workers  # None: every CPU of the cluster the model actors leave
        self.device = device
        self.address = address
        self.trust_remote_code = trust_remote_code
        self.ray = ray_module()

    def batches(self, cutter: PageCutter, jobs: list[PageJob]) -> Generator[Batch, None, None]:
        if not jobs:
            return
        started_here = self._connect()
        try:
            yield from self._stream(cutter, jobs)
        finally:
            if started_here:
                self.ray.shutdown()

    def _connect(self) -> bool:
        """Join the cluster (`join_cluster`); readers and one model actor on a machine of
        its own, even one with fewer cores; True when started here."""
        cpus = (self.workers or min(8, os.cpu_count() or 1)) + 1
        return join_cluster(self.ray, self.address, cpus)

    def _stream(self, cutter: PageCutter, jobs: list[PageJob]) -> Generator[Batch, None, None]:
        ray = self.ray
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False  # the Indexer's bar counts pages
        context.print_on_execution_start = False
        # a run of fewer pages than readers times blocks: Ray says so, and it does not matter
        warnings.filterwarnings("ignore", "The minimum number of concurrent actors", UserWarning)
        resources = ray.cluster_resources()
        gpus = int(resources.get("GPU", 0)) if self.device != "cpu" else 0
        if self.device and self.device.startswith("cuda") and not gpus:
            raise SashieError("--device cuda asked for, but the Ray cluster has no GPU")
        batch_size = max(1, self.batch_size or (256 if gpus else 32))
        embedders = ray.data.ActorPoolStrategy(size=gpus or 1)
        # every CPU the model actors (one CPU each) leave
        readers = self.workers or max(1, int(resources.get("CPU", 1)) - (gpus or 1))
        rows = ray.data.from_items(
            [{"key": key, "job": pickle.dumps(job)} for key, job in enumerate(jobs)],
            # small blocks stream: vectors come back (and are saved) while pages are read
            override_num_blocks=max(1, min(len(jobs) // READ_BATCH, MAX_BLOCKS)),
        )
        pages = rows.map_batches(
            ReadPages,
            fn_constructor_kwargs={"cutter": pickle.dumps(cutter)},
            batch_size=READ_BATCH,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=readers),
            num_cpus=1,
        )
        vectors = pages.map_batches(
            EmbedCrops,
            fn_constructor_kwargs={
                "spec": self.spec,
                "device": self.device or ("cuda" if gpus else "cpu"),
                "trust_remote_code": self.trust_remote_code,
                "batch_size": batch_size,
            },
            batch_size=max(1, batch_size // 4),  # pages: a few crops each
            batch_format="numpy",
            compute=embedders,
            num_cpus=1,
            num_gpus=1 if gpus else 0,
        )
        seen: set[int] = set()
        batch: list[PageWork | PageCopy | Skip] = []
        parts: list[np.ndarray] = []
        waiting = 0
        for row in vectors.iter_rows():
            key = int(row["key"])
            if key in seen:  # a retried task's second answer
                continue
            seen.add(key)
            result, found = pickle.loads(row["page"])
            if isinstance(result, PageWork):
                result.job = jobs[key]  # what is written is what this process planned
                parts.append(found)
                waiting += len(found)
            batch.append(result)
            if waiting >= batch_size:
                yield batch, np.concatenate(parts)
                batch, parts, waiting = [], [], 0
        if batch:
            yield batch, (np.concatenate(parts) if parts else np.zeros((0, 0), np.float32))


def check_reachable(address: str, timeout: float = CONNECT_TIMEOUT) -> None:
    """Raise OSError unless something answers at the address's host and port (ray.init
    itself waits minutes on an address where nothing answers)."""
    if address in ("auto", "local"):
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"an address is HOST:PORT, not {address!r}")
    with socket.create_connection((host, int(port)), timeout=timeout):
        pass


class ReadPages:
    """A reader actor: page jobs in, pages cut and prepared for the model out."""

    def __init__(self, cutter: bytes) -> None:
        self.cutter: PageCutter = pickle.loads(cutter)

    def __call__(self, rows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        pages = [pickle.dumps(self.cutter.read(pickle.loads(job))) for job in rows["job"]]
        return {"key": rows["key"], "page": np.array(pages, dtype=object)}


class EmbedCrops:
    """A model actor: pages in, each with its crops' vectors out (its pixels dropped)."""

    def __init__(self, spec: str, device: str, trust_remote_code: bool, batch_size: int) -> None:
        from ..encoders import load_encoder

        self.encoder = load_encoder(spec, device=device, trust_remote_code=trust_remote_code)
        self.batch_size = batch_size

    def __call__(self, rows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        results = [pickle.loads(page) for page in rows["page"]]
        pixels = [p for r in results if isinstance(r, PageWork) for p in r.pixels]
        vectors = (
            self.encoder.encode_pixels(np.stack(pixels), self.batch_size)
            if pixels
            else np.zeros((0, self.encoder.dim), np.float32)
        )
        out, start = [], 0
        for result in results:
            if isinstance(result, PageWork):
                count = len(result.pixels)
                result.pixels = []
                out.append(pickle.dumps((result, vectors[start : start + count])))
                start += count
            else:
                out.append(pickle.dumps((result, None)))
        return {"key": rows["key"], "page": np.array(out, dtype=object)}
