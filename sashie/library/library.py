"""The `Library`: the one object a user holds. A directory that is one indexed collection.

    lib = Library("books.sashie", create=True)
    lib.add(["scans/"], model="hf:line-corporation/clip-japanese-base", trust_remote_code=True)
    for hit in lib.search("a crane and a pine tree", k=10):
        print(hit.score, hit.page, hit.bbox)

Its own verbs are those a user reaches for first: add, search and feedback, info and export.
Each other concern is a sub-object with its own module, named as the command line names it:

    lib.filter       keep/exclude marks and the filter trained on them   filtering.py
    lib.annotations  captions people give items                          annotations.py
    lib.versions     adapt, use and remove model versions                 versions.py
    lib.labels       classify; the label sets and their classes           labels.py
    lib.composer     composed search's composer of each version           composers.py
    lib.regions      boxes a curator draws; the library's own detector    regions.py
    lib.books        the books its pages are of; a book's pages           books.py

They share the library's files and what is loaded from them (parts.py). The command line and
the web server use only these verbs. On disk: docs/architecture.md.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image

from ..encoders import Encoder
from ..errors import NotFound, SashieError
from ..ingest.indexer import AddReport
from ..regions import DEFAULT_DETECTORS, NETWORK_DETECTORS, parse_detector_names
from ..search.feedback import DEFAULT_LEARNER, learn, refine
from ..search.query import Query
from ..search.ranking import DEFAULT_K, AnnSearch, VectorIndex, restrict
from ..search.shards import Shards
from ..sources.books import read_sidecar
from ..sources.images import DEFAULT_MAX_PIXELS
from ..sources.pages import check_sources, indexed_page
from ..store.catalog import ItemRow
from . import iiif, searching
from .ann_files import AnnChoice
from .annotations import Annotations
from .arranging import at_least
from .books import Books
from .checking import Checks, Checkup
from .collection_map import CollectionMap
from .composers import Composers
from .export import ExportReport, export_items
from .facts import facts
from .filtering import Filter
from .iiif import AnnotationExport
from .indexing import Indexing, index_pages, rebuild_ann
from .labels import Labels
from .manifest import Manifest
from .parts import Ids, Parts, writable
from .printings import Printings
from .regions import Regions
from .searching import Asked, Filters, Result, judged, results
from .sharding import Sharding
from .versions import Versions


class Library:
    def __init__(
        self,
        path: str | os.PathLike,
        *,
        create: bool = False,
        progress: bool = False,
        trust_remote_code: bool = False,
        read_only: bool = False,
    ) -> None:
        """Open the library at `path` (`create` makes it if missing); `progress` shows
        progress bars on long steps (indexing, loading many vectors, adapting).

        `trust_remote_code` lets a model run the code its repository ships (Hugging Face);
        only the caller grants that, never the library's own files.

        `read_only`: searched, never changed (a change is one error line); so is a library
        this process cannot write (a read-only mount, another user's folder)."""
        self.path = Path(path)
        self._made: bool | None = None  # made here: True in a new folder, False in an empty one
        if Manifest.exists(self.path):
            manifest = Manifest(self.path)
        elif create:
            self._made = not self.path.exists()
            manifest = Manifest.create(self.path)
        else:
            raise SashieError(f"no sashie library at {self.path}")
        read_only = read_only or not writable(self.path)
        options = {"progress": progress, "trust_remote_code": trust_remote_code}
        self._parts = parts = Parts(self.path, manifest, read_only=read_only, **options)
        self.filter = Filter(parts)
        self.annotations = Annotations(parts, self.crop, self.filter)
        self.labels = Labels(parts)
        self.versions = Versions(parts, self.labels)
        self.composer = Composers(parts)
        self.regions = Regions(parts)
        self.books = Books(parts)
        self.printings = Printings(parts)
        self.map = CollectionMap(parts)
        self._sharding: Sharding | None = None

    @property
    def read_only(self) -> bool:
        """Whether the library is open read-only: searched and described, never changed."""
        return self._parts.read_only

    # --- the library and its models --------------------------------------------------------

    @property
    def default_model(self) -> str | None:
        self._parts.notice_changes()
        return self._parts.manifest.default_model

    @property
    def models(self) -> dict[str, dict]:
        """The manifest's record of each model: spec, dim, versions, the active one."""
        self._parts.notice_changes()
        return self._parts.manifest.models

    def encoder(
        self,
        model: str | None = None,
        *,
        trust_remote_code: bool = False,
        device: str | None = None,
    ) -> Encoder:
        """The encoder for a model id or spec (the default model when None), loaded once.
        `trust_remote_code` (or the library's) lets it run its repository's code."""
        return self._parts.encoder(model, trust_remote_code=trust_remote_code, device=device)

    def query_encoder(self, model: str | None = None) -> Encoder:
        """The encoder that queries go through: the active version's (tuned text encoder,
        image examples through the adapter), or the base encoder."""
        return self._parts.query_encoder(model)

    def refresh(self) -> None:
        """Read the manifest again; forget loaded vectors and versions (done by itself when
        another process changes the library)."""
        self._parts.refresh()

    def close(self) -> None:
        self._parts.catalog.close()

    def discard(self) -> bool:
        """Remove the library this object created when nothing was added to it (its first
        `index` failed), and its folder unless that was there before; whether it was."""
        if self._made is None:
            return False
        try:
            with self._parts.writing():  # never while another process writes to it
                if any(self._parts.catalog.counts().values()):
                    return False
                self.close()
                for entry in self.path.iterdir():
                    if entry.is_dir():
                        shutil.rmtree(entry)
                    else:
                        entry.unlink()
        except SashieError:
            return False
        if self._made:
            with suppress(OSError):  # another process put something in it meanwhile
                self.path.rmdir()
        return True

    def __enter__(self) -> Library:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- adding ----------------------------------------------------------------------------

    def add(
        self,
        sources: Sequence[str] | str,
        *,
        model: str | None = None,
        regions: str | Sequence[str | object] = DEFAULT_DETECTORS,
        detector_options: dict[str, dict] | None = None,
        trust_remote_code: bool = False,
        device: str | None = None,
        batch_size: int | None = None,
        workers: int | None = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        index_kind: str | None = None,
        engine: str = "local",
        address: str | None = None,
        metadata: str | os.PathLike | None = None,
    ) -> AddReport:
        """Index sources (folders, path lists, IIIF manifests, images): only what is new or
        changed is read and embedded; each is a book or several (`metadata`: a CSV or JSON
        of the folders' books, sashie/sources/books.py). `regions` names the region detectors
        ("hybrid,whole"), `detector_options` their settings by name ({"zeroshot": {"model":
        ...}}). Raises `Interrupted` on Ctrl-C, with all done so far kept.

        `engine` "local" reads pages in threads feeding the model in this process; "ray"
        reads and embeds them on a Ray cluster (the one at `address`, else a local one
        started for the run: the `ray` extra), and this process writes what comes back.

        Then the active version's ANN index is brought up to date: new items are added to
        it, or it is built when the library has grown past the size where it pays
        (`index_kind` chooses the kind instead, and is remembered; see `reindex`); and the
        map, where the active version has one, places the new items (`map.update`)."""
        sources = [sources] if isinstance(sources, str) else list(sources)
        if not sources:
            raise SashieError("nothing to index: name at least one source")
        check_sources(sources)
        how = Indexing(
            model=model, regions=regions, detector_options=detector_options or {},
            trust_remote_code=trust_remote_code, device=device, batch_size=batch_size,
            workers=workers, max_pixels=max_pixels, index_kind=index_kind, engine=engine,
            address=address, books=None if metadata is None else read_sidecar(metadata),
        )  # fmt: skip
        report = index_pages(self._parts, self.filter, sources, how)
        if self.map.exists(model):
            self.map.update(model=model)
        return report

    def recut(
        self,
        regions: str | None = None,
        *,
        drop: str | Sequence[str] = (),
        model: str | None = None,
        detector_options: dict[str, dict] | None = None,
        device: str | None = None,
        batch_size: int | None = None,
        workers: int | None = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> AddReport:
        """Run these detectors again on every page of the library (after `regions.train`, the
        tuned detector): a box cut again keeps its item, with its vector, marks and captions;
        a box no longer cut loses its item; only new boxes are encoded. The items of the
        detectors in `drop` go (a library changing detectors: "hybrid,whole", drop "layout");
        other detectors' items stay. `regions` None: those of the detectors that read the
        library's network (`hybrid`, `learned`) that cut its items, else `hybrid`."""
        if regions is None:
            used = self._parts.catalog.items_by_detector()
            regions = ",".join(d for d in NETWORK_DETECTORS if used.get(d)) or "hybrid"
        names = parse_detector_names(regions)
        dropped = parse_detector_names(drop) if drop else []
        if set(dropped) & set(names):
            raise SashieError("a detector is either run again or dropped, not both")
        pages = self._parts.catalog.pages()
        refs = [indexed_page(uri, source, meta) for _, uri, source, meta in pages]
        if not refs:
            raise SashieError("the library has no pages yet; index some first")
        how = Indexing(
            model=model, regions=",".join(names), detector_options=detector_options or {},
            device=device, batch_size=batch_size, workers=workers, max_pixels=max_pixels,
            recut=names + dropped,  # a dropped detector's items are not cut again: they go
        )  # fmt: skip
        return index_pages(self._parts, self.filter, refs, how)

    def reindex(
        self,
        model: str | None = None,
        *,
        kind: str | None = None,
        nprobe: int | None = None,
        ef: int | None = None,
        version: str | None = None,
    ) -> dict:
        """Build the ANN index of the model's active version (or `version`) anew, of `kind`
        ("hnsw", "ivf", "ivfpq"; "exact" removes it; "auto" or None: the measured rule for
        its size). `kind`, `nprobe` and `ef` are remembered for later indexing and searches.
        Searches in other processes go on with the previous index until the new one is in
        place. Returns {"model", "version", "done", "index"}."""
        choice = AnnChoice(kind, nprobe, ef).check()
        return rebuild_ann(self._parts, self._parts.model_id(model), version, choice)

    # --- items -----------------------------------------------------------------------------

    def items(self, item_ids: Ids | None = None) -> list[ItemRow]:
        """Items with their pages, in the order asked (every item, by id, when None)."""
        return self._parts.catalog.items(item_ids)

    def item(self, item_id: int) -> ItemRow:
        """One item and its page (`NotFound` when the library has no such item)."""
        return self._parts.item(item_id)

    def item_ids(self) -> np.ndarray:
        """The ids of every item."""
        return self._parts.catalog.live_item_ids()

    def crop(self, item_id: int, size: int | None = None) -> Image.Image:
        """The item's picture; with `size`, at most that many pixels a side. From the page's
        IIIF Image service when it has one, else cut from the page (a web page is fetched
        once into LIB/cache/pages/): sashie/library/pictures.py."""
        return self._parts.pictures.crop(self.item(item_id), size)

    def page_image(self, item_id: int, size: int) -> Image.Image:
        """The item's whole page, at most `size` pixels a side."""
        return self._parts.pictures.page(self.item(item_id), size)

    def iiif_target(self, item_id: int) -> dict:
        """Where the item lies on its IIIF canvas (sashie/library/iiif.py `link`). `NotFound`
        for an item that is not on a IIIF canvas."""
        found = iiif.link(self.item(item_id))
        if found is None:
            raise NotFound(f"item {item_id} is not from a IIIF manifest (its page has no canvas)")
        return found

    def iiif_annotations(
        self,
        item_ids: Ids | None = None,
        *,
        scores: Sequence[float] | None = None,
        caption: str | None = None,
        mark: str | None = None,
        title: str | None = None,
        curation: bool = False,
    ) -> AnnotationExport:
        """A IIIF Presentation 3 AnnotationPage of found regions (`curation`: a IIIF Curation
        JSON): the given items (ranked in that order, with their `scores` if given), the
        items with a `caption`, or those marked `mark` ("keep" or "exclude"). Each region
        carries its captions; items not on a IIIF canvas are left out and counted."""
        wanted = None if item_ids is None else [int(i) for i in item_ids]
        return iiif.found_regions(
            self._parts.catalog, wanted, scores=scores, caption=caption, mark=mark,
            title=title, as_curation=curation,
        )  # fmt: skip

    def counts(self) -> dict[str, int]:
        """Cheap counts: pages, items, skipped inputs, annotations, keep and exclude marks,
        and the filter's verdicts (kept, excluded)."""
        catalog = self._parts.catalog
        marks = {f"marked_{name}": n for name, n in catalog.mark_counts().items()}
        annotations = {"annotations": catalog.annotation_count()}
        return catalog.counts() | annotations | marks | catalog.filter_counts()

    # --- searching -------------------------------------------------------------------------

    def index(self, model: str | None = None, *, version: str | None = None) -> VectorIndex:
        """The model's vectors of live items (float16, memory-mapped when it can be) with
        their ANN index if they have one: those of the active version unless `version`
        names one ("base" for the encoder's own). Loaded once; a new ANN file is noticed."""
        return self._parts.load(model, version).index

    def shard(self, count: int, *, address: str | None = None) -> None:
        """Search and refine from now on through `count` shards of the library's rows: Ray
        actors on the cluster at `address` ("local": a Ray started here), or held in this
        process (None). Results are one index's, to the last id (exact scans in each shard);
        a shard that does not answer is one error (`ShardDown`), never fewer results. The
        cluster is joined, and the default model's shards started, now."""
        self._sharding = Sharding(count, address, self._parts.shard_folder)
        if self.default_model is not None:
            self._shards(None, self.index())

    def _shards(self, model: str | None, index: VectorIndex) -> Shards | None:
        """The shards searched for the model's rows `index` (None: not sharded)."""
        if self._sharding is None:
            return None
        return self._sharding.shards(self._parts.manifest.model_id(model), index)

    def vectors_of(
        self, item_ids: Ids, model: str | None = None, *, version: str | None = None
    ) -> np.ndarray:
        """The stored vectors of these items (float32, in the order given), of the active
        version unless `version` says ("base": the encoder's own). Base vectors not loaded
        yet are read from the vector file, so a few rows never load the whole index."""
        return self._parts.vectors_of(item_ids, model, version)

    def query(self, asked: str | Asked | None, *, model: str | None = None) -> Query:
        """What was asked (a text or expression, or `Asked`: example images and items, words
        that modify the pictures...) as a query vector and, for several examples, the
        dimensions they agree on (sashie/library/searching.py)."""
        return searching.build(self._parts, self.composer, _asked(asked), model)

    def search(
        self,
        query: str | Asked | Query | np.ndarray | None = None,
        k: int = DEFAULT_K,
        *,
        where: Filters | None = None,
        model: str | None = None,
        exact: bool = False,
        nprobe: int | None = None,
        ef: int | None = None,
    ) -> list[Result]:
        """Top-k items for a text or expression, for what was `Asked` (example images, words
        that modify them, several examples' dimensions...), or for a `Query` made before
        (by `query`, or a vector). `where` narrows the items searched (`Filters`: by default
        those the keep/exclude filter kept); each result carries its class in the label set.

        A library with an ANN index (large ones: `reindex`) takes candidates from it and
        ranks them exactly; `exact` scans every vector instead; `nprobe` / `ef` widen the
        index's search (more recall, more time) for this search.

        A text query for a caption the active version was taught also ranks items by their
        likeness to its captioned examples (sashie/search/memory.py)."""
        if k <= 0:
            raise SashieError("k must be at least 1")
        where = where or Filters()
        index = self.index(model)
        query = self._built(query, model, index.dim)
        try:
            restrict(query.vector, query.dims)
        except ValueError as e:
            raise SashieError(str(e)) from None
        left_out, kept, label_set = searching.left_out(self._parts, self.labels, where, model)
        memory = self._parts.memory(model) if query.text_only and query.dims is None else None
        boost = memory.boost(query.vector) if memory is not None else {}
        how = self._ann_search(model, exact, nprobe, ef)
        shards = self._shards(model, index)
        if shards is not None:
            found = shards.search(
                query.vector, k, dims=query.dims, exclude=left_out, how=how, **boost
            )
            item_ids, scores = found.ids, found.scores
        else:
            item_ids, scores = index.search(
                query.vector, k, query.dims, exclude=left_out, kept=kept, how=how, **boost
            )
        return at_least(results(self._parts, item_ids, scores, label_set), where.min_score)

    def feedback(
        self,
        query: str | Asked | Query | np.ndarray | None = None,
        k: int = DEFAULT_K,
        *,
        relevant: Sequence[int],
        irrelevant: Sequence[int] = (),
        learner: str = DEFAULT_LEARNER,
        where: Filters | None = None,
        model: str | None = None,
        seed: int = 0,
    ) -> list[Result]:
        """The search for a query again, refined by the user's relevant/irrelevant marks
        (item ids): see sashie/search/feedback.py for the learners. Feedback works in the
        full space: a query's dimension selection is not used. `where`: as for `search`."""
        if k <= 0:
            raise SashieError("k must be at least 1")
        where = where or Filters()
        index = self.index(model)
        if query is None or isinstance(query, str | Asked):
            query = replace(_asked(query), dims=None)
        query = self._built(query, model, index.dim)
        left_out, _, label_set = searching.left_out(self._parts, self.labels, where, model)
        marks = (relevant, irrelevant)
        shards = self._shards(model, index)
        if shards is not None:
            learned = learn(index, query.vector, *marks, learner=learner, seed=seed)
            found = shards.feedback(learned, k, exclude=left_out)
            item_ids, scores = found.ids, found.scores
        else:
            item_ids, scores = refine(
                index, query.vector, *marks, learner=learner, k=k, exclude=left_out, seed=seed
            )
        return at_least(results(self._parts, item_ids, scores, label_set), where.min_score)

    def _built(
        self, query: str | Asked | Query | np.ndarray | None, model: str | None, dim: int
    ) -> Query:
        """The query as a vector of the model's dimension, `dim`."""
        if query is None or isinstance(query, str | Asked):
            query = self.query(_asked(query), model=model)
        elif not isinstance(query, Query):
            query = Query(np.asarray(query, np.float32), None, ())
        if len(query.vector) != dim:
            raise SashieError(f"query has {len(query.vector)} dimensions, library {dim}")
        return query

    def _ann_search(
        self, model: str | None, exact: bool, nprobe: int | None, ef: int | None
    ) -> AnnSearch:
        """How a search uses the ANN index: the request's settings, else the model's."""
        AnnChoice(nprobe=nprobe, ef=ef).check()
        saved = self._parts.ann.choice(self._parts.model_id(model))
        return AnnSearch(exact, nprobe or saved.nprobe, ef or saved.ef)

    # --- describing and exporting ----------------------------------------------------------

    def info(self, *, skipped_inputs: bool = True) -> dict:
        """What the library holds: pages, items, models and their vectors, skipped inputs
        (each one's path and reason, unless `skipped_inputs` is False: only their count)."""
        return facts(
            self._parts, self._checks(), labels=self.labels, keep_filter=self.filter,
            composers=self.composer, skipped_inputs=skipped_inputs,
        )  # fmt: skip

    def check(self, *, repair: bool = False) -> Checkup:
        """Every damaged or tampered part of the library, every file read (`sashie check`,
        sashie/library/checking.py); `repair`: rebuild what is derived, drop what is unusable."""
        checks = self._checks()
        problems = checks.run(thorough=True)
        return Checkup(problems, checks.repair(problems) if repair else [])

    def _checks(self) -> Checks:
        return Checks(
            self._parts, versions=self.versions, composers=self.composer,
            keep_filter=self.filter, labels=self.labels,
        )  # fmt: skip

    def export(
        self,
        out_dir: str | os.PathLike,
        *,
        model: str | None = None,
        version: str | None = None,
        crops: bool = True,
    ) -> ExportReport:
        """One row per item, in clip-retrieval's layout (sashie/library/export.py): the
        vectors of the active version (or `version`; "base": the encoder's own) as .npy, the
        items' crops (unless `crops` is False), URLs, captions, marks, filter verdicts and
        metadata as Parquet, and model.json naming the model and version."""
        manifest = self._parts.manifest
        model_id = manifest.find(model)
        if model_id is None:
            raise SashieError(
                "nothing to export: the library has no vectors"
                if model is None
                else f"this library has no vectors of {model}"
            )
        version = manifest.active_version(model_id) if version is None else version
        manifest.check_version(model_id, version)
        index = self.index(model_id, version=version)
        items = self._parts.catalog.items(index.item_ids.tolist())
        live = np.isin(index.item_ids, [row.id for row in items])  # none removed meanwhile
        spec = manifest.models[model_id]["spec"]
        return export_items(
            Path(out_dir),
            index.vectors if live.all() else index.vectors[live],
            items,
            judged(self._parts),
            {"model_id": model_id, "spec": spec, "version": version},
            self.crop if crops else None,
            progress=self._parts.progress,
        )


def _asked(query: str | Asked | None) -> Asked:
    """A text (or nothing) as what was asked."""
    return query if isinstance(query, Asked) else Asked(text=query)
