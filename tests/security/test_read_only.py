"""A library served or searched read-only: asked for (`serve --read-only`), or because this
process cannot write its folder (a read-only mount, another user's folder)."""

import pytest
from fastapi.testclient import TestClient

from sashie.app import server
from sashie.errors import SashieError
from sashie.library import Library

from conftest import make_pages


@pytest.fixture
def library(tmp_path, tiny_spec):
    make_pages(tmp_path / "pages", 6)
    with Library(tmp_path / "lib", create=True) as lib:
        lib.add([str(tmp_path / "pages")], model=tiny_spec, regions="whole")
    return tmp_path / "lib"


def snapshot(folder, *, sqlite_files=True):
    """Every file's size and time; without `sqlite_files`, not SQLite's -wal and -shm (a
    reader of a WAL database on a writable folder shares them with writers)."""
    return {
        p: (p.stat().st_size, p.stat().st_mtime_ns)
        for p in folder.rglob("*")
        if p.is_file() and (sqlite_files or not p.name.endswith(("-wal", "-shm")))
    }


def test_a_read_only_library_searches_and_changes_nothing(library):
    before = snapshot(library, sqlite_files=False)
    with Library(library, read_only=True) as lib:
        assert lib.read_only and len(lib.search("a page", 3)) == 3
        assert lib.info()["items"] == 6
        item = lib.item_ids()[0]
        for change in (
            lambda: lib.annotations.add([item], "几帳"),
            lambda: lib.filter.mark([item], [True]),
            lambda: lib.filter.remove(),
            lambda: lib.versions.use("base"),
            lambda: lib.regions.draw(item, []),
            lambda: lib.add([str(library.parent / "pages")]),
        ):
            with pytest.raises(SashieError, match="read-only"):
                change()
    assert snapshot(library, sqlite_files=False) == before


def test_a_folder_this_process_cannot_write_is_opened_read_only(library, monkeypatch):
    """As on a read-only mount: no lock file, no SQLite journal is written (immutable)."""
    monkeypatch.setattr("sashie.library.parts.os.access", lambda path, mode: False)
    before = snapshot(library)
    with Library(library) as lib:
        assert lib.read_only and len(lib.search("a page", 2)) == 2
        assert lib.info()["pages"] == 6
    client = TestClient(server.create_app(library))
    assert client.get("/api/info").json()["read_only"] is True
    assert snapshot(library) == before


def test_a_read_only_server_refuses_every_change_and_still_searches(library):
    client = TestClient(server.create_app(library, read_only=True))
    assert client.get("/api/info").json()["read_only"] is True
    found = client.post("/api/search", data={"text": "a page", "limit": "3"}).json()
    item = found["results"][0]["item"]
    assert len(found["results"]) == 3
    refined = client.post("/api/feedback", json={"query": found["query"], "relevant": [item]})
    assert refined.status_code == 200
    for method, path, body in (
        ("POST", "/api/annotations", {"items": [item], "caption": "几帳"}),
        ("POST", "/api/marks", {"items": [item], "keep": True}),
        ("DELETE", f"/api/marks?items={item}", None),
        ("DELETE", "/api/annotations?caption=x", None),
        ("PUT", f"/api/items/{item}/page-boxes", {"boxes": []}),
        ("POST", "/api/adapt", {}),
        ("POST", "/api/adapt/use", {"version": "base"}),
        ("POST", "/api/classify", {"labels": {"name": "s", "classes": [{"name": "a"}]}}),
    ):
        answer = client.request(method, path, json=body)
        assert answer.status_code == 403 and "read-only" in answer.json()["error"], path
    assert client.get("/api/annotations").json()["annotations"] == []


def test_a_read_token_searches_and_shows_and_the_write_token_changes(library):
    app = server.create_app(library, token="writers", read_token="readers")
    reader = TestClient(app, headers={"X-Sashie-Token": "readers"})
    writer = TestClient(app, headers={"X-Sashie-Token": "writers"})
    assert TestClient(app).get("/api/info").status_code == 401
    assert reader.get("/api/info").json()["read_only"] is True
    assert writer.get("/api/info").json()["read_only"] is False
    found = reader.post("/api/search", data={"text": "a page", "limit": "2"}).json()
    item = found["results"][0]["item"]
    caption = {"items": [item], "caption": "几帳"}
    refused = reader.post("/api/annotations", json=caption)
    assert refused.status_code == 403 and "read-only" in refused.json()["error"]
    assert writer.post("/api/annotations", json=caption).json()["added"] == 1
    link = TestClient(app, follow_redirects=False).get("/?token=readers")
    assert link.status_code == 303 and "readers" in link.headers["set-cookie"]
