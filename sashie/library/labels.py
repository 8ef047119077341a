"""`lib.labels`: every item's class from a label set (`classify`), the sets a library keeps,
and the narrowing of searches to classes (`search --label`). The labelling run itself is in
classifying.py; the methods (prompt, CODER) in sashie/classify."""

from __future__ import annotations

import builtins
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..classify.bank import model_words
from ..classify.bank import nearest_words as words_near
from ..classify.coder import DEFAULT_METHOD, OTHER, OTHER_BELOW, Scoring
from ..classify.generator import ChatServer, describe_classes
from ..classify.labelfile import LabelSet, read_label_file
from ..errors import NotFound, SashieError
from .classifying import ClassifyReport, examples_from_annotations, export_labels, label_items
from .parts import Parts
from .stored import rows_of


class Labels:
    """The label sets of one library and the classes they gave its items."""

    def __init__(self, parts: Parts) -> None:
        self._parts = parts

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
        parts = self._parts
        if method not in ("prompt", "coder"):
            raise SashieError("the method must be prompt or coder")
        label_set = labels if isinstance(labels, LabelSet) else read_label_file(labels, name)
        if name is not None and name != label_set.name:
            label_set = LabelSet(name, label_set.classes)
        model_id = parts.manifest.find(model)
        if model_id is None:
            raise SashieError("nothing to label: the library has no vectors yet")
        extra: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}
        if generator is not None:
            endpoint = generator.endpoint(parts.path / "cache")
            names = [c.name for c in label_set.classes]
            written = describe_classes(endpoint, names, progress=parts.progress)
            extra = {k: (d.synonyms, d.attributes) for k, d in written.items()}
        if nearest_words > 0:
            encoder = parts.query_encoder(model_id)
            near = words_near(label_set, encoder.encode_texts, model_words(encoder), nearest_words)
            for class_name, words in near.items():
                synonyms, attributes = extra.get(class_name, ((), ()))
                extra[class_name] = ((*synonyms, *words), attributes)
        with parts.writing():
            examples = None
            if few_shot:
                examples = examples_from_annotations(label_set, parts.catalog.annotations())
            report = label_items(
                parts.catalog,
                label_set,
                parts.query_encoder(model_id),
                parts.load(model_id).index,
                model_id=model_id,
                model_version=parts.active(model_id),
                scoring=Scoring(method, rerank=rerank),
                examples=examples,
                extra=extra or None,
                other_below=other_below,
                progress=parts.progress,
            )
        parts.catalog_changed()
        return report

    def list(self) -> dict[str, dict]:
        """Each label set by name, newest first: its version, method, model and model
        version, class count, items labelled and the items of each label (most first)."""
        out = {}
        for record in self._parts.catalog.label_sets():
            out[record["name"]] = {
                "version": record["version"],
                "method": record["method"],
                "model_id": record["model_id"],
                "model_version": record["model_version"],
                "classes": len(record["classes"]),
                "items": record["items"],
                "labelled_at": record["at"],
                "counts": self._parts.catalog.class_counts(record["name"]),
            }
        return out

    def get(self, name: str | None = None) -> LabelSet:
        """The classes of a stored label set (the newest when `name` is None)."""
        return stored_label_set(self.record(name))

    def newest(self) -> LabelSet | None:
        """The newest label set's classes, or None when the library has none."""
        name = self.chosen(None)
        return None if name is None else self.get(name)

    def item_classes(self, label_set: str | None = None) -> dict[int, str]:
        """Each labelled item's class in a label set (the newest when None); "other" for an
        item that none of the set's classes fits."""
        items, labels = self._parts.catalog.labelled_items(self.record(label_set)["name"])
        return dict(zip(items.tolist(), labels))

    def surest(self, per_class: int) -> builtins.list[dict]:
        """Up to `per_class` items of each class of the newest set, those it labelled most
        surely and the filter kept, as annotations ({"item", "caption": the class})."""
        catalog = self._parts.catalog
        excluded = set(catalog.excluded_item_ids().tolist())
        return [
            {"item": item, "caption": label}
            for item, label in catalog.confident_items(self.record(None)["name"], per_class)
            if item not in excluded
        ]

    def remove(self, name: str) -> None:
        """Forget a label set and the labels it gave."""
        with self._parts.catalog.transaction() as t:
            if not t.remove_label_set(name):
                raise NotFound(f"no label set {name!r} in this library")
        self._parts.catalog_changed()

    def export(self, out: str | os.PathLike, *, label_set: str | None = None) -> int:
        """Write a label set's labels (item, page, box, label, score, runner-up) to a .csv or
        .parquet file; how many rows."""
        record = self.record(label_set)
        labels = self._parts.catalog.item_classes(record["name"])
        return export_labels(Path(out), record, labels, self._parts.catalog.items)

    # --- for searches ----------------------------------------------------------------------

    def chosen(self, name: str | None) -> str | None:
        """The set `name` if the library has it (an error if not), or the newest set's name
        (None when there is none). Asked on every search: it reads the names only."""
        names = self._parts.catalog.label_set_names()
        if name is None:
            return names[0] if names else None
        if name not in names:
            known = ", ".join(repr(n) for n in names) or "none"
            raise NotFound(f"no label set {name!r} in this library (it has {known})")
        return name

    def record(self, name: str | None) -> dict:
        """The stored record of the set `name` (the newest when None), or an error that says
        what to do when the library has none."""
        found = self.chosen(name)
        if found is None:
            raise SashieError(
                "this library has no labels yet: label it with `sashie classify "
                f"{self._parts.path} --labels LABELS.csv`"
            )
        record = self._parts.catalog.label_set(found)
        assert record is not None
        return record

    def left_out(
        self,
        model: str | None,
        label_set: str | None,
        label: str | Sequence[str] | None,
        not_label: str | Sequence[str] | None,
    ) -> np.ndarray | None:
        """The rows of the model's index outside the classes `label` or in `not_label` (of
        the set `label_set`); None when neither is asked."""
        wanted, unwanted = _texts(label), _texts(not_label)
        if not wanted and not unwanted:
            return None
        record = self.record(label_set)
        classes = stored_label_set(record)
        names = [c["name"] for c in record["classes"]]

        def codes(texts: builtins.list[str]) -> builtins.list[int]:
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
        leave_out = np.zeros(len(rows), bool)
        if wanted:
            leave_out |= ~np.isin(rows, codes(wanted))
        if unwanted:
            leave_out |= np.isin(rows, codes(unwanted))
        return leave_out

    def _class_codes(
        self, model: str | None, label_set: str, names: builtins.list[str]
    ) -> np.ndarray:
        """Each row of the model's index: its class in the set (index into `names`;
        len(names) for "other", an item no class fits; -1 for an item the set has not
        labelled), loaded once."""
        loaded = self._parts.load(model)
        codes = loaded.classes.get(label_set)
        if codes is None:
            index = loaded.index
            items, labels = self._parts.catalog.labelled_items(label_set)
            code_of = {OTHER: len(names)} | {n: i for i, n in enumerate(names)}
            known = np.isin(items, index.item_ids)
            codes = np.full(len(index), -1, np.int64)
            rows = rows_of(index.item_ids, items[known])
            codes[rows] = [code_of.get(label, -1) for label, k in zip(labels, known) if k]
            loaded.classes[label_set] = codes
        return codes


def stored_label_set(record: dict) -> LabelSet:
    """The classes a stored label set record holds, checked as a label file is (a library
    folder may come from anywhere)."""
    return LabelSet.from_json({"name": record["name"], "classes": record["classes"]})


def _texts(value: str | Sequence[str] | None) -> list[str]:
    """One text or several as a list, empty ones left out."""
    if value is None:
        return []
    return [t for t in ([value] if isinstance(value, str) else list(value)) if t.strip()]
