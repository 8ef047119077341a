"""Relevance feedback: the user marks results right or wrong, and the search learns.

As in the seed paper (after CLIP-Branches), a light classifier is trained on the spot on the
marked items' vectors, with random items of the collection as extra negatives, applied to
every item, and the search re-runs over the items it predicts relevant, ranked by the query;
the items it predicts irrelevant follow, also ranked by the query. Rocchio instead moves the
query vector toward the relevant marks and away from the irrelevant ones. Either way the
items marked relevant come first and those marked irrelevant last.

    item_ids, scores = refine(index, query, relevant_ids, irrelevant_ids, learner="linear_svm")

Learners: `linear_svm` (the default), `logistic` (logistic regression), `decision_tree` (the
paper's), `rocchio`. `benchmarks/feedback.py` compares them with a simulated user.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import SashieError
from .ranking import FLOAT32_TOLERANCE, VectorIndex, restrict, top_k, widened

FEEDBACK_LEARNERS = ("linear_svm", "logistic", "decision_tree", "rocchio")
DEFAULT_LEARNER = "linear_svm"  # the best with a simulated user: benchmarks/feedback.py
EXTRA_NEGATIVES = 200  # random items of the collection, taken as irrelevant
ROCCHIO = (1.0, 0.8, 0.3)  # weights of the query, the relevant mean, the irrelevant mean


def _rows(index: VectorIndex, item_ids: Sequence[int]) -> np.ndarray:
    ids = np.asarray(list(item_ids), np.int64)
    rows = np.flatnonzero(np.isin(index.item_ids, ids))
    if len(rows) != len(set(ids.tolist())):
        raise SashieError("a marked item is not among this library's searchable items")
    return rows


def _random_rows(count: int, marked: np.ndarray, n: int, seed: int) -> np.ndarray:
    """About n distinct random rows outside `marked` (no pass over all rows)."""
    rng = np.random.default_rng(seed)
    drawn = rng.integers(0, count, 2 * n + len(marked))
    drawn = drawn[~np.isin(drawn, marked)]
    _, first = np.unique(drawn, return_index=True)
    return drawn[np.sort(first)][:n]


def _classifier(learner: str, seed: int):
    if learner == "logistic":
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(C=10.0, class_weight="balanced", max_iter=500)
    if learner == "linear_svm":
        from sklearn.svm import LinearSVC

        return LinearSVC(C=1.0, class_weight="balanced")
    if learner == "decision_tree":
        from sklearn.tree import DecisionTreeClassifier

        return DecisionTreeClassifier(max_depth=8, class_weight="balanced", random_state=seed)
    raise SashieError(
        f"unknown feedback learner {learner!r}; known: {', '.join(FEEDBACK_LEARNERS)}"
    )


@dataclass(frozen=True)
class Learned:
    """What feedback learned, in a form any holder of rows applies to its own (one index, or
    each shard): rows ranked by `query`; those the learner predicts relevant (the
    hyperplane `plane` = (w, b): w.x + b > 0; or the decision `tree`) first; the items
    marked relevant before all, those marked irrelevant after all. Rocchio's moved query
    predicts nothing."""

    query: np.ndarray
    relevant: np.ndarray  # item ids
    irrelevant: np.ndarray
    plane: tuple[np.ndarray, float] | None = None
    tree: Any = None


def learn(
    index: VectorIndex,
    query: np.ndarray,
    relevant: Sequence[int],
    irrelevant: Sequence[int] = (),
    *,
    learner: str = DEFAULT_LEARNER,
    negatives: int = EXTRA_NEGATIVES,
    seed: int = 0,
) -> Learned:
    """What the marks teach, from the marked items' vectors in `index` (and random items of
    it as extra negatives)."""
    query = restrict(query, None)
    relevant_rows = _rows(index, relevant)
    irrelevant_rows = _rows(index, irrelevant)
    if len(relevant_rows) == 0:
        raise SashieError("mark at least one result as relevant")
    marks = (index.item_ids[relevant_rows], index.item_ids[irrelevant_rows])
    if learner == "rocchio":
        a, b, c = ROCCHIO
        moved = a * query + b * index.take(relevant_rows).mean(0)
        if len(irrelevant_rows):
            moved -= c * index.take(irrelevant_rows).mean(0)
        return Learned(restrict(moved, None), *marks)
    marked = np.concatenate([relevant_rows, irrelevant_rows])
    negative_rows = np.concatenate(
        [irrelevant_rows, _random_rows(len(index), marked, negatives, seed)]
    )
    x = index.take(np.concatenate([relevant_rows, negative_rows]))
    y = np.r_[np.ones(len(relevant_rows)), np.zeros(len(negative_rows))]
    model = _classifier(learner, seed).fit(x, y)
    if learner == "decision_tree":
        return Learned(query, *marks, tree=model)
    plane = (model.coef_[0].astype(np.float32), float(model.intercept_[0]))
    return Learned(query, *marks, plane=plane)


def ranked(
    index: VectorIndex, learned: Learned, k: int = 100, exclude: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(item ids, scores by the query, ranking keys) of the k first rows of `index` by what
    was learned, never a row `exclude` marks; equal keys by item id. The rows near the k-th
    key (or near the hyperplane) are ranked again with float64 sums, so that a row's place
    does not depend on which rows it was scored with (one index or shards agree)."""
    columns = np.stack(
        [learned.query] + ([learned.plane[0]] if learned.plane is not None else []), 1
    )
    products = index.products(columns)
    every_block = (block for _, block in index.blocks())  # read only when a tree predicts
    key = _keys(index, learned, products[:, 0], _predicted(learned, products, every_block))
    if exclude is not None:
        key[exclude] = -np.inf
    best = top_k(key, k)
    best = best[np.isfinite(key[best])]
    if len(best) == 0:
        return index.item_ids[best], products[best, 0], key[best]
    near = key >= key[best[-1]] - 2 * FLOAT32_TOLERANCE
    if learned.plane is not None:  # a row this near the plane may fall on either side
        near |= np.abs(products[:, 1] + learned.plane[1]) <= FLOAT32_TOLERANCE
    rows = np.flatnonzero(near & np.isfinite(key))
    vectors = index.take(rows)
    exact = widened(vectors, np.float64) @ columns.astype(np.float64)
    rows_key = _keys(index, learned, exact[:, 0], _predicted(learned, exact, [vectors]), rows)
    chosen = top_k(rows_key, k, index.item_ids[rows])
    return (
        index.item_ids[rows[chosen]],
        exact[chosen, 0].astype(np.float32),
        rows_key[chosen].astype(np.float32),
    )


def _predicted(learned: Learned, products: np.ndarray, blocks: Iterable) -> np.ndarray | None:
    """Whether each row is predicted relevant, from its products with the query and the
    hyperplane, or by the tree from its vectors (`blocks` of them, in order); None when no
    learner predicts."""
    if learned.plane is not None:
        return products[:, 1] + learned.plane[1] > 0
    if learned.tree is None:
        return None
    return np.concatenate([learned.tree.predict(block) > 0.5 for block in blocks])


def _keys(
    index: VectorIndex,
    learned: Learned,
    scores: np.ndarray,
    predicted: np.ndarray | None,
    rows: np.ndarray | None = None,
) -> np.ndarray:
    """Each row's ranking key: its score, +4 if predicted relevant (scores lie in [-1, 1]),
    +16 if marked relevant, -16 if marked irrelevant."""
    key = np.asarray(scores, np.float64).copy()
    if predicted is not None:
        key[predicted] += 4.0
    ids = index.item_ids if rows is None else index.item_ids[rows]
    key[np.isin(ids, learned.relevant)] += 16.0
    key[np.isin(ids, learned.irrelevant)] -= 16.0
    return key


def refine(
    index: VectorIndex,
    query: np.ndarray,
    relevant: Sequence[int],
    irrelevant: Sequence[int] = (),
    *,
    learner: str = DEFAULT_LEARNER,
    k: int = 100,
    exclude: np.ndarray | None = None,
    negatives: int = EXTRA_NEGATIVES,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """(item ids, scores) of the k best items after feedback, best first. `exclude` masks
    rows never to return (the filter's exclusions)."""
    learned = learn(
        index, query, relevant, irrelevant, learner=learner, negatives=negatives, seed=seed
    )
    ids, scores, _ = ranked(index, learned, k, exclude)
    return ids, scores
