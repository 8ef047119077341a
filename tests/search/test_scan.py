"""The exact scan's precisions (sashie/search/scan.py): each returns the exact top k, and the
machine's choice among them is made from remembered measurements."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sashie.search import scan
from sashie.search.ranking import VectorIndex


def clustered(rows: int, dim: int, seed: int) -> np.ndarray:
    """Unit float16 vectors in tight clusters, with exact copies (ties) among them."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((12, dim))
    x = centres[rng.integers(0, 12, rows)] + 0.05 * rng.standard_normal((rows, dim))
    x[rows // 2 : rows // 2 + 40] = x[:40]  # copies: equal scores
    x[:, 0] *= 6  # one dimension far wider than the rest, as CLIP vectors have
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float16)


def exact_top(vectors: np.ndarray, query: np.ndarray, k: int, exclude=None) -> np.ndarray:
    scores = vectors.astype(np.float64) @ query.astype(np.float64)
    if exclude is not None:
        scores[exclude] = -np.inf
    order = np.lexsort((np.arange(len(scores)), -scores))[:k]
    return order[np.isfinite(scores[order])]


@pytest.mark.parametrize("precision", scan.PRECISIONS)
def test_every_precision_keeps_the_exact_top_k_among_its_candidates(precision):
    vectors = clustered(3000, 64, seed=1)
    rough = scan.build(precision, vectors)
    rng = np.random.default_rng(2)
    exclude = rng.random(len(vectors)) < 0.3
    for i in range(12):
        query = vectors[rng.integers(0, len(vectors))].astype(np.float32)
        query += 0.01 * rng.standard_normal(64).astype(np.float32)
        query /= np.linalg.norm(query)
        for k, mask in ((100, None), (100, exclude), (5, exclude), (5000, None)):
            found = rough.candidates(query, k, mask)
            assert set(exact_top(vectors, query, k, mask)) <= set(found)
            if mask is not None:
                assert not mask[found].any()
            if k < len(vectors):
                assert len(found) < len(vectors) // 2  # the window is narrow


@pytest.mark.parametrize("precision", scan.PRECISIONS)
def test_a_search_returns_the_same_ids_and_scores_whatever_the_precision(precision):
    vectors = clustered(2500, 32, seed=3)
    ids = np.arange(len(vectors)) * 7 + 11
    reference = VectorIndex(vectors, ids, precision="float32")
    index = VectorIndex(vectors, ids, precision=precision)
    rng = np.random.default_rng(4)
    exclude = rng.random(len(vectors)) < 0.5
    for i in range(10):
        query = vectors[i * 97].astype(np.float32)
        for mask in (None, exclude):
            got_ids, got_scores = index.search(query, 50, exclude=mask)
            want_ids, want_scores = reference.search(query, 50, exclude=mask)
            np.testing.assert_array_equal(got_ids, want_ids)
            np.testing.assert_array_equal(got_scores, want_scores)
    assert index.scan().precision == precision


def test_every_row_excluded_or_none_at_all_finds_nothing():
    vectors = clustered(300, 16, seed=5)
    for precision in scan.PRECISIONS:
        index = VectorIndex(vectors, np.arange(300), precision=precision)
        ids, _ = index.search(vectors[0].astype(np.float32), 10, exclude=np.ones(300, bool))
        assert len(ids) == 0
    empty = VectorIndex(np.zeros((0, 16), np.float16), np.zeros(0, np.int64), precision="int8")
    assert len(empty.search(np.ones(16, np.float32), 10)[0]) == 0


def test_the_int8_codes_score_within_their_stated_error():
    vectors = clustered(4000, 48, seed=6)
    rough = scan.build("int8", vectors)
    query = vectors[7].astype(np.float32)
    scores, rows = rough.index.search(query[None], 4000)
    exact = vectors.astype(np.float64)[rows[0]] @ query.astype(np.float64)
    assert np.abs(scores[0] - exact).max() <= rough.error(query)


def test_the_choice_is_the_fastest_that_keeps_the_memory_bound():
    costs = {"int8": 30.0, "bfloat16": 9.0, "float16": 12.0, "float32": 40.0}
    assert scan.choose(costs, memory=1) == "int8"
    assert scan.choose(costs, memory=2) == "bfloat16"
    assert scan.choose({"float16": 10.0, "float32": 10.0, "int8": 10.0}, memory=2) == "int8"
    assert scan.choose({"float16": 5.0}, memory=1) == "int8"  # none measured fits


def test_calibration_draws_the_same_rows_for_the_same_seed_and_measures_each_precision():
    a = scan.calibration_sample(24, seed=9)
    b = scan.calibration_sample(24, seed=9)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], scan.calibration_sample(24, seed=10)[0])
    costs = scan.calibrate(24, precisions=["int8", "float32"])
    assert set(costs) == {"int8", "float32"} and all(v > 0 for v in costs.values())


def test_the_machine_remembers_what_it_measured_and_measures_again_over_a_damaged_file(
    tmp_path, monkeypatch
):
    monkeypatch.delenv(scan.MEMORY_VARIABLE, raising=False)
    machine = scan.MachineScans(tmp_path)
    first = machine.costs(8)
    remembered = json.loads((tmp_path / scan.CACHE_FILE).read_text())
    assert remembered[scan.machine_key(8)]["ns_per_row"] == first
    # a second process reads the figures: the same choice, nothing measured again
    remembered[scan.machine_key(8)]["ns_per_row"] = {"int8": 1.0, "float16": 0.5}
    (tmp_path / scan.CACHE_FILE).write_text(json.dumps(remembered))
    assert scan.MachineScans(tmp_path).choice(8) == ("int8", {"int8": 1.0, "float16": 0.5})
    monkeypatch.setenv(scan.MEMORY_VARIABLE, "2")
    assert scan.MachineScans(tmp_path).choice(8)[0] == "float16"
    (tmp_path / scan.CACHE_FILE).write_text('{"x": [1, 2], ' + "\x00")
    assert set(scan.MachineScans(tmp_path).costs(8)) == set(scan.offered())


def test_info_reports_what_was_measured_and_measures_nothing_itself(tmp_path, monkeypatch):
    monkeypatch.setenv("SASHIE_CACHE", str(tmp_path))
    monkeypatch.delenv(scan.MEMORY_VARIABLE, raising=False)
    assert scan.exact_scan_facts(12) == {"precision": None, "ns_per_row": {}, "memory_bytes": 1}
    assert not (tmp_path / scan.CACHE_FILE).exists()
    costs = scan.MachineScans().costs(12)
    assert scan.exact_scan_facts(12) == {
        "precision": "int8",
        "ns_per_row": costs,
        "memory_bytes": 1,
    }


def test_a_damaged_row_costs_only_itself():
    """A NaN or infinite row (a tampered vector file) must not blind the int8 scan to the
    rest: every precision still finds the same top k among the sound rows."""
    vectors = clustered(2000, 16, seed=8)
    vectors[5] = np.nan
    vectors[9, 3] = np.inf
    ids = np.arange(2000)
    query = vectors[100].astype(np.float32)
    want = VectorIndex(vectors, ids, precision="float32").search(query, 20)[0]
    got = VectorIndex(vectors, ids, precision="int8").search(query, 20)[0]
    np.testing.assert_array_equal(got, want)
    assert 100 in got.tolist() and 5 not in got.tolist()
