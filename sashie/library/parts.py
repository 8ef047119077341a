"""What a library's verbs share: its files (manifest, catalog, version folders, ANN files, page
pictures), the one-writer lock, the encoders, and the vectors loaded for searching.

The `Library` and each of its sub-objects (filter, annotations, versions, labels, composer,
regions) hold the one `Parts` of their library, so that what one loads the others see and
what one changes the others notice.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..adapt.version_files import has_text_state, load_text_state
from ..encoders import Encoder, load_encoder, trainable
from ..errors import NotFound, SashieError
from ..search.memory import ExampleMemory
from ..search.ranking import VectorIndex
from ..search.scan import exact_scan_facts
from ..store.books import BookRuns, BookYears
from ..store.catalog import READ_ONLY, Catalog, ItemRow
from ..store.vectors import VectorFile
from .ann_files import AnnFiles, Stamp
from .manifest import BASE, Manifest
from .paths import inside, inside_all
from .pictures import PageCache, Pictures, page_cache_bytes
from .stored import StoredVectors, rows_of
from .version_folders import VersionFolders

CATALOG = "catalog.sqlite"
LOCK = "lock"
SHARDS = "shards"  # beside a model version's ANN index: its shards' own (library/sharding.py)
PAGE_CACHE = "cache/pages"  # pages fetched from the web, to show (sashie/library/pictures.py)

Ids = Sequence[int] | np.ndarray  # item ids


@dataclass
class Loaded:
    """A model version's vectors as searches use them, and what searches derive from them
    and the catalog: dropped whole when the items, the ANN file or the catalog change."""

    index: VectorIndex
    ann_stamp: Stamp  # the ANN file it was loaded with
    excluded: np.ndarray | None = None  # rows the filter excluded, once asked
    classes: dict[str, np.ndarray] = field(default_factory=dict)  # rows' class, by label set
    books: BookRuns | None = None  # the rows' book ids (0: none), once asked
    years: BookYears | None = None  # every book's year range, once asked
    left: dict[tuple, tuple] = field(default_factory=dict)  # a search's rows left out, counted

    def anew(self) -> Loaded:
        """The same vectors, with nothing derived from the catalog yet."""
        return Loaded(self.index, self.ann_stamp)


class Parts:
    """One library's files and what is loaded from them."""

    def __init__(
        self,
        path: Path,
        manifest: Manifest,
        *,
        progress: bool,
        trust_remote_code: bool,
        read_only: bool,
    ) -> None:
        self.path = path
        self.progress = progress
        self.trust_remote_code = trust_remote_code
        self.manifest = manifest
        self.read_only = read_only
        catalog = inside(path, path / CATALOG)
        if read_only:  # on a folder this process cannot write SQLite keeps no lock files
            self.catalog = Catalog(catalog, readonly=True, immutable=not writable(path))
        else:
            with manifest.locked():  # two processes creating the catalog would collide
                self.catalog = Catalog(catalog)
        self.versions = VersionFolders(manifest, self.catalog)
        self.ann = AnnFiles(manifest, self.versions)
        cache_bytes = 0 if read_only else page_cache_bytes()  # read-only: nothing kept
        self.pictures = Pictures(PageCache(path, PAGE_CACHE, cache_bytes))
        self.lock = threading.RLock()  # what loads, loads once, whichever thread asks first
        self.encoders: dict[str, Encoder] = {}  # by spec, and "model+version" for versions
        self.memories: dict[str, ExampleMemory | None] = {}  # by "model+version"
        self.loaded: dict[tuple[str, str], Loaded] = {}  # by (model id, version)
        self._data_version = self.catalog.data_version()
        self._items_stamp = self.catalog.items_stamp()

    # --- noticing changes ------------------------------------------------------------------

    def notice_changes(self) -> None:
        """Reload what another process changed: the manifest (a new or removed version, a
        new model) or the catalog (pages indexed, a filter applied, items labelled). Costs
        a stat and one SQLite pragma when nothing changed."""
        version = self.catalog.data_version()
        if not self.manifest.stale() and version == self._data_version:
            return
        with self.lock:
            if self.manifest.stale():
                self.refresh()
            if version != self._data_version:
                stamp = self.catalog.items_stamp()
                if stamp != self._items_stamp:
                    self.loaded.clear()
                else:
                    self.catalog_changed()
                self._items_stamp = stamp
                self._data_version = version

    def refresh(self) -> None:
        """Read the manifest again; forget loaded vectors and model versions."""
        with self.lock:
            self.manifest.reload()
            self.loaded.clear()
            self.encoders = {k: v for k, v in self.encoders.items() if "+" not in k}
            self.memories.clear()

    def catalog_changed(self) -> None:
        """Forget what was derived from the catalog (the filter's verdicts, classes)."""
        with self.lock:
            self.loaded = {key: loaded.anew() for key, loaded in self.loaded.items()}

    def forget_version(self, model_id: str, version: str) -> None:
        with self.lock:
            self.loaded.pop((model_id, version), None)
            self.encoders.pop(f"{model_id}+{version}", None)
            self.memories.pop(f"{model_id}+{version}", None)

    def check_writable(self) -> None:
        """One error line when the library is open read-only."""
        if self.read_only:
            raise SashieError(READ_ONLY)

    @contextmanager
    def writing(self) -> Iterator[None]:
        """One writer at a time: a second `sashie index` on the same library is refused."""
        self.check_writable()
        with open(inside(self.path, self.path / LOCK), "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise SashieError(
                    f"{self.path} is being changed by another process "
                    "(indexing or adapting); try again when it is done"
                ) from None
            yield

    # --- models ----------------------------------------------------------------------------

    def model_id(self, model: str | None) -> str:
        """The id of a model the library has vectors of (the default when None)."""
        self.notice_changes()
        return self.manifest.model_id(model)

    def active(self, model_id: str) -> str:
        return self.manifest.active_version(model_id)

    def encoder(
        self, model: str | None, *, trust_remote_code: bool = False, device: str | None = None
    ) -> Encoder:
        """The encoder for a model id or spec (the default model when None), loaded once."""
        spec, model_id, needs_trust = self.manifest.spec(model)
        trusted = trust_remote_code or self.trust_remote_code
        if needs_trust and not trusted:
            raise SashieError(
                f"this library's model {spec} runs code from its repository; pass "
                "--trust-remote-code if you trust it (a library never grants that itself)"
            )
        with self.lock:
            if spec not in self.encoders:
                self.encoders[spec] = load_encoder(spec, device=device, trust_remote_code=trusted)
            encoder = self.encoders[spec]
        if model_id is not None and encoder.model_id != model_id:
            raise SashieError(
                f"the model at {spec} is now {encoder.model_id}, but this library's vectors "
                f"were made by {model_id}; index again with --model {spec}"
            )
        entry = self.manifest.models.get(encoder.model_id)
        if entry is not None and entry["dim"] != encoder.dim:
            raise SashieError(
                f"model {spec} gives {encoder.dim}-dimensional vectors, but this library's "
                f"vectors for it are {entry['dim']}-dimensional"
            )
        return encoder

    def query_encoder(self, model: str | None) -> Encoder:
        """The encoder queries go through: the active version's, or the base encoder."""
        self.notice_changes()
        model_id = self.manifest.find(model)
        version = BASE if model_id is None else self.active(model_id)
        if model_id is None or version == BASE:
            return self.encoder(model)
        key = f"{model_id}+{version}"
        from ..adapt.adapted import AdaptedEncoder

        with self.lock:
            if key not in self.encoders:
                folder = self.versions.folder(model_id, version)
                adapter = self.versions.adapter(model_id, version)
                inner = self.encoder(model_id)
                if has_text_state(folder):  # a copy whose text tensors change
                    inner = load_encoder(
                        self.manifest.models[model_id]["spec"],
                        device=inner.device,
                        trust_remote_code=self.trust_remote_code,
                    )
                    load_text_state(trainable(inner), folder)
                self.encoders[key] = AdaptedEncoder(inner, adapter, version)
            return self.encoders[key]

    def memory(self, model: str | None) -> ExampleMemory | None:
        """The active version's remembered examples (sashie/search/memory.py); None for the
        base model or a version made without them."""
        model_id = self.manifest.find(model)
        if model_id is None or self.active(model_id) == BASE:
            return None
        version = self.active(model_id)
        key = f"{model_id}+{version}"
        with self.lock:
            if key not in self.memories:
                dim = self.manifest.models[model_id]["dim"]
                folder = self.versions.folder(model_id, version)
                self.memories[key] = ExampleMemory.load(folder, dim)
            return self.memories[key]

    # --- vectors ---------------------------------------------------------------------------

    def vector_file(self, model_id: str) -> VectorFile:
        entry = self.manifest.models[model_id]
        return VectorFile(inside_all(self.path, self.path / entry["vectors"]), entry["dim"])

    def stored(self, model_id: str, live_ids: np.ndarray | None = None) -> StoredVectors:
        """The model's committed base vectors (`live_ids`: the items that exist, if known)."""
        live = self.catalog.live_item_ids() if live_ids is None else live_ids
        return StoredVectors.read(
            self.vector_file(model_id), self.catalog.vector_rows(model_id), live
        )

    def load(self, model: str | None, version: str | None = None) -> Loaded:
        """A model version's vectors of live items (the active version when None), loaded
        once; loaded again when its ANN file changed."""
        self.notice_changes()
        model_id = self.manifest.model_id(model)
        version = self.active(model_id) if version is None else version
        key = (model_id, version)
        loaded = self.loaded.get(key)
        if loaded is not None and loaded.ann_stamp == self.ann.stamp(model_id, version):
            return loaded
        with self.lock:  # one thread loads; the others wait for it
            loaded = self.loaded.get(key)
            stamp = self.ann.stamp(model_id, version)
            if loaded is None:
                loaded = Loaded(self._read_index(model_id, version), stamp)
            elif loaded.ann_stamp != stamp:  # another process rebuilt it
                rows = self.catalog.vector_rows(model_id)
                ann = self.ann.load(model_id, version, rows)
                loaded = Loaded(loaded.index.with_ann(ann), stamp)
            self.loaded[key] = loaded
        return loaded

    def _read_index(self, model_id: str, version: str) -> VectorIndex:
        base = self.stored(model_id)
        if version == BASE:
            matrix = base.load_live(progress=self.progress)
        else:
            matrix = self.versions.load_live(model_id, version, base, progress=self.progress)
        ann = self.ann.load(model_id, version, base.rows)
        return VectorIndex(
            matrix, base.item_ids[base.live], ann=ann, file_rows=np.flatnonzero(base.live)
        )

    def vectors_of(self, item_ids: Ids, model: str | None, version: str | None) -> np.ndarray:
        """Stored vectors of these items (float32, in the order given); base vectors not
        loaded yet are read from the vector file, so a few rows never load the whole index."""
        model_id = self.manifest.model_id(model)
        version = self.active(model_id) if version is None else version
        wanted = np.asarray(item_ids, np.int64)
        if version == BASE and (model_id, BASE) not in self.loaded:
            stored = self.stored(model_id)
            return np.asarray(stored.vectors()[stored.rows_of(wanted)], np.float32)
        index = self.load(model_id, version).index
        return index.take(rows_of(index.item_ids, wanted))

    def shard_folder(self, model_id: str) -> Path | None:
        """Where the shards of the model's active version keep their ANN indexes (made when
        missing; None when the library is read-only and has none)."""
        folder = inside(self.path, self.ann.path(model_id, self.active(model_id)).parent / SHARDS)
        if not folder.is_dir():
            if self.read_only:
                return None
            folder.mkdir(exist_ok=True)
        return inside(self.path, folder)

    def excluded_rows(self, model: str | None) -> np.ndarray | None:
        """Which rows of the active version's index the filter excluded (None: none)."""
        loaded = self.load(model)
        if loaded.excluded is None:
            loaded.excluded = np.isin(loaded.index.item_ids, self.catalog.excluded_item_ids())
        return loaded.excluded if loaded.excluded.any() else None

    def book_rows(self, model: str | None) -> BookRuns:
        """The book id of each row of the active version's index (0: a page of no book)."""
        loaded = self.load(model)
        if loaded.books is None:
            items, books = self.catalog.books.item_books()
            at = np.searchsorted(items, loaded.index.item_ids)
            at = np.minimum(at, max(len(items) - 1, 0))
            found = items[at] == loaded.index.item_ids if len(items) else np.zeros(0, bool)
            loaded.books = BookRuns.of(np.where(found, books[at] if len(items) else 0, 0))
        return loaded.books

    def book_years(self, model: str | None) -> BookYears:
        """Every book's year range, read once until the catalog changes."""
        loaded = self.load(model)
        if loaded.years is None:
            loaded.years = self.catalog.books.years()
        return loaded.years

    def keep_ann_current(self, model_id: str, version: str, *, rebuild: bool = False) -> str:
        """Bring a version's ANN index up to date (under the write lock); what was done."""
        base = self.stored(model_id)
        if version == BASE:
            vectors = base.vectors()
        else:
            self.versions.catch_up(model_id, version, base)
            vectors = self.versions.vectors(model_id, version)
        return self.ann.keep_current(
            model_id, version, vectors, int(base.live.sum()), rebuild=rebuild,
            progress=self.progress,
        )  # fmt: skip

    def model_facts(self, model_id: str) -> dict:
        """What `info` says of one model: its vectors, versions and ANN index."""
        entry = self.manifest.models[model_id]
        return {
            "id": model_id,
            "spec": entry["spec"],
            "dim": entry["dim"],
            "vectors": self._vector_count(model_id),
            "default": model_id == self.manifest.default_model,
            "active_version": self.active(model_id),
            "versions": self.manifest.version_names(model_id),
            "ann_index": self._ann_summary(model_id),
            "exact_scan": exact_scan_facts(entry["dim"]),
        }

    def _vector_count(self, model_id: str) -> int:
        """How many live items have vectors of the model (from its loaded index, if any)."""
        loaded = [v.index for (m, _), v in list(self.loaded.items()) if m == model_id]
        if loaded:
            return len(loaded[0])
        return int(self.stored(model_id).live.sum())

    def _ann_summary(self, model_id: str) -> dict | None:
        """The active version's ANN index as searches see it: the loaded one if loaded (an
        unsound file reads as none), else what its file's header says."""
        version = self.active(model_id)
        loaded = self.loaded.get((model_id, version))
        if (
            loaded is not None
            and loaded.ann_stamp == self.ann.stamp(model_id, version)
            and loaded.index.ann is None
        ):
            return None
        return self.ann.describe(model_id, version, self.catalog.vector_rows(model_id))

    # --- items -----------------------------------------------------------------------------

    def item(self, item_id: int) -> ItemRow:
        """One item and its page (`NotFound` when the library has no such item)."""
        rows = self.catalog.items([int(item_id)])
        if not rows:
            raise NotFound(f"no item {item_id} in this library")
        return rows[0]

    def known_items(self, item_ids: Ids) -> list[int]:
        """The ids as ints, or an error naming the first that is not in the library."""
        wanted = [int(i) for i in item_ids]
        known = {row.id for row in self.catalog.items(wanted)}
        unknown = [i for i in wanted if i not in known]
        if unknown:
            raise SashieError(f"no item {unknown[0]} in this library")
        return wanted


def writable(folder: Path) -> bool:
    """Whether this process may write in the library's folder (not a read-only mount, not
    another user's folder)."""
    return os.access(folder, os.W_OK)
