"""Ranking metrics over a scored collection: precision at k and average precision."""

from __future__ import annotations

import numpy as np

from ..search.ranking import top_k


def precision_at(scores: np.ndarray, relevant: np.ndarray, k: int) -> float:
    """The share of relevant items among the k best scored."""
    return float(relevant[top_k(scores, k)].mean()) if len(scores) else 0.0


def average_precision(scores: np.ndarray, relevant: np.ndarray) -> float:
    """Mean of the precisions at each relevant item's rank (0 when none is relevant)."""
    if not relevant.any():
        return 0.0
    order = np.argsort(-scores, kind="stable")
    hits = relevant[order]
    precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float((precision * hits).sum() / hits.sum())


def recall_at(scores: np.ndarray, relevant: np.ndarray, k: int) -> float:
    """The share of the relevant items found in the k best scored, out of at most k (so a
    ranking that fills its top k with relevant items scores 1 however many there are)."""
    total = int(relevant.sum())
    if total == 0:
        return 0.0
    return float(relevant[top_k(scores, k)].sum() / min(k, total))


def average_precision_at(scores: np.ndarray, relevant: np.ndarray, k: int) -> float:
    """Average precision over the k best scored: the precisions at each relevant item's rank
    within them, over min(k, relevant items) (mAP@k's term for one query)."""
    total = int(relevant.sum())
    if total == 0:
        return 0.0
    hits = relevant[top_k(scores, k)].astype(np.float64)
    precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float((precision * hits).sum() / min(k, total))
