"""Indexing into a library: the detectors and the encoder chosen, the pages read, cut and
embedded by the indexer (sashie/ingest), the filter's verdicts on the new items, and the
active version's vectors and ANN index brought up to date, all under the write lock."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from ..errors import SashieError
from ..ingest.indexer import AddReport, Indexer
from ..regions import DEFAULT_DETECTORS, load_detectors
from ..sources.images import DEFAULT_MAX_PIXELS
from ..sources.pages import PageRef, Sidecar
from .ann_files import AnnChoice
from .filtering import Filter
from .parts import Parts
from .region_model import own_model


@dataclass(frozen=True, kw_only=True)
class Indexing:
    """How to index: the model, the region detectors and their settings, where the model
    runs and how many pages at once, the engine, and the ANN index kind to keep."""

    model: str | None = None
    regions: str | Sequence[str | object] = DEFAULT_DETECTORS
    detector_options: dict[str, dict] = field(default_factory=dict)
    trust_remote_code: bool = False
    device: str | None = None
    batch_size: int | None = None
    workers: int | None = None
    max_pixels: int = DEFAULT_MAX_PIXELS
    index_kind: str | None = None
    engine: str = "local"
    address: str | None = None
    recut: Sequence[str] = ()  # detectors run again on pages already indexed
    books: Sidecar | None = None  # book metadata for folders and lists (--metadata FILE)

    def check(self) -> AnnChoice:
        """The ANN choice, after refusing settings that do not go together."""
        choice = AnnChoice(self.index_kind).check()
        if self.engine not in ("local", "ray"):
            raise SashieError(f"unknown engine {self.engine!r}: local or ray")
        if self.address and self.engine != "ray":
            raise SashieError("an address is for --engine ray")
        return choice


def index_pages(
    parts: Parts, keep_filter: Filter, sources: list[str] | list[PageRef], how: Indexing
) -> AddReport:
    """Index the sources (only what is new or changed is read and embedded)."""
    choice = how.check()
    options = dict(how.detector_options)
    tuned = own_model(parts.path)
    if tuned is not None:  # the library's own detector, fine-tuned on a curator's boxes
        for name in ("learned", "hybrid"):
            options.setdefault(name, {"model": tuned})
    detectors = load_detectors(how.regions, options)  # type: ignore[arg-type]
    with parts.writing():
        # with Ray the model runs on the cluster's actors (on `device`); here it only names
        # the model and prepares crops, so it loads on the CPU
        here = "cpu" if how.engine == "ray" else how.device
        encoder = parts.encoder(how.model, trust_remote_code=how.trust_remote_code, device=here)
        spec = parts.manifest.spec(how.model)[0]
        model_id = parts.manifest.register(spec, encoder, how.trust_remote_code)
        runner = None
        if how.engine == "ray":
            from ..ingest.ray_engine import RayEngine

            runner = RayEngine(
                spec,
                batch_size=how.batch_size,
                workers=how.workers,
                device=how.device,
                address=how.address,
                trust_remote_code=how.trust_remote_code or parts.trust_remote_code,
            )
        indexer = Indexer(
            parts.catalog,
            parts.vector_file(model_id),
            model_id,
            encoder,
            detectors,
            batch_size=how.batch_size or (256 if encoder.device.startswith("cuda") else 32),
            workers=how.workers,
            max_pixels=how.max_pixels,
            progress=parts.progress,
            engine=runner,
            recut=how.recut,
            books=how.books,
        )
        parts.loaded.clear()
        report = indexer.run(sources)
        if keep_filter.exists:  # the saved filter judges the new items too
            report.filtered = keep_filter.apply(only_new=True)
        active = parts.active(model_id)
        if parts.versions.catch_up(model_id, active, parts.stored(model_id)):
            parts.loaded.pop((model_id, active), None)
        with parts.ann.choosing(model_id, choice):
            report.ann = parts.keep_ann_current(model_id, active)
        return report


def rebuild_ann(parts: Parts, model_id: str, version: str | None, choice: AnnChoice) -> dict:
    """Build a version's ANN index anew (the active one when None), as `choice` says;
    {"model", "version", "done", "index"}."""
    with parts.writing():
        version = parts.active(model_id) if version is None else version
        parts.manifest.check_version(model_id, version)
        with parts.ann.choosing(model_id, choice):
            done = parts.keep_ann_current(model_id, version, rebuild=True)
    rows = parts.catalog.vector_rows(model_id)
    return {
        "model": model_id,
        "version": version,
        "done": done,
        "index": parts.ann.describe(model_id, version, rows),
    }
