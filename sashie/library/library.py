"""The `Library`: the one object a user holds. A directory that is one indexed collection.

    lib = Library("books.sashie", create=True)
    lib.add(["scans/"], model="hf:line-corporation/clip-japanese-base", trust_remote_code=True)
    for hit in lib.search("a crane and a pine tree", k=10):
        print(hit.score, hit.page, hit.bbox)

Its verbs: add; search and feedback; label, train_filter (the keep/exclude filter); annotate,
adapt and use (model versions); classify (labels from a label set, search facets); info and
export. Each delegates: `sashie.ingest` reads and
indexes, `sashie.search` builds queries and ranks, `sashie.filter` judges items,
`sashie.adapt` trains; this package keeps the library's files (manifest.py, stored.py,
versions.py, annotations.py, adapting.py). The command line and the web server use only
these verbs.

On disk (docs/architecture.md has the details):
    manifest.json          format version, the models and their dimensions, the default model
    catalog.sqlite         pages, items, skipped inputs, vector counts, labels, annotations,
                           label sets and the classes they gave items
    vectors/<model>/       vectors.f16 and items.i64 of each model (sashie/store/vectors.py)
    filter/                the keep/exclude filter, when one is trained (sashie/filter)
    adapters/<model>/<v>/  model versions made by `adapt` (sashie/adapt/versions.py)
    compose/<model>/<v>/   a version's composer for composed search (sashie/compose)
"""

from __future__ import annotations

import fcntl
import os
import shutil
import threading
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from ..adapt.paraphrase import EndpointParaphraser, Paraphraser, RuleParaphraser, paraphrase_all
from ..adapt.phrasings import phrasings
from ..adapt.settings import AdaptSettings
from ..adapt.versions import has_text_state, load_text_state, load_version_adapter
from ..classify.bank import model_words
from ..classify.bank import nearest_words as words_near
from ..classify.coder import DEFAULT_METHOD, OTHER, OTHER_BELOW, Scoring
from ..classify.generator import ChatServer, describe_classes
from ..classify.labelfile import LabelSet, read_label_file
from ..compose.settings import ComposeSettings, composer_folder, read_record
from ..encoders import Encoder, load_encoder
from ..errors import NotFound, SashieError
from ..filter.model import THRESHOLD, KeepFilter
from ..filter.training import LEARNERS, TrainReport, train_filter, verdict_metrics
from ..ingest.indexer import AddReport, Indexer, reason_kind
from ..regions import DEFAULT_DETECTORS, load_detectors, parse_detector_names
from ..search.feedback import DEFAULT_LEARNER, refine
from ..search.memory import ExampleMemory
from ..search.query import (
    DEFAULT_DIMS,
    DEFAULT_MODIFY_WEIGHT,
    DEFAULT_SELECT,
    MODIFY_METHODS,
    Query,
    Term,
    build_query,
    modified,
    parse_query,
    query_image,
    read_pictures,
)
from ..search.ranking import DEFAULT_K, AnnSearch, VectorIndex, restrict
from ..sources.images import DEFAULT_MAX_PIXELS
from ..sources.pages import PageRef, check_sources, indexed_page
from ..store.catalog import Catalog, ItemRow
from ..store.vectors import VectorFile
from . import iiif
from .adapting import AdaptReport, ProgressBar, make_version, train_in_float32
from .annotations import Pairs, export_pairs, file_pairs, library_pairs
from .classifying import ClassifyReport, examples_from_annotations, export_labels, label_items
from .export import ExportReport, Marks, export_items
from .iiif import AnnotationExport
from .manifest import BASE, Manifest
from .nearest import AnnChoice, AnnFiles, Stamp
from .pictures import PageCache, Pictures, page_cache_bytes
from .region_model import STEPS as TUNE_STEPS
from .region_model import (
    RegionTuning,
    boxes_from,
    checked_boxes,
    drawn_pages,
    own_model,
    tune_region_model,
)
from .stored import StoredVectors, rows_of
from .versions import Versions

if TYPE_CHECKING:  # these import torch: loaded by the verbs that use them, so that a command
    # starts, and a mistake is reported, before torch is imported
    from ..compose.composer import Composer
    from .composing import ComposeReport

CATALOG = "catalog.sqlite"
FILTER = "filter"
LOCK = "lock"
PAGE_CACHE = "cache/pages"  # pages fetched from the web, to show (sashie/library/pictures.py)
BACKGROUND = 16384  # other items' vectors an adaptation keeps in place

QueryImage = str | os.PathLike | Image.Image
Ids = Sequence[int] | np.ndarray  # item ids
Flags = Sequence[bool] | np.ndarray  # keep (True) or exclude, one per item


@dataclass(frozen=True)
class Result:
    rank: int
    item: int
    score: float
    page: str  # the page image: path or URL
    bbox: tuple[int, int, int, int]
    detector: str
    source: str
    metadata: dict  # what the source says of the page (IIIF: manifest, canvas, service)
    page_size: tuple[int, int]
    label: str | None  # a person's mark: "keep", "exclude" or None
    verdict: str | None  # the filter's: "keep", "exclude" or None (no filter, not scored)
    captions: tuple[str, ...]  # the item's annotations
    canvas: str | None  # the IIIF canvas the page is (None: not from a IIIF manifest)
    region: str | None  # the item on that canvas: "canvas#xywh=x,y,w,h" (sashie/library/iiif.py)
    class_label: str | None = None  # its class in the label set the search used (classify)
    copies: tuple[str, ...] = ()  # other files with the page's very bytes (not indexed again)

    def as_dict(self) -> dict:
        """Everything a script needs, as JSON-ready data (`search --json`, the API)."""
        out = asdict(self)
        out.update(bbox=list(self.bbox), page_size=list(self.page_size))
        out.update(captions=list(self.captions), copies=list(self.copies))
        return out


class Library:
    def __init__(
        self,
        path: str | os.PathLike,
        *,
        create: bool = False,
        progress: bool = False,
        trust_remote_code: bool = False,
    ) -> None:
        """Open the library at `path` (`create` makes it if missing); `progress` shows
        progress bars on long steps (indexing, loading many vectors, adapting).

        `trust_remote_code` lets a model run the code its repository ships (Hugging Face);
        only the caller grants that, never the library's own files."""
        self.path = Path(path)
        self.progress = progress
        self.trust_remote_code = trust_remote_code
        self._made: bool | None = None  # made here: True in a new folder, False in an empty one
        if Manifest.exists(self.path):
            self._manifest = Manifest(self.path)
        elif create:
            self._made = not self.path.exists()
            self._manifest = Manifest.create(self.path)
        else:
            raise SashieError(f"no sashie library at {self.path}")
        with self._manifest.locked():  # two processes creating the catalog would collide
            self._catalog = Catalog(self.path / CATALOG)
        self._versions = Versions(self._manifest, self._catalog)
        self._ann = AnnFiles(self._manifest, self._versions)
        self._loading = threading.RLock()  # encoders load once, whichever thread asks first
        self._encoders: dict[str, Encoder] = {}
        self._memories: dict[str, ExampleMemory | None] = {}
        self._indexes: dict[tuple[str, str], VectorIndex] = {}  # by (model id, version)
        self._ann_stamps: dict[tuple[str, str], Stamp] = {}  # their ANN files when loaded
        self._excluded: dict[tuple[str, str], np.ndarray] = {}  # rows the filter excluded
        self._composers: dict[tuple[str, str], tuple[float, Composer]] = {}  # by (model, v)
        self._classes: dict[tuple[str, str, str], np.ndarray] = {}  # index rows' class, by set
        self._data_version = self._catalog.data_version()
        self._items_stamp = self._catalog.items_stamp()
        self._pictures = Pictures(PageCache(self.path / PAGE_CACHE, page_cache_bytes()))

    # --- the library and its models --------------------------------------------------------

    @property
    def default_model(self) -> str | None:
        self._notice_changes()
        return self._manifest.default_model

    @property
    def models(self) -> dict[str, dict]:
        """The manifest's record of each model: spec, dim, versions, the active one."""
        self._notice_changes()
        return self._manifest.models

    def encoder(
        self,
        model: str | None = None,
        *,
        trust_remote_code: bool = False,
        device: str | None = None,
    ) -> Encoder:
        """The encoder for a model id or spec (the default model when None), loaded once.
        `trust_remote_code` (or the library's) lets it run its repository's code."""
        spec, model_id, needs_trust = self._manifest.spec(model)
        trusted = trust_remote_code or self.trust_remote_code
        if needs_trust and not trusted:
            raise SashieError(
                f"this library's model {spec} runs code from its repository; pass "
                "--trust-remote-code if you trust it (a library never grants that itself)"
            )
        with self._loading:
            if spec not in self._encoders:
                self._encoders[spec] = load_encoder(spec, device=device, trust_remote_code=trusted)
            encoder = self._encoders[spec]
        if model_id is not None and encoder.model_id != model_id:
            raise SashieError(
                f"the model at {spec} is now {encoder.model_id}, but this library's vectors "
                f"were made by {model_id}; index again with --model {spec}"
            )
        entry = self.models.get(encoder.model_id)
        if entry is not None and entry["dim"] != encoder.dim:
            raise SashieError(
                f"model {spec} gives {encoder.dim}-dimensional vectors, but this library's "
                f"vectors for it are {entry['dim']}-dimensional"
            )
        return encoder

    def query_encoder(self, model: str | None = None) -> Encoder:
        """The encoder that queries go through: the active version's (tuned text encoder,
        image examples through the adapter), or the base encoder."""
        self._notice_changes()
        model_id = self._manifest.find(model)
        version = BASE if model_id is None else self._manifest.active_version(model_id)
        if model_id is None or version == BASE:
            return self.encoder(model)
        key = f"{model_id}+{version}"
        from ..encoders.adapted import AdaptedEncoder

        with self._loading:
            if key not in self._encoders:
                folder = self._versions.folder(model_id, version)
                record = self._versions.record(model_id, version)
                entry = self.models[model_id]
                inner = self.encoder(model_id)
                if has_text_state(folder):  # a copy whose text tensors change
                    inner = load_encoder(
                        entry["spec"],
                        device=inner.device,
                        trust_remote_code=self.trust_remote_code,
                    )
                    load_text_state(inner, folder)
                self._encoders[key] = AdaptedEncoder(
                    inner, load_version_adapter(folder, record), version
                )
            return self._encoders[key]

    def refresh(self) -> None:
        """Read the manifest again and forget loaded vectors and model versions. Readers do
        this by themselves when another process changes the library (`_notice_changes`)."""
        from ..encoders.adapted import AdaptedEncoder

        with self._loading:
            self._manifest.reload()
            self._forget_loaded()
            self._encoders = {
                k: v for k, v in self._encoders.items() if not isinstance(v, AdaptedEncoder)
            }
            self._memories.clear()

    def _notice_changes(self) -> None:
        """Reload what another process changed: the manifest (a new or removed version, a
        new model) or the items and vectors (pages indexed). Costs a stat and one SQLite
        pragma when nothing changed."""
        version = self._catalog.data_version()
        if not self._manifest.stale() and version == self._data_version:
            return
        with self._loading:
            if self._manifest.stale():
                self.refresh()
            if version != self._data_version:
                stamp = self._catalog.items_stamp()
                if stamp != self._items_stamp:
                    self._forget_loaded()
                self._excluded.clear()  # another process may have applied a filter
                self._classes.clear()  # or labelled items
                self._items_stamp = stamp
                self._data_version = version

    def close(self) -> None:
        self._catalog.close()

    def discard(self) -> bool:
        """Remove the library this object created, when nothing was added to it (the first
        `index` into it failed): its files, and its folder unless that was there before.
        Returns whether it was removed; the object is closed then."""
        if self._made is None:
            return False
        try:
            with self._writing():  # never while another process writes to it
                if any(self._catalog.counts().values()):
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
    ) -> AddReport:
        """Index sources (folders, path lists, IIIF manifests, images): only what is new or
        changed is read and embedded. `regions` names the region detectors ("layout,whole"),
        `detector_options` their settings by name ({"zeroshot": {"model": ...}}). Raises
        `Interrupted` on Ctrl-C, with all done so far kept.

        `engine` "local" reads pages in threads feeding the model in this process; "ray"
        reads and embeds them on a Ray cluster (the one at `address`, else a local one
        started for the run: the `ray` extra), and this process writes what comes back.

        Then the active version's ANN index is brought up to date: new items are added to
        it, or it is built when the library has grown past the size where it pays
        (`index_kind` chooses the kind instead, and is remembered; see `reindex`)."""
        sources = [sources] if isinstance(sources, str) else list(sources)
        if not sources:
            raise SashieError("nothing to index: name at least one source")
        check_sources(sources)
        return self._index(
            sources, model=model, regions=regions, detector_options=detector_options,
            trust_remote_code=trust_remote_code, device=device, batch_size=batch_size,
            workers=workers, max_pixels=max_pixels, index_kind=index_kind, engine=engine,
            address=address,
        )  # fmt: skip

    def recut(
        self,
        regions: str = "learned",
        *,
        model: str | None = None,
        detector_options: dict[str, dict] | None = None,
        device: str | None = None,
        batch_size: int | None = None,
        workers: int | None = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> AddReport:
        """Run these detectors again on every page of the library (after `tune_regions`, the
        tuned detector): a box cut again keeps its item, with its vector, labels and captions;
        a box no longer cut loses its item; only new boxes are encoded."""
        names = parse_detector_names(regions)
        refs = [indexed_page(uri, source, meta) for _, uri, source, meta in self._catalog.pages()]
        if not refs:
            raise SashieError("the library has no pages yet; index some first")
        return self._index(
            refs, model=model, regions=",".join(names), detector_options=detector_options,
            device=device, batch_size=batch_size, workers=workers, max_pixels=max_pixels,
            recut=names,
        )  # fmt: skip

    def _index(
        self,
        sources: list[str] | list[PageRef],
        *,
        model: str | None,
        regions: str | Sequence[str | object],
        detector_options: dict[str, dict] | None,
        trust_remote_code: bool = False,
        device: str | None,
        batch_size: int | None,
        workers: int | None,
        max_pixels: int,
        index_kind: str | None = None,
        engine: str = "local",
        address: str | None = None,
        recut: Sequence[str] = (),
    ) -> AddReport:
        choice = AnnChoice(index_kind).check()
        if engine not in ("local", "ray"):
            raise SashieError(f"unknown engine {engine!r}: local or ray")
        if address and engine != "ray":
            raise SashieError("an address is for --engine ray")
        detector_options = dict(detector_options or {})
        tuned = own_model(self.path)
        if tuned is not None:  # the library's own detector, fine-tuned on a curator's boxes
            for name in ("learned", "hybrid"):
                detector_options.setdefault(name, {"model": tuned})
        detectors = load_detectors(regions, detector_options)  # type: ignore[arg-type]
        with self._writing():
            # with Ray the model runs on the cluster's actors (on `device`); here it only
            # names the model and prepares crops, so it loads on the CPU
            here = "cpu" if engine == "ray" else device
            encoder = self.encoder(model, trust_remote_code=trust_remote_code, device=here)
            spec = self._manifest.spec(model)[0]
            model_id = self._manifest.register(spec, encoder, trust_remote_code)
            runner = None
            if engine == "ray":
                from ..ingest.ray_engine import RayEngine

                runner = RayEngine(
                    spec,
                    batch_size=batch_size,
                    workers=workers,
                    device=device,
                    address=address,
                    trust_remote_code=trust_remote_code or self.trust_remote_code,
                )
            indexer = Indexer(
                self._catalog,
                self._vector_file(model_id),
                model_id,
                encoder,
                detectors,
                batch_size=batch_size or (256 if encoder.device.startswith("cuda") else 32),
                workers=workers,
                max_pixels=max_pixels,
                progress=self.progress,
                engine=runner,
                recut=recut,
            )
            self._forget_loaded()
            report = indexer.run(sources)
            if self.has_filter:  # the saved filter judges the new items too
                report.filtered = self.apply_filter(only_new=True)
            active = self._manifest.active_version(model_id)
            if self._versions.catch_up(model_id, active, self._stored(model_id)):
                self._indexes.pop((model_id, active), None)
            with self._ann.choosing(model_id, choice):
                report.ann = self._keep_ann_current(model_id, active)
            return report

    def tune_regions(
        self,
        source: str | Path | None = None,
        *,
        labels: Collection[str] | None = None,
        steps: int = TUNE_STEPS,
        seed: int = 0,
        on_step: Callable[[int, float], None] | None = None,
    ) -> RegionTuning:
        """Fine-tune the `learned` region detector on boxes a curator drew (a folder of VOC
        files, a COCO JSON file, or a IIIF AnnotationPage on the library's canvases; None:
        the boxes drawn on its pages, `draw_boxes`), saved in the library and used by its
        later indexing: sashie/library/region_model.py."""
        with self._writing():
            if source is None:
                drawn = self._catalog.drawn_boxes()
                pages, skipped = drawn_pages(
                    drawn, self._catalog.whole_pages(drawn), self._pictures.page
                )
            else:
                pages, skipped = boxes_from(source, self._catalog.pages)
            return tune_region_model(
                self.path, pages, skipped, labels=labels, steps=steps, seed=seed,
                progress=self.progress, on_step=on_step,
            )  # fmt: skip

    def draw_boxes(self, item_id: int, boxes: object) -> list[tuple[int, int, int, int]]:
        """Record the illustrations a curator boxed on an item's page (x0, y0, x1, y1 in page
        pixels; an empty list: the page holds none), replacing those drawn before; the
        boxes as kept. `tune_regions()` learns from every page so drawn."""
        row = self.item(item_id)
        kept = checked_boxes(boxes, row.page_size)
        with self._catalog.transaction() as tx:
            tx.set_drawn_boxes(row.page_id, kept)
        return kept

    def drawn_boxes(self, item_id: int) -> list[tuple[int, int, int, int]] | None:
        """The boxes drawn on an item's page (None: its page was never boxed)."""
        row = self.item(item_id)
        return self._catalog.drawn_boxes([row.page_id]).get(row.page_id)

    def found_boxes(self, item_id: int) -> list[tuple[str, tuple[int, int, int, int]]]:
        """The boxes the detectors cut from an item's page, each with its detector's name
        (not `whole` or `tiles`, which are no picture's outline): where a curator starts
        boxing a page from."""
        row = self.item(item_id)
        return [
            (detector, box)
            for detector, box in self._catalog.page_item_boxes(row.page_id)
            if detector not in ("whole", "tiles")
        ]

    def forget_boxes(self, item_id: int) -> None:
        """Forget the boxes drawn on an item's page: it no longer teaches the detector."""
        row = self.item(item_id)
        with self._catalog.transaction() as tx:
            tx.set_drawn_boxes(row.page_id, None)

    def boxed_page_count(self) -> int:
        """How many pages have boxes drawn (each teaches `tune_regions()`)."""
        return self._catalog.drawn_page_count()

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
        model_id = self._manifest.model_id(model)
        with self._writing():
            version = self._manifest.active_version(model_id) if version is None else version
            self._manifest.check_version(model_id, version)
            with self._ann.choosing(model_id, choice):
                done = self._keep_ann_current(model_id, version, rebuild=True)
        return {
            "model": model_id,
            "version": version,
            "done": done,
            "index": self._ann.describe(model_id, version, self._catalog.vector_rows(model_id)),
        }

    def _keep_ann_current(self, model_id: str, version: str, *, rebuild: bool = False) -> str:
        """Bring a version's ANN index up to date (under the write lock); what was done."""
        base = self._stored(model_id)
        if version == BASE:
            vectors = base.vectors()
        else:
            self._versions.catch_up(model_id, version, base)
            vectors = self._versions.vectors(model_id, version)
        return self._ann.keep_current(
            model_id,
            version,
            vectors,
            int(base.live.sum()),
            rebuild=rebuild,
            progress=self.progress,
        )

    # --- items -----------------------------------------------------------------------------

    def items(self, item_ids: Ids | None = None) -> list[ItemRow]:
        """Items with their pages, in the order asked (every item, by id, when None)."""
        return self._catalog.items(item_ids)

    def item(self, item_id: int) -> ItemRow:
        """One item and its page (`NotFound` when the library has no such item)."""
        rows = self._catalog.items([int(item_id)])
        if not rows:
            raise NotFound(f"no item {item_id} in this library")
        return rows[0]

    def item_ids(self) -> np.ndarray:
        """The ids of every item."""
        return self._catalog.live_item_ids()

    def crop(self, item_id: int, size: int | None = None) -> Image.Image:
        """The item's picture; with `size`, at most that many pixels a side. From the page's
        IIIF Image service when it has one, else cut from the page (a web page is fetched
        once into LIB/cache/pages/): sashie/library/pictures.py."""
        return self._pictures.crop(self.item(item_id), size)

    def page_image(self, item_id: int, size: int) -> Image.Image:
        """The item's whole page, at most `size` pixels a side."""
        return self._pictures.page(self.item(item_id), size)

    def iiif_target(self, item_id: int) -> dict:
        """Where the item lies on its IIIF canvas: {"item", "manifest", "canvas",
        "canvas_size", "xywh" (on the canvas), "region" (canvas#xywh=), "image_region" (a
        IIIF Image API URL, or None), "content_state", "iiif_content" (its encoding, for a
        viewer's ?iiif-content=)}. `NotFound` for an item that is not on a IIIF canvas."""
        row = self.item(item_id)
        where = iiif.place(row)
        if where is None:
            raise NotFound(f"item {item_id} is not from a IIIF manifest (its page has no canvas)")
        service = iiif.image_service(row)
        region = ",".join(map(str, iiif.service_box(row)))
        state = iiif.content_state(where)
        return {
            "item": row.id,
            "manifest": where.manifest,
            "canvas": where.canvas,
            "canvas_size": list(where.canvas_size),
            "xywh": list(where.xywh),
            "region": where.region,
            "image_region": iiif.image_url(service, region, "max") if service else None,
            "content_state": state,
            "iiif_content": iiif.encode_content_state(state),
        }

    def iiif_annotations(
        self,
        item_ids: Ids | None = None,
        *,
        scores: Sequence[float] | None = None,
        caption: str | None = None,
        label: str | None = None,
        title: str | None = None,
    ) -> AnnotationExport:
        """A IIIF Presentation 3 AnnotationPage of found regions: the given items (ranked in
        that order, with their `scores` if given), the items with a `caption`, or those
        labelled `label` ("keep" or "exclude"). Each region carries its captions; items not
        on a IIIF canvas are left out and counted (sashie/library/iiif.py)."""
        if sum(x is not None for x in (item_ids, caption, label)) != 1:
            raise SashieError("name the items: item ids, a caption or a label")
        if caption is not None:
            caption = " ".join(caption.split())  # as `annotate` keeps it
            item_ids = [a["item"] for a in self._catalog.annotations() if a["caption"] == caption]
            if not item_ids:
                raise SashieError(f"no item has the caption {caption!r}")
        elif label is not None:
            if label not in ("keep", "exclude"):
                raise SashieError("label must be keep or exclude")
            labelled, keep = self._catalog.labels()
            item_ids = labelled[keep == (label == "keep")].tolist()
        wanted = self._known_items(item_ids if item_ids is not None else [])
        if not wanted:
            raise SashieError(f"no item is labelled {label}" if label else "no items to export")
        if scores is not None and len(scores) != len(wanted):
            raise SashieError("one score per item, please")
        captions: dict[int, list[str]] = {}
        for a in self._catalog.annotations(wanted):
            captions.setdefault(a["item"], []).append(a["caption"])
        if title is None:
            title = caption or (f"labelled {label}" if label else "sashie")
        return iiif.annotation_page(self._catalog.items(wanted), title, scores, captions)

    def counts(self) -> dict[str, int]:
        """Cheap counts: pages, items, skipped inputs, annotations, keep and exclude labels,
        and the filter's verdicts (kept, excluded)."""
        labels = self._catalog.label_counts()
        return {
            **self._catalog.counts(),
            "annotations": self._catalog.annotation_count(),
            "labelled_keep": labels["keep"],
            "labelled_exclude": labels["exclude"],
            **self._catalog.filter_counts(),
        }

    # --- searching -------------------------------------------------------------------------

    def index(self, model: str | None = None, *, version: str | None = None) -> VectorIndex:
        """The model's vectors of live items (float16, memory-mapped when it can be) with
        their ANN index if they have one: those of the active version unless `version`
        names one ("base" for the encoder's own). Loaded once; a new ANN file is noticed."""
        self._notice_changes()
        model_id = self._manifest.model_id(model)
        version = self._manifest.active_version(model_id) if version is None else version
        key = (model_id, version)
        index = self._indexes.get(key)
        if index is None or self._ann_stamps.get(key) != self._ann.stamp(model_id, version):
            with self._loading:  # one thread loads; the others wait for it
                index = self._indexes.get(key)
                stamp = self._ann.stamp(model_id, version)
                if index is None:
                    index = self._load_index(model_id, version)
                elif self._ann_stamps.get(key) != stamp:  # another process rebuilt it
                    rows = self._catalog.vector_rows(model_id)
                    ann = self._ann.load(model_id, version, rows)
                    index = VectorIndex(
                        index.vectors, index.item_ids, ann=ann, file_rows=index.file_rows
                    )
                self._indexes[key] = index
                self._ann_stamps[key] = stamp
        return index

    def _load_index(self, model_id: str, version: str) -> VectorIndex:
        base = self._stored(model_id)
        if version == BASE:
            matrix = base.load_live(progress=self.progress)
        else:
            matrix = self._versions.load_live(model_id, version, base, progress=self.progress)
        ann = self._ann.load(model_id, version, base.rows)
        return VectorIndex(
            matrix, base.item_ids[base.live], ann=ann, file_rows=np.flatnonzero(base.live)
        )

    def vectors_of(
        self, item_ids: Ids, model: str | None = None, *, version: str | None = None
    ) -> np.ndarray:
        """The stored vectors of these items (float32, in the order given), of the active
        version unless `version` says ("base": the encoder's own). Base vectors not loaded
        yet are read from the vector file, so a few rows never load the whole index."""
        model_id = self._manifest.model_id(model)
        version = self._manifest.active_version(model_id) if version is None else version
        wanted = np.asarray(item_ids, np.int64)
        if version == BASE and (model_id, BASE) not in self._indexes:
            stored = self._stored(model_id)
            return np.asarray(stored.vectors()[stored.rows_of(wanted)], np.float32)
        index = self.index(model_id, version=version)
        return index.take(rows_of(index.item_ids, wanted))

    def query(
        self,
        text: str | None = None,
        *,
        images: Sequence[QueryImage] = (),
        items: Ids = (),
        modify: str | None = None,
        modify_weight: float = DEFAULT_MODIFY_WEIGHT,
        modify_method: str = "auto",
        dims: int | None = DEFAULT_DIMS,
        select: str = DEFAULT_SELECT,
        seed: int = 0,
        model: str | None = None,
        images_in_text: bool = True,
    ) -> Query:
        """Turn a query expression, example images (paths, URLs or pictures) and example
        items (ids: their stored vectors) into a query vector and, for several examples,
        the dimensions they agree on. `images_in_text`: a term of the text that names an
        image file or URL is that image (the web server turns it off: no request may name a
        file on the server).

        `modify`: words that change the pictures ("hand-coloured", "with a pine"), by
        `modify_method`: "sum" (picture + `modify_weight` x words), "tokens" (the picture
        as pseudo-words read with the words: needs `train_composer`), "light" (the same
        from the light query encoder's vector), "auto" (tokens when this version has a
        composer, else sum; `Query.note` says why when it falls back)."""
        if modify_method not in MODIFY_METHODS:
            raise SashieError(f"the modify method must be one of {', '.join(MODIFY_METHODS)}")
        terms = parse_query(text, files=images_in_text) if text else []
        terms += [
            Term(1.0, "image", image if isinstance(image, Image.Image) else str(image))
            for image in images
        ]
        terms = read_pictures(terms)  # before any model loads: a bad file is one error line
        if len(items):
            known = self._known_items(items)
            terms += [Term(1.0, "vector", v) for v in self.vectors_of(known, model)]
        encoder = self.query_encoder(model)
        method, composer, note = "sum", None, None
        if modify is not None and modify_method != "sum":
            composer, note = self._usable_composer(model, encoder)
            if composer is not None:
                method = "tokens" if modify_method == "auto" else modify_method
            elif modify_method != "auto":
                raise SashieError(
                    note
                    or f"the {modify_method} method needs a composer: train one with "
                    f"`sashie compose train {self.path}`"
                )
            elif note is not None:
                note += "; composed by the sum method"
        if method == "light":
            terms = self._light_terms(terms, composer)
        query = build_query(encoder, terms, dims=dims, select=select, seed=seed)
        if modify is None:
            return query
        if composer is None:
            query = modified(query, encoder, modify, modify_weight)
            return Query(query.vector, query.dims, query.terms, note)
        from ..compose.composer import composed
        from ..compose.slots import token_slots

        slots = token_slots(encoder)
        return composed(query, composer, slots, modify, light=method == "light")

    def _usable_composer(
        self, model: str | None, encoder: Encoder
    ) -> tuple[Composer | None, str | None]:
        """The active version's composer and None, or None and why there is none to use
        (None as the reason: no composer was ever trained, nothing to say)."""
        from ..compose.slots import CannotTakeTokens, token_slots

        model_id = self._manifest.model_id(model)
        version = self._manifest.active_version(model_id)
        try:
            token_slots(encoder)
        except CannotTakeTokens as e:
            return None, str(e)
        composer = self.composer(model_id)
        if composer is None:
            trained = self.composers(model_id)
            if not trained:
                return None, None
            return None, (
                f"the composer was trained for version {', '.join(trained)}, not the active "
                f"{version}; train one for it with `sashie compose train {self.path}`"
            )
        if composer.model_id != encoder.model_id:
            return None, (
                f"the composer was trained with {composer.model_id}, not {encoder.model_id}; "
                f"train it again with `sashie compose train {self.path}`"
            )
        return composer, None

    def _light_terms(self, terms: list[Term], composer: Composer | None) -> list[Term]:
        """The query's pictures as the light encoder's vectors (the gallery model's image
        tower is not run for them: the asymmetric method)."""
        assert composer is not None
        pictures = [i for i, t in enumerate(terms) if t.kind == "image"]
        if not pictures:
            raise SashieError("the light method reads a picture: give an --image")
        if composer.light is None:
            raise SashieError(
                "this library's composer has no light encoder; train one with "
                f"`sashie compose train {self.path} --light`"
            )
        images = [query_image(terms[i].value) for i in pictures]  # type: ignore[arg-type]
        vectors = composer.light_vectors(images)
        out = list(terms)
        for i, vector in zip(pictures, vectors):
            out[i] = Term(terms[i].weight, "vector", vector)
        return out

    def search(
        self,
        text: str | None = None,
        *,
        images: Sequence[QueryImage] = (),
        modify: str | None = None,
        modify_method: str = "auto",
        query: Query | np.ndarray | None = None,
        k: int = DEFAULT_K,
        dims: int | None = DEFAULT_DIMS,
        select: str = DEFAULT_SELECT,
        seed: int = 0,
        model: str | None = None,
        all_items: bool = False,
        label: str | Sequence[str] | None = None,
        not_label: str | Sequence[str] | None = None,
        label_set: str | None = None,
        exact: bool = False,
        nprobe: int | None = None,
        ef: int | None = None,
    ) -> list[Result]:
        """Top-k items for a text or expression, example images (changed by the words of
        `modify`: "hand-coloured"), or a `query` made before (by `query`, or a vector).

        A library with an ANN index (large ones: `reindex`) takes candidates from it and
        ranks them exactly; `exact` scans every vector instead; `nprobe` / `ef` widen the
        index's search (more recall, more time) for this search.

        Items the keep/exclude filter excluded are left out unless `all_items`. `label`
        keeps only items whose class (in `label_set`, by default the newest set `classify`
        made) is one of these, `not_label` leaves those out; each result carries its class.

        Several images make a multi-image query: the `dims` dimensions on which the examples
        agree most (lowest coefficient of variation; `select="random"` for the control) are
        kept, and each library vector is restricted to them; `dims=None` keeps all.

        A text query for a caption the active version was taught also ranks items by their
        likeness to its captioned examples (sashie/search/memory.py).
        """
        if k <= 0:
            raise SashieError("k must be at least 1")
        index = self.index(model)
        if query is None:
            query = self.query(
                text,
                images=images,
                modify=modify,
                modify_method=modify_method,
                dims=dims,
                select=select,
                seed=seed,
                model=model,
            )
        elif not isinstance(query, Query):
            query = Query(np.asarray(query, np.float32), None, ())
        self._check_dim(query, index)
        try:
            restrict(query.vector, query.dims)
        except ValueError as e:
            raise SashieError(str(e)) from None
        excluded = None if all_items else self.excluded_rows(model)
        chosen = self._label_set_name(label_set)
        excluded = self._narrowed(excluded, model, chosen, label, not_label)
        memory = self.memory(model) if query.text_only and query.dims is None else None
        boost = memory.boost(query.vector) if memory is not None else {}
        how = self._ann_search(model, exact, nprobe, ef)
        item_ids, scores = index.search(
            query.vector, k, query.dims, exclude=excluded, how=how, **boost
        )
        return self._results(item_ids, scores, chosen)

    def _ann_search(
        self, model: str | None, exact: bool, nprobe: int | None, ef: int | None
    ) -> AnnSearch:
        """How a search uses the ANN index: the request's settings, else the model's."""
        AnnChoice(nprobe=nprobe, ef=ef).check()
        saved = self._ann.choice(self._manifest.model_id(model))
        return AnnSearch(exact, nprobe or saved.nprobe, ef or saved.ef)

    def feedback(
        self,
        text: str | None = None,
        *,
        images: Sequence[QueryImage] = (),
        query: Query | np.ndarray | None = None,
        relevant: Sequence[int],
        irrelevant: Sequence[int] = (),
        learner: str = DEFAULT_LEARNER,
        k: int = DEFAULT_K,
        model: str | None = None,
        all_items: bool = False,
        seed: int = 0,
        label: str | Sequence[str] | None = None,
        not_label: str | Sequence[str] | None = None,
        label_set: str | None = None,
    ) -> list[Result]:
        """The search for a query again, refined by the user's relevant/irrelevant marks
        (item ids): see sashie/search/feedback.py for the learners. Feedback works in the
        full space: a query's dimension selection is not used. `label`, `not_label`,
        `label_set`: as for `search`."""
        if k <= 0:
            raise SashieError("k must be at least 1")
        index = self.index(model)
        if query is None:
            query = self.query(text, images=images, dims=None, model=model)
        elif not isinstance(query, Query):
            query = Query(np.asarray(query, np.float32), None, ())
        self._check_dim(query, index)
        excluded = None if all_items else self.excluded_rows(model)
        chosen = self._label_set_name(label_set)
        excluded = self._narrowed(excluded, model, chosen, label, not_label)
        item_ids, scores = refine(
            index,
            query.vector,
            relevant,
            irrelevant,
            learner=learner,
            k=k,
            exclude=excluded,
            seed=seed,
        )
        return self._results(item_ids, scores, chosen)

    def excluded_rows(self, model: str | None = None) -> np.ndarray | None:
        """Which rows of the model's index the filter excluded (None when it excluded none)."""
        index = self.index(model)
        model_id = self._manifest.model_id(model)
        key = (model_id, self._manifest.active_version(model_id))
        rows = self._excluded.get(key)
        if rows is None:
            rows = np.isin(index.item_ids, self._catalog.excluded_item_ids())
            self._excluded[key] = rows
        return rows if rows.any() else None

    def memory(self, model: str | None = None) -> ExampleMemory | None:
        """The active version's remembered examples (sashie/search/memory.py); None for the
        base model or a version made without them."""
        model_id = self._manifest.find(model)
        if model_id is None or self._manifest.active_version(model_id) == BASE:
            return None
        version = self._manifest.active_version(model_id)
        key = f"{model_id}+{version}"
        with self._loading:
            if key not in self._memories:
                self._memories[key] = ExampleMemory.load(self._versions.folder(model_id, version))
            return self._memories[key]

    # --- the keep/exclude filter -----------------------------------------------------------

    def label(self, item_ids: Ids, keep: Flags, source: str = "user") -> int:
        """Mark items keep (an illustration) or exclude, for `train_filter`; returns how many."""
        known = self._known_items(item_ids)
        marks = [bool(k) for k in keep]
        if len(known) != len(marks):
            raise SashieError("one keep/exclude mark per item, please")
        with self._catalog.transaction() as tx:
            tx.set_labels(known, marks, source)
        return len(known)

    def labels(self, item_ids: Ids | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(item ids, keep flags) of the labelled items among `item_ids`, or of all."""
        return self._catalog.labels(item_ids)

    def unlabel(self, item_ids: Ids | None = None) -> int:
        """Forget the keep/exclude labels of these items, or all; returns how many went."""
        with self._catalog.transaction() as tx:
            return tx.clear_labels(item_ids)

    def train_filter(
        self, *, learners: Sequence[str] = LEARNERS, seed: int = 0, model: str | None = None
    ) -> TrainReport:
        """Fit the learners on the labelled items' vectors, keep the best as the library's
        filter, and apply it to every item."""
        model_id = self._manifest.model_id(model)
        item_ids, keep = self._catalog.labels()
        if len(item_ids) == 0:
            raise SashieError("no labels yet; run `sashie filter label` first")
        # the filter judges base vectors: they do not change when the model is adapted
        report = train_filter(
            self.vectors_of(item_ids, model_id, version=BASE),
            keep,
            learners=learners,
            seed=seed,
            progress=self.progress,
        )
        best = report.best
        best.filter.meta.update(
            model_id=model_id,
            labels=len(item_ids),
            trained=time.strftime("%Y-%m-%dT%H:%M:%S"),
            seed=seed,
            test_metrics=best.metrics,
        )
        best.filter.save(self.path / FILTER)
        self.apply_filter()
        return report

    @property
    def has_filter(self) -> bool:
        return (self.path / FILTER).is_dir()

    def keep_filter(self) -> KeepFilter | None:
        """The library's saved filter, or None."""
        return KeepFilter.load(self.path / FILTER) if self.has_filter else None

    def apply_filter(self, *, only_new: bool = False) -> dict:
        """Score items with the saved filter and store keep/exclude (all, or only unscored)."""
        keep_filter = self.keep_filter()
        if keep_filter is None:
            raise SashieError("no filter yet; run `sashie filter train` first")
        started = time.perf_counter()
        model_id = keep_filter.meta["model_id"]
        if model_id not in self.models:
            raise SashieError(
                f"the filter was trained on vectors of {model_id}, which this library no longer has"
            )
        index = self.index(model_id, version=BASE)
        rows = np.arange(len(index))
        if only_new:
            rows = rows[np.isin(index.item_ids, self._catalog.unscored_item_ids())]
        scores = keep_filter.scores(index.vectors[rows] if only_new else index.vectors)
        with self._catalog.transaction() as tx:
            if not only_new:
                tx.clear_filter_scores()
            tx.set_filter_scores(index.item_ids[rows].tolist(), scores.tolist(), THRESHOLD)
        self._excluded.clear()
        kept = int((scores >= THRESHOLD).sum())
        return {
            "scored": len(rows),
            "kept": kept,
            "excluded": len(rows) - kept,
            "seconds": round(time.perf_counter() - started, 2),
        }

    def evaluate_filter(self, item_ids: Ids | None = None, keep: Flags | None = None) -> dict:
        """The filter's stored verdicts against the given keep flags, or the library's labels."""
        if not self.has_filter:
            raise SashieError("no filter yet; run `sashie filter train` first")
        against = "labels" if item_ids is None else "the given judgements"
        if item_ids is None:
            item_ids, keep = self._catalog.labels()
        truth = dict(zip(np.asarray(item_ids).tolist(), np.asarray(keep, bool).tolist()))
        scored, verdicts = self._catalog.filter_verdicts()
        both = [(truth[i], v) for i, v in zip(scored.tolist(), verdicts.tolist()) if i in truth]
        if not both:
            raise SashieError("no judged item has a filter verdict; run `sashie filter apply`")
        overall, per_class = verdict_metrics(*np.array(both, bool).T)
        return {"items": len(both), "against": against, "overall": overall, "per_class": per_class}

    def remove_filter(self) -> None:
        """Forget the filter and its verdicts: every item is searched again."""
        shutil.rmtree(self.path / FILTER, ignore_errors=True)
        with self._catalog.transaction() as tx:
            tx.clear_filter_scores()
        self._excluded.clear()

    # --- annotations and model versions ----------------------------------------------------

    def annotate(self, item_ids: Ids, caption: str) -> int:
        """Caption items (e.g. 几帳); returns how many (item, caption) pairs were new."""
        caption = " ".join(caption.split())
        if not caption:
            raise SashieError("an annotation needs a caption")
        known = self._known_items(item_ids)
        with self._catalog.transaction() as tx:
            return tx.add_annotations(known, caption)

    def unannotate(self, item_ids: Ids | None = None, caption: str | None = None) -> int:
        """Take captions back: every caption of these items, this caption from every item,
        or this caption from these items; returns how many annotations went."""
        if caption is not None:
            caption = " ".join(caption.split())
        if item_ids is None and not caption:
            raise SashieError("name the caption, the items, or both, whose annotations to remove")
        with self._catalog.transaction() as tx:
            return tx.remove_annotations(
                None if item_ids is None else [int(i) for i in item_ids], caption or None
            )

    def annotations(self, item_ids: Ids | None = None) -> list[dict]:
        """Annotations ({"id", "item", "caption", "at"}), of the given items or all."""
        return self._catalog.annotations(item_ids)

    def captions(self) -> dict[str, int]:
        """Each caption and how many items carry it, most used first."""
        return self._catalog.annotation_captions()

    def export_annotations(self, out_dir: str | os.PathLike) -> Path:
        """The annotations as a fine-tuning dataset: OUT/annotations.jsonl, one line a pair
        ({"image": "crops/<item>.jpg", "caption", "item", "page", "bbox"}), and the crops."""
        annotations = self._catalog.annotations()
        if not annotations:
            raise SashieError("no annotations yet")
        rows = {r.id: r for r in self._catalog.items({a["item"] for a in annotations})}
        return export_pairs(annotations, rows, self.crop, Path(out_dir))

    def adapt(
        self,
        *,
        annotations: str | os.PathLike | None = None,
        settings: AdaptSettings | None = None,
        model: str | None = None,
        device: str | None = None,
        progress: Callable[[dict], None] | None = None,
        paraphraser: Paraphraser | ChatServer | None = None,
        label_examples: int = 0,
    ) -> AdaptReport:
        """Train a new model version from the base on the library's annotations (or an
        exported annotations.jsonl), write its vectors V′ = A(V) and make it active.

        With `settings.paraphrase`, each caption's paraphrases (by `paraphraser`; by default
        the rule paraphraser, its lexicon the newest label set's names and attributes) train
        the text encoder too, so that other wordings find the same pictures (ParaCLIP).
        `label_examples`: also that many items of each class of the newest label set
        (`classify`), those it labelled most surely, captioned by their class.

        `progress` receives {"stage": "training" | "applying", "done", "total", "loss"}."""
        settings = settings or AdaptSettings()
        settings.check()
        model_id = self._manifest.model_id(model)
        entry = self.models[model_id]
        with self._writing():
            pairs = self._pairs(model_id, annotations, label_examples)
            paraphrases = None
            if settings.paraphrase:
                source = paraphraser or self._rule_paraphraser(settings.seed)
                if isinstance(source, ChatServer):  # the rule paraphraser where it fails
                    fallback = RuleParaphraser(seed=settings.seed)
                    source = EndpointParaphraser(source.endpoint(self.path / "cache"), fallback)
                paraphrases = {
                    c: paraphrase_all(source, phrasings(c)) for c in sorted(set(pairs.captions))
                }
            self.encoder(model_id)  # refuses a model that needs remote code not granted
            trainee = load_encoder(
                entry["spec"], device=device, trust_remote_code=self.trust_remote_code
            )
            train_in_float32(trainee)
            base = self._stored(model_id)
            avoid = np.concatenate(
                [
                    np.array([item for item, _ in pairs.keys], np.int64),
                    self._catalog.excluded_item_ids(),
                ]
            )
            report = make_version(
                self._manifest,
                self._catalog,
                self._versions,
                model_id,
                trainee,
                pairs,
                base.sample(BACKGROUND, settings.seed, avoid=avoid),
                base,
                settings,
                (str(annotations) if annotations else "library")
                + (f" + {label_examples} label examples a class" if label_examples else ""),
                ProgressBar(progress, self.progress),
                paraphrases,
            )
            self._keep_ann_current(model_id, self._manifest.active_version(model_id))
            return report

    def _rule_paraphraser(self, seed: int) -> RuleParaphraser:
        """The offline paraphraser: templates, kana script changes, and the newest label
        set's names and attributes as its lexicon (when the library has one)."""
        record = self._label_set_record(None, needed=False)
        if record is None:
            return RuleParaphraser(seed=seed)
        return RuleParaphraser.from_labels(_stored_label_set(record), seed=seed)

    def train_composer(
        self,
        settings: ComposeSettings | None = None,
        *,
        pictures: Sequence[QueryImage] = (),
        model: str | None = None,
        device: str | None = None,
        progress: Callable[[dict], None] | None = None,
    ) -> ComposeReport:
        """Train composed search's token learner (and, with `settings.light`, the light
        query encoder) for the active model version, on the library's own kept items: no
        labels, no captions. Later searches with `modify` use it (sashie/compose).

        `pictures` (paths, URLs or images, no labels): pictures like those people will search
        with, when they differ from the collection's (photographs, clip-art); the light
        encoder learns the model's vectors of them too, so its queries stay in place.

        `progress` receives {"stage": "tokens" | "crops" | "light", "done", "total", "loss"}."""
        from ..compose.models import to_square
        from .composing import train_composer

        settings = settings or ComposeSettings()
        settings.check()
        model_id = self._manifest.model_id(model)
        version = self._manifest.active_version(model_id)
        with self._writing():
            if device is not None:
                self.encoder(model_id, device=device)  # loads there unless loaded already
            encoder = self.query_encoder(model_id)
            index = self.index(model_id)
            excluded = self.excluded_rows(model_id)
            keep = np.ones(len(index), bool) if excluded is None else ~excluded
            query_like = None
            if pictures and settings.light:
                images = [
                    query_image(p if isinstance(p, Image.Image) else str(p)) for p in pictures
                ]
                query_like = (
                    np.stack([to_square(im, settings.light_side) for im in images]),
                    encoder.encode_images(images),
                )
            report = train_composer(
                folder=self._composer_folder(model_id, version),
                encoder=encoder,
                version=version,
                item_ids=index.item_ids[keep],
                vectors=index.take(np.flatnonzero(keep)),
                rows_of=self._catalog.items,
                pictures=self._pictures,
                settings=settings,
                device=encoder.device,
                progress=progress,
                query_like=query_like,
                terminal=self.progress,
            )
        self._composers.pop((model_id, version), None)
        return report

    def composer(self, model: str | None = None) -> Composer | None:
        """The active version's composer (loaded once, again when retrained), or None."""
        model_id = self._manifest.model_id(model)
        version = self._manifest.active_version(model_id)
        folder = self._composer_folder(model_id, version)
        try:
            stamp = (folder / "composer.json").stat().st_mtime
        except OSError:
            return None
        with self._loading:
            cached = self._composers.get((model_id, version))
            if cached is None or cached[0] != stamp:
                from ..compose.composer import Composer

                cached = (stamp, Composer.load(folder))
                self._composers[(model_id, version)] = cached
        return cached[1]

    def composers(self, model: str | None = None) -> dict[str, dict]:
        """The composers trained for the model's versions: {version: its composer.json}."""
        model_id = self._manifest.model_id(model)
        folder = self._composer_folder(model_id, BASE).parent
        found = {}
        if folder.is_dir():
            for child in sorted(folder.iterdir()):
                record = read_record(child) if not child.name.startswith(".") else None
                if record is not None:
                    found[child.name] = record
        return found

    def _composer_folder(self, model_id: str, version: str) -> Path:
        slug = Path(self.models[model_id]["vectors"]).name
        return composer_folder(self.path, slug, version)

    def active_version(self, model: str | None = None) -> str:
        """The name of the model's active version ("base" when none was adapted or chosen)."""
        self._notice_changes()
        return self._manifest.active_version(self._manifest.model_id(model))

    def versions(self, model: str | None = None) -> dict:
        """{"model", "active", "versions": [records of version.json, oldest first]}."""
        self._notice_changes()
        return self._versions.describe(self._manifest.model_id(model))

    def loss_plot(self, version: str, model: str | None = None) -> Path | None:
        """The PNG of a version's loss curve (None for the base, or without the `plot`
        extra)."""
        self._notice_changes()
        return self._versions.loss_plot(self._manifest.model_id(model), version)

    def use(self, version: str, model: str | None = None) -> str:
        """Make a version (or "base") the active one; instant, nothing is re-encoded."""
        model_id = self._manifest.model_id(model)
        with self._writing():
            if version != BASE:
                self._versions.record(model_id, version)  # it exists and is readable
                if self._versions.catch_up(model_id, version, self._stored(model_id)):
                    self._indexes.pop((model_id, version), None)
            self._keep_ann_current(model_id, version)
            self._manifest.set_active(model_id, version)
        return version

    def remove_version(self, version: str, model: str | None = None) -> None:
        """Delete a version that is not active: its adapter, text encoder and vectors; or the
        files an adaptation left when it was killed (listed under "unfinished")."""
        model_id = self._manifest.model_id(model)
        with self._writing():
            if version == BASE:
                raise SashieError("the base model cannot be removed")
            if version not in self._versions.unfinished(model_id):
                self._manifest.check_version(model_id, version)
            if self._manifest.active_version(model_id) == version:
                raise SashieError(
                    f"{version} is the active version; switch first "
                    f"(sashie versions use {self.path} base)"
                )
            self._versions.remove(model_id, version)
            self._indexes.pop((model_id, version), None)
            with self._loading:
                self._encoders.pop(f"{model_id}+{version}", None)
            self._memories.pop(f"{model_id}+{version}", None)

    # --- labelling the collection ----------------------------------------------------------

    def classify(
        self,
        labels: str | os.PathLike | LabelSet,
        *,
        name: str | None = None,
        method: str = DEFAULT_METHOD,
        few_shot: bool = False,
        rerank: bool = True,
        model: str | None = None,
        generator: ChatServer | None = None,
        nearest_words: int = 0,
        other_below: float | None = OTHER_BELOW,
    ) -> ClassifyReport:
        """Give every item with a vector its best class of a label set (a CSV, JSON or YAML
        label file, or a `LabelSet`), a score and the runner-up, stored as the set `name`
        (default: the file's). `method`: "prompt" (plain zero-shot, a prompt ensemble) or
        "coder" (CODER: names, attributes, analogies; `rerank` close calls by one-vs-one
        texts). `few_shot`: the library's annotations whose caption names a class are
        labelled examples (a Tip-Adapter cache). `generator`: an endpoint the user runs that
        writes more synonyms and attributes of each class (classify/generator.py);
        `nearest_words`: as many of the model's own words nearest each class, as synonyms.
        `other_below`: an item whose best class's score stands out from that class's typical
        score by fewer robust deviations is labelled "other" (None: every item gets a class).

        Run again with the same set and settings, only items that have no label yet are
        labelled (pages indexed since); a changed set, method or model version labels all
        of them again. An interrupted run leaves the previous labels whole."""
        if method not in ("prompt", "coder"):
            raise SashieError("the method must be prompt or coder")
        label_set = labels if isinstance(labels, LabelSet) else read_label_file(labels, name)
        if name is not None and name != label_set.name:
            label_set = LabelSet(name, label_set.classes)
        model_id = self._manifest.find(model)
        if model_id is None:
            raise SashieError("nothing to label: the library has no vectors yet")
        extra: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}
        if generator is not None:
            endpoint = generator.endpoint(self.path / "cache")
            names = [c.name for c in label_set.classes]
            written = describe_classes(endpoint, names, progress=self.progress)
            extra = {k: (d.synonyms, d.attributes) for k, d in written.items()}
        if nearest_words > 0:
            encoder = self.query_encoder(model_id)
            near = words_near(label_set, encoder.encode_texts, model_words(encoder), nearest_words)
            for name, words in near.items():
                synonyms, attributes = extra.get(name, ((), ()))
                extra[name] = ((*synonyms, *words), attributes)
        with self._writing():
            examples = None
            if few_shot:
                examples = examples_from_annotations(label_set, self._catalog.annotations())
            report = label_items(
                self._catalog,
                label_set,
                self.query_encoder(model_id),
                self.index(model_id),
                model_id=model_id,
                model_version=self._manifest.active_version(model_id),
                scoring=Scoring(method, rerank=rerank),
                examples=examples,
                extra=extra or None,
                other_below=other_below,
                progress=self.progress,
            )
        self._classes.clear()
        return report

    def label_sets(self) -> dict[str, dict]:
        """Each label set by name, newest first: its version, method, model and model
        version, class count, items labelled and the items of each label (most first)."""
        out = {}
        for record in self._catalog.label_sets():
            out[record["name"]] = {
                "version": record["version"],
                "method": record["method"],
                "model_id": record["model_id"],
                "model_version": record["model_version"],
                "classes": len(record["classes"]),
                "items": record["items"],
                "labelled_at": record["at"],
                "counts": self._catalog.class_counts(record["name"]),
            }
        return out

    def label_set(self, name: str | None = None) -> LabelSet:
        """The classes of a stored label set (the newest when `name` is None)."""
        record = self._label_set_record(name, needed=True)
        assert record is not None
        return _stored_label_set(record)

    def item_classes(self, label_set: str | None = None) -> dict[int, str]:
        """Each labelled item's class in a label set (the newest when None); "other" for an
        item that none of the set's classes fits."""
        record = self._label_set_record(label_set, needed=True)
        assert record is not None
        items, labels = self._catalog.labelled_items(record["name"])
        return dict(zip(items.tolist(), labels))

    def remove_label_set(self, name: str) -> None:
        """Forget a label set and the labels it gave."""
        with self._catalog.transaction() as t:
            if not t.remove_label_set(name):
                raise NotFound(f"no label set {name!r} in this library")
        self._classes.clear()

    def export_labels(self, out: str | os.PathLike, *, label_set: str | None = None) -> int:
        """Write a label set's labels (item, page, box, label, score, runner-up) to a .csv or
        .parquet file; how many rows."""
        record = self._label_set_record(label_set, needed=True)
        assert record is not None
        labels = self._catalog.item_classes(record["name"])
        return export_labels(Path(out), record, labels, self._catalog.items)

    def _label_set_name(self, name: str | None) -> str | None:
        """The set `name` if the library has it (an error if not), or the newest set's name
        (None when there is none). Asked on every search: it reads the names only."""
        names = self._catalog.label_set_names()
        if name is None:
            return names[0] if names else None
        if name not in names:
            known = ", ".join(repr(n) for n in names) or "none"
            raise NotFound(f"no label set {name!r} in this library (it has {known})")
        return name

    def _label_set_record(self, name: str | None, *, needed: bool) -> dict | None:
        """The stored record of the set `name` (the newest when None); None when the library
        has none and none was `needed`, else an error that says what to do."""
        found = self._label_set_name(name)
        if found is None:
            if needed:
                raise SashieError(
                    f"this library has no labels yet: label it with `sashie classify "
                    f"{self.path} --labels LABELS.csv`"
                )
            return None
        return self._catalog.label_set(found)

    def _narrowed(
        self,
        excluded: np.ndarray | None,
        model: str | None,
        label_set: str | None,
        label: str | Sequence[str] | None,
        not_label: str | Sequence[str] | None,
    ) -> np.ndarray | None:
        """The rows to leave out: the filter's, and those outside `label` or in `not_label`
        (classes of the set `label_set`)."""
        wanted, unwanted = _texts(label), _texts(not_label)
        if not wanted and not unwanted:
            return excluded
        record = self._label_set_record(label_set, needed=True)
        assert record is not None
        classes = _stored_label_set(record)
        names = [c["name"] for c in record["classes"]]

        def codes(texts: list[str]) -> list[int]:
            out = []
            for text in texts:
                cls = classes.find(text)
                if cls is None and text.strip().lower() == OTHER:
                    out.append(len(names))  # items no class fits (_class_codes)
                    continue
                if cls is None:
                    shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
                    raise SashieError(
                        f"no label {text!r} in the label set {record['name']!r} ({shown})"
                    )
                out.append(names.index(cls.name))
            return out

        rows = self._class_codes(model, record["name"], names)
        leave_out = np.zeros(len(rows), bool) if excluded is None else excluded.copy()
        if wanted:
            leave_out |= ~np.isin(rows, codes(wanted))
        if unwanted:
            leave_out |= np.isin(rows, codes(unwanted))
        return leave_out

    def _class_codes(self, model: str | None, label_set: str, names: list[str]) -> np.ndarray:
        """Each row of the model's index: its class in the set (index into `names`;
        len(names) for "other", an item no class fits; -1 for an item the set has not
        labelled), loaded once."""
        index = self.index(model)
        model_id = self._manifest.model_id(model)
        key = (model_id, self._manifest.active_version(model_id), label_set)
        codes = self._classes.get(key)
        if codes is None:
            items, labels = self._catalog.labelled_items(label_set)
            code_of = {OTHER: len(names)} | {n: i for i, n in enumerate(names)}
            known = np.isin(items, index.item_ids)
            codes = np.full(len(index), -1, np.int64)
            rows = rows_of(index.item_ids, items[known])
            codes[rows] = [code_of.get(label, -1) for label, k in zip(labels, known) if k]
            self._classes[key] = codes
        return codes

    # --- describing and exporting ----------------------------------------------------------

    def info(self, *, skipped_inputs: bool = True) -> dict:
        """What the library holds: pages, items, models and their vectors, skipped inputs
        (each one's path and reason, unless `skipped_inputs` is False: only their count)."""
        self._notice_changes()
        counts = self._catalog.counts()
        models = []
        for model_id, entry in self.models.items():
            models.append(
                {
                    "id": model_id,
                    "spec": entry["spec"],
                    "dim": entry["dim"],
                    "vectors": self._vector_count(model_id),
                    "default": model_id == self.default_model,
                    "active_version": self._manifest.active_version(model_id),
                    "versions": self._manifest.version_names(model_id),
                    "ann_index": self._ann_summary(model_id),
                    "composers": {
                        version: _composer_summary(record)
                        for version, record in self.composers(model_id).items()
                    },
                }
            )
        skipped = self._catalog.skipped()
        filter_info = None
        if self.has_filter:  # its description only: the model is not loaded
            meta = KeepFilter.read_meta(self.path / FILTER)
            filter_info = {
                key: meta.get(key)
                for key in ("learner", "model_id", "trained", "labels", "test_metrics")
            }
            filter_info.update(self._catalog.filter_counts())
        return {
            "path": str(self.path.resolve()),
            "format_version": self._manifest.format_version,
            "pages": counts["pages"],
            "items": counts["items"],
            "copies": counts["copies"],  # files holding an indexed page's bytes, not indexed
            "items_by_detector": self._catalog.items_by_detector(),
            "models": models,
            "skipped": len(skipped),
            "skipped_by_reason": dict(Counter(reason_kind(s["reason"]) for s in skipped)),
            **({"skipped_inputs": skipped} if skipped_inputs else {}),
            "labels": self._catalog.label_counts(),
            "annotations": self._catalog.annotation_count(),
            "label_sets": self.label_sets(),
            "filter": filter_info,
            "disk_bytes": sum(f.stat().st_size for f in self.path.rglob("*") if f.is_file()),
        }

    def _ann_summary(self, model_id: str) -> dict | None:
        """The active version's ANN index as searches see it: the loaded one if loaded (an
        unsound file reads as none), else what its file's header says."""
        version = self._manifest.active_version(model_id)
        loaded = self._indexes.get((model_id, version))
        current = self._ann_stamps.get((model_id, version)) == self._ann.stamp(model_id, version)
        if loaded is not None and current and loaded.ann is None:
            return None
        return self._ann.describe(model_id, version, self._catalog.vector_rows(model_id))

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
        items' crops (unless `crops` is False), URLs, captions, labels, filter verdicts and
        metadata as Parquet, and model.json naming the model and version."""
        model_id = self._manifest.find(model)
        if model_id is None:
            raise SashieError(
                "nothing to export: the library has no vectors"
                if model is None
                else f"this library has no vectors of {model}"
            )
        version = self._manifest.active_version(model_id) if version is None else version
        self._manifest.check_version(model_id, version)
        index = self.index(model_id, version=version)
        items = self._catalog.items(index.item_ids.tolist())
        live = np.isin(index.item_ids, [row.id for row in items])  # none removed meanwhile
        spec = self.models[model_id]["spec"]
        return export_items(
            Path(out_dir),
            index.vectors if live.all() else index.vectors[live],
            items,
            self._marks(),
            {"model_id": model_id, "spec": spec, "version": version},
            self.crop if crops else None,
            progress=self.progress,
        )

    # --- the parts -------------------------------------------------------------------------

    def _vector_file(self, model_id: str) -> VectorFile:
        entry = self.models[model_id]
        return VectorFile(self.path / entry["vectors"], entry["dim"])

    def _vector_count(self, model_id: str) -> int:
        """How many live items have vectors of the model (from its loaded index, if any)."""
        loaded = next((ix for (m, _), ix in list(self._indexes.items()) if m == model_id), None)
        if loaded is not None:
            return len(loaded)
        return int(self._stored(model_id).live.sum())

    def _stored(self, model_id: str, live_ids: np.ndarray | None = None) -> StoredVectors:
        """The model's committed base vectors (`live_ids`: the items that exist, if known)."""
        live = self._catalog.live_item_ids() if live_ids is None else live_ids
        return StoredVectors.read(
            self._vector_file(model_id), self._catalog.vector_rows(model_id), live
        )

    def _pairs(
        self, model_id: str, path: str | os.PathLike | None, label_examples: int = 0
    ) -> Pairs:
        """The (base vector, caption) pairs to learn: the library's annotations, or a file's;
        with `label_examples`, also the newest label set's surest items of each class."""

        def base_vectors(items: list[int]) -> np.ndarray:
            return self.vectors_of(items, model_id, version=BASE)

        if path is not None:
            if label_examples > 0:
                raise SashieError("label examples join the library's annotations, not a file's")
            return file_pairs(
                Path(path), self._stored(model_id), base_vectors, lambda: self.encoder(model_id)
            )
        annotations = self._catalog.annotations()
        if label_examples > 0:
            record = self._label_set_record(None, needed=True)
            assert record is not None
            excluded = set(self._catalog.excluded_item_ids().tolist())
            annotations += [
                {"item": item, "caption": label}
                for item, label in self._catalog.confident_items(record["name"], label_examples)
                if item not in excluded
            ]
        return library_pairs(annotations, base_vectors)

    def _results(
        self, item_ids: np.ndarray, scores: np.ndarray, label_set: str | None = None
    ) -> list[Result]:
        rows = {row.id: row for row in self._catalog.items(item_ids.tolist())}
        found = [(item, score) for item, score in zip(item_ids.tolist(), scores) if item in rows]
        ids = [item for item, _ in found]
        marks = self._marks(ids)
        classes = {} if label_set is None else self._catalog.item_classes(label_set, ids)
        copies = self._catalog.copies_of(rows[item].page_id for item in ids)
        spots: dict[int, tuple[str | None, str | None]] = {}  # IIIF: (canvas, region)
        for item in ids:
            where = iiif.place(rows[item])
            spots[item] = (where.canvas, where.region) if where else (None, None)
        return [  # an item removed since the vectors were loaded is left out
            Result(
                rank,
                item,
                float(score),
                rows[item].page,
                rows[item].bbox,
                rows[item].detector,
                rows[item].source,
                rows[item].metadata,
                rows[item].page_size,
                marks.label(item),
                marks.verdict(item),
                tuple(marks.captions.get(item, ())),
                *spots[item],
                classes[item][0] if item in classes else None,
                tuple(copies.get(rows[item].page_id, ())),
            )
            for rank, (item, score) in enumerate(found, start=1)
        ]

    def _marks(self, item_ids: list[int] | None = None) -> Marks:
        """People's labels and captions and the filter's verdicts, of these items or all."""
        labelled, keep = self._catalog.labels(item_ids)
        captions: dict[int, list[str]] = {}
        for a in self._catalog.annotations(item_ids):
            captions.setdefault(a["item"], []).append(a["caption"])
        labels = dict(zip(labelled.tolist(), keep.tolist()))
        return Marks(labels, self._catalog.verdicts(item_ids), captions)

    def _known_items(self, item_ids: Ids) -> list[int]:
        """The ids as ints, or an error naming the first that is not in the library."""
        wanted = [int(i) for i in item_ids]
        known = {row.id for row in self._catalog.items(wanted)}
        unknown = [i for i in wanted if i not in known]
        if unknown:
            raise SashieError(f"no item {unknown[0]} in this library")
        return wanted

    @staticmethod
    def _check_dim(query: Query, index: VectorIndex) -> None:
        if len(query.vector) != index.dim:
            raise SashieError(f"query has {len(query.vector)} dimensions, library {index.dim}")

    def _forget_loaded(self) -> None:
        self._indexes.clear()
        self._excluded.clear()
        self._classes.clear()

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """One writer at a time: a second `sashie index` on the same library is refused."""
        with open(self.path / LOCK, "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise SashieError(
                    f"{self.path} is being changed by another process "
                    "(indexing or adapting); try again when it is done"
                ) from None
            yield


def _stored_label_set(record: dict) -> LabelSet:
    """The classes a stored label set record holds, checked as a label file is (a library
    folder may come from anywhere)."""
    return LabelSet.from_json({"name": record["name"], "classes": record["classes"]})


def _texts(value: str | Sequence[str] | None) -> list[str]:
    """One text or several as a list, empty ones left out."""
    if value is None:
        return []
    return [t for t in ([value] if isinstance(value, str) else list(value)) if t.strip()]


def _composer_summary(record: dict) -> dict:
    """What `info` says of a composer: when, on what, how big, how long it took."""
    settings = record.get("settings", {})
    return {
        "trained": record.get("trained"),
        "items": record.get("items"),
        "tokens": settings.get("tokens"),
        "light": "light_crops" in record,
        "seconds": round(record.get("token_seconds", 0) + record.get("light_seconds", 0), 1),
    }
