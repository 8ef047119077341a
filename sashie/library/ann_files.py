"""The ANN indexes of a library's model versions (sashie/search/ann.py): where each one lives,
reading it, and keeping it current after indexing, adapting or switching versions.

Each model version has at most one, `ann.index` beside its vectors: the base's in the model's
vector folder, a version's in its version folder. Its row numbers are rows of the vector file,
so rows indexed since it was built are simply not in it yet; searches scan those exactly until
the next `sashie index` adds them. Only writers (index, adapt, versions use, reindex; each under
the library's write lock) build or extend it, and they replace the file atomically: searches in
other processes keep using the previous one and notice the new one by its stamp.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import SashieError
from ..search.ann import KINDS, AnnIndex, ann_path, choose_kind
from .manifest import BASE, Manifest
from .paths import inside
from .version_folders import VersionFolders

MIN_ROWS = {"hnsw": 1, "ivf": 1, "ivfpq": 1_000}  # ivfpq's codes are learnt from 16 x 39 rows
Stamp = tuple[int, int, int] | None  # the file's inode, size and change time; None: no file


@dataclass(frozen=True)
class AnnChoice:
    """What the user asked for (`--index-kind`, `--nprobe`, `--ef`); None: the measured rule."""

    kind: str | None = None
    nprobe: int | None = None
    ef: int | None = None

    def check(self) -> AnnChoice:
        if self.kind is not None and self.kind not in (*KINDS, "auto"):
            raise SashieError(f"--index-kind must be one of auto, {', '.join(KINDS)}")
        for name, value in (("--nprobe", self.nprobe), ("--ef", self.ef)):
            if value is not None and not 1 <= value <= 1 << 16:
                raise SashieError(f"{name} must be between 1 and 65536")
        return self

    def as_dict(self) -> dict:
        return {k: v for k, v in vars(self).items() if v is not None and v != "auto"}


class AnnFiles:
    """The ANN index files of the library whose manifest and versions are given."""

    def __init__(self, manifest: Manifest, versions: VersionFolders) -> None:
        self.manifest = manifest
        self.versions = versions

    def path(self, model_id: str, version: str) -> Path:
        """The index file, to read or write (it lies inside the library)."""
        return inside(self.manifest.folder, self._where(model_id, version))

    def _where(self, model_id: str, version: str) -> Path:
        if version == BASE:
            return ann_path(self.manifest.folder / self.manifest.models[model_id]["vectors"])
        return ann_path(self.versions.where(model_id, version))

    def stamp(self, model_id: str, version: str) -> Stamp:
        """The file's stamp (asked before every search: a stat, no more)."""
        try:
            info = os.stat(self._where(model_id, version))
        except OSError:
            return None
        return info.st_ino, info.st_size, info.st_ctime_ns

    def load(self, model_id: str, version: str, file_rows: int) -> AnnIndex | None:
        """The version's index, if it has a sound one over at most `file_rows` rows."""
        dim = self.manifest.models[model_id]["dim"]
        return AnnIndex.load(self.path(model_id, version), dim, file_rows)

    def choice(self, model_id: str) -> AnnChoice:
        """The model's remembered choice (`--index-kind` etc.); nothing malformed is used."""
        saved = self.manifest.models[model_id].get("ann")
        if not isinstance(saved, dict):
            return AnnChoice()
        try:
            return AnnChoice(
                **{k: saved[k] for k in ("kind", "nprobe", "ef") if k in saved}
            ).check()
        except (SashieError, TypeError):
            return AnnChoice()

    def remember(self, model_id: str, choice: AnnChoice, *, merge: bool = True) -> None:
        """Keep the user's choice for the model (merged with the one before, unless not
        `merge`): later indexing and searches follow it."""
        merged = {**(self.choice(model_id).as_dict() if merge else {}), **choice.as_dict()}
        if choice.kind == "auto":
            merged.pop("kind", None)

        def change(data: dict) -> None:
            data["models"][model_id]["ann"] = merged

        self.manifest.update(change)

    @contextmanager
    def choosing(self, model_id: str, choice: AnnChoice) -> Iterator[None]:
        """Remember `choice` for what runs inside; the choice before again if that fails."""
        if choice == AnnChoice():
            yield
            return
        before = self.choice(model_id)
        self.remember(model_id, choice)
        try:
            yield
        except BaseException:
            self.remember(model_id, before, merge=False)
            raise

    def keep_current(
        self,
        model_id: str,
        version: str,
        vectors: np.ndarray,
        live_rows: int,
        *,
        rebuild: bool = False,
        progress: bool = False,
    ) -> str:
        """Bring the version's index up to date with its committed `vectors` (float16, every
        row of its vector file); what was done: "built", "extended", "current", "removed",
        "none" (exact search fits)."""
        choice = self.choice(model_id)
        kind = choice.kind or choose_kind(live_rows, vectors.shape[1])
        path = self.path(model_id, version)
        dim = self.manifest.models[model_id]["dim"]
        header = AnnIndex.header(path, dim, len(vectors))
        if kind == "exact":
            if path.exists() and choice.kind == "exact":
                path.unlink()
                return "removed"
            if header is None:
                return "none"
            kind = header["kind"]  # grown too small for an index: keep the kind there is
        if not rebuild and header is not None and header["kind"] == kind:
            if header["rows"] == len(vectors):
                return "current"  # known from the header: the index itself is not read
            current = self.load(model_id, version, len(vectors))
            if current is not None:
                current.add(vectors, progress=progress)
                current.save(path)
                return "extended"
        if len(vectors) < MIN_ROWS[kind]:
            raise SashieError(
                f"{len(vectors)} vectors are too few for an {kind} index (it needs "
                f"{MIN_ROWS[kind]:,}); choose --index-kind ivf or exact"
            )
        built = AnnIndex.build(kind, vectors, nprobe=choice.nprobe, ef=choice.ef, progress=progress)
        built.save(path)
        return "built"

    def describe(self, model_id: str, version: str, file_rows: int) -> dict | None:
        """{"kind", "rows", "bytes", "settings"} of the version's index (its header only is
        read), or None."""
        dim = self.manifest.models[model_id]["dim"]
        path = self.path(model_id, version)
        header = AnnIndex.header(path, dim, file_rows)
        if header is None:
            return None
        return {
            "kind": header["kind"],
            "rows": header["rows"],
            "bytes": path.stat().st_size,
            "settings": header["settings"],
        }
