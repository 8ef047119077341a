"""Model versions of a library: what `sashie adapt` makes and `sashie adapt --use` switches.

A version is a folder beside the base model's vectors,

    adapters/<model>/<name>/   version.json        base model id, data hash, settings, losses
                               adapter.safetensors the visual adapter (adapt.py)
                               text-encoder.safetensors  the tuned text-encoder tensors, under
                                                   the base model's own state-dict names
                               loss.png            the loss curve
                               vectors.f16, items.i64    V′ = A(V), row for row with the base

and the manifest says which version of each model is active. Applying a version writes its
vectors to `.partial` files, syncs and renames them, records their row count in the catalog and
only then rewrites the manifest: a crash at any point leaves the previous version active and
whole. Pages indexed later get base vectors first, then the active version's rows are brought
up to date (`catch_up`); a version that lags is completed in memory when it is loaded.
"""

from __future__ import annotations

import errno
import mmap
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from queue import Queue
from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image

from .adapt import VisualAdapter, apply_adapter, load_adapter
from .errors import SashieError
from .vectors import ITEM_FILE, VECTOR_FILE, VectorFile

VERSIONS_DIR = "adapters"
BASE = "base"
PARTIAL = ".partial"
APPLY_WORKERS = 3  # threads that read, adapt and write blocks of rows (write_version_vectors)


def vector_set(model_id: str, version: str) -> str:
    """The catalog's name for a version's vectors (their committed row count)."""
    return f"{model_id}#{version}"


class AdaptedEncoder:
    """A version's encoder: the base image features passed through the adapter, and the tuned
    text encoder (`inner` is a base encoder whose text tensors were replaced)."""

    def __init__(self, inner, adapter: VisualAdapter | None, version: str) -> None:
        self.inner = inner
        self.adapter = adapter
        self.version = version
        self.model_id = f"{inner.model_id}+{version}"
        self.dim = inner.dim
        self.image_size = inner.image_size
        self.device = inner.device

    def preprocess(self, image: Image.Image) -> np.ndarray:
        return self.inner.preprocess(image)

    def encode_pixels(self, pixels: np.ndarray) -> np.ndarray:
        return adapted(self.adapter, self.inner.encode_pixels(pixels))

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        return self.inner.encode_texts(texts)

    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        if not images:
            return np.zeros((0, self.dim), np.float32)
        return self.encode_pixels(np.stack([self.preprocess(im) for im in images]))


def write_version_vectors(folder: Path, adapter: VisualAdapter | None, base: np.ndarray,
                          item_ids: np.ndarray, *, step: int = 1 << 15,
                          progress: Callable[[int], None] | None = None) -> None:
    """Write A(base) and the item ids into `folder` atomically (partial files, synced, then
    renamed over the old ones). `base` is an array or a memory map of a file's first rows.

    Blocks of rows go through APPLY_WORKERS threads, each reading a block, adapting it with one
    torch thread and writing it: while one waits for the disk, the others compute (one
    many-threaded matrix product beside a thread doing I/O runs at half speed on a 2-core
    machine). Writes bypass the page cache where the system allows it (O_DIRECT)."""
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
    source = os.open(base.filename, os.O_RDONLY) if isinstance(base, np.memmap) else None
    out = _WriteTarget(vector_tmp)

    def work(start: int) -> int:
        buffer = buffers.get()
        try:
            block = buffer[: min(step, rows - start)]
            if source is not None:
                wanted = memoryview(block).cast("B")
                if os.preadv(source, [wanted], base.offset + start * dim * 2) != len(wanted):
                    raise SashieError(f"{base.filename} is shorter than its {rows} rows")
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
            try:
                self.direct = os.open(path, os.O_WRONLY | os.O_DIRECT)
            except OSError:  # a file system without direct I/O (tmpfs)
                pass

    def write(self, block: np.ndarray, offset: int) -> None:
        data = memoryview(block).cast("B")
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


def adapted(adapter: VisualAdapter | None, vectors: np.ndarray) -> np.ndarray:
    """A(vectors) as float32 rows (the vectors themselves when a version has no adapter)."""
    if adapter is None:
        return np.asarray(vectors, np.float32)
    return apply_adapter(adapter, vectors).astype(np.float32)


def catch_up_rows(files: VectorFile, done: int, adapter: VisualAdapter | None,
                  base: np.ndarray, item_ids: np.ndarray) -> int:
    """Append A(base[done:]) to a version's vectors; returns the new row count."""
    if done >= len(base):
        return done
    return files.write_at(done, adapted(adapter, base[done:]), item_ids[done:])


def load_version_adapter(folder: Path, record: dict) -> VisualAdapter | None:
    return load_adapter(folder, float(record["settings"]["ratio"]))
