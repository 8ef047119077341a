"""`lib.versions`: the model versions `adapt` makes from the library's annotations, which one
searches use, and removing them. One adaptation run is in adapting.py; where each version's
files are, in version_folders.py."""

from __future__ import annotations

import builtins
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..adapt.paraphrase import EndpointParaphraser, Paraphraser, RuleParaphraser, paraphrase_all
from ..adapt.phrasings import phrasings
from ..adapt.settings import AdaptSettings
from ..classify.generator import ChatServer
from ..encoders import load_encoder, trainable
from ..errors import SashieError
from ..search.memory import ExampleMemory
from .adapting import AdaptReport, ProgressBar, make_version
from .annotations import Pairs, file_pairs, library_pairs
from .labels import Labels
from .manifest import BASE
from .parts import Parts

BACKGROUND = 16384  # other items' vectors an adaptation keeps in place


class Versions:
    """The model versions of one library."""

    def __init__(self, parts: Parts, labels: Labels) -> None:
        self._parts = parts
        self._labels = labels

    def active(self, model: str | None = None) -> str:
        """The name of the model's active version ("base" when none was adapted or chosen)."""
        return self._parts.active(self._parts.model_id(model))

    def list(self, model: str | None = None) -> dict:
        """{"model", "active", "versions": [records of version.json, oldest first]}."""
        return self._parts.versions.describe(self._parts.model_id(model))

    def memory(self, model: str | None = None) -> ExampleMemory | None:
        """The active version's remembered examples (sashie/search/memory.py); None for the
        base model or a version made without them."""
        return self._parts.memory(model)

    def loss_plot(self, version: str, model: str | None = None) -> Path | None:
        """The PNG of a version's loss curve (None for the base, or without the `plot`
        extra)."""
        return self._parts.versions.loss_plot(self._parts.model_id(model), version)

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
        (`lib.labels.classify`), those it labelled most surely, captioned by their class.

        `progress` receives {"stage": "training" | "applying", "done", "total", "loss"}."""
        parts = self._parts
        settings = settings or AdaptSettings()
        settings.check()
        model_id = parts.model_id(model)
        with parts.writing():
            pairs = self._pairs(model_id, annotations, label_examples)
            paraphrases = None
            if settings.paraphrase:
                source = paraphraser or self._rule_paraphraser(settings.seed)
                if isinstance(source, ChatServer):  # the rule paraphraser where it fails
                    fallback = RuleParaphraser(seed=settings.seed)
                    source = EndpointParaphraser(source.endpoint(parts.path / "cache"), fallback)
                paraphrases = {
                    c: paraphrase_all(source, phrasings(c)) for c in sorted(set(pairs.captions))
                }
            parts.encoder(model_id)  # refuses a model that needs remote code not granted
            trainee = trainable(
                load_encoder(
                    parts.manifest.models[model_id]["spec"],
                    device=device,
                    trust_remote_code=parts.trust_remote_code,
                )
            )
            trainee.to_float32()  # training wants float32 where searching runs in float16
            base = parts.stored(model_id)
            avoid = np.concatenate(
                [
                    np.array([item for item, _ in pairs.keys], np.int64),
                    parts.catalog.excluded_item_ids(),
                ]
            )
            made_from = (str(annotations) if annotations else "library") + (
                f" + {label_examples} label examples a class" if label_examples else ""
            )
            report = make_version(
                manifest=parts.manifest,
                catalog=parts.catalog,
                versions=parts.versions,
                model_id=model_id,
                trainee=trainee,
                pairs=pairs,
                background=base.sample(BACKGROUND, settings.seed, avoid=avoid),
                base=base,
                settings=settings,
                source=made_from,
                bar=ProgressBar(progress, parts.progress),
                paraphrases=paraphrases,
            )
            parts.keep_ann_current(model_id, parts.active(model_id))
            return report

    def use(self, version: str, model: str | None = None) -> str:
        """Make a version (or "base") the active one; instant, nothing is re-encoded."""
        parts = self._parts
        model_id = parts.model_id(model)
        with parts.writing():
            if version != BASE:
                parts.versions.record(model_id, version)  # it exists and is readable
                if parts.versions.catch_up(model_id, version, parts.stored(model_id)):
                    parts.forget_version(model_id, version)
            parts.keep_ann_current(model_id, version)
            parts.manifest.set_active(model_id, version)
        return version

    def remove(self, version: str, model: str | None = None) -> None:
        """Delete a version that is not active: its adapter, text encoder and vectors; or the
        files an adaptation left when it was killed (listed under "unfinished")."""
        parts = self._parts
        model_id = parts.model_id(model)
        with parts.writing():
            if version == BASE:
                raise SashieError("the base model cannot be removed")
            if version not in parts.versions.unfinished(model_id):
                parts.manifest.check_version(model_id, version)
            if parts.active(model_id) == version:
                raise SashieError(
                    f"{version} is the active version; switch first "
                    f"(sashie versions use {parts.path} base)"
                )
            parts.versions.remove(model_id, version)
            parts.forget_version(model_id, version)

    def drop(self, version: str, model: str | None = None) -> None:
        """Delete a damaged version, active or not (`sashie check --repair`): base becomes
        active if it was. Nothing of it is read."""
        parts = self._parts
        model_id = parts.model_id(model)
        with parts.writing():
            parts.manifest.check_version(model_id, version)
            if parts.active(model_id) == version:
                parts.manifest.set_active(model_id, BASE)
            parts.versions.remove(model_id, version)
            parts.forget_version(model_id, version)

    def _rule_paraphraser(self, seed: int) -> RuleParaphraser:
        """The offline paraphraser: templates, kana script changes, and the newest label
        set's names and attributes as its lexicon (when the library has one)."""
        newest = self._labels.newest()
        if newest is None:
            return RuleParaphraser(seed=seed)
        return RuleParaphraser.from_labels(newest, seed=seed)

    def _pairs(
        self, model_id: str, path: str | os.PathLike | None, label_examples: int = 0
    ) -> Pairs:
        """The (base vector, caption) pairs to learn: the library's annotations, or a file's;
        with `label_examples`, also the newest label set's surest items of each class."""
        parts = self._parts

        def base_vectors(items: builtins.list[int]) -> np.ndarray:
            return parts.vectors_of(items, model_id, BASE)

        if path is not None:
            if label_examples > 0:
                raise SashieError("label examples join the library's annotations, not a file's")
            return file_pairs(
                Path(path), parts.stored(model_id), base_vectors, lambda: parts.encoder(model_id)
            )
        annotations = parts.catalog.annotations()
        if label_examples > 0:
            annotations += self._labels.surest(label_examples)
        return library_pairs(annotations, base_vectors)
