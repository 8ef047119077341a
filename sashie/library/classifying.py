"""Labelling a library's items with a label set (`lib.labels.classify`), and its labels' files.

Every item with a vector gets the set's best class, a score and the runner-up, stored in
the catalog (item_labels) beside the set's record (label_sets: its classes, version, method,
model version and settings). An item whose best class does not stand out from that class's
typical score is labelled "other", its best class kept as the runner-up (classify/coder.py).
A run whose set, method, model version and settings match the stored ones labels only the
items that have no label yet; any change labels all of them again. Scores are computed first,
then written in one transaction: an interrupted run leaves the previous labels whole.
"""

from __future__ import annotations

import csv
import hashlib
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..classify.bank import KINDS, TextBank, build_bank
from ..classify.coder import (
    BLOCK,
    OTHER,
    TYPICAL_SAMPLE,
    Scoring,
    Typical,
    Verdicts,
    best_two,
    class_scores,
    coder_vectors,
    in_blocks,
)
from ..classify.fewshot import SCALE, TipAdapter, fit_tip_adapter
from ..classify.labelfile import LabelSet
from ..encoders import Encoder
from ..errors import SashieError
from ..search.ranking import VectorIndex
from ..store.catalog import Catalog, ItemRow
from .export import plain_cell
from .stored import rows_of

EXPORT_COLUMNS = (
    "item",
    "page",
    "x0",
    "y0",
    "x1",
    "y1",
    "label",
    "score",
    "runner_up",
    "runner_up_score",
    "label_set",
    "version",
)


@dataclass
class ClassifyReport:
    label_set: str
    version: str
    method: str  # prompt or coder, "+few-shot" when examples were used
    labelled: int  # items labelled by this run
    total: int  # items the set labels now
    relabelled: bool  # every item labelled again (the set, method, model or settings changed)
    examples: int  # labelled examples of a few-shot run
    seconds: float
    counts: dict[str, int] = field(default_factory=dict)  # items by label, most first

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Examples:
    """Items known to show a class (annotations whose caption names it), for few-shot."""

    items: np.ndarray
    classes: np.ndarray  # class indices

    def stamp(self) -> str:
        return _stamp(sorted(zip(self.items.tolist(), self.classes.tolist())))


def examples_from_annotations(labels: LabelSet, annotations: Iterable[dict]) -> Examples:
    """The annotations whose caption is a class's name, Japanese name or synonym."""
    index = {c.name: i for i, c in enumerate(labels.classes)}
    found: dict[int, int] = {}
    for a in annotations:
        cls = labels.find(a["caption"])
        if cls is not None:
            found.setdefault(a["item"], index[cls.name])
    return Examples(
        np.fromiter(found.keys(), np.int64, len(found)),
        np.fromiter(found.values(), np.int64, len(found)),
    )


def label_items(
    catalog: Catalog,
    labels: LabelSet,
    encoder: Encoder,
    index: VectorIndex,
    *,
    model_id: str,
    model_version: str,
    scoring: Scoring,
    examples: Examples | None = None,
    extra: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] | None = None,
    other_below: float | None = None,
    progress: bool = False,
) -> ClassifyReport:
    """Label the index's items with `labels` (see the module's docstring); `other_below`:
    the robust deviations a best class must stand out by, else the item is "other" (None:
    every item gets a class)."""
    started = time.time()
    if not labels.classes:
        raise SashieError(f"the label set {labels.name!r} has no classes")
    method = scoring.method + ("+few-shot" if examples is not None else "")
    settings: dict = {
        "rerank": scoring.rerank,
        "context": scoring.context,
        "margin": scoring.margin,
        "extra": _stamp(extra) if extra else None,
        "other_below": other_below,
    }
    if examples is not None:
        if not len(examples.items):
            raise SashieError(
                "--few-shot needs examples: annotate items with a class's name "
                "(sashie annotate), then classify again"
            )
        known = np.isin(examples.items, index.item_ids)
        examples = Examples(examples.items[known], examples.classes[known])
        settings["examples"] = examples.stamp()
    record = {
        "name": labels.name,
        "version": labels.version,
        "method": method,
        "model_id": model_id,
        "model_version": model_version,
        "classes": labels.as_json()["classes"],
        "settings": settings,
    }
    before = catalog.label_set(labels.name)
    same = (
        before is not None
        and all(before[k] == record[k] for k in ("version", "method", "model_id", "model_version"))
        and before["settings"] == json.loads(json.dumps(settings))
    )
    wanted = catalog.unlabelled_item_ids(labels.name) if same else index.item_ids
    wanted = wanted[np.isin(wanted, index.item_ids)]  # items with a vector of this model
    rows = rows_of(index.item_ids, wanted) if len(wanted) else np.zeros(0, np.int64)
    if len(rows) or not same:  # else every item is labelled already: nothing to write
        kinds: tuple[str, ...] = KINDS if scoring.method == "coder" else ("names",)
        if not scoring.rerank:
            kinds = tuple(k for k in kinds if k != "differences")
        bank = build_bank(labels, encoder.encode_texts, kinds=kinds, extra=extra)
        adapter = None if examples is None else _fit(bank, index, examples, scoring)
        found = _verdicts(bank, index.vectors, rows, scoring, adapter, other_below, progress)
        if examples is not None:
            found = _examples_kept(found, wanted, examples)
        _write(catalog, record, not same, wanted, bank.classes, found, other_below)
    counts = catalog.class_counts(labels.name)
    return ClassifyReport(
        label_set=labels.name,
        version=labels.version,
        method=method,
        labelled=len(wanted),
        total=sum(counts.values()),
        relabelled=not same,
        examples=0 if examples is None else len(examples.items),
        seconds=round(time.time() - started, 2),
        counts=counts,
    )


def _examples_kept(found: Verdicts, items: np.ndarray, examples: Examples) -> Verdicts:
    """The examples keep the class a person gave them (the best score stays theirs; the
    class the scores preferred becomes the runner-up)."""
    given = dict(zip(examples.items.tolist(), examples.classes.tolist()))
    best, second = found.best.copy(), found.second.copy()
    second_score, standing = found.second_score.copy(), found.standing.copy()
    for i, item in enumerate(items.tolist()):
        cls = given.get(item)
        if cls is not None:
            standing[i] = np.inf  # a person said so: never "other"
            if best[i] != cls:
                second[i], second_score[i], best[i] = best[i], found.score[i], cls
    return Verdicts(best, found.score, second, second_score, standing)


def _write(
    catalog: Catalog,
    record: dict,
    replace: bool,
    items: np.ndarray,
    classes: tuple[str, ...],
    found: Verdicts,
    other_below: float | None,
) -> None:
    """The set's record and the items' labels, in one transaction: an item whose best class
    does not stand out by `other_below` is "other", that class its runner-up."""
    names = np.array(classes, dtype=object)
    label, runner_up = names[found.best], names[found.second]
    runner_up_score = found.second_score.astype(float)
    if other_below is not None:
        other = found.standing < other_below
        runner_up = np.where(other, label, runner_up)
        runner_up_score = np.where(other, found.score, runner_up_score)
        label = np.where(other, OTHER, label)
    with catalog.transaction() as t:
        t.put_label_set(record, replace=replace)
        t.set_item_classes(
            record["name"],
            zip(
                items.tolist(),
                label.tolist(),
                found.score.astype(float).tolist(),
                runner_up.tolist(),
                runner_up_score.tolist(),
            ),
        )


def _fit(bank: TextBank, index: VectorIndex, examples: Examples, scoring: Scoring) -> TipAdapter:
    vectors = index.vectors[rows_of(index.item_ids, examples.items)]
    zero_shot = class_scores(bank, vectors, scoring)
    return fit_tip_adapter(
        _features(bank, vectors, scoring), examples.classes, zero_shot, len(bank.classes)
    )


def _features(bank: TextBank, vectors: np.ndarray, scoring: Scoring) -> np.ndarray:
    """What a few-shot cache compares: CODER vectors for coder, stored vectors for prompt."""
    return coder_vectors(bank, vectors) if scoring.method == "coder" else vectors


def _verdicts(
    bank: TextBank,
    vectors: np.ndarray,
    rows: np.ndarray,
    scoring: Scoring,
    adapter: TipAdapter | None,
    other_below: float | None,
    progress: bool,
) -> Verdicts:
    """Best two classes of the given rows, block by block (few-shot: by the cache's logits,
    scaled back to the zero-shot scores' units), and how far the best stands out from its
    typical score over a sample of every row (when "other" is wanted)."""

    def scored(block: np.ndarray) -> np.ndarray:
        scores = class_scores(bank, block, scoring)
        if adapter is not None:
            scores = adapter.logits(_features(bank, block, scoring), scores) / SCALE
        return scores

    typical = None
    if other_below is not None and len(rows):
        sample = np.random.default_rng(0).permutation(len(vectors))[:TYPICAL_SAMPLE]
        typical = Typical.of(
            np.concatenate([scored(b) for b in in_blocks(vectors, np.sort(sample))])
        )
    parts = []
    bar = tqdm(
        in_blocks(vectors, rows),
        total=-(-len(rows) // BLOCK),
        desc="labelling",
        unit="block",
        disable=not progress,
        leave=False,
    )
    for block in bar:
        parts.append(best_two(scored(block), typical))
    if not parts:
        empty = np.zeros(0, np.int64)
        scores = empty.astype(np.float32)
        return Verdicts(empty, scores, empty, scores, scores)
    return Verdicts(*(np.concatenate([getattr(p, f) for p in parts]) for f in Verdicts.FIELDS))


def _stamp(value: object) -> str:
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


# --- the labels as a file -------------------------------------------------------------------


def export_labels(
    out: Path,
    record: dict,
    labels: dict[int, tuple[str, float, str | None, float | None]],
    items: Callable[[list[int]], list[ItemRow]],
) -> int:
    """Write a set's labels, one row an item (EXPORT_COLUMNS), as CSV (a spreadsheet's; cells
    that a spreadsheet would run as formulas are quoted) or Parquet, by the suffix; how many
    rows."""
    kind = out.suffix.lower()
    if kind not in (".csv", ".parquet"):
        raise SashieError(f"export labels to a .csv or .parquet file, not {out.name}")
    rows = []
    ids = sorted(labels)
    for start in range(0, len(ids), 10_000):
        for item in items(ids[start : start + 10_000]):
            label, score, runner_up, runner_up_score = labels[item.id]
            rows.append(
                (
                    item.id,
                    item.page,
                    *item.bbox,
                    label,
                    round(score, 5),
                    runner_up,
                    None if runner_up_score is None else round(runner_up_score, 5),
                    record["name"],
                    record["version"],
                )
            )
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    if kind == ".csv":
        with open(partial, "w", newline="", encoding="utf-8-sig") as f:  # BOM: Excel reads UTF-8
            writer = csv.writer(f)
            writer.writerow(EXPORT_COLUMNS)
            writer.writerows([plain_cell(v) for v in row] for row in rows)
    else:
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:
            raise SashieError(
                "Parquet needs pyarrow: pip install 'sashie[export]' (or export to .csv)"
            ) from None
        columns = [[row[i] for row in rows] for i in range(len(EXPORT_COLUMNS))]
        table = pa.table(dict(zip(EXPORT_COLUMNS, columns)))
        pq.write_table(table, partial)
    partial.replace(out)
    return len(rows)
