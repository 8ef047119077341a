"""Fingerprints: one short vector a picture, made from its local features, so that the
printings of one picture lie near each other where CLIP's vectors, which see what a picture
shows rather than which picture it is, scatter them.

A fingerprint is a VLAD (Jégou et al., 2010): each SIFT descriptor (as RootSIFT, reduced to
REDUCED numbers) is given to the nearest of WORDS visual words, and the picture is the sum of
its descriptors' offsets from their words, word by word (signed square roots, each word's
part to length 1), to length 1: DIMS = WORDS x REDUCED numbers. (Projecting them to fewer by
PCA lost a tenth to a third of the printings from the top ten on the tuning world.)
Printings share most of their corners and crossings, so their fingerprints' inner product
is high; a crop or a worn block shares fewer but still more than another picture does. A
mirror copy is found by the fingerprint of the query's mirrored features
(matching.mirrored).

The codebook (the reduction and the words) ships with sashie: it was learned by
`python -m sashie.eval.world.train_codebook OUT` on a printings world of its own seed (3), not
those the benchmark reports, and does not change as a library grows, so fingerprints made
on different days can be compared.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..store.tensor_files import read_tensors
from .matching import Features

WORDS = 64  # visual words
REDUCED = 32  # numbers a descriptor is reduced to
DIMS = WORDS * REDUCED  # numbers a fingerprint keeps
CODEBOOK = Path(__file__).with_name("codebook.safetensors")
TRAINING_SEED = 3  # the printings world the shipped codebook was learned on


@dataclass(frozen=True)
class Codebook:
    """What turns features into a fingerprint: the descriptors' mean and reduction
    (REDUCED x 128) and the words (WORDS x REDUCED)."""

    mean: np.ndarray
    reduce: np.ndarray
    words: np.ndarray

    def fingerprint(self, found: Features) -> np.ndarray:
        """The picture's fingerprint (DIMS numbers of length 1; zeros when it has no
        features)."""
        descriptors = found.descriptors
        if len(descriptors) == 0:
            return np.zeros(DIMS, np.float32)
        reduced = (_root(descriptors) - self.mean) @ self.reduce.T
        gaps = (reduced**2).sum(1)[:, None] - 2 * reduced @ self.words.T + (self.words**2).sum(1)
        word = gaps.argmin(axis=1)
        sums = np.zeros((WORDS, REDUCED), np.float32)
        np.add.at(sums, word, reduced - self.words[word])
        sums = np.sign(sums) * np.sqrt(np.abs(sums))
        sums /= np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12)
        return sums.ravel() / max(float(np.linalg.norm(sums)), 1e-12)

    def save(self, path: Path, metadata: dict[str, str]) -> None:
        from safetensors.numpy import save_file

        tensors = {name: np.ascontiguousarray(getattr(self, name), np.float32) for name in _NAMES}
        save_file(tensors, str(path), metadata=metadata)


_NAMES = ("mean", "reduce", "words")


def _root(descriptors: np.ndarray) -> np.ndarray:
    """RootSIFT: each descriptor to unit sum, square-rooted (Arandjelović & Zisserman)."""
    d = descriptors.astype(np.float32)
    return np.sqrt(d / np.maximum(d.sum(axis=1, keepdims=True), 1e-7))


@lru_cache(maxsize=1)
def codebook() -> Codebook:
    """The codebook that ships with sashie."""
    tensors, _ = read_tensors(CODEBOOK)
    return Codebook(*(tensors[name] for name in _NAMES))


def train(descriptor_sets: list[np.ndarray], *, seed: int = 0) -> Codebook:
    """A codebook learned from the descriptors of many pictures (one array each)."""
    import faiss

    rng = np.random.default_rng(seed)
    every = np.concatenate([_root(d) for d in descriptor_sets if len(d)])
    sample = every[rng.choice(len(every), min(len(every), 200_000), replace=False)]
    mean = sample.mean(axis=0)
    _, _, axes = np.linalg.svd(sample - mean, full_matrices=False)
    reduce = axes[:REDUCED]
    kmeans = faiss.Kmeans(REDUCED, WORDS, niter=25, seed=seed)
    kmeans.train(np.ascontiguousarray((sample - mean) @ reduce.T, np.float32))
    return Codebook(mean, reduce, np.asarray(kmeans.centroids, np.float32))
