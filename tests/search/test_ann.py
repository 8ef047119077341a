"""The ANN index (sashie/search/ann.py) under VectorIndex.search: recall against the exact
scan on clustered vectors, exclusions, subspace queries, examples, and its file."""

import json

import numpy as np
import pytest

from sashie.library.searching import rows_outside
from sashie.search.ann import AnnIndex, choose_kind, pq_subquantizers
from sashie.search.ranking import AnnSearch, VectorIndex, cv_dimensions
from sashie.store.books import BookRuns

ROWS, DIM, K = 50_000, 128, 100


def clustered(rng, rows: int, dim: int, clusters: int = 400) -> np.ndarray:
    """Unit vectors in clusters of different spread, float16 as a library stores them."""
    centres = rng.standard_normal((clusters, dim))
    spread = rng.uniform(0.3, 1.0, clusters)
    which = rng.integers(0, clusters, rows)
    x = centres[which] + spread[which, None] * rng.standard_normal((rows, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float16)


def queries(rng, vectors: np.ndarray, count: int) -> dict[str, np.ndarray]:
    """Image-like queries (near library vectors) and text-like ones (near them, shifted by
    one common offset: the modality gap between a CLIP's text and image vectors)."""
    near = vectors[rng.integers(0, len(vectors), count)].astype(np.float32)
    gap = rng.standard_normal(vectors.shape[1])
    out = {
        "image": near + 0.3 * rng.standard_normal(near.shape) / np.sqrt(vectors.shape[1]),
        "text": near + 0.6 * gap / np.linalg.norm(gap),
    }
    return {
        k: (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32) for k, q in out.items()
    }


def recall(index: VectorIndex, qs: np.ndarray, **kwargs) -> float:
    hits = []
    for q in qs:
        exact, _ = index.search(q, K, how=AnnSearch(exact=True), **kwargs)
        found, _ = index.search(q, K, **kwargs)
        hits.append(len(set(exact.tolist()) & set(found.tolist())) / max(len(exact), 1))
    return float(np.mean(hits))


@pytest.fixture(scope="module")
def world():
    rng = np.random.default_rng(0)
    vectors = clustered(rng, ROWS, DIM)
    return vectors, queries(rng, vectors, 30), np.arange(ROWS) + 7


@pytest.mark.parametrize(
    "kind",
    [
        pytest.param("hnsw", marks=pytest.mark.slow),
        "ivf",
        pytest.param("ivfpq", marks=pytest.mark.slow),
    ],
)
def test_recall_at_100_on_clustered_vectors(world, kind):
    vectors, qs, ids = world
    index = VectorIndex(vectors, ids, ann=AnnIndex.build(kind, vectors))
    for name, q in qs.items():
        assert recall(index, q) >= 0.95, (kind, name)
    # what comes back is ranked by the exact score, whatever the index's codes say
    found, scores = index.search(qs["image"][0], K)
    np.testing.assert_allclose(
        scores, vectors[found - 7].astype(np.float32) @ qs["image"][0], atol=1e-6
    )
    assert np.all(np.diff(scores) <= 0)


@pytest.mark.parametrize("kind", [pytest.param("hnsw", marks=pytest.mark.slow), "ivf", "ivfpq"])
def test_exclusions_hold_and_examples_and_subspaces_work(world, kind):
    vectors, qs, ids = world
    rng = np.random.default_rng(1)
    index = VectorIndex(vectors, ids, ann=AnnIndex.build(kind, vectors))
    exclude = rng.random(ROWS) < 0.7  # the seed's filter drops about 70 % of the crops
    q = qs["image"][:10]
    assert recall(index, q, exclude=exclude) >= 0.95
    for one in q:
        found, _ = index.search(one, K, exclude=exclude)
        assert len(found) == K and not exclude[found - 7].any()
    examples = vectors[:3].astype(np.float32)
    assert recall(index, q[:5], examples=examples, weight=0.5) >= 0.9
    dims = cv_dimensions(q[:4], 48)
    # candidates come from the query restricted to the dimensions (from the whole query:
    # 0.91-0.92 here); the cost is measured in docs/search.md
    assert recall(index, q[:5], dims=dims) >= 0.95


def test_exact_when_the_index_covers_everything_it_is_asked_for():
    """On a small set the graph and the cells see every row: ANN and exact agree exactly."""
    rng = np.random.default_rng(2)
    vectors = clustered(rng, 500, 32, clusters=10)
    q = queries(rng, vectors, 5)["image"]
    for kind, how in (("hnsw", AnnSearch(ef=1000)), ("ivf", AnnSearch(nprobe=64))):
        index = VectorIndex(vectors, np.arange(500), ann=AnnIndex.build(kind, vectors))
        for one in q:
            exact = index.search(one, 20, how=AnnSearch(exact=True))
            found = index.search(one, 20, how=how)
            np.testing.assert_array_equal(found[0], exact[0])
            np.testing.assert_array_equal(found[1], exact[1])


def test_rows_added_later_are_found_before_the_index_has_them(tmp_path):
    rng = np.random.default_rng(3)
    vectors = clustered(rng, 3000, 32, clusters=20)
    ann = AnnIndex.build("hnsw", vectors[:2000])
    index = VectorIndex(vectors, np.arange(3000), ann=ann)
    found, _ = index.search(vectors[2500].astype(np.float32), 5)
    assert found[0] == 2500  # a row past the index is scanned exactly
    ann.add(vectors)
    assert ann.rows == 3000
    ann.save(tmp_path / "ann.index")
    again = AnnIndex.load(tmp_path / "ann.index", 32, 3000)
    assert again is not None and again.rows == 3000 and again.kind == "hnsw"
    index = VectorIndex(vectors, np.arange(3000), ann=again)
    assert index.search(vectors[2500].astype(np.float32), 5)[0][0] == 2500


def test_a_file_that_is_not_a_sound_index_is_ignored(tmp_path):
    rng = np.random.default_rng(4)
    vectors = clustered(rng, 400, 16, clusters=8)
    path = tmp_path / "ann.index"
    AnnIndex.build("ivf", vectors).save(path)
    assert AnnIndex.load(path, 16, 400) is not None
    assert AnnIndex.load(path, 32, 400) is None  # another dimension
    assert AnnIndex.load(path, 16, 399) is None  # more rows than the vector file has
    data = path.read_bytes()
    for bad in (
        data[: len(data) // 2],  # cut short
        b'{"format": "sashie-ann"}\n' + data.split(b"\n", 1)[1],  # a header without facts
        data.split(b"\n", 1)[0] + b"\n" + bytes(200),  # not a FAISS index
        b"x" * 10_000,  # no header line at all
    ):
        path.write_bytes(bad)
        assert AnnIndex.load(path, 16, 400) is None
    # a tampered setting (how far a filter widens the cells) is not trusted either
    header, body = data.split(b"\n", 1)
    for cover in ("1e9", "-3", "0", '"8"', "null"):
        settings = json.loads(header)
        settings["settings"]["cover"] = json.loads(cover)
        path.write_bytes(json.dumps(settings).encode() + b"\n" + body)
        assert AnnIndex.load(path, 16, 400) is None, cover


def test_the_kind_follows_the_size():
    assert choose_kind(1_000) == "exact"
    assert choose_kind(1_140_000) == "ivf"
    assert choose_kind(10_000_000) == "ivfpq"
    # ivf's float16 codes must fit in a quarter of the memory, else ivfpq
    assert choose_kind(1_500_000, 512, memory=8 * 2**30) == "ivf"
    assert choose_kind(1_500_000, 512, memory=4 * 2**30) == "ivfpq"
    # ivfpq: a 4-bit code a dimension while those fit in a quarter of the memory, else a pair
    assert pq_subquantizers(10_000_000, 512, memory=24 * 2**30) == 512
    assert pq_subquantizers(100_000_000, 512, memory=24 * 2**30) == 256


@pytest.mark.parametrize("kept", [0.9, 0.3, 0.1, 0.02])
def test_a_filter_of_any_breadth_keeps_out_what_it_leaves_out_and_finds_the_rest(world, kept):
    """Broad filters go through FAISS unfiltered and are dropped after; narrow ones leave
    8,192 rows or fewer here and are scored exactly (FAISS's selector path, for narrow
    filters of larger indexes, is tested on the index itself below): either way nothing left
    out comes back and the top 100 is found."""
    vectors, qs, ids = world
    index = VectorIndex(vectors, ids, ann=AnnIndex.build("ivf", vectors))
    exclude = np.random.default_rng(4).random(ROWS) >= kept
    q = qs["text"][:8]
    assert recall(index, q, exclude=exclude) >= 0.95
    for one in q:
        found, _ = index.search(one, K, exclude=exclude)
        assert len(found) == K and not exclude[found - 7].any()


def test_a_narrow_filter_kept_for_later_searches_is_read_afresh_when_it_may_have_changed(world):
    """FAISS's bitmap of a read-only mask (a library's remembered filter) is kept for the next
    search; a mask that can change, or another mask, is read afresh."""
    vectors, qs, _ = world
    ann = AnnIndex.build("ivf", vectors)
    q = qs["text"][:1]
    first = np.random.default_rng(6).random(ROWS) >= 0.05  # narrow: FAISS's selector
    second = np.random.default_rng(7).random(ROWS) >= 0.05

    def allowed(exclude):
        found = ann.search(q, K, exclude)[0]
        return len(found) == K and not exclude[found].any()

    changing = first.copy()
    assert allowed(changing)
    changing[:] = second  # the same array, other rows: searched as it now reads
    assert allowed(changing)
    kept = first.copy()
    kept.flags.writeable = False
    assert allowed(kept) and allowed(kept)
    np.testing.assert_array_equal(ann.search(q, K, kept), ann.search(q, K, first))
    view = second.copy()[:]
    view.flags.writeable = False  # read-only, but a view of memory that may change
    assert allowed(view)
    view.base[:] = first
    assert allowed(view)


def test_how_far_a_filter_widens_the_cells_is_measured_on_the_vectors_when_built(tmp_path):
    """Many small clusters need the cells widened more for a filter than a few large ones:
    the index measures it when built, keeps it in its file, and either way a filter's top
    100 is found (filters of another seed than the index measured with)."""
    covers = {}
    for clusters in (400, 40):
        rng = np.random.default_rng(clusters)
        vectors = clustered(rng, ROWS, DIM, clusters=clusters)
        ann = AnnIndex.build("ivf", vectors)
        covers[clusters] = ann.settings["cover"]
        ann.save(tmp_path / "ann.index")
        assert (
            AnnIndex.load(tmp_path / "ann.index", DIM, ROWS).settings["cover"] == covers[clusters]
        )
        qs = queries(rng, vectors, 10)["text"]
        scores = vectors.astype(np.float32) @ qs.T
        for share in (0.3, 0.05):
            excluded = rng.random(ROWS) >= share
            found = ann.search(qs, K, excluded, cover_for=2 * K)
            best = np.argsort(-np.where(excluded[:, None], -np.inf, scores), axis=0)[:K].T
            hits = [len(np.intersect1d(f, b)) / K for f, b in zip(found, best, strict=True)]
            assert np.mean(hits) >= 0.95, (clusters, share)
    assert covers == {400: 8, 40: 4}


def test_rows_of_books_marked_by_runs_agree_with_a_row_by_row_lookup():
    rng = np.random.default_rng(5)
    row_books = np.repeat(rng.integers(0, 40, 300), rng.integers(1, 9, 300))  # runs, repeats
    runs = BookRuns.of(row_books)
    assert runs.lengths.sum() == len(row_books)
    for allowed in (np.array([], np.int64), np.array([0]), np.array([3, 7, 39, 99, -1])):
        outside, kept = rows_outside(runs, allowed)
        np.testing.assert_array_equal(outside, ~np.isin(row_books, allowed[allowed >= 0]))
        assert kept == np.count_nonzero(~outside)
    assert rows_outside(BookRuns.of(np.zeros(0, np.int64)), np.array([1]))[0].shape == (0,)
