"""A library searched through shards (issue 43; sashie/library/sharding.py): books, dates
and feedback give one index's results to the last id, in this process and on
Ray actors behind `sashie serve --cluster`; a shard that does not answer is one error."""

import numpy as np
import pytest
from fastapi.testclient import TestClient

from sashie.app import server
from sashie.errors import SashieError
from sashie.library import Filters, Library

from conftest import make_pages

SEARCHES = [
    Filters(),
    Filters(conditions="year<1800"),
    Filters(conditions="creator~two"),
]


@pytest.fixture(scope="module")
def shelves(tmp_path_factory):
    """Three books of scans with years and creators."""
    root = tmp_path_factory.mktemp("sharded")
    for seed, name in enumerate(("early", "middle", "late")):
        make_pages(root / "scans" / name, 8, seed=20 + seed)
    (root / "books.csv").write_text(
        "folder,title,creator,date\nearly,Early,Artist One,1796\n"
        "middle,Middle,Artist Two,1750\nlate,Late,Artist Two,1879\n",
        encoding="utf-8",
    )
    with Library(root / "lib", create=True) as lib:
        lib.add([str(root / "scans")], regions="whole", metadata=root / "books.csv")
    return root / "lib"


def _same(a, b) -> None:
    assert [r.item for r in a] == [r.item for r in b]
    np.testing.assert_array_equal([r.score for r in a], [r.score for r in b])


def test_shards_here_search_and_refine_as_the_library_does(shelves, monkeypatch):
    plain, sharded = Library(shelves), Library(shelves)
    sharded.shard(3)

    def not_here(*args, **kwargs):
        raise AssertionError("the library's own index was searched, not its shards")

    monkeypatch.setattr(sharded.index(), "search", not_here)
    for where in SEARCHES:
        _same(
            sharded.search("a page", k=20, where=where), plain.search("a page", k=20, where=where)
        )
    middle = next(b["id"] for b in plain.books.list() if b["title"] == "Middle")
    one_book = Filters(book=middle)
    _same(
        sharded.search("a page", k=20, where=one_book), plain.search("a page", k=20, where=one_book)
    )
    items = [r.item for r in plain.search("a page", k=20)]
    for learner in ("linear_svm", "rocchio"):
        marks = {"relevant": items[4:6], "irrelevant": items[:2], "learner": learner}
        for where in SEARCHES:
            _same(
                sharded.feedback("a page", 20, where=where, **marks),
                plain.feedback("a page", 20, where=where, **marks),
            )
    with pytest.raises(SashieError, match="1 to 4096"):
        plain.shard(0)


def test_pages_indexed_later_reach_the_shards(tmp_path):
    make_pages(tmp_path / "first", 5, seed=30)
    with Library(tmp_path / "lib", create=True) as lib:
        lib.add([str(tmp_path / "first")], regions="whole")
        lib.shard(2)
        assert len(lib.search("a page", k=100)) == 5
        make_pages(tmp_path / "more", 3, seed=40)
        lib.add([str(tmp_path / "more")], regions="whole")
        after = lib.search("a page", k=100)
        assert len(after) == 8
        _same(after, Library(tmp_path / "lib").search("a page", k=100))


def test_the_server_on_a_ray_cluster_answers_as_one_index_and_a_shard_down_is_an_error(shelves):
    ray = pytest.importorskip("ray")
    plain = TestClient(server.create_app(shelves))
    try:
        app = server.create_app(shelves, cluster="local", shards=2)
        sharded = TestClient(app)
        for conditions in ("", "year<1800"):
            asked = {"text": "a page", "limit": "20", "where": conditions}
            want = plain.post("/api/search", data=asked).json()["results"]
            got = sharded.post("/api/search", data=asked).json()["results"]
            assert [(r["item"], r["score"]) for r in got] == [(r["item"], r["score"]) for r in want]
        relevant = plain.post("/api/search", data={"text": "a page"}).json()["results"][3]["item"]
        refined = []
        for client in (plain, sharded):
            query = client.post("/api/search", data={"text": "a page", "limit": "20"}).json()
            marks = {"query": query["query"], "relevant": [relevant], "limit": 10}
            found = client.post("/api/feedback", json=marks).json()["results"]
            refined.append([(r["item"], r["score"]) for r in found])
        assert refined[0] == refined[1] and len(refined[0]) == 10
        [(_, shards)] = app.state.served.lib._sharding._made.values()  # the ones searched
        ray.kill(shards.shards[1])
        down = sharded.post("/api/search", data={"text": "a crane", "limit": "20"})  # not kept
        assert down.status_code == 503 and down.json()["shard_down"]
        assert "shard 2 of 2 did not answer" in down.json()["error"]
    finally:
        ray.shutdown()


def test_shard_indexes_of_rows_no_shard_holds_are_removed_never_a_link(tmp_path):
    from sashie.library.sharding import _forget_others
    from sashie.search.ranking import VectorIndex
    from sashie.search.shards import shard_index_name

    ids = np.arange(10) + 1
    index = VectorIndex(np.zeros((10, 4), np.float16), ids)
    folder = tmp_path / "shards"
    folder.mkdir()
    current = [shard_index_name(ids[:5], "ivf"), shard_index_name(ids[5:], "ivf")]
    for name in [*current, "ivf-7-0123456789abcdef0123.ann"]:
        (folder / name).write_bytes(b"x")
    secret = tmp_path / "secret.ann"
    secret.write_bytes(b"keep")
    (folder / "ivf-3-aaaaaaaaaaaaaaaaaaaa.ann").symlink_to(secret)
    _forget_others(folder, index, 2, "ivf")
    left = sorted(p.name for p in folder.iterdir())
    assert left == sorted([*current, "ivf-3-aaaaaaaaaaaaaaaaaaaa.ann"])
    assert secret.read_bytes() == b"keep"


def test_a_library_keeps_its_shards_ann_indexes_beside_its_vectors(shelves, monkeypatch):
    from sashie.library import sharding

    monkeypatch.setattr(sharding, "_shard_ann", lambda index, count: "ivf")  # small rows too
    plain, sharded = Library(shelves), Library(shelves)
    sharded.shard(2)
    _same(sharded.search("a page", k=10), plain.search("a page", k=10))
    kept = sorted(shelves.rglob("shards/ivf-*.ann"))
    assert len(kept) == 2 and all(p.resolve().is_relative_to(shelves.resolve()) for p in kept)
    assert Library(shelves, read_only=True)._parts.shard_folder(next(iter(plain.models)))


def test_a_sent_library_whose_shard_files_are_links_out_is_never_read_through_them(
    shelves, tmp_path, monkeypatch
):
    """A shard index named as the shard would name it, but a link to a file outside the
    library, is not read (it is built anew, the link replaced, the file outside untouched);
    a `shards` folder that is a link out is one error line."""
    from sashie.library import sharding
    from sashie.search.shards import shard_index_name, shard_runs

    monkeypatch.setattr(sharding, "_shard_ann", lambda index, count: "ivf")
    lib = Library(shelves)
    index = lib.index()
    folder = lib._parts.shard_folder(next(iter(lib.models)))
    for old in folder.glob("*.ann"):
        old.unlink()
    secret = tmp_path / "secret"
    secret.write_bytes(b"outside the library")
    (a, b) = shard_runs(len(index), 2)[0]
    link = folder / shard_index_name(index.item_ids[a:b], "ivf")
    link.symlink_to(secret)
    from sashie.search.ann import AnnIndex

    read, load = [], AnnIndex.load
    monkeypatch.setattr(
        AnnIndex, "load", classmethod(lambda cls, path, *a: read.append(path) or load(path, *a))
    )
    lib.shard(2)
    assert link not in read
    assert not link.is_symlink() and link.stat().st_size > 1000
    assert secret.read_bytes() == b"outside the library"

    for old in folder.glob("*.ann"):
        old.unlink()
    folder.rmdir()
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    folder.symlink_to(outside)
    try:
        with pytest.raises(SashieError, match="leads outside"):
            Library(shelves).shard(2)
        assert list(outside.iterdir()) == []
    finally:
        folder.unlink()
