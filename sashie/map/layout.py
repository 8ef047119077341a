"""A 2-D layout of vectors (issue 42), fast enough for a million on two cores.

t-SNE (openTSNE) lays out a sample of at most SAMPLE vectors, reduced by PCA to DIMS numbers.
Every other vector, and every vector added later, is placed where most of its NEIGHBOURS
nearest sampled vectors lie: the coordinate-wise median of their places (openTSNE's own
start for new points). A median of places never leaves the sample's hull, so later items
land inside the map that was drawn, and nothing already placed moves.

Places are scaled to [-1, 1] on the longer side (WebGL's clip space, where the page draws them).
Clusters are k-means of the sample's places (so a cluster is an island one sees); an item
belongs to the nearest cluster centre.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

SAMPLE = 20_000  # vectors t-SNE lays out; the rest are placed among them
DIMS = 50  # PCA numbers t-SNE and the placing read
NEIGHBOURS = 10  # sampled vectors a placed one lies among
BLOCK = 65_536  # vectors placed at a time
MARGIN = 0.95  # the sample's places span [-MARGIN, MARGIN] on the longer side


@dataclass
class Layout:
    """What placing needs: the PCA, the sample's reduced vectors and places, the clusters'
    centres; and each laid-out item's place and cluster."""

    mean: np.ndarray  # (d,) PCA's centre
    components: np.ndarray  # (DIMS, d)
    anchors: np.ndarray  # (s, DIMS) the sample, reduced
    anchor_places: np.ndarray  # (s, 2)
    centres: np.ndarray  # (c, 2) cluster centres
    places: np.ndarray  # (n, 2) float32
    clusters: np.ndarray  # (n,) int32

    def reduce(self, vectors: np.ndarray) -> np.ndarray:
        return ((np.asarray(vectors, np.float32) - self.mean) @ self.components.T).astype(
            np.float32
        )

    def place(
        self, blocks: Iterator[np.ndarray], progress: Callable[[int], None] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Places and clusters of vectors given block by block (none of them is moved)."""
        import faiss  # loaded when a map is drawn: commands that draw none start fast

        index = faiss.IndexFlatL2(self.anchors.shape[1])
        index.add(self.anchors)
        k = min(NEIGHBOURS, len(self.anchors))
        places, clusters = [], []
        for block in blocks:
            _, near = index.search(self.reduce(block), k)
            placed = np.median(self.anchor_places[near], axis=1).astype(np.float32)
            places.append(placed)
            clusters.append(nearest_centre(placed, self.centres))
            if progress:
                progress(len(block))
        if not places:
            return np.zeros((0, 2), np.float32), np.zeros(0, np.int32)
        return np.concatenate(places), np.concatenate(clusters)


def fit(
    sample: np.ndarray, *, seed: int = 0, clusters: int | None = None, cores: int | None = None
) -> Layout:
    """Lay out `sample` (at most SAMPLE vectors, float32) by t-SNE after PCA; its clusters
    (k-means of the places: `clusters`, or one per 400 items, 2 to 48)."""
    import faiss

    sample = np.asarray(sample, np.float32)
    count, dim = sample.shape
    mean = sample.mean(axis=0)
    dims = max(1, min(DIMS, dim, count - 1))
    pca = faiss.PCAMatrix(dim, dims)
    pca.train(sample)
    components = faiss.vector_to_array(pca.A).reshape(dims, dim).astype(np.float32)
    mean = faiss.vector_to_array(pca.mean).astype(np.float32)
    reduced = ((sample - mean) @ components.T).astype(np.float32)
    places = _tsne(reduced, seed, cores or os.cpu_count() or 1)
    places = _scaled(places)
    wanted = clusters or int(np.clip(count // 400, 2, 48))
    centres = _centres(places, min(wanted, count), seed)
    return Layout(
        mean=mean,
        components=components,
        anchors=reduced,
        anchor_places=places,
        centres=centres,
        places=places,
        clusters=nearest_centre(places, centres),
    )


def _tsne(reduced: np.ndarray, seed: int, cores: int) -> np.ndarray:
    count = len(reduced)
    if count < 4:  # t-SNE needs a few neighbours; a handful of items is laid on a line
        return np.stack([np.arange(count, dtype=np.float32), np.zeros(count, np.float32)], 1)
    from openTSNE import TSNE

    perplexity = float(min(30, (count - 1) / 3))
    tsne = TSNE(
        perplexity=perplexity, n_jobs=cores, random_state=seed, verbose=False,
        negative_gradient_method="fft" if count > 5_000 else "bh",
    )  # fmt: skip
    return np.asarray(tsne.fit(reduced), np.float32)


def _scaled(places: np.ndarray) -> np.ndarray:
    """Centred and scaled so that the longer side spans [-MARGIN, MARGIN]."""
    low, high = places.min(axis=0), places.max(axis=0)
    span = float((high - low).max()) or 1.0
    return ((places - (low + high) / 2) * (2 * MARGIN / span)).astype(np.float32)


def _centres(places: np.ndarray, count: int, seed: int) -> np.ndarray:
    import faiss

    if count <= 1:
        return places.mean(axis=0, keepdims=True).astype(np.float32)
    kmeans = faiss.Kmeans(2, count, niter=25, seed=seed, verbose=False, min_points_per_centroid=1)
    kmeans.train(np.ascontiguousarray(places, np.float32))
    assert kmeans.centroids is not None  # set by train
    return kmeans.centroids.astype(np.float32)


def nearest_centre(places: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Each place's nearest centre."""
    gaps = ((places[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2)
    return gaps.argmin(axis=1).astype(np.int32)
