"""`lib.map` and its endpoints (issue 42): drawn once, new items placed without moving the
others, points a viewport at a time, a lasso's items, and a library folder's map file read as
hostile input."""

import os

import numpy as np
import pytest
from fastapi.testclient import TestClient

from sashie.app import server
from sashie.errors import SashieError
from sashie.library import Library

from conftest import make_pages, run_cli


@pytest.fixture
def library(tmp_path):
    make_pages(tmp_path / "pages", 30, seed=3)
    lib = Library(tmp_path / "lib", create=True)
    lib.add([str(tmp_path / "pages")], regions="whole")
    return lib


def read_binary(body: bytes) -> dict:
    head = np.frombuffer(body[:16], "<u4")
    n = int(head[1])
    at, arrays = 16, {}
    for name, dtype, width in (("xy", "<f4", 2), ("items", "<u4", 1), ("books", "<u4", 1),
                               ("years", "<f4", 1), ("clusters", "<u2", 1),
                               ("classes", "<u2", 1)):  # fmt: skip
        size = np.dtype(dtype).itemsize * n * width
        arrays[name] = np.frombuffer(body[at : at + size], dtype)
        at += size
    assert at == len(body) and head[0] == 0x50414D53
    arrays["xy"] = arrays["xy"].reshape(n, 2)
    return {"count": n, "total": int(head[2]), **arrays}


def test_a_map_is_drawn_then_new_items_are_placed_and_nothing_moves(library, tmp_path):
    assert not library.map.exists()
    with pytest.raises(SashieError, match="no map yet"):
        library.map.points()
    report = library.map.draw(sample=20)
    assert (report.items, report.laid_out, report.placed) == (30, 20, 10)
    before = library.map.points()
    assert before.total == 30 and sorted(before.items) == sorted(r.id for r in library.items())
    assert np.abs(before.places).max() <= 0.951
    where = dict(zip(before.items.tolist(), before.places.tolist(), strict=True))

    make_pages(tmp_path / "more", 6, seed=9)
    library.add([str(tmp_path / "more")], regions="whole")  # places them on the map
    assert library.map.update().placed == 0
    after = library.map.points()
    assert after.total == 36
    moved = [i for i, p in zip(after.items.tolist(), after.places.tolist(), strict=True)
             if i in where and p != where[i]]  # fmt: skip
    assert moved == []
    # the same order of priority every time: a smaller view is the start of a larger one
    assert library.map.points(limit=5).items.tolist() == after.items[:5].tolist()


def test_a_viewport_and_a_lasso_give_the_items_inside_them(library):
    library.map.draw(sample=30)
    points = library.map.points()
    box = (-0.2, -0.9, 0.9, 0.3)
    inside = library.map.points(box)
    x, y = points.places[:, 0], points.places[:, 1]
    expected = points.items[(x >= -0.2) & (x <= 0.9) & (y >= -0.9) & (y <= 0.3)]
    assert sorted(inside.items.tolist()) == sorted(expected.tolist())
    # a lasso: a triangle, by the even-odd rule
    triangle = [(-1.0, -1.0), (1.0, -1.0), (-1.0, 1.0)]
    below = points.items[x + y < 0]
    assert library.map.select(triangle) == sorted(below.tolist())
    for bad in ([(0, 0), (1, 1)], [(0, 0), (1, float("nan")), (0, 1)], [(0, 0, 0)] * 3):
        with pytest.raises(SashieError):
            library.map.select(bad)


def test_a_changed_page_s_old_item_leaves_the_map_and_its_new_one_is_placed(library, tmp_path):
    library.map.draw(sample=30)
    before = set(library.item_ids().tolist())
    make_pages(tmp_path / "other", 1, seed=77)[0].replace(tmp_path / "pages" / "page0000.png")
    library.add([str(tmp_path / "pages")], regions="whole")
    now = set(library.item_ids().tolist())
    gone, new = before - now, now - before
    assert len(gone) == 1 and len(new) == 1
    assert set(library.map.points().items.tolist()) == now  # the old one out, the new placed
    assert library.map.update().placed == 0


def test_a_tampered_or_linked_map_file_is_refused_in_one_line(library, tmp_path):
    library.map.draw(sample=30)
    path = next((library.path).rglob("map.safetensors"))
    data = bytearray(path.read_bytes())
    data[-8:] = b"\xff" * 8  # the last numbers: a place made NaN or a centre out of range
    path.write_bytes(bytes(data))
    fresh = Library(library.path)
    with pytest.raises(SashieError, match="map"):
        fresh.map.points()
    path.write_bytes(b"not a map at all")
    with pytest.raises(SashieError, match="damaged"):
        Library(library.path).map.points()
    outside = tmp_path / "elsewhere.safetensors"
    outside.write_bytes(b"x")
    path.unlink()
    os.symlink(outside, path)
    with pytest.raises(SashieError, match="outside"):
        Library(library.path).map.points()


def test_the_endpoints_serve_points_as_binary_and_refuse_drawing_when_read_only(library):
    client = TestClient(server.create_app(library.path))
    assert client.get("/api/map").json()["map"] is None
    assert client.get("/api/map/points").status_code == 400  # one error line: no map yet
    library.map.draw(sample=30)
    facts = client.get("/api/map").json()
    assert facts["map"]["items"] == 30 and sum(c["items"] for c in facts["clusters"]) == 30
    body = client.get("/api/map/points", params={"limit": 7})
    assert body.headers["content-type"] == "application/octet-stream"
    got = read_binary(body.content)
    assert (got["count"], got["total"]) == (7, 30)
    whole = library.map.points()
    assert got["items"].tolist() == whole.items[:7].tolist()
    assert np.allclose(got["xy"], whole.places[:7])
    chosen = client.post("/api/map/select", json={"polygon": [[-1, -1], [1, -1], [1, 1], [-1, 1]]})
    assert chosen.json()["count"] == 30
    assert client.post("/api/map/select", json={"polygon": [[0, 0]]}).status_code == 422
    assert client.get("/api/map/points", params={"limit": 0}).status_code == 422
    page = client.get("/map")
    assert "unsafe-eval" in page.headers["content-security-policy"]
    assert client.get("/scatterplot.js").headers["content-type"].startswith("text/javascript")
    assert client.get("/nothing.js").status_code == 404
    reader = TestClient(server.create_app(library.path, read_only=True))
    assert reader.post("/api/map/draw").status_code == 403
    lasso = {"polygon": [[-1, -1], [1, -1], [0, 1]]}
    assert reader.post("/api/map/select", json=lasso).status_code == 200


def test_the_command_draws_then_places(library):
    out = run_cli("map", str(library.path), "--sample", "20").stdout
    assert "map of 30 items" in out and "20 laid out and 10 placed" in out
    out = run_cli("map", str(library.path)).stdout
    assert "0 new items placed" in out


def test_points_carry_the_newest_label_set_s_class_and_clusters_are_named_by_it(library):
    from sashie.classify.labelfile import LabelClass, LabelSet

    library.map.draw(sample=30)
    assert library.map.class_names() == [] and not library.map.points().classes.any()
    kinds = LabelSet("kinds", (LabelClass("a red page"), LabelClass("a blue page")))
    library.labels.classify(kinds, other_below=None)
    names = library.map.class_names()
    assert sorted(names) == ["a blue page", "a red page"]
    points = library.map.points()
    given = library.labels.item_classes("kinds")
    assert [names[c - 1] for c in points.classes] == [given[int(i)] for i in points.items]
    for cluster in library.map.clusters():
        assert cluster["label"] in names and 0 < cluster["share"] <= 1
