import numpy as np
import pytest

from sashie.errors import SashieError
from sashie.search.query import Term, parse_dims, parse_query
from sashie.search.ranking import VectorIndex, cv_dimensions, random_dimensions, top_k


def unit_rows(rng, n, d):
    """Unit rows as a library stores them: float16 values (held here as float32)."""
    x = rng.standard_normal((n, d)).astype(np.float32)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float16).astype(np.float32)


def paper_multi_image_ranking(examples, library, d):
    """The seed paper's method, transcribed literally with NumPy (copies and all)."""
    mu = examples.mean(axis=0)
    sigma = examples.std(axis=0)
    cv = sigma / np.abs(mu)
    if d == "all":
        S = np.arange(examples.shape[1])
    else:
        S = np.argsort(cv)[:d]
    q = mu[S] / np.linalg.norm(mu[S])
    V = library[:, S] / np.linalg.norm(library[:, S], axis=1, keepdims=True)
    return set(S.tolist()), V @ q


@pytest.mark.parametrize("d", [8, 24, 63, 64, "all"])
def test_cv_selection_matches_the_formula(d):
    rng = np.random.default_rng(3)
    library = unit_rows(rng, 500, 64)
    examples = unit_rows(rng, 6, 64) + 0.8 * library[7]
    examples /= np.linalg.norm(examples, axis=1, keepdims=True)
    expected_dims, expected_scores = paper_multi_image_ranking(examples, library, d)

    dims = None if d == "all" else cv_dimensions(examples, d)
    if dims is not None:
        assert set(dims.tolist()) == expected_dims and len(dims) == d
    index = VectorIndex(library.copy(), np.arange(500) + 1000)
    scores = index.scores(examples.mean(axis=0), dims)
    # float16 rows have norms within 1e-4 of 1; the transcript re-normalises them
    np.testing.assert_allclose(scores, expected_scores, atol=1e-5 if dims is not None else 2e-4)
    ids, _best = index.search(examples.mean(axis=0), k=10, dims=dims)
    np.testing.assert_array_equal(ids, np.argsort(-expected_scores)[:10] + 1000)


def test_d_larger_than_the_model_is_capped():
    rng = np.random.default_rng(0)
    examples = unit_rows(rng, 3, 16)
    assert len(cv_dimensions(examples, 192)) == 16
    assert len(random_dimensions(16, 192, seed=1)) == 16


def test_random_control_is_seeded_and_differs_from_cv():
    a, b = random_dimensions(512, 192, seed=5), random_dimensions(512, 192, seed=5)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, random_dimensions(512, 192, seed=6))
    assert len(np.unique(a)) == 192


def test_subspace_scores_span_several_blocks():
    """More rows than one block: every block boundary is handled."""
    rng = np.random.default_rng(1)
    library = unit_rows(rng, 2500, 32)
    dims = np.array([1, 4, 9, 16, 25, 30])
    q = unit_rows(rng, 1, 32)[0]
    sub = library[:, dims]
    query = q[dims] / np.linalg.norm(q[dims])
    expected = (sub / np.linalg.norm(sub, axis=1, keepdims=True)) @ query
    np.testing.assert_allclose(
        VectorIndex(library, np.arange(2500)).scores(q, dims), expected, atol=1e-5
    )


def test_top_k_is_sorted_and_bounded():
    scores = np.array([0.1, 0.9, 0.5, 0.7, 0.3], np.float32)
    assert top_k(scores, 3).tolist() == [1, 3, 2]
    assert top_k(scores, 10).tolist() == [1, 3, 2, 4, 0]
    assert top_k(scores[:0], 5).tolist() == []


def test_query_expressions(tmp_path):
    image = tmp_path / "pine.jpg"
    image.write_bytes(b"")
    assert parse_query("a crane in the snow") == [Term(1.0, "text", "a crane in the snow")]
    assert parse_query(f'"crane" + {image} - 0.5*"handwriting"') == [
        Term(1.0, "text", "crane"),
        Term(1.0, "image", str(image)),
        Term(-0.5, "text", "handwriting"),
    ]
    assert parse_query('"black - white" + 2*ink') == [
        Term(1.0, "text", "black - white"),
        Term(2.0, "text", "ink"),
    ]
    assert parse_query("black-and-white") == [Term(1.0, "text", "black-and-white")]
    assert parse_query(f'"{image}"') == [Term(1.0, "text", str(image))]  # quotes force text
    assert parse_query("missing.png")[0].kind == "image"  # -> a clear 'not found' later
    assert parse_query("   ") == []


def test_dims_option():
    assert parse_dims("all") is None and parse_dims("64") == 64
    for bad in ("0", "-3", "many"):
        with pytest.raises(SashieError):
            parse_dims(bad)
