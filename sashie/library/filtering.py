"""`lib.filter`: people's keep/exclude marks on items, and the filter trained on them that
leaves text, rulers and stains out of searches (the learners are in sashie/filter)."""

from __future__ import annotations

import shutil
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import SashieError
from ..filter.learners import LEARNERS, TrainReport, train_filter, verdict_metrics
from ..filter.model import THRESHOLD, KeepFilter
from .manifest import BASE
from .parts import Ids, Parts
from .paths import inside_all

FILTER = "filter"
Flags = Sequence[bool] | np.ndarray  # keep (True) or exclude, one per item


class Filter:
    """The keep/exclude marks and filter of one library."""

    def __init__(self, parts: Parts) -> None:
        self._parts = parts
        self._where = parts.path / FILTER

    @property
    def _folder(self) -> Path:
        """The filter's folder, it and its files inside the library (checked each time: a
        library folder may be changed under a running server)."""
        return inside_all(self._parts.path, self._where)

    # --- marks -----------------------------------------------------------------------------

    def mark(self, item_ids: Ids, keep: Flags, source: str = "user") -> int:
        """Mark items keep (an illustration) or exclude, to train the filter on; how many."""
        known = self._parts.known_items(item_ids)
        flags = [bool(k) for k in keep]
        if len(known) != len(flags):
            raise SashieError("one keep/exclude mark per item, please")
        with self._parts.catalog.transaction() as tx:
            tx.set_marks(known, flags, source)
        return len(known)

    def marks(self, item_ids: Ids | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(item ids, keep flags) of the marked items among `item_ids`, or of all."""
        return self._parts.catalog.marks(item_ids)

    def unmark(self, item_ids: Ids | None = None) -> int:
        """Forget the keep/exclude marks of these items, or all; how many went."""
        with self._parts.catalog.transaction() as tx:
            return tx.clear_marks(item_ids)

    # --- the filter ------------------------------------------------------------------------

    @property
    def exists(self) -> bool:
        """Whether the library has a trained filter."""
        return self._folder.is_dir()

    def load(self) -> KeepFilter | None:
        """The library's saved filter, or None."""
        return KeepFilter.load(self._folder) if self.exists else None

    def excluded_rows(self, model: str | None = None) -> np.ndarray | None:
        """Which rows of the model's index (active version) the filter excluded (None:
        none)."""
        return self._parts.excluded_rows(model)

    def train(
        self, *, learners: Sequence[str] = LEARNERS, seed: int = 0, model: str | None = None
    ) -> TrainReport:
        """Fit the learners on the marked items' vectors, keep the best as the library's
        filter, and apply it to every item."""
        parts = self._parts
        parts.check_writable()
        model_id = parts.model_id(model)
        item_ids, keep = parts.catalog.marks()
        if len(item_ids) == 0:
            raise SashieError("no marks yet; run `sashie filter mark` first")
        # the filter judges base vectors: they do not change when the model is adapted
        report = train_filter(
            parts.vectors_of(item_ids, model_id, BASE),
            keep,
            learners=learners,
            seed=seed,
            progress=parts.progress,
        )
        best = report.best
        best.filter.meta.update(
            model_id=model_id,
            labels=len(item_ids),
            trained=time.strftime("%Y-%m-%dT%H:%M:%S"),
            seed=seed,
            test_metrics=best.metrics,
        )
        best.filter.save(self._folder)
        self.apply()
        return report

    def apply(self, *, only_new: bool = False) -> dict:
        """Score items with the saved filter and store keep/exclude (all, or only unscored)."""
        parts = self._parts
        keep_filter = self.load()
        if keep_filter is None:
            raise SashieError("no filter yet; run `sashie filter train` first")
        started = time.perf_counter()
        model_id = keep_filter.meta["model_id"]
        if model_id not in parts.manifest.models:
            raise SashieError(
                f"the filter was trained on vectors of {model_id}, which this library no longer has"
            )
        index = parts.load(model_id, BASE).index
        rows = np.arange(len(index))
        if only_new:
            rows = rows[np.isin(index.item_ids, parts.catalog.unscored_item_ids())]
        scores = keep_filter.scores(index.vectors[rows] if only_new else index.vectors)
        with parts.catalog.transaction() as tx:
            if not only_new:
                tx.clear_filter_scores()
            tx.set_filter_scores(index.item_ids[rows].tolist(), scores.tolist(), THRESHOLD)
        parts.catalog_changed()
        kept = int((scores >= THRESHOLD).sum())
        return {
            "scored": len(rows),
            "kept": kept,
            "excluded": len(rows) - kept,
            "seconds": round(time.perf_counter() - started, 2),
        }

    def evaluate(self, item_ids: Ids | None = None, keep: Flags | None = None) -> dict:
        """The filter's stored verdicts against the given keep flags, or the library's marks."""
        if not self.exists:
            raise SashieError("no filter yet; run `sashie filter train` first")
        against = "marks" if item_ids is None else "the given judgements"
        if item_ids is None:
            item_ids, keep = self._parts.catalog.marks()
        truth = dict(zip(np.asarray(item_ids).tolist(), np.asarray(keep, bool).tolist()))
        scored, verdicts = self._parts.catalog.filter_verdicts()
        both = [(truth[i], v) for i, v in zip(scored.tolist(), verdicts.tolist()) if i in truth]
        if not both:
            raise SashieError("no judged item has a filter verdict; run `sashie filter apply`")
        overall, per_class = verdict_metrics(*np.array(both, bool).T)
        return {"items": len(both), "against": against, "overall": overall, "per_class": per_class}

    def remove(self) -> None:
        """Forget the filter and its verdicts: every item is searched again."""
        self._parts.check_writable()
        shutil.rmtree(self._folder, ignore_errors=True)
        with self._parts.catalog.transaction() as tx:
            tx.clear_filter_scores()
        self._parts.catalog_changed()

    def describe(self) -> dict | None:
        """What `info` says of the filter (None: there is none); its model is not loaded."""
        if not self.exists:
            return None
        meta = KeepFilter.read_meta(self._folder)
        out = {key: meta.get(key) for key in ("learner", "model_id", "trained", "labels")}
        out["test_metrics"] = meta.get("test_metrics")
        return out | self._parts.catalog.filter_counts()
