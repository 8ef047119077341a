"""Sharded search (sashie/search/shards.py): the same results as one index, to the last id;
a shard that does not answer is never silently left out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sashie.search.ann import AnnIndex
from sashie.search.feedback import FEEDBACK_LEARNERS, learn, refine
from sashie.search.ranking import VectorIndex
from sashie.search.shards import ShardDown, Shards, merge
from sashie.store.vectors import VectorFile


def written(folder: Path, rows: int = 4000, dim: int = 32, seed: int = 0) -> VectorFile:
    """A vector file of clustered unit rows with copies among them (equal scores), ids not
    in row order."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((12, dim))[rng.integers(0, 12, rows)]
    x += 0.1 * rng.standard_normal((rows, dim))
    x[rows - 300 :] = x[:300]  # copies of the first shard's rows in the last shard
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    files = VectorFile(folder, dim)
    files.write_at(0, x.astype(np.float16), rng.permutation(rows * 3)[:rows] + 1)
    return files


def queries(files: VectorFile, rows: int, count: int = 8) -> list[np.ndarray]:
    vectors = files.vectors(rows)
    return [np.asarray(vectors[i * 37], np.float32) for i in range(count)]


def test_the_merge_ranks_by_score_then_by_smaller_id():
    parts = [(np.array([9, 4]), np.array([0.5, 0.2])), (np.array([3, 7]), np.array([0.5, 0.9]))]
    ids, scores = merge(parts, 3)
    assert ids.tolist() == [7, 3, 9] and scores.tolist() == pytest.approx([0.9, 0.5, 0.5])
    assert len(merge([], 5)[0]) == 0


@pytest.mark.parametrize("precision", ["int8", "float32"])
def test_shards_here_give_the_same_top_k_as_one_index_with_exclusions_and_subspaces(
    tmp_path, precision
):
    files = written(tmp_path)
    one = VectorIndex(files.vectors(4000), files.item_ids(4000), precision=precision)
    shards = Shards.of_index(one, 4)
    assert len(shards) == 4000 and len(shards.shards) == 4
    exclude = np.random.default_rng(1).random(4000) < 0.4
    dims = np.arange(0, 32, 2)
    for q in queries(files, 4000):
        for mask in (None, exclude):
            want = one.search(q, 100, exclude=mask)
            got = shards.search(q, 100, exclude=mask)
            np.testing.assert_array_equal(got.ids, want[0])
            np.testing.assert_array_equal(got.scores, want[1])
            assert not got.partial
        want = one.search(q, 50, dims)
        got = shards.search(q, 50, dims=dims)
        np.testing.assert_array_equal(got.ids, want[0])
    with pytest.raises(ValueError, match="exclude has 3 rows"):
        shards.search(q, 10, exclude=np.zeros(3, bool))


def test_shards_with_ann_indexes_of_their_own_find_the_top_k_and_leave_out_what_is_excluded(
    tmp_path,
):
    files = written(tmp_path)
    one = VectorIndex(files.vectors(4000), files.item_ids(4000))
    shards = Shards.of_index(one, 2, ann="ivf")
    assert all(shard.index.ann is not None for shard in shards.shards)
    exclude = np.random.default_rng(3).random(4000) < 0.5
    hits = []
    for q in queries(files, 4000):
        want, _ = one.search(q, 50, exclude=exclude)
        got = shards.search(q, 50, exclude=exclude)
        assert not np.isin(got.ids, files.item_ids(4000)[exclude]).any()
        hits.append(len(np.intersect1d(got.ids, want)) / 50)
    assert np.mean(hits) >= 0.95


def test_shards_keep_their_ann_indexes_between_starts_and_build_a_damaged_one_again(
    tmp_path, monkeypatch
):
    files = written(tmp_path / "rows")
    one = VectorIndex(files.vectors(4000), files.item_ids(4000))
    kept = tmp_path / "kept"
    kept.mkdir()
    first = Shards.of_index(one, 2, ann="ivf", kept_in=kept)
    names = sorted(p.name for p in kept.glob("*.ann"))
    assert len(names) == 2 and all(n.startswith("ivf-2000-") for n in names)
    q = queries(files, 4000, 1)[0]
    want = first.search(q, 50)

    def not_again(*args, **kwargs):
        raise AssertionError("a kept index was built again")

    with monkeypatch.context() as patched:
        patched.setattr(AnnIndex, "build", not_again)
        again = Shards.of_index(one, 2, ann="ivf", kept_in=kept)
        np.testing.assert_array_equal(again.search(q, 50).ids, want.ids)
    (kept / names[0]).write_bytes(b'{"format": "sashie-ann"}\nnot faiss')  # damaged
    rebuilt = Shards.of_index(one, 2, ann="ivf", kept_in=kept)
    np.testing.assert_array_equal(rebuilt.search(q, 50).ids, want.ids)
    assert (kept / names[0]).stat().st_size > 1000  # written again
    other = Shards.of_index(one, 3, ann="ivf", kept_in=kept)  # other runs: other files
    assert len(list(kept.glob("*.ann"))) == 5 and other.sizes == [1333, 1333, 1334]


@pytest.mark.parametrize("learner", FEEDBACK_LEARNERS)
def test_feedback_learned_once_and_applied_by_each_shard_ranks_as_one_index(tmp_path, learner):
    files = written(tmp_path)
    one = VectorIndex(files.vectors(4000), files.item_ids(4000))
    shards = Shards.of_index(one, 4)
    ids = files.item_ids(4000)
    exclude = np.random.default_rng(2).random(4000) < 0.3
    q = queries(files, 4000, 1)[0]
    relevant, irrelevant = ids[[5, 1200, 3900]], ids[[7, 2100]]
    for mask in (None, exclude):
        want = refine(one, q, relevant, irrelevant, learner=learner, k=100, exclude=mask)
        learned = learn(one, q, relevant, irrelevant, learner=learner)
        got = shards.feedback(learned, 100, exclude=mask)
        np.testing.assert_array_equal(got.ids, want[0])
        np.testing.assert_array_equal(got.scores, want[1])
    # the marks rank first and last whichever shard holds them
    got = shards.feedback(learn(one, q, relevant, irrelevant, learner=learner), 4000)
    assert set(got.ids[:3].tolist()) == set(relevant.tolist())
    assert set(got.ids[-2:].tolist()) == set(irrelevant.tolist())


@pytest.fixture(scope="module")
def ray_local():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_ray_actor_shards_give_the_same_top_k_and_a_shard_down_is_never_silent(tmp_path, ray_local):
    files = written(tmp_path, rows=3000)
    one = VectorIndex(files.vectors(3000), files.item_ids(3000))
    shards = Shards.of_index(one, 3, ray=ray_local)
    assert shards.sizes == [1000, 1000, 1000]
    exclude = np.zeros(3000, bool)
    exclude[::3] = True
    for q in queries(files, 3000, 4):
        for mask in (None, exclude):
            want = one.search(q, 100, exclude=mask)
            got = shards.search(q, 100, exclude=mask)
            np.testing.assert_array_equal(got.ids, want[0])
            np.testing.assert_array_equal(got.scores, want[1])
    ray_local.kill(shards.shards[1])
    q = queries(files, 3000, 1)[0]
    with pytest.raises(ShardDown, match="shard 2 of 3 did not answer"):
        shards.search(q, 100)
    partial = shards.search(q, 100, partial=True)
    assert partial.partial and partial.missing == (1,)
    alive = np.r_[0:1000, 2000:3000]
    want = VectorIndex(files.vectors(3000)[alive], files.item_ids(3000)[alive]).search(q, 100)
    np.testing.assert_array_equal(partial.ids, want[0])  # the other shards' results, whole


def test_ray_shards_of_rows_held_in_memory_search_and_learn_as_one_index(tmp_path, ray_local):
    """A model version's adapted vectors are no run of a file: each actor is sent its rows."""
    files = written(tmp_path, rows=2000)
    held = np.asarray(files.vectors(2000)) * np.float16(1)  # in RAM, not a map
    one = VectorIndex(held, files.item_ids(2000))
    shards = Shards.of_index(one, 2, ray=ray_local)
    q = queries(files, 2000, 1)[0]
    np.testing.assert_array_equal(shards.search(q, 50).ids, one.search(q, 50)[0])
    learned = learn(one, q, files.item_ids(2000)[[3, 1500]], learner="linear_svm")
    want = refine(one, q, files.item_ids(2000)[[3, 1500]], learner="linear_svm", k=50)
    np.testing.assert_array_equal(shards.feedback(learned, 50).ids, want[0])
