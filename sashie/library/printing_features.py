"""The local features and fingerprints of the items `sashie printings --all` has looked at,
kept so that a later run compares new pages with old ones without reading the old again.

One safetensors file a step (LIB/printings/features-NNNNNN.safetensors), each holding its
items' ids, fingerprints, feature sizes, and their keypoints, descriptors and packed ink
laid end to end with where each item's begin. A library folder may come from anyone: a
file whose parts do not fit together is one `Damaged` line, and rows of items the catalog
no longer holds are passed over.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import Damaged, SashieError
from .paths import inside

if TYPE_CHECKING:  # OpenCV loads when printings are first looked for
    from ..printings.matching import Features

FOLDER = "printings"
NAME = re.compile(r"features-(\d{6})\.safetensors")
PART = "the library's printings features"


@dataclass(frozen=True)
class Looked:
    """What was found of one item: its features and its fingerprint."""

    item: int
    features: Features
    fingerprint: np.ndarray


class FeatureShards:
    """The stored features of a library's items, read on demand."""

    def __init__(self, library: Path) -> None:
        self.root = library
        self.folder = library / FOLDER
        self._shards: list[dict] = []
        self._where: dict[int, tuple[int, int]] = {}  # item -> (shard, row)
        self.reload()

    def reload(self) -> None:
        """Read the folder's shards again."""
        self._shards, self._where = [], {}
        if self.folder.is_dir():
            for path in sorted(self.folder.iterdir()):
                if NAME.fullmatch(path.name):
                    self._add(path)

    def _add(self, path: Path) -> None:
        shard = _checked(inside(self.root, path))
        for row, item in enumerate(shard["items"].tolist()):
            self._where[int(item)] = (len(self._shards), row)  # a later shard's row wins
        self._shards.append(shard)

    def __contains__(self, item: int) -> bool:
        return item in self._where

    def items(self) -> np.ndarray:
        """The items looked at."""
        return np.fromiter(self._where, np.int64, len(self._where))

    def fingerprints_of(self, items: list[int]) -> np.ndarray:
        """These items' fingerprints, one row an item (float32; KeyError for one not here)."""
        from ..printings.fingerprints import DIMS

        out = np.empty((len(items), DIMS), np.float32)
        for k, item in enumerate(items):
            shard_at, row = self._where[item]
            out[k] = self._shards[shard_at]["fingerprints"][row]
        return out

    def features(self, item: int) -> Features:
        """An item's features (KeyError when it has none stored)."""
        from ..printings.matching import Features

        shard_at, row = self._where[item]
        shard = self._shards[shard_at]
        p0, p1 = (int(v) for v in shard["point_starts"][row : row + 2])
        i0, i1 = (int(v) for v in shard["ink_starts"][row : row + 2])
        width, height = (int(v) for v in shard["sizes"][row])
        bits = np.unpackbits(shard["ink"][i0:i1])[: width * height].astype(bool)
        ink = bits.reshape(height, width) if len(bits) == width * height else np.zeros((0, 0), bool)
        return Features(
            shard["points"][p0:p1],
            shard["descriptors"][p0:p1],
            (width, height),
            float(shard["pixels"][row]),
            ink,
        )

    def write(self, looked: list[Looked]) -> Path:
        """A new shard of these items, written whole or not at all."""
        self.folder.mkdir(exist_ok=True)
        inside(self.root, self.folder)
        taken = [int(m.group(1)) for p in self.folder.iterdir() if (m := NAME.fullmatch(p.name))]
        path = inside(
            self.root, self.folder / f"features-{max(taken, default=0) + 1:06d}.safetensors"
        )
        from safetensors.numpy import save_file

        inks = [np.packbits(one.features.ink.ravel()) for one in looked]
        tensors: dict[str, np.ndarray] = {
            "items": np.array([one.item for one in looked], np.int64),
            "fingerprints": np.stack([one.fingerprint for one in looked]).astype(np.float16),
            "sizes": np.array([one.features.size for one in looked], np.int32).reshape(-1, 2),
            "pixels": np.array([one.features.pixel for one in looked], np.float32),
            "point_starts": _starts([len(one.features) for one in looked]),
            "points": _joined([one.features.points for one in looked], (0, 2), np.float32),
            "descriptors": _joined(
                [one.features.descriptors for one in looked], (0, 128), np.uint8
            ),
            "ink_starts": _starts([len(bits) for bits in inks]),
            "ink": _joined(inks, (0,), np.uint8),
        }
        temporary = path.with_suffix(".partial")
        save_file(tensors, str(temporary))
        os.replace(temporary, path)
        self._add(path)
        return path


def stamp(library: Path) -> tuple:
    """The features files' names and times: changes when a run writes one (or one goes)."""
    folder = library / FOLDER
    if not folder.is_dir():
        return ()
    return tuple(
        sorted((p.name, p.stat().st_mtime_ns) for p in folder.iterdir() if NAME.fullmatch(p.name))
    )


def damaged_shards(library: Path) -> list[tuple[Path, str]]:
    """Each features file of the library that cannot be read, and why (`sashie check`)."""
    folder = library / FOLDER
    if not folder.is_dir() and not folder.is_symlink():
        return []
    try:
        inside(library, folder)
    except SashieError as e:
        return [(folder, str(e))]
    found = []
    for path in sorted(folder.iterdir()):
        if NAME.fullmatch(path.name):
            try:
                _checked(inside(library, path))
            except SashieError as e:
                found.append((path, str(e)))
    return found


def _starts(lengths: list[int]) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)]).astype(np.int64)


def _joined(parts: list[np.ndarray], empty: tuple[int, ...], dtype) -> np.ndarray:
    kept = [np.asarray(p, dtype) for p in parts if len(p)]
    return np.ascontiguousarray(np.concatenate(kept) if kept else np.zeros(empty, dtype))


SMALL = {  # read whole: a row an item (the starts: one more)
    "items": (1, "I64"),
    "fingerprints": (2, "F16"),
    "sizes": (2, "I32"),
    "pixels": (1, "F32"),
    "point_starts": (1, "I64"),
    "ink_starts": (1, "I64"),
}
LARGE = {"points": (2, "F32"), "descriptors": (2, "U8"), "ink": (1, "U8")}  # read by rows


def _checked(path: Path) -> dict:
    """A shard whose parts fit together (one `Damaged` line when they do not): its small
    tensors read, its large ones as slices of the mapped file."""
    from safetensors import SafetensorError, safe_open

    from ..printings.fingerprints import DIMS

    try:
        handle = safe_open(str(path), "numpy")
        shard: dict = {}
        for name, (dims, dtype) in {**SMALL, **LARGE}.items():
            part = handle.get_slice(name)
            if len(part.get_shape()) != dims or part.get_dtype() != dtype:
                raise Damaged(PART, f"{path.name}: {name} is of another kind")
            shard[name] = handle.get_tensor(name) if name in SMALL else part
    except (OSError, ValueError, RuntimeError, SafetensorError) as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise Damaged(PART, f"{path.name}: {reason}") from None
    n = len(shard["items"])
    points, inks = shard["point_starts"], shard["ink_starts"]
    shape = {name: shard[name].get_shape() for name in LARGE}
    sound = (
        shard["fingerprints"].shape == (n, DIMS)
        and shard["sizes"].shape == (n, 2)
        and len(shard["pixels"]) == n
        and len(points) == n + 1
        and len(inks) == n + 1
        and _runs(points, shape["points"][0])
        and _runs(inks, shape["ink"][0])
        and shape["points"] == [shape["points"][0], 2]
        and shape["descriptors"] == [shape["points"][0], 128]
        and bool(((shard["sizes"] >= 1) & (shard["sizes"] <= 4096)).all())
        and bool((np.isfinite(shard["pixels"]) & (shard["pixels"] > 0)).all())
        and bool(np.isfinite(shard["fingerprints"]).all())
        and len(set(shard["items"].tolist())) == n
    )
    if not sound:
        raise Damaged(PART, f"{path.name}: its parts do not fit together")
    return shard


def _runs(starts: np.ndarray, total: int) -> bool:
    """Whether `starts` begin at 0, never fall, and end at `total`."""
    return starts[0] == 0 and starts[-1] == total and bool((np.diff(starts) >= 0).all())
