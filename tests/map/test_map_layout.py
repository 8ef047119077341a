"""The map's layout (issue 42): like lies near like, placed items land among their likes and
inside the map drawn, nothing placed later moves what was there, and cluster words are words."""

import numpy as np
import pytest

from sashie.map.layout import fit, nearest_centre
from sashie.map.words import cluster_words, vocabulary


def blobs(count: int, kinds: int = 4, dim: int = 64, seed: int = 0):
    """Unit vectors around `kinds` random centres, and each one's kind."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(kinds, dim))
    kind = rng.integers(0, kinds, count)
    vectors = centres[kind] + rng.normal(0, 0.35, (count, dim))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors.astype(np.float32), kind


def neighbours_alike(places: np.ndarray, kind: np.ndarray, k: int = 10) -> float:
    gaps = ((places[:, None] - places[None]) ** 2).sum(-1)
    np.fill_diagonal(gaps, np.inf)
    near = np.argsort(gaps, axis=1)[:, :k]
    return float((kind[near] == kind[:, None]).mean())


def test_like_lies_near_like_and_the_rest_is_placed_among_its_likes():
    vectors, kind = blobs(900)
    layout = fit(vectors[:600], seed=1)
    assert layout.places.shape == (600, 2) and np.abs(layout.places).max() <= 0.951
    assert neighbours_alike(layout.places, kind[:600]) > 0.95
    places, clusters = layout.place(iter([vectors[600:750], vectors[750:]]))
    assert places.shape == (300, 2) and clusters.shape == (300,)
    everything = np.concatenate([layout.places, places])
    assert neighbours_alike(everything, kind) > 0.95
    # a placed item lies inside the box of the sample's places (a median never leaves it)
    low, high = layout.places.min(0), layout.places.max(0)
    assert ((places >= low) & (places <= high)).all()
    # and in the cluster of the centre it lies nearest
    assert (clusters == nearest_centre(places, layout.centres)).all()


def test_a_random_layout_scores_what_chance_gives():
    """The measure above can fail: random places give about 1/kinds."""
    _, kind = blobs(600)
    rng = np.random.default_rng(0)
    assert neighbours_alike(rng.uniform(-1, 1, (600, 2)), kind) < 0.4


@pytest.mark.parametrize("count", [1, 2, 3, 5])
def test_a_handful_of_items_still_gets_a_map(count):
    vectors, _ = blobs(count)
    layout = fit(vectors, seed=0)
    assert layout.places.shape == (count, 2) and np.isfinite(layout.places).all()
    places, _ = layout.place(iter([vectors]))
    assert np.isfinite(places).all()


def test_cluster_words_are_whole_words_nearest_what_sets_a_cluster_apart():
    from transformers import AutoTokenizer

    from sashie.encoders.registry import DEMO_MODEL, MODELS_DIR

    words = vocabulary(AutoTokenizer.from_pretrained(MODELS_DIR / DEMO_MODEL))
    assert {"illustration", "drawing", "mountain", "tree"} <= set(words)
    assert not {"illustra", "dra", "pic"} & set(words)  # pieces of words are not words
    axes = np.eye(3, dtype=np.float32)
    members = [axes[[0, 0]] + 0.1, axes[[1]] + 0.1, axes[[2, 2, 2]] + 0.1]
    named = cluster_words(members, axes, ["first", "second", "third"])
    assert [n[0] for n in named] == ["first", "second", "third"]
