"""Class scores of stored vectors: the plain prompt baseline and CODER, block by block.

- `prompt`: the cosine with each class's prompt-ensemble vector (bank.py).
- `coder`: the cross-modal neighbour score of CODER (Yi et al., CVPR 2024): the best
  similarity among the class's names and synonyms plus the mean similarity to its
  attribute and analogy texts. A name-or-synonym maximum is read from all name vectors at
  once; the mean over texts is the similarity to their mean vector, so it costs one column
  per class.
- re-rank: when an item's two best classes are within `margin`, its `top` candidates are
  re-scored by the one-vs-one difference texts between them (each candidate gains the mean,
  over the others, of its likeness to "c, not b: ..." less that to "b, not c: ..."). Which
  items are re-ranked depends on their scores only: no label is ever read here (the paper's
  released code chose by the true labels; that is a leak).

- none of these: an item's best class counts only when its score stands out from that
  class's typical score over the collection, by at least `OTHER_BELOW` robust standard
  deviations (median and 1.4826 x the median absolute deviation of the class's scores over
  a sample of the collection's items: the few items that do show the class do not move
  them); an item below is labelled `OTHER`. Without it every item is forced into a class,
  and a class whose words are close to everything (a hub) collects what no class fits.

Vectors are scored `BLOCK` rows at a time, so memory stays bounded whatever the collection.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from .bank import TextBank

METHODS = ("coder", "prompt")
DEFAULT_METHOD = "prompt"  # the best measured on the evaluation world (docs/labels.md)
BLOCK = 4096  # rows scored at once: 4096 x (names + classes) float32 stays ~100 MB
TOP = 5  # candidates a close call is re-ranked among
MARGIN = 0.005  # a close call: the best two scores differ by less (chosen on seed 2000)
WEIGHT = 0.5  # weight of the one-vs-one term in a re-rank (chosen on seed 2000)
CONTEXT = 0.5  # weight of the mean over attribute and analogy texts (paper: 1; seed 2000: 0.5)
OTHER = "other"  # the label of an item that none of a set's classes fits
OTHER_BELOW = 2.5  # robust deviations a class's score must stand out by (chosen on seed 2000)
TYPICAL_SAMPLE = 8192  # items whose scores give each class's typical score and spread


@dataclass(frozen=True)
class Scoring:
    """How class scores are made: the method, and whether and how close calls are re-ranked."""

    method: str = DEFAULT_METHOD
    rerank: bool = True
    top: int = TOP
    margin: float = MARGIN
    weight: float = WEIGHT
    context: float = CONTEXT

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}")


@dataclass(frozen=True)
class Typical:
    """Each class's typical score over a collection and its spread: the median, and 1.4826
    x the median absolute deviation (a normal's standard deviation), of sampled items' scores."""

    median: np.ndarray
    spread: np.ndarray

    @classmethod
    def of(cls, scores: np.ndarray) -> Typical:
        median = np.median(scores, axis=0)
        spread = 1.4826 * np.median(np.abs(scores - median), axis=0)
        return cls(median, np.maximum(spread, 1e-6))

    def standing(self, scores: np.ndarray, classes: np.ndarray) -> np.ndarray:
        """How far each row's score for its class (`classes`, one a row) stands above that
        class's typical score, in spreads."""
        picked = scores[np.arange(len(classes)), classes]
        return (picked - self.median[classes]) / self.spread[classes]


@dataclass(frozen=True)
class Verdicts:
    """Each item's best class and runner-up (indices into the bank's classes), their scores,
    and how far the best stands out from its class's typical score (inf: not measured)."""

    best: np.ndarray
    score: np.ndarray
    second: np.ndarray
    second_score: np.ndarray
    standing: np.ndarray

    FIELDS = ("best", "score", "second", "second_score", "standing")

    def __len__(self) -> int:
        return len(self.best)


def class_scores(bank: TextBank, vectors: np.ndarray, scoring: Scoring) -> np.ndarray:
    """Scores (n x classes) of unit vectors (n x D), re-ranked as `scoring` says."""
    x = np.asarray(vectors, np.float32)
    if scoring.method == "prompt":
        return x @ bank.prompt.T
    # class-major (classes x n): each name's row is gathered whole, which is cheap
    similar = bank.names @ x.T
    slots = bank.name_slots
    by_class = similar[slots[:, 0]]
    for k in range(1, slots.shape[1]):  # a few passes (the most names a class has)
        np.maximum(by_class, similar[slots[:, k]], out=by_class)
    if scoring.context and bank.context_count.any():  # a class without texts adds zero
        by_class += scoring.context * (bank.context @ x.T)
    scores = np.ascontiguousarray(by_class.T)
    if scoring.rerank and bank.pairs:
        _rerank(bank, x, scores, scoring)
    return scores


def in_blocks(vectors: np.ndarray, rows: np.ndarray | None = None) -> Iterator[np.ndarray]:
    """The rows (all, or those listed) of a matrix, possibly memory-mapped float16, as
    float32 blocks of at most BLOCK rows, re-normalised."""
    count = len(vectors) if rows is None else len(rows)
    for start in range(0, count, BLOCK):
        picked = (
            vectors[start : start + BLOCK] if rows is None else vectors[rows[start : start + BLOCK]]
        )
        block = np.asarray(picked, np.float32)
        yield block / np.maximum(np.linalg.norm(block, axis=1, keepdims=True), 1e-12)


def coder_vectors(bank: TextBank, vectors: np.ndarray) -> np.ndarray:
    """CODER vectors: each row's similarities to every name, attribute and analogy text of
    the bank, centred and L2-normalised (so that two images compare by the shape of their
    neighbourhoods, not by CLIP's common offset)."""
    assert bank.text_vectors is not None
    axes = np.vstack([bank.names, bank.text_vectors]).astype(np.float32)
    out = np.asarray(vectors, np.float32) @ axes.T
    out -= out.mean(axis=1, keepdims=True)
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


def best_two(scores: np.ndarray, typical: Typical | None = None) -> Verdicts:
    """The best class and the runner-up of each row of scores, with their scores, and (with
    the classes' `typical` scores) how far the best stands out."""
    rows = np.arange(len(scores))
    if scores.shape[1] == 1:
        two = np.zeros((len(scores), 2), np.int64)
    else:
        two = np.argpartition(-scores, 1, axis=1)[:, :2]
        swap = scores[rows, two[:, 1]] > scores[rows, two[:, 0]]
        two[swap] = two[swap][:, ::-1]
    standing = (
        np.full(len(scores), np.inf) if typical is None else typical.standing(scores, two[:, 0])
    )
    return Verdicts(
        two[:, 0], scores[rows, two[:, 0]], two[:, 1], scores[rows, two[:, 1]], standing
    )


def _rerank(bank: TextBank, x: np.ndarray, scores: np.ndarray, scoring: Scoring) -> None:
    """Re-score, in place, the top candidates of the rows whose best two are close."""
    top = min(scoring.top, scores.shape[1])
    if top < 2:
        return
    candidates = np.argpartition(-scores, top - 1, axis=1)[:, :top]
    ordered = np.take_along_axis(scores, candidates, axis=1)
    order = np.argsort(-ordered, axis=1, kind="stable")
    candidates = np.take_along_axis(candidates, order, axis=1)
    ordered = np.take_along_axis(ordered, order, axis=1)
    close = np.flatnonzero(ordered[:, 0] - ordered[:, 1] < scoring.margin)
    if not len(close):
        return
    keys = np.fromiter((c * len(bank.classes) + b for c, b in bank.pairs), np.int64)
    rows_of_keys = np.fromiter(bank.pairs.values(), np.int64)
    sort = np.argsort(keys)
    keys, rows_of_keys = keys[sort], rows_of_keys[sort]

    def pair_rows(c: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Rows of the ordered pairs (c, b) in bank.differences; -1 where there is none."""
        wanted = c * len(bank.classes) + b
        at = np.clip(np.searchsorted(keys, wanted), 0, len(keys) - 1)
        return np.where(keys[at] == wanted, rows_of_keys[at], -1)

    cand, xs = candidates[close], x[close]
    gain = np.zeros(cand.shape, np.float32)
    count = np.zeros(cand.shape, np.float32)
    for i in range(top):
        for j in range(top):
            if i == j:
                continue
            forward, backward = pair_rows(cand[:, i], cand[:, j]), pair_rows(cand[:, j], cand[:, i])
            both = (forward >= 0) & (backward >= 0)
            if not both.any():
                continue
            lean = bank.differences[forward[both]] - bank.differences[backward[both]]
            gain[both, i] += np.einsum("nd,nd->n", xs[both], lean)
            count[both, i] += 1
    adjusted = ordered[close] + scoring.weight * gain / np.maximum(count, 1)
    scores[close[:, None], cand] = adjusted
