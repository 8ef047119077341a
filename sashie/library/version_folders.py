"""A library's model versions: where each one's files are, its record, bringing its vectors up
to date with pages indexed since it was made, and naming the next one. The file formats and
the crash-safe writing of V′ = A(V) are in `sashie.adapt.version_files`.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..adapt.settings import AdaptSettings
from ..adapt.version_files import (
    LOSS_PLOT,
    VERSIONS_DIR,
    catch_up_rows,
    load_version_adapter,
    read_version,
    vector_set,
)
from ..errors import Damaged
from ..store.catalog import Catalog
from ..store.vectors import VectorFile
from .manifest import BASE, Manifest
from .paths import inside_all
from .stored import StoredVectors

if TYPE_CHECKING:
    from ..adapt.adapter import VisualAdapter


class VersionFolders:
    """The model versions of the library whose manifest and catalog are given."""

    def __init__(self, manifest: Manifest, catalog: Catalog) -> None:
        self.manifest = manifest
        self.catalog = catalog

    def folder(self, model_id: str, version: str) -> Path:
        """The version's folder, to read or write: it and its files checked to lie inside
        the library."""
        return inside_all(self.manifest.folder, self.where(model_id, version))

    def where(self, model_id: str, version: str) -> Path:
        """Where the version's folder is, unchecked: only to look at its files' stamps."""
        slug = Path(self.manifest.models[model_id]["vectors"]).name
        return self.manifest.folder / VERSIONS_DIR / slug / version

    def files(self, model_id: str, version: str) -> VectorFile:
        return VectorFile(self.folder(model_id, version), self.manifest.models[model_id]["dim"])

    def record(self, model_id: str, version: str) -> dict:
        """The version's version.json (an error listing the versions when there is none)."""
        self.manifest.check_version(model_id, version)
        return read_version(self.folder(model_id, version))

    def adapter(self, model_id: str, version: str) -> VisualAdapter | None:
        """The version's visual adapter (None: it has none)."""
        dim = self.manifest.models[model_id]["dim"]
        record = self.record(model_id, version)
        return load_version_adapter(self.folder(model_id, version), record, dim)

    def loss_plot(self, model_id: str, version: str) -> Path | None:
        """The version's loss curve picture, if one was drawn (the `plot` extra)."""
        self.manifest.check_version(model_id, version)
        path = self.folder(model_id, version) / LOSS_PLOT
        return path if version != BASE and path.is_file() else None

    def describe(self, model_id: str) -> dict:
        """{"model", "active", "versions": [records of version.json, oldest first]}."""
        records = []
        for name in self.manifest.version_names(model_id):
            try:
                record = self.record(model_id, name)
            except Damaged as e:  # listed as such; `sashie check --repair` drops it
                records.append({"name": name, "damaged": f"{e.part}: {e.reason}"})
                continue
            record.pop("losses", None)
            settings = record.get("settings")
            if "kind" not in record and isinstance(settings, dict):  # made before kinds were
                record["kind"] = AdaptSettings.from_record(settings).kind
            records.append(record)
        described = {
            "model": model_id,
            "active": self.manifest.active_version(model_id),
            "versions": records,
        }
        unfinished = self.unfinished(model_id)
        if unfinished:
            described["unfinished"] = unfinished
        return described

    def unfinished(self, model_id: str) -> list[str]:
        """Folders of adaptations that never finished (killed): named by no manifest entry."""
        parent = self.folder(model_id, BASE).parent
        if not parent.is_dir():
            return []
        known = set(self.manifest.version_names(model_id))
        names = [p.name for p in parent.iterdir() if re.fullmatch(r"v\d+", p.name)]
        return sorted((n for n in names if n not in known), key=lambda n: int(n[1:]))

    def next_name(self, model_id: str) -> str:
        taken = set(self.manifest.version_names(model_id))
        parent = self.folder(model_id, BASE).parent
        if parent.is_dir():  # folders of runs that never finished still hold their names
            taken |= {p.name for p in parent.iterdir()}
        numbers = [int(n[1:]) for n in taken if re.fullmatch(r"v\d+", n)]
        return f"v{max(numbers, default=0) + 1}"

    def done_rows(self, model_id: str, version: str) -> int:
        """How many of the base rows the version's vector file holds, adapted."""
        return self.catalog.vector_rows(vector_set(model_id, version))

    def catch_up(self, model_id: str, version: str, base: StoredVectors) -> bool:
        """Adapt and store the rows of pages indexed since the version was made; whether
        there were any."""
        if version == BASE:
            return False
        done = self.done_rows(model_id, version)
        if done >= base.rows:
            return False
        adapter = self.adapter(model_id, version)
        end = catch_up_rows(
            self.files(model_id, version), done, adapter, base.vectors(), base.item_ids
        )
        with self.catalog.transaction() as tx:
            tx.set_vector_rows(vector_set(model_id, version), end)
        return True

    def load_live(
        self, model_id: str, version: str, base: StoredVectors, *, progress: bool = False
    ) -> np.ndarray:
        """The version's vectors of the live items, float16, row for row with `base`'s live
        rows; rows the version lags behind on are adapted here, in memory."""
        from ..adapt.adapter import adapted

        files = self.files(model_id, version)
        done = min(self.done_rows(model_id, version), base.rows)
        if done == base.rows:
            return files.load_rows(base.rows, base.live, progress=progress)
        adapter = self.adapter(model_id, version)
        later = np.asarray(base.vectors()[done:])[base.live[done:]]
        return np.concatenate(
            [
                files.load_rows(done, base.live[:done], progress=progress),
                adapted(adapter, later).astype(np.float16),
            ]
        )

    def vectors(self, model_id: str, version: str) -> np.ndarray:
        """The version's committed rows of its vector file, memory-mapped (float16)."""
        return self.files(model_id, version).vectors(self.done_rows(model_id, version))

    def remove(self, model_id: str, version: str) -> None:
        """Forget the version (manifest first: a crash leaves only files), then its files; an
        unfinished one's files only."""
        if version not in self.unfinished(model_id):
            self.manifest.forget_version(model_id, version)
        with self.catalog.transaction() as tx:
            tx.forget_vector_rows(vector_set(model_id, version))
        shutil.rmtree(self.folder(model_id, version), ignore_errors=True)
