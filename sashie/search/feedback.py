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

from collections.abc import Sequence

import numpy as np

from ..errors import SashieError
from .ranking import VectorIndex, restrict, top_k_allowed

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
    query = restrict(query, None)
    relevant_rows = _rows(index, relevant)
    irrelevant_rows = _rows(index, irrelevant)
    if len(relevant_rows) == 0:
        raise SashieError("mark at least one result as relevant")
    if learner == "rocchio":
        a, b, c = ROCCHIO
        moved = a * query + b * index.take(relevant_rows).mean(0)
        if len(irrelevant_rows):
            moved -= c * index.take(irrelevant_rows).mean(0)
        scores = index.products(restrict(moved, None)[:, None])[:, 0]
        key = scores
    else:
        marked = np.concatenate([relevant_rows, irrelevant_rows])
        negative_rows = np.concatenate(
            [irrelevant_rows, _random_rows(len(index), marked, negatives, seed)]
        )
        x = index.take(np.concatenate([relevant_rows, negative_rows]))
        y = np.r_[np.ones(len(relevant_rows)), np.zeros(len(negative_rows))]
        model = _classifier(learner, seed).fit(x, y)
        if learner == "decision_tree":
            scores = index.products(query[:, None])[:, 0]
            predicted = np.concatenate([model.predict(block) > 0.5 for _, block in index.blocks()])
        else:  # one pass over the vectors for the query and the hyperplane together
            w = model.coef_[0].astype(np.float32)
            both = index.products(np.stack([query, w], 1))
            scores, predicted = both[:, 0], both[:, 1] + model.intercept_[0] > 0
        # the items predicted relevant first, each group ranked by the query
        key = np.where(predicted, scores + 4.0, scores)  # scores lie in [-1, 1]
    # what the user judged stays judged: marked relevant first, marked irrelevant last
    key = key.astype(np.float32)
    key[relevant_rows] += 16.0
    key[irrelevant_rows] -= 16.0
    best = top_k_allowed(key, k, exclude)
    return index.item_ids[best], scores[best].astype(np.float32)
