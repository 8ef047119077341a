"""Model versions on disk: what `sashie adapt` makes and `sashie versions use` switches.

A version is a folder beside the base model's vectors,

    adapters/<model>/<name>/   version.json        base model id, data hash, settings, losses
                               adapter.safetensors the visual adapter (adapter.py)
                               text-encoder.safetensors  the tuned text-encoder tensors, under
                                                   the base model's own state-dict names
                               loss.png            the loss curve
                               vectors.f16, items.i64    V′ = A(V), row for row with the base

and the manifest says which version of each model is active. Applying a version writes its
vectors to `.partial` files, syncs and renames them, records their row count in the catalog and
only then rewrites the manifest: a crash at any point leaves the previous version active and
whole. Pages indexed later get base vectors first, then the active version's rows are brought
up to date (`catch_up_rows`); a version that lags is completed in memory when it is loaded.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import mmap
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from queue import Queue
from typing import TYPE_CHECKING

import numpy as np

from ..errors import Damaged, SashieError
from ..extras import available
from ..store.tensor_files import read_tensors
from ..store.vectors import ITEM_FILE, VECTOR_FILE, VectorFile

if TYPE_CHECKING:  # torch is imported by the functions that run it, not by naming a file
    from ..encoders import TrainableEncoder
    from .adapter import VisualAdapter
    from .training import Trained

TEXT_FILE = "text-encoder.safetensors"
VERSION_FILE = "version.json"
LOSS_PLOT = "loss.png"
VERSIONS_DIR = "adapters"
PARTIAL = ".partial"
MAX_RECORD_BYTES = 1 << 22  # of version.json: its losses step by step, and settings
APPLY_WORKERS = 3  # threads that read, adapt and write blocks of rows (write_version_vectors)


def vector_set(model_id: str, version: str) -> str:
    """The catalog's name for a version's vectors (their committed row count)."""
    return f"{model_id}#{version}"


def write_version_vectors(
    folder: Path,
    adapter: VisualAdapter | None,
    base: np.ndarray,
    item_ids: np.ndarray,
    *,
    step: int = 1 << 15,
    progress: Callable[[int], None] | None = None,
) -> None:
    """Write A(base) and the item ids into `folder` atomically (partial files, synced, then
    renamed over the old ones). `base` is an array or a memory map of a file's first rows.

    Blocks of rows go through APPLY_WORKERS threads, each reading a block, adapting it with one
    torch thread and writing it: while one waits for the disk, the others compute (one
    many-threaded matrix product beside a thread doing I/O runs at half speed on a 2-core
    machine). Writes bypass the page cache where the system allows it (O_DIRECT)."""
    import torch

    from .adapter import apply_adapter

    folder.mkdir(parents=True, exist_ok=True)
    vector_tmp = folder / (VECTOR_FILE + PARTIAL)
    item_tmp = folder / (ITEM_FILE + PARTIAL)
    rows, dim = base.shape
    step = min(step, max(rows, 1))
    buffers: Queue = Queue()
    for _ in range(APPLY_WORKERS):  # page-aligned, as O_DIRECT wants
        buffers.put(np.frombuffer(mmap.mmap(-1, step * dim * 2), np.float16).reshape(step, dim))
    # a mapped file is read block by block into a buffer rather than faulted in page by
    # page: faster, and its 1 GB does not count against the process's memory
    mapped, offset = (base.filename, base.offset) if isinstance(base, np.memmap) else (None, 0)
    source = os.open(mapped, os.O_RDONLY) if mapped else None
    out = _WriteTarget(vector_tmp)

    def work(start: int) -> int:
        buffer = buffers.get()
        try:
            block = buffer[: min(step, rows - start)]
            if source is not None:
                wanted = block.data.cast("B")
                if os.preadv(source, [wanted], offset + start * dim * 2) != len(wanted):
                    raise SashieError(f"{mapped} is shorter than its {rows} rows")
            else:
                block[:] = base[start : start + len(block)]
            if adapter is not None:
                apply_adapter(adapter, block, out=block)  # in place: row by row
            out.write(block, start * dim * 2)
            return len(block)
        finally:
            buffers.put(buffer)

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with ThreadPoolExecutor(APPLY_WORKERS, thread_name_prefix="sashie-apply") as pool:
            for count in pool.map(work, range(0, rows, step)):
                if progress:
                    progress(count)
        out.sync()
    finally:
        torch.set_num_threads(threads)
        out.close()
        if source is not None:
            os.close(source)
    np.ascontiguousarray(item_ids, np.int64).tofile(item_tmp)
    fd = os.open(item_tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(vector_tmp, folder / VECTOR_FILE)
    os.replace(item_tmp, folder / ITEM_FILE)


class _WriteTarget:
    """A new file written at offsets from several threads, each block flushed to the disk as
    it is written (while other threads compute) rather than all at the final sync. Whole pages
    from page-aligned buffers go straight to the disk (O_DIRECT) where the system allows it,
    sparing the page cache's copy and write-back; anything else goes through the cache."""

    PAGE = 4096

    def __init__(self, path: Path) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        self.direct = None
        if hasattr(os, "O_DIRECT"):
            with contextlib.suppress(OSError):  # a file system without direct I/O (tmpfs)
                self.direct = os.open(path, os.O_WRONLY | os.O_DIRECT)

    def write(self, block: np.ndarray, offset: int) -> None:
        data = block.data.cast("B")
        if self.direct is not None and offset % self.PAGE == 0 and len(data) % self.PAGE == 0:
            try:
                os.pwrite(self.direct, data, offset)
            except OSError as error:  # EINVAL: this file system wants other alignments
                if error.errno != errno.EINVAL:
                    raise
                os.pwrite(self.fd, data, offset)
        else:
            os.pwrite(self.fd, data, offset)
        getattr(os, "fdatasync", os.fsync)(self.fd)

    def sync(self) -> None:
        os.fsync(self.fd)

    def close(self) -> None:
        for fd in (self.fd, self.direct):
            if fd is not None:
                os.close(fd)


def catch_up_rows(
    files: VectorFile,
    done: int,
    adapter: VisualAdapter | None,
    base: np.ndarray,
    item_ids: np.ndarray,
) -> int:
    """Append A(base[done:]) to a version's vectors; returns the new row count."""
    from .adapter import adapted

    if done >= len(base):
        return done
    return files.write_at(done, adapted(adapter, base[done:]), item_ids[done:])


def load_version_adapter(folder: Path, record: dict, dim: int) -> VisualAdapter | None:
    from .adapter import load_adapter

    return load_adapter(folder, float(record["settings"]["ratio"]), dim)


def data_hash(model_id: str, pairs: Sequence[tuple[int, str]]) -> str:
    """A short hash of the base model and the (item, caption) pairs trained on."""
    digest = hashlib.sha256(model_id.encode())
    for item, caption in sorted(pairs):
        digest.update(f"\n{item}\t{caption}".encode())
    return digest.hexdigest()[:12]


def save_version(folder: Path, trained: Trained, record: dict) -> None:
    """The adapter and tuned text tensors (safetensors), version.json and, with the `plot`
    extra installed, the loss plot."""
    from safetensors.torch import save_file

    from .adapter import ADAPTER_FILE

    folder.mkdir(parents=True, exist_ok=True)
    if trained.adapter is not None:
        save_file(
            {k: v.contiguous() for k, v in trained.adapter.state_dict().items()},
            folder / ADAPTER_FILE,
        )
    if trained.text_state:
        save_file({k: v.contiguous() for k, v in trained.text_state.items()}, folder / TEXT_FILE)
    record = dict(
        record,
        losses=[round(x, 5) for x in trained.losses],
        epoch_losses=[round(x, 5) for x in trained.epoch_losses],
        train_seconds=round(trained.seconds, 2),
    )
    (folder / VERSION_FILE).write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n")
    if available("matplotlib"):  # the `plot` extra
        name = record.get("name", "")
        objective = "ArcMargin loss" if record.get("settings", {}).get("target") == "images" else ""
        plot_losses(trained.losses, folder / LOSS_PLOT, title=f"adapting {name}", ylabel=objective)


def read_version(folder: Path) -> dict:
    """The version's record (version.json), checked to hold what loading it needs."""
    path = folder / VERSION_FILE
    try:
        with open(path, "rb") as f:
            text = f.read(MAX_RECORD_BYTES + 1)
        if len(text) > MAX_RECORD_BYTES:
            raise ValueError(f"over {MAX_RECORD_BYTES:,} bytes")
        record = json.loads(text)
        ratio = record["settings"]["ratio"]
        if type(ratio) not in (int, float) or not 0 <= ratio <= 1:
            raise ValueError("its adapter ratio is not between 0 and 1")
    except FileNotFoundError:
        raise SashieError(f"unreadable model version in {folder} (no {VERSION_FILE})") from None
    except (OSError, ValueError, TypeError, KeyError, RecursionError) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise Damaged(str(path), reason) from None
    return record


def has_text_state(folder: Path) -> bool:
    """Whether a version tuned the text encoder (caption teaching, ParaCLIP, MCIP's Re-A)."""
    return (folder / TEXT_FILE).is_file()


def load_text_state(encoder: TrainableEncoder, folder: Path) -> None:
    """Put a version's tuned text tensors into a loaded base encoder's model."""
    path = folder / TEXT_FILE
    if not path.is_file():
        return
    import torch

    state, _ = read_tensors(path, "pt")
    parameters = dict(encoder.model.named_parameters())
    wrong = sorted(
        n for n, t in state.items() if n not in parameters or t.shape != parameters[n].shape
    )
    if wrong:
        raise Damaged(str(path), f"it does not fit {encoder.model_id}, e.g. {wrong[0]}")
    with torch.no_grad():
        for name, parameter in encoder.model.named_parameters():
            if name in state:
                parameter.copy_(state[name].to(parameter.device, parameter.dtype))


def plot_losses(losses: Sequence[float], path: Path, title: str = "", ylabel: str = "") -> None:
    """The loss curve, step by step (the seed paper's Fig. 3)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 3.5), dpi=100)
    axes.plot(range(1, len(losses) + 1), losses, marker="o" if len(losses) < 40 else None)
    axes.set_xlabel("step")
    axes.set_ylabel(ylabel or "InfoNCE loss")
    axes.set_title(title.strip())
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
