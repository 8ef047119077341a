"""Ranking: exact top-k by inner product over a float32 matrix held in RAM.

A query is a vector, optionally with a set of dimensions S. With S, every library vector is
restricted to S and re-normalized before the inner product, as the seed paper's multi-image
query does. That is computed block by block (rows that fit in cache): the dot product with the
query (zero outside S) and each row's norm over S, so the matrix is never copied.
"""

from __future__ import annotations

import numpy as np

BLOCK_ROWS = 1024  # 1024 x 512 float32 = 2 MiB: the block stays in cache between its two passes
DEFAULT_K = 100  # results a search returns unless asked for another number


def cv_dimensions(examples: np.ndarray, d: int) -> np.ndarray:
    """The d dimensions whose coefficient of variation σ_j/|μ_j| over the examples is lowest."""
    examples = np.asarray(examples, dtype=np.float64)
    mean = examples.mean(axis=0)
    std = examples.std(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        cv = np.where(np.abs(mean) > 0, std / np.abs(mean), np.inf)
    d = min(d, examples.shape[1])
    return np.sort(np.argsort(cv, kind="stable")[:d])


def random_dimensions(dim: int, d: int, seed: int) -> np.ndarray:
    """The paper's control: d dimensions drawn at random with a seed."""
    return np.sort(np.random.default_rng(seed).choice(dim, size=min(d, dim), replace=False))


def restrict(vector: np.ndarray, dims: np.ndarray | None) -> np.ndarray:
    """The vector zeroed outside `dims` (all kept when None), re-normalized, float32."""
    vector = np.asarray(vector, dtype=np.float32)
    if dims is not None:
        kept = np.zeros_like(vector)
        kept[dims] = vector[dims]
        vector = kept
    norm = np.linalg.norm(vector)
    if norm == 0:
        raise ValueError("the query vector is zero on the selected dimensions")
    return vector / norm


def top_k_allowed(scores: np.ndarray, k: int, exclude: np.ndarray | None) -> np.ndarray:
    """Indices of the k highest scores, best first, never a row the mask `exclude` marks
    (`scores` is changed in place)."""
    if exclude is not None:
        scores[exclude] = -np.inf
    best = top_k(scores, k)
    return best[np.isfinite(scores[best])]


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k highest scores, best first."""
    k = min(k, len(scores))
    if k <= 0:
        return np.zeros(0, np.int64)
    if k < len(scores):
        candidates = np.argpartition(-scores, k - 1)[:k]
    else:
        candidates = np.arange(len(scores))
    return candidates[np.argsort(-scores[candidates], kind="stable")]


class VectorIndex:
    """Rows of unit vectors (float32, in RAM) and the item id of each row."""

    def __init__(self, vectors: np.ndarray, item_ids: np.ndarray) -> None:
        if vectors.dtype != np.float32 or not vectors.flags.c_contiguous:
            raise ValueError("VectorIndex needs a C-contiguous float32 matrix")
        self.vectors = vectors
        self.item_ids = np.asarray(item_ids, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.item_ids)

    @property
    def dim(self) -> int:
        return self.vectors.shape[1]

    def scores(
        self,
        query: np.ndarray,
        dims: np.ndarray | None = None,
        examples: np.ndarray | None = None,
        weight: float = 1.0,
        sharpness: float = 5.0,
    ) -> np.ndarray:
        """Inner products with every row; with `dims`, of rows restricted to them and re-normed.

        With `examples` (unit vectors of pictures the query is known to mean, see memory.py),
        each row also gains weight · exp(−sharpness · (1 − its best similarity to one))."""
        query = restrict(query, dims)
        if examples is not None and len(examples):
            if dims is not None:
                raise ValueError("examples and dimension selection do not combine")
            return self._scores_with_examples(query, examples, weight, sharpness)
        if dims is None:
            return self.vectors @ query
        mask = np.zeros(self.dim, np.float32)
        mask[dims] = 1.0
        out = np.empty(len(self.vectors), np.float32)
        block = np.empty((BLOCK_ROWS, self.dim), np.float32)  # per call: searches may overlap
        for start in range(0, len(self.vectors), BLOCK_ROWS):
            rows = self.vectors[start : start + BLOCK_ROWS]
            squares = block[: len(rows)]
            np.multiply(rows, rows, out=squares)
            norms = np.sqrt(np.maximum(squares @ mask, 1e-12))
            np.divide(rows @ query, norms, out=out[start : start + len(rows)])
        return out

    def _scores_with_examples(
        self, query: np.ndarray, examples: np.ndarray, weight: float, sharpness: float
    ) -> np.ndarray:
        columns = np.ascontiguousarray(np.vstack([query, examples]).T, np.float32)
        out = np.empty(len(self.vectors), np.float32)
        for start in range(0, len(self.vectors), BLOCK_ROWS):
            products = self.vectors[start : start + BLOCK_ROWS] @ columns
            nearest = products[:, 1:].max(axis=1)
            out[start : start + len(products)] = products[:, 0] + weight * np.exp(
                -sharpness * (1.0 - nearest)
            )
        return out

    def search(
        self,
        query: np.ndarray,
        k: int = 100,
        dims: np.ndarray | None = None,
        exclude: np.ndarray | None = None,
        examples: np.ndarray | None = None,
        weight: float = 1.0,
        sharpness: float = 5.0,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(item ids, scores) of the k best rows, best first; rows where the boolean mask
        `exclude` is true are never returned. `examples`: see `scores`."""
        scores = self.scores(query, dims, examples, weight, sharpness)
        best = top_k_allowed(scores, k, exclude)
        return self.item_ids[best], scores[best]
