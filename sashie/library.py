"""The `Library`: the one object a user holds. A directory that is one indexed collection.

    lib = Library("books.sashie", create=True)
    lib.add(["scans/"], model="hf:line-corporation/clip-japanese-base", trust_remote_code=True)
    for hit in lib.search("a crane and a pine tree", k=10):
        print(hit.score, hit.page, hit.bbox)

On disk:
    manifest.json          format version, the models and their dimensions, the default model
    catalog.sqlite         pages, items, skipped inputs, vector counts (WAL mode)
    vectors/<model>/       vectors.f16 and items.i64 of each model (see vectors.py)
    filter/                the keep/exclude filter, when one is trained (see filter.py)
    adapters/<model>/<v>/  model versions made by `adapt` (see versions.py)
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

from .adapt import (AdaptSettings, Trained, data_hash, load_text_state, read_version,
                    save_version, train_adapter, vocabulary_anchors)
from .catalog import Catalog
from .encoders import DEMO_MODEL, DEMO_MODEL_DIR, Encoder, load_encoder
from .errors import SashieError
from .feedback import DEFAULT_LEARNER, refine
from .filter import (LEARNERS, THRESHOLD, KeepFilter, TrainReport, train_filter,
                     verdict_metrics)
from .images import DEFAULT_MAX_PIXELS
from .indexer import AddReport, Indexer, reason_kind
from .memory import ExampleMemory
from .query import DEFAULT_DIMS, Query, Term, build_query, parse_query
from .regions import DEFAULT_DETECTORS, load_detectors
from .search import VectorIndex, restrict
from .sources import check_sources
from .vectors import VectorFile
from .versions import (BASE, VERSIONS_DIR, AdaptedEncoder, adapted, catch_up_rows,
                       load_version_adapter, vector_set, write_version_vectors)

FORMAT = "sashie-library"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
CATALOG = "catalog.sqlite"
FILTER = "filter"
BACKGROUND = 16384  # other items' vectors an adaptation keeps in place


@dataclass(frozen=True)
class Result:
    rank: int
    item: int
    score: float
    page: str  # the page image: path or URL
    bbox: tuple[int, int, int, int]
    detector: str
    source: str
    metadata: dict

    def as_dict(self) -> dict:
        out = asdict(self)
        out["bbox"] = list(self.bbox)
        return out


@dataclass
class AdaptReport:
    version: str
    folder: Path  # the version's files: adapter, text encoder, version.json, loss.png
    pairs: int
    captions: int  # distinct captions
    trained: Trained
    apply_seconds: float  # writing V' = A(V)
    rows: int  # vectors written


class Library:
    def __init__(self, path: str | os.PathLike, *, create: bool = False,
                 progress: bool = False) -> None:
        """Open the library at `path` (`create` makes it if missing); `progress` shows
        progress bars on long steps (indexing, loading many vectors)."""
        self.path = Path(path)
        self.progress = progress
        manifest_path = self.path / MANIFEST
        if not manifest_path.is_file():
            if not create:
                raise SashieError(f"no sashie library at {self.path}")
            if self.path.exists() and (not self.path.is_dir() or any(self.path.iterdir())):
                raise SashieError(f"{self.path} exists and is not a sashie library")
            self.path.mkdir(parents=True, exist_ok=True)
            self._write_manifest({"format": FORMAT, "version": FORMAT_VERSION,
                                  "default_model": None, "models": {}})
        self.manifest = self._read_manifest()
        self.catalog = Catalog(self.path / CATALOG)
        self._encoders: dict[str, Encoder] = {}
        self._memories: dict[str, ExampleMemory | None] = {}
        self._indexes: dict[tuple[str, str], VectorIndex] = {}  # by (model id, version)
        self._excluded: dict[tuple[str, str], np.ndarray] = {}  # rows the filter excluded

    # --- the manifest ----------------------------------------------------------------------

    def _read_manifest(self) -> dict:
        try:
            manifest = json.loads((self.path / MANIFEST).read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise SashieError(f"unreadable library manifest in {self.path} ({e})") from None
        if manifest.get("format") != FORMAT:
            raise SashieError(f"{self.path} is not a sashie library")
        if manifest.get("version", 0) > FORMAT_VERSION:
            raise SashieError(
                f"{self.path} was written by a newer sashie (format {manifest['version']}); "
                "upgrade sashie to open it"
            )
        return manifest

    def _write_manifest(self, manifest: dict) -> None:
        tmp = self.path / (MANIFEST + ".tmp")
        tmp.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
        os.replace(tmp, self.path / MANIFEST)

    @property
    def default_model(self) -> str | None:
        return self.manifest.get("default_model")

    @property
    def models(self) -> dict[str, dict]:
        return self.manifest["models"]

    # --- models ----------------------------------------------------------------------------

    def _spec(self, model: str | None) -> tuple[str, str | None, bool | None]:
        """(spec to load, the library's model id for it or None, its stored trust flag)."""
        model_id = self._find_model(model)
        if model_id is not None:
            entry = self.models[model_id]
            return entry["spec"], model_id, entry.get("trust_remote_code", False)
        if model is not None:
            return model, None, None
        if not DEMO_MODEL_DIR.is_dir():
            raise SashieError("this library has no model yet; index with --model SPEC")
        return DEMO_MODEL, None, None

    def encoder(self, model: str | None = None, *, trust_remote_code: bool = False,
                device: str | None = None) -> Encoder:
        """The encoder for a model id or spec (the default model when None), loaded once."""
        spec, model_id, stored_trust = self._spec(model)
        if stored_trust is not None:
            trust_remote_code = stored_trust
        if spec not in self._encoders:
            self._encoders[spec] = load_encoder(spec, device=device,
                                                trust_remote_code=trust_remote_code)
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

    def _find_model(self, model: str | None) -> str | None:
        """The model id that a spec or id names among this library's models (None if new)."""
        if model is None:
            return self.default_model
        if model in self.models:
            return model
        for model_id, entry in self.models.items():
            if entry["spec"] == model:
                return model_id
        return None

    def _register(self, spec: str, encoder: Encoder, trust_remote_code: bool) -> str:
        if encoder.model_id not in self.models:
            slug = re.sub(r"[^A-Za-z0-9._-]+", "-", encoder.model_id).strip("-")[-80:]
            self.models[encoder.model_id] = {
                "spec": spec,
                "trust_remote_code": trust_remote_code,
                "dim": encoder.dim,
                "vectors": f"vectors/{slug}",
            }
            if self.default_model is None:
                self.manifest["default_model"] = encoder.model_id
            self._write_manifest(self.manifest)
        return encoder.model_id

    def _vector_file(self, model_id: str) -> VectorFile:
        entry = self.models[model_id]
        return VectorFile(self.path / entry["vectors"], entry["dim"])

    # --- adding ----------------------------------------------------------------------------

    def add(
        self,
        sources: Sequence[str] | str,
        *,
        model: str | None = None,
        regions: str | Sequence[str] = DEFAULT_DETECTORS,
        detector_options: dict[str, dict] | None = None,
        trust_remote_code: bool = False,
        device: str | None = None,
        batch_size: int | None = None,
        workers: int | None = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> AddReport:
        """Index sources (folders, path lists, IIIF manifests, images): only what is new or
        changed is read and embedded. `regions` names the region detectors ("layout,whole"),
        `detector_options` their settings by name ({"zeroshot": {"model": ...}}). Raises
        `Interrupted` on Ctrl-C, with all done so far kept."""
        sources = [sources] if isinstance(sources, str) else list(sources)
        if not sources:
            raise SashieError("nothing to index: name at least one source")
        check_sources(sources)
        detectors = load_detectors(regions, detector_options)
        with self._writing():
            encoder = self.encoder(model, trust_remote_code=trust_remote_code, device=device)
            model_id = self._register(self._spec(model)[0], encoder, trust_remote_code)
            if batch_size is None:
                batch_size = 256 if encoder.device.startswith("cuda") else 32
            indexer = Indexer(self.catalog, self._vector_file(model_id), model_id, encoder,
                              detectors, batch_size=batch_size, workers=workers,
                              max_pixels=max_pixels, progress=self.progress)
            self._forget_loaded()
            report = indexer.run(sources)
            if self.has_filter:  # the saved filter judges the new items too
                report.filtered = self.apply_filter(only_new=True)
            self._catch_up(model_id, self.active_version(model_id))
            return report

    def _forget_loaded(self) -> None:
        self._indexes.clear()
        self._excluded.clear()

    def refresh(self) -> None:
        """Read the manifest again and forget loaded vectors (after another process or thread
        indexed or adapted this library)."""
        self.manifest = self._read_manifest()
        self._forget_loaded()
        self._encoders = {k: v for k, v in self._encoders.items()
                          if not isinstance(v, AdaptedEncoder)}
        self._memories.clear()

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """One writer at a time: a second `sashie index` on the same library is refused."""
        with open(self.path / "lock", "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise SashieError(f"{self.path} is being changed by another process "
                                  "(indexing or adapting); try again when it is done") from None
            yield

    # --- searching -------------------------------------------------------------------------

    def index(self, model: str | None = None, *, version: str | None = None) -> VectorIndex:
        """The model's vectors of live items as a float32 matrix in RAM (loaded once): those
        of the active version unless `version` names one ("base" for the encoder's own)."""
        model_id = self._model_id(model)
        version = self.active_version(model_id) if version is None else version
        key = (model_id, version)
        if key not in self._indexes:
            self._indexes[key] = self._load_index(model_id, version)
        return self._indexes[key]

    def _model_id(self, model: str | None) -> str:
        model_id = self._find_model(model)
        if model_id is None:
            if model is None:
                raise SashieError("this library is empty; index something first")
            raise SashieError(f"this library has no vectors of model {model}")
        return model_id

    def _stored(self, model_id: str, live_ids: np.ndarray | None = None
                ) -> tuple[VectorFile, int, np.ndarray, np.ndarray]:
        """(vector file, committed rows, item id of each row, which rows' items still exist)."""
        files = self._vector_file(model_id)
        rows = self.catalog.vector_rows(model_id)
        item_ids = files.item_ids(rows)
        if live_ids is None:
            live_ids = self.catalog.live_item_ids()
        return files, rows, item_ids, np.isin(item_ids, live_ids)

    def _load_index(self, model_id: str, version: str) -> VectorIndex:
        files, rows, item_ids, live = self._stored(model_id)
        if version != BASE:
            version_files = self._version_files(model_id, version)
            done = min(self.catalog.vector_rows(vector_set(model_id, version)), rows)
            if done < rows:  # pages indexed since: their rows are adapted here, in memory
                adapter = load_version_adapter(version_files.folder,
                                               self._version_record(model_id, version))
                later = np.asarray(files.vectors(rows)[done:])[live[done:]]
                matrix = np.concatenate([
                    version_files.load_float32(done, live[:done], progress=self.progress),
                    adapted(adapter, later)])
                return VectorIndex(matrix, item_ids[live])
            files = version_files
        matrix = files.load_float32(rows, live, progress=self.progress)
        return VectorIndex(matrix, item_ids[live])

    def query(self, text: str | None = None, *, images: Sequence[str] = (),
              dims: int | None = DEFAULT_DIMS, select: str = "cv", seed: int = 0,
              model: str | None = None) -> Query:
        """Turn a query expression and example images into a query vector (and dimensions)."""
        terms = parse_query(text) if text else []
        terms += [Term(1.0, "image", path) for path in images]
        return build_query(self.query_encoder(model), terms, dims=dims, select=select,
                           seed=seed)

    def search(
        self,
        text: str | None = None,
        *,
        images: Sequence[str] = (),
        k: int = 100,
        dims: int | None = DEFAULT_DIMS,
        select: str = "cv",
        seed: int = 0,
        model: str | None = None,
        vector: np.ndarray | None = None,
        all_items: bool = False,
        text_vector: bool = False,
    ) -> list[Result]:
        """Top-k items for a text or expression, example images, or a ready query vector.

        Items the keep/exclude filter excluded are left out unless `all_items`.

        A text query for a caption the active version was taught also ranks items by their
        likeness to its captioned examples (memory.py); `text_vector` says that a ready
        `vector` is such a text query.

        Several images make a multi-image query: the `dims` dimensions on which the examples
        agree most (lowest coefficient of variation; `select="random"` for the control) are
        kept, and each library vector is restricted to them; `dims=None` keeps all.
        """
        if k <= 0:
            raise SashieError("k must be at least 1")
        index = self.index(model)
        if vector is not None:
            query_vector, query_dims = np.asarray(vector, np.float32), None
        else:
            q = self.query(text, images=images, dims=dims, select=select, seed=seed, model=model)
            query_vector, query_dims = q.vector, q.dims
        if len(query_vector) != index.dim:
            raise SashieError(f"query has {len(query_vector)} dimensions, library {index.dim}")
        try:
            restrict(query_vector, query_dims)
        except ValueError as e:
            raise SashieError(str(e)) from None
        excluded = None if all_items else self.excluded_rows(model)
        is_text = text_vector if vector is not None else not images
        memory = self.memory(model) if is_text and query_dims is None else None
        boost = memory.boost(query_vector) if memory is not None else {}
        item_ids, scores = index.search(query_vector, k, query_dims, exclude=excluded, **boost)
        return self._results(item_ids, scores)

    def feedback(self, text: str | None = None, *, images: Sequence[str] = (),
                 relevant: Sequence[int], irrelevant: Sequence[int] = (),
                 learner: str = DEFAULT_LEARNER, k: int = 100, model: str | None = None,
                 vector: np.ndarray | None = None, all_items: bool = False,
                 seed: int = 0) -> list[Result]:
        """The search for a query again, refined by the user's relevant/irrelevant marks
        (item ids): see feedback.py for the learners."""
        if k <= 0:
            raise SashieError("k must be at least 1")
        index = self.index(model)
        if vector is None:
            vector = self.query(text, images=images, dims=None, model=model).vector
        excluded = None if all_items else self.excluded_rows(model)
        item_ids, scores = refine(index, np.asarray(vector, np.float32), relevant, irrelevant,
                                  learner=learner, k=k, exclude=excluded, seed=seed)
        return self._results(item_ids, scores)

    def _results(self, item_ids: np.ndarray, scores: np.ndarray) -> list[Result]:
        rows = {row.id: row for row in self.catalog.items(item_ids.tolist())}
        found = [(item, score) for item, score in zip(item_ids.tolist(), scores) if item in rows]
        return [  # an item removed since the vectors were loaded is left out
            Result(rank, item, float(score), rows[item].page, rows[item].bbox,
                   rows[item].detector, rows[item].source, rows[item].metadata)
            for rank, (item, score) in enumerate(found, start=1)
        ]

    def excluded_rows(self, model: str | None = None) -> np.ndarray | None:
        """Which rows of the model's index the filter excluded (None when it excluded none)."""
        model_id = self._model_id(model)
        key = (model_id, self.active_version(model_id))
        if key not in self._excluded:
            excluded = self.catalog.excluded_item_ids()
            self._excluded[key] = np.isin(self.index(model_id).item_ids, excluded)
        rows = self._excluded[key]
        return rows if rows.any() else None

    # --- the keep/exclude filter -----------------------------------------------------------

    def label(self, item_ids: Sequence[int], keep: Sequence[bool], source: str = "user") -> int:
        """Mark items keep (an illustration) or exclude, for `train_filter`; returns how many."""
        item_ids = self._known_items(item_ids)
        keep = [bool(k) for k in keep]
        if len(item_ids) != len(keep):
            raise SashieError("one keep/exclude mark per item, please")
        with self.catalog.transaction() as tx:
            tx.set_labels(item_ids, keep, source)
        return len(item_ids)

    def _known_items(self, item_ids: Sequence[int]) -> list[int]:
        """The ids as ints, or an error naming the first that is not in the library."""
        item_ids = [int(i) for i in item_ids]
        known = {row.id for row in self.catalog.items(item_ids)}
        unknown = [i for i in item_ids if i not in known]
        if unknown:
            raise SashieError(f"no item {unknown[0]} in this library")
        return item_ids

    def vectors_of(self, item_ids: Sequence[int], model: str | None = None, *,
                   version: str | None = None) -> np.ndarray:
        """The stored vectors of these items (float32, in the order given), of the active
        version unless `version` says ("base": the encoder's own). Base vectors not loaded
        yet are read from the vector file, so a few rows never load the whole index."""
        model_id = self._model_id(model)
        version = self.active_version(model_id) if version is None else version
        wanted = np.asarray(item_ids, np.int64)
        if version == BASE and (model_id, BASE) not in self._indexes:
            files, rows, stored_ids, live = self._stored(model_id)
            found = _rows_of(np.where(live, stored_ids, -1), wanted)
            return np.asarray(files.vectors(rows)[found], np.float32)
        index = self.index(model_id, version=version)
        return index.vectors[_rows_of(index.item_ids, wanted)]

    def train_filter(self, *, learners: Sequence[str] = LEARNERS, seed: int = 0,
                     model: str | None = None) -> TrainReport:
        """Fit the learners on the labelled items' vectors, keep the best as the library's
        filter, and apply it to every item."""
        model_id = self._find_model(model)
        if model_id is None:
            raise SashieError("this library is empty; index something first")
        item_ids, keep = self.catalog.labels()
        if len(item_ids) == 0:
            raise SashieError("no labels yet; run `sashie filter label` first")
        # the filter judges base vectors: they do not change when the model is adapted
        report = train_filter(self.vectors_of(item_ids, model_id, version=BASE), keep,
                              learners=learners, seed=seed, progress=self.progress)
        best = report.best
        best.filter.meta.update(model_id=model_id, labels=len(item_ids),
                                trained=time.strftime("%Y-%m-%dT%H:%M:%S"), seed=seed,
                                test_metrics=best.metrics)
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
            raise SashieError(f"the filter was trained on vectors of {model_id}, "
                              "which this library no longer has")
        index = self.index(model_id, version=BASE)
        rows = np.arange(len(index))
        if only_new:
            rows = rows[np.isin(index.item_ids, self.catalog.unscored_item_ids())]
        scores = keep_filter.scores(index.vectors[rows] if only_new else index.vectors)
        with self.catalog.transaction() as tx:
            if not only_new:
                tx.clear_filter_scores()
            tx.set_filter_scores(index.item_ids[rows].tolist(), scores.tolist(), THRESHOLD)
        self._excluded.clear()
        kept = int((scores >= THRESHOLD).sum())
        return {"scored": len(rows), "kept": kept, "excluded": len(rows) - kept,
                "seconds": round(time.perf_counter() - started, 2)}

    def evaluate_filter(self, item_ids: Sequence[int] | None = None,
                        keep: Sequence[bool] | None = None) -> dict:
        """The filter's stored verdicts against the given keep flags, or the library's labels."""
        if not self.has_filter:
            raise SashieError("no filter yet; run `sashie filter train` first")
        against = "labels" if item_ids is None else "the given judgements"
        if item_ids is None:
            item_ids, keep = self.catalog.labels()
        truth = dict(zip(np.asarray(item_ids).tolist(), np.asarray(keep, bool).tolist()))
        scored, verdicts = self.catalog.filter_verdicts()
        both = [(truth[i], v) for i, v in zip(scored.tolist(), verdicts.tolist()) if i in truth]
        if not both:
            raise SashieError("no judged item has a filter verdict; run `sashie filter apply`")
        overall, per_class = verdict_metrics(*np.array(both, bool).T)
        return {"items": len(both), "against": against, "overall": overall,
                "per_class": per_class}

    def remove_filter(self) -> None:
        """Forget the filter and its verdicts: every item is searched again."""
        import shutil

        shutil.rmtree(self.path / FILTER, ignore_errors=True)
        with self.catalog.transaction() as tx:
            tx.clear_filter_scores()
        self._excluded.clear()

    # --- model versions: teaching the model the collection's words --------------------------

    def active_version(self, model: str | None = None) -> str:
        """The name of the model's active version ("base" when none was adapted or chosen)."""
        return self.models[self._model_id(model)].get("active") or BASE

    def versions(self, model: str | None = None) -> dict:
        """{"model", "active", "versions": [records of version.json, oldest first]}."""
        model_id = self._model_id(model)
        entry = self.models[model_id]
        records = []
        for name in entry.get("versions", {}):
            record = self._version_record(model_id, name)
            record.pop("losses", None)
            records.append(record)
        return {"model": model_id, "active": self.active_version(model_id),
                "versions": records}

    def _version_folder(self, model_id: str, version: str) -> Path:
        slug = Path(self.models[model_id]["vectors"]).name
        return self.path / VERSIONS_DIR / slug / version

    def _version_files(self, model_id: str, version: str) -> VectorFile:
        return VectorFile(self._version_folder(model_id, version), self.models[model_id]["dim"])

    def _version_record(self, model_id: str, version: str) -> dict:
        if version not in self.models[model_id].get("versions", {}):
            known = ", ".join([BASE, *self.models[model_id].get("versions", {})])
            raise SashieError(f"no model version {version!r}; this library has: {known}")
        return read_version(self._version_folder(model_id, version))

    def query_encoder(self, model: str | None = None) -> Encoder:
        """The encoder that queries go through: the active version's (tuned text encoder,
        image examples through the adapter), or the base encoder."""
        model_id = self._find_model(model)
        version = BASE if model_id is None else self.active_version(model_id)
        if version == BASE:
            return self.encoder(model)
        key = f"{model_id}+{version}"
        if key not in self._encoders:
            folder = self._version_folder(model_id, version)
            record = self._version_record(model_id, version)
            entry = self.models[model_id]
            inner = self.encoder(model_id)
            if record["settings"]["train_text"]:  # a copy of the base whose text tensors change
                inner = load_encoder(entry["spec"], device=inner.device,
                                     trust_remote_code=entry.get("trust_remote_code", False))
                load_text_state(inner, folder)
            self._encoders[key] = AdaptedEncoder(inner, load_version_adapter(folder, record),
                                                 version)
        return self._encoders[key]

    def memory(self, model: str | None = None) -> ExampleMemory | None:
        """The active version's remembered examples (memory.py); None for the base model or
        a version made without them."""
        model_id = self._find_model(model)
        version = BASE if model_id is None else self.active_version(model_id)
        if version == BASE:
            return None
        key = f"{model_id}+{version}"
        if key not in self._memories:
            self._memories[key] = ExampleMemory.load(self._version_folder(model_id, version))
        return self._memories[key]

    def adapt(self, *, annotations: str | os.PathLike | None = None,
              settings: AdaptSettings = AdaptSettings(), model: str | None = None,
              device: str | None = None,
              progress: Callable[[dict], None] | None = None) -> "AdaptReport":
        """Train a new model version from the base on the library's annotations (or an
        exported annotations.jsonl), write its vectors V′ = A(V) and make it active.

        `progress` receives {"stage": "training" | "applying", "done", "total", "loss"}."""
        settings.check()
        model_id = self._model_id(model)
        entry = self.models[model_id]
        with self._writing():
            vectors, captions, keys = self._annotation_pairs(model_id, annotations)
            trainee = load_encoder(entry["spec"], device=device,
                                   trust_remote_code=entry.get("trust_remote_code", False))
            _train_in_float32(trainee)
            bar = _Bar(progress, self.progress)
            trained = train_adapter(trainee, vectors, captions, settings,
                                    background=self._background(model_id, keys, settings.seed),
                                    progress=lambda step, steps, loss: bar.update(
                                        "training", step, steps, loss))
            name = self._next_version_name(model_id)
            folder = self._version_folder(model_id, name)
            record = {"name": name, "base_model": model_id, "base_spec": entry["spec"],
                      "data_hash": data_hash(model_id, keys), "pairs": len(captions),
                      "captions": len(set(captions)),
                      "annotations": str(annotations) if annotations else "library",
                      "settings": asdict(settings), "device": trainee.device,
                      "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
            anchors = trained.anchors or vocabulary_anchors(
                getattr(trainee, "tokenizer", None), captions, seed=settings.seed)
            # examples are kept only where a query can be told to ask for them: a tokenizer
            # without words (a byte-level test model) gives no anchors to tell it by
            remember = settings.example_weight > 0 and bool(anchors)
            record["remembered_examples"] = len(captions) if remember else 0
            save_version(folder, trained, record)
            if remember:
                ExampleMemory.build(trainee, adapted(trained.adapter, vectors), captions,
                                    anchors, weight=settings.example_weight,
                                    sharpness=settings.example_sharpness).save(folder)
            started = time.perf_counter()
            files, rows, item_ids, _ = self._stored(model_id)
            write_version_vectors(folder, trained.adapter, files.vectors(rows), item_ids,
                                  progress=lambda n: bar.update("applying", n, rows, None,
                                                                add=True))
            bar.close()
            with self.catalog.transaction() as tx:
                tx.set_vector_rows(vector_set(model_id, name), rows)
            entry.setdefault("versions", {})[name] = {
                k: record[k] for k in ("created", "pairs", "data_hash")}
            entry["active"] = name
            self._write_manifest(self.manifest)
            return AdaptReport(name, folder, len(captions), len(set(captions)), trained,
                               round(time.perf_counter() - started, 2), rows)

    def use(self, version: str, model: str | None = None) -> str:
        """Make a version (or "base") the active one; instant, nothing is re-encoded."""
        model_id = self._model_id(model)
        entry = self.models[model_id]
        with self._writing():
            if version != BASE:
                self._version_record(model_id, version)  # it exists and is readable
                self._catch_up(model_id, version)
            entry["active"] = None if version == BASE else version
            self._write_manifest(self.manifest)
        return version

    def remove_version(self, version: str, model: str | None = None) -> None:
        """Delete a version that is not active: its adapter, text encoder and vectors."""
        import shutil

        model_id = self._model_id(model)
        entry = self.models[model_id]
        with self._writing():
            if version == BASE:
                raise SashieError("the base model cannot be removed")
            if version not in entry.get("versions", {}):
                self._version_record(model_id, version)  # the error that lists the versions
            if entry.get("active") == version:
                raise SashieError(f"{version} is the active version; switch first "
                                  "(sashie adapt LIB --use base)")
            del entry["versions"][version]
            self._write_manifest(self.manifest)  # forgotten first: a crash leaves only files
            with self.catalog.transaction() as tx:
                tx.forget_vector_rows(vector_set(model_id, version))
            shutil.rmtree(self._version_folder(model_id, version), ignore_errors=True)
            self._indexes.pop((model_id, version), None)
            self._encoders.pop(f"{model_id}+{version}", None)
            self._memories.pop(f"{model_id}+{version}", None)

    def _catch_up(self, model_id: str, version: str) -> None:
        """Adapt the rows of pages indexed since the version was made, and store them."""
        if version == BASE:
            return
        files, rows, item_ids, _ = self._stored(model_id)
        key = vector_set(model_id, version)
        done = self.catalog.vector_rows(key)
        if done < rows:
            folder = self._version_folder(model_id, version)
            adapter = load_version_adapter(folder, self._version_record(model_id, version))
            end = catch_up_rows(self._version_files(model_id, version), done, adapter,
                                files.vectors(rows), item_ids)
            with self.catalog.transaction() as tx:
                tx.set_vector_rows(key, end)
            self._indexes.pop((model_id, version), None)

    def _background(self, model_id: str, keys: list[tuple], seed: int,
                    count: int = BACKGROUND) -> np.ndarray:
        """Base vectors of up to `count` random kept items that carry no annotation: what the
        adapter must leave in place, and negatives for the captions (read from the file)."""
        files, rows, stored_ids, live = self._stored(model_id)
        live_rows = np.nonzero(live)[0]
        live_ids = stored_ids[live_rows]
        allowed = ~np.isin(live_ids, [item for item, _ in keys])
        allowed &= ~np.isin(live_ids, self.catalog.excluded_item_ids())
        candidates = np.nonzero(allowed)[0]
        rng = np.random.default_rng(seed)
        chosen = np.sort(rng.choice(candidates, min(count, len(candidates)), replace=False))
        return np.asarray(files.vectors(rows)[live_rows[chosen]], np.float32)

    def _next_version_name(self, model_id: str) -> str:
        taken = set(self.models[model_id].get("versions", {}))
        parent = self._version_folder(model_id, BASE).parent
        if parent.is_dir():  # folders of runs that never finished still hold their names
            taken |= {p.name for p in parent.iterdir()}
        numbers = [int(n[1:]) for n in taken if re.fullmatch(r"v\d+", n)]
        return f"v{max(numbers, default=0) + 1}"

    def _annotation_pairs(self, model_id: str, path: str | os.PathLike | None
                          ) -> tuple[np.ndarray, list[str], list[tuple]]:
        """(base vectors, captions, (item or image, caption) keys) of the pairs to learn."""
        if path is None:
            annotations = self.catalog.annotations()
            if len(annotations) < 2:
                raise SashieError("adapt needs at least two annotations; caption items with "
                                  "`sashie annotations add` or on the web page")
            items = [a["item"] for a in annotations]
            captions = [a["caption"] for a in annotations]
            return (self.vectors_of(items, model_id, version=BASE), captions,
                    list(zip(items, captions)))
        return read_annotation_file(self, model_id, Path(path))

    # --- annotations ------------------------------------------------------------------------

    def annotate(self, item_ids: Sequence[int], caption: str) -> int:
        """Caption items (e.g. 几帳); returns how many (item, caption) pairs were new."""
        caption = " ".join(caption.split())
        if not caption:
            raise SashieError("an annotation needs a caption")
        item_ids = self._known_items(item_ids)
        with self.catalog.transaction() as tx:
            return tx.add_annotations(item_ids, caption)

    def export_annotations(self, out_dir: str | os.PathLike) -> Path:
        """The annotations as a fine-tuning dataset: OUT/annotations.jsonl, one line a pair
        ({"image": "crops/<item>.jpg", "caption", "item", "page", "bbox"}), and the crops."""
        from .images import load_image

        annotations = self.catalog.annotations()
        if not annotations:
            raise SashieError("no annotations yet")
        out = Path(out_dir)
        (out / "crops").mkdir(parents=True, exist_ok=True)
        rows = {r.id: r for r in self.catalog.items({a["item"] for a in annotations})}
        lines = []
        for a in annotations:
            row = rows[a["item"]]
            crop = out / "crops" / f"{row.id}.jpg"
            if not crop.exists():
                load_image(row.page).crop(row.bbox).save(crop, "JPEG", quality=92)
            lines.append(json.dumps({"image": f"crops/{row.id}.jpg", "caption": a["caption"],
                                     "item": row.id, "page": row.page,
                                     "bbox": list(row.bbox)}, ensure_ascii=False))
        (out / "annotations.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
        return out

    # --- describing and exporting ----------------------------------------------------------

    def info(self) -> dict:
        """What the library holds: pages, items, models and their vectors, skipped inputs."""
        counts = self.catalog.counts()
        live = self.catalog.live_item_ids()
        models = []
        for model_id, entry in self.models.items():
            live_rows = self._stored(model_id, live)[3]
            models.append({
                "id": model_id,
                "spec": entry["spec"],
                "dim": entry["dim"],
                "vectors": int(live_rows.sum()),
                "default": model_id == self.default_model,
                "active_version": entry.get("active") or BASE,
                "versions": list(entry.get("versions", {})),
            })
        skipped = self.catalog.skipped()
        filter_info = None
        if self.has_filter:  # its description only: the model is not loaded
            meta = KeepFilter.read_meta(self.path / FILTER)
            filter_info = {key: meta.get(key) for key in
                           ("learner", "model_id", "trained", "labels", "test_metrics")}
            filter_info.update(self.catalog.filter_counts())
        return {
            "path": str(self.path.resolve()),
            "format_version": self.manifest["version"],
            "pages": counts["pages"],
            "items": counts["items"],
            "items_by_detector": self.catalog.items_by_detector(),
            "models": models,
            "skipped": len(skipped),
            "skipped_by_reason": dict(Counter(reason_kind(s["reason"]) for s in skipped)),
            "skipped_inputs": skipped,
            "labels": self.catalog.label_counts(),
            "annotations": self.catalog.annotation_count(),
            "filter": filter_info,
            "disk_bytes": sum(f.stat().st_size for f in self.path.rglob("*") if f.is_file()),
        }

    def export(self, out_dir: str | os.PathLike, *, model: str | None = None) -> Path:
        """Vectors as .npy and item metadata as Parquet, row for row (clip-retrieval layout):
        OUT/img_emb/img_emb_0.npy, OUT/metadata/metadata_0.parquet, OUT/model.json."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        model_id = self._find_model(model)
        if model_id is None:
            raise SashieError("nothing to export: the library has no vectors"
                              if model is None else f"this library has no vectors of {model}")
        files, rows, item_ids, live = self._stored(model_id)
        items = self.catalog.items(item_ids[live].tolist())
        out = Path(out_dir)
        (out / "img_emb").mkdir(parents=True, exist_ok=True)
        (out / "metadata").mkdir(parents=True, exist_ok=True)
        np.save(out / "img_emb" / "img_emb_0.npy", np.asarray(files.vectors(rows)[live]))
        table = pa.table({
            "item": [r.id for r in items],
            "image_path": [r.page for r in items],
            "source": [r.source for r in items],
            "detector": [r.detector for r in items],
            "x0": [r.bbox[0] for r in items],
            "y0": [r.bbox[1] for r in items],
            "x1": [r.bbox[2] for r in items],
            "y1": [r.bbox[3] for r in items],
            "page_width": [r.page_size[0] for r in items],
            "page_height": [r.page_size[1] for r in items],
            "metadata": [json.dumps(r.metadata, ensure_ascii=False) for r in items],
        })
        pq.write_table(table, out / "metadata" / "metadata_0.parquet")
        (out / "model.json").write_text(json.dumps(
            {"model_id": model_id, "dim": files.dim, "spec": self.models[model_id]["spec"],
             "items": len(items)}, indent=2, ensure_ascii=False) + "\n")
        return out

    def close(self) -> None:
        self.catalog.close()

    def __enter__(self) -> "Library":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _rows_of(row_ids: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """The row of each wanted item id in `row_ids`, or an error naming one that has none."""
    order = np.argsort(row_ids, kind="stable")
    known = row_ids[order]
    at = np.minimum(np.searchsorted(known, wanted), max(len(known) - 1, 0))
    found = known[at] == wanted if len(known) else np.zeros(len(wanted), bool)
    if not found.all():
        raise SashieError(f"item {int(wanted[~found][0])} has no vector of this model")
    return order[at]


def read_annotation_file(lib: Library, model_id: str, path: Path
                         ) -> tuple[np.ndarray, list[str], list[tuple]]:
    """Pairs from an annotations.jsonl (`sashie annotations export`): an item of this library
    brings its stored vector; any other line's crop ("image", relative to the file) is encoded
    once by the base encoder."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise SashieError(f"cannot read annotations {path} ({e})") from None
    _, _, stored_ids, live = lib._stored(model_id)
    stored = set(stored_ids[live].tolist())
    items, crops, captions, keys = [], [], [], []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            pair = json.loads(line)
            caption = " ".join(str(pair["caption"]).split())
        except (json.JSONDecodeError, KeyError, TypeError):
            raise SashieError(f"{path}:{number}: expected a JSON object with a caption") from None
        item = pair.get("item")
        if isinstance(item, int) and item in stored:
            items.append((len(captions), item))
            keys.append((item, caption))
        elif isinstance(pair.get("image"), str):
            crops.append((len(captions), path.parent / pair["image"]))
            keys.append((-1, f"{pair['image']}\t{caption}"))
        else:
            raise SashieError(f"{path}:{number}: neither an item of this library nor an image")
        captions.append(caption)
    if len(captions) < 2:
        raise SashieError(f"{path} holds fewer than two annotations")
    vectors = np.zeros((len(captions), lib.models[model_id]["dim"]), np.float32)
    if items:
        vectors[[i for i, _ in items]] = lib.vectors_of([t for _, t in items], model_id,
                                                        version=BASE)
    if crops:
        from .images import load_image

        encoder = lib.encoder(model_id)
        try:
            pictures = [load_image(str(file)) for _, file in crops]
        except Exception as e:  # noqa: BLE001 - any unreadable crop is one clear line
            raise SashieError(f"cannot read a crop listed in {path} ({e})") from None
        vectors[[i for i, _ in crops]] = encoder.encode_images(pictures)
    return vectors, captions, keys


def _train_in_float32(encoder) -> None:
    """Training wants float32 weights even where searching runs in float16 (CUDA)."""
    import torch

    encoder.model.float()
    encoder.dtype = torch.float32


class _Bar:
    """Adaptation progress, to a callback (the web page) and/or a terminal bar."""

    def __init__(self, callback: Callable[[dict], None] | None, terminal: bool) -> None:
        self.callback = callback
        self.terminal = terminal
        self.bar = None
        self.stage = None
        self.done = 0

    def update(self, stage: str, done: int, total: int, loss: float | None, *,
               add: bool = False) -> None:
        if stage != self.stage:
            self.close()
            self.stage, self.done = stage, 0
            if self.terminal:
                from tqdm import tqdm

                self.bar = tqdm(total=total, desc=stage, unit="step" if loss is not None
                                else "vec", unit_scale=loss is None, leave=False)
        step = done if add else done - self.done
        self.done += step
        if self.bar is not None:
            self.bar.update(step)
            if loss is not None:
                self.bar.set_postfix(loss=f"{loss:.3f}")
        if self.callback:
            self.callback({"stage": stage, "done": self.done, "total": total, "loss": loss})

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
