"""`sashie check`: what in a library folder is damaged or tampered with, and the repairs that
lose nothing a person made.

A library folder may come from anyone. Each file is checked against what sashie writes and
against the files it must agree with: the catalog (SQLite's own `quick_check`, its tables),
each model's vector and item files against the rows the catalog counts, each model version's
record, adapter, examples and vectors, the ANN indexes, the filter, the composers and the
label sets, and the features `printings --all` keeps. `info` runs the quick checks (headers
and sizes); `check` reads everything.

Repairs only rebuild what is derived or drop what cannot be used: an ANN index is built
again, a damaged model version, composer, filter or label set is dropped (the catalog's
captions, marks and boxes, which people made, stay). Damaged base vectors or a damaged
catalog have no safe repair: the pages must be indexed again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from functools import partial

import numpy as np

from ..adapt.version_files import TEXT_FILE, vector_set
from ..errors import Damaged, SashieError
from ..search.memory import ExampleMemory
from ..store.tensor_files import read_tensors
from .ann_files import AnnChoice
from .composers import Composers
from .filtering import Filter
from .indexing import rebuild_ann
from .labels import Labels
from .manifest import BASE
from .parts import Parts
from .printing_features import damaged_shards
from .versions import Versions


@dataclass(frozen=True)
class Problem:
    """One damaged part: what it is, what is wrong, and what `--repair` does (None: no safe
    repair)."""

    part: str
    reason: str
    repair: str | None = None
    fix: Callable[[], None] | None = field(default=None, repr=False, compare=False)

    def as_dict(self) -> dict:
        return {"part": self.part, "reason": self.reason, "repair": self.repair}


@dataclass(frozen=True)
class Checkup:
    """What `check` found, and what it repaired (when asked to)."""

    problems: list[Problem]
    repaired: list[str]

    @property
    def left(self) -> list[Problem]:
        """The problems not repaired."""
        done = set(self.repaired)
        return [p for p in self.problems if p.repair is None or p.repair not in done]

    def as_dict(self) -> dict:
        return {
            "problems": [p.as_dict() for p in self.problems],
            "repaired": self.repaired,
            "left": len(self.left),
        }


class Checks:
    """The checks of one library and their repairs, through its sub-objects."""

    def __init__(
        self,
        parts: Parts,
        *,
        versions: Versions,
        composers: Composers,
        keep_filter: Filter,
        labels: Labels,
    ) -> None:
        self.parts = parts
        self.versions = versions
        self.composers = composers
        self.keep_filter = keep_filter
        self.labels = labels

    def run(self, *, thorough: bool) -> list[Problem]:
        """Every problem found: quick checks only, or (`thorough`) reading every file."""
        self.parts.notice_changes()
        found = list(self._catalog(thorough))
        for model_id in self.parts.manifest.models:
            found += self._model(model_id, thorough)
        if thorough:
            found += self._filter()
            found += self._label_sets()
            found += self._printings()
        return [replace(p, reason=self._relative(p.reason)) for p in found]

    def _relative(self, text: str) -> str:
        """Paths inside the library written from its folder (what a server may show)."""
        for root in {str(self.parts.path.resolve()), str(self.parts.path)}:
            text = text.replace(root + "/", "")
        return text

    def repair(self, problems: list[Problem]) -> list[str]:
        """Apply each problem's repair; what was done."""
        done: list[str] = []
        for problem in problems:
            if problem.fix is not None and problem.repair not in done:
                problem.fix()
                done.append(str(problem.repair))
        return done

    # --- the parts -----------------------------------------------------------------------------

    def _catalog(self, thorough: bool) -> Iterator[Problem]:
        catalog = self.parts.catalog
        if thorough:
            for line in catalog.quick_check()[:5]:
                yield Problem("the library's catalog", line)
        unsound = catalog.unsound_items()
        if unsound:
            yield Problem(
                "the catalog's items",
                f"{unsound:,} items have boxes outside their pages or pages of no sane size; "
                "they are shown clipped to their pages",
            )

    def _model(self, model_id: str, thorough: bool) -> list[Problem]:
        parts = self.parts
        try:
            stored = parts.stored(model_id)
            stored.vectors()  # the file holds the rows the catalog counts
        except SashieError as e:
            return [Problem(f"the vectors of {model_id}", _why(e))]
        found = []
        strangers = _strangers(stored.item_ids, parts.catalog.last_item_id())
        if strangers:
            found.append(Problem(f"the vectors of {model_id}", f"{strangers:,} rows name no item"))
        if thorough and not _finite(stored.vectors()):
            found.append(Problem(f"the vectors of {model_id}", "some are not finite numbers"))
        for version in (BASE, *parts.manifest.version_names(model_id)):
            if version != BASE:
                problem = self._version(model_id, version, stored.item_ids, thorough)
                if problem is not None:
                    found.append(problem)
                    continue  # a version dropped takes its ANN index with it
            found += self._ann(model_id, version, thorough)
            if thorough:
                found += self._composer(model_id, version)
        return found

    def _version(
        self, model_id: str, version: str, base_ids: np.ndarray, thorough: bool
    ) -> Problem | None:
        versions = self.parts.versions
        try:
            versions.record(model_id, version)
            versions.adapter(model_id, version)
            folder = versions.folder(model_id, version)
            ExampleMemory.load(folder, self.parts.manifest.models[model_id]["dim"])
            done = min(versions.done_rows(model_id, version), len(base_ids))
            files = versions.files(model_id, version)
            if not np.array_equal(files.item_ids(done), base_ids[:done]):
                raise SashieError("its rows are not those of the base vectors")
            vectors = files.vectors(done)
            if (folder / TEXT_FILE).is_file():
                read_tensors(folder / TEXT_FILE, names_only=not thorough)
            if thorough and not _finite(vectors):
                raise SashieError("some of its vectors are not finite numbers")
        except SashieError as e:
            return Problem(
                f"model version {version} of {model_id}",
                _why(e),
                f"drop model version {version} of {model_id} (base is active if it was)",
                lambda: self.versions.drop(version, model_id),
            )
        return None

    def _ann(self, model_id: str, version: str, thorough: bool) -> list[Problem]:
        parts = self.parts
        if parts.ann.stamp(model_id, version) is None:
            return []
        rows = parts.catalog.vector_rows(
            model_id if version == BASE else vector_set(model_id, version)
        )
        try:
            read = parts.ann.load if thorough else parts.ann.describe
            sound = read(model_id, version, rows) is not None
        except SashieError:
            sound = False
        if sound:
            return []
        return [
            Problem(
                f"the ANN index of {model_id} ({version})",
                "not a sound index of its vectors; searches scan every vector instead",
                f"build the ANN index of {model_id} ({version}) again",
                lambda: self._rebuild_ann(model_id, version),
            )
        ]

    def _rebuild_ann(self, model_id: str, version: str) -> None:
        with self.parts.writing():  # an unsound file is derived data: it goes first
            self.parts.ann.path(model_id, version).unlink(missing_ok=True)
        rebuild_ann(self.parts, model_id, version, AnnChoice().check())

    def _composer(self, model_id: str, version: str) -> list[Problem]:
        composers = self.composers
        try:
            composers.load(model_id, version)
        except SashieError as e:
            return [
                Problem(
                    f"the composer of {model_id} ({version})",
                    _why(e),
                    f"drop the composer of {model_id} ({version})",
                    lambda: composers.remove(model_id, version),
                )
            ]
        return []

    def _filter(self) -> list[Problem]:
        try:
            self.keep_filter.load()
        except SashieError as e:
            return [Problem("the filter", _why(e), "drop the filter", self.keep_filter.remove)]
        return []

    def _label_sets(self) -> list[Problem]:
        found = []
        labels = self.labels
        for name in self.parts.catalog.label_set_names():
            try:
                labels.get(name)
            except SashieError as e:
                found.append(
                    Problem(
                        f"label set {name}",
                        _why(e),
                        f"drop label set {name}",
                        partial(labels.remove, name),
                    )
                )
        return found

    def _printings(self) -> list[Problem]:
        """The features `sashie printings --all` keeps: a damaged file is dropped (its items
        are looked at again by the next run; the pairs found stay)."""
        found = []
        for path, why in damaged_shards(self.parts.path):
            found.append(
                Problem(
                    f"the printings features {path.name}",
                    why,
                    f"drop {path.name} (sashie printings --all looks at its items again)",
                    partial(path.unlink),  # a link is removed, never followed
                )
            )
        return found


def _why(error: SashieError) -> str:
    """An error's line as a problem's reason (a damaged file: its name and what is wrong)."""
    return f"{error.part}: {error.reason}" if isinstance(error, Damaged) else str(error)


def _strangers(item_ids: np.ndarray, last_item: int) -> int:
    """How many rows name an item id the catalog never gave."""
    return int(((item_ids <= 0) | (item_ids > last_item)).sum())


def _finite(vectors: np.ndarray, step: int = 1 << 16) -> bool:
    """Whether every value is a finite number (read block by block)."""
    return all(np.isfinite(vectors[s : s + step]).all() for s in range(0, len(vectors), step))
