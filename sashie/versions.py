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

import os
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from PIL import Image

from .adapt import VisualAdapter, apply_adapter, load_adapter
from .vectors import ITEM_FILE, VECTOR_FILE, VectorFile

VERSIONS_DIR = "adapters"
BASE = "base"
PARTIAL = ".partial"


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
    renamed over the old ones)."""
    folder.mkdir(parents=True, exist_ok=True)
    vector_tmp = folder / (VECTOR_FILE + PARTIAL)
    item_tmp = folder / (ITEM_FILE + PARTIAL)
    rows, dim = base.shape
    block = np.empty((min(step, max(rows, 1)), dim), np.float16)
    done = np.empty_like(block)
    # a mapped file is read block by block into one buffer rather than faulted in page by
    # page: faster, and its 1 GB does not count against the process's memory
    source = open(base.filename, "rb") if isinstance(base, np.memmap) else None
    fd = os.open(vector_tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        for start in range(0, rows, step):
            count = min(step, rows - start)
            if source is not None:
                source.seek(base.offset + start * dim * 2)
                source.readinto(memoryview(block[:count]).cast("B"))
            else:
                block[:count] = base[start : start + count]
            if adapter is None:
                done[:count] = block[:count]
            else:
                apply_adapter(adapter, block[:count], out=done[:count])
            os.pwrite(fd, memoryview(done[:count]).cast("B"), start * dim * 2)
            if progress:
                progress(count)
        os.fsync(fd)
    finally:
        os.close(fd)
        if source is not None:
            source.close()
    np.ascontiguousarray(item_ids, np.int64).tofile(item_tmp)
    fd = os.open(item_tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(vector_tmp, folder / VECTOR_FILE)
    os.replace(item_tmp, folder / ITEM_FILE)


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
