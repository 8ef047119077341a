"""A library folder someone sent may hold links: nothing the library reads, writes or deletes
lies outside its folder once links are followed (issue 39's tampered folders)."""

import os

import pytest
from fastapi.testclient import TestClient

from sashie.adapt.settings import AdaptSettings
from sashie.app import server
from sashie.errors import SashieError
from sashie.library import Library
from sashie.library.pictures import PageCache

from conftest import make_pages

QUICK = AdaptSettings(epochs=2, batch=4, min_steps=2)


@pytest.fixture
def outside(tmp_path):
    """A folder beside the library, with a secret and a file that must never go."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "secret.txt").write_text("the password file")
    (folder / "keep.me").write_bytes(b"x" * 10_000)
    return folder


@pytest.fixture
def adapted(tmp_path, tiny_spec):
    make_pages(tmp_path / "pages", 12, seed=3)
    with Library(tmp_path / "lib", create=True) as lib:
        lib.add([str(tmp_path / "pages")], model=tiny_spec, regions="whole")
        items = lib.item_ids().tolist()
        lib.annotations.add(items[:4], "zorblat")
        lib.annotations.add(items[4:8], "quix")
        report = lib.versions.adapt(settings=QUICK)
    return tmp_path / "lib", report.folder


def test_a_loss_curve_linked_out_of_the_library_is_never_served(adapted, outside):
    path, folder = adapted
    curve = folder / "loss.png"
    curve.unlink(missing_ok=True)
    curve.symlink_to(outside / "secret.txt")
    client = TestClient(server.create_app(path))
    answer = client.get("/api/adapt/loss/v1")
    assert answer.status_code == 400 and "password" not in answer.text
    assert "leads outside it" in answer.json()["error"]


def test_a_version_folder_linked_out_is_one_error_line(adapted, outside):
    path, folder = adapted
    (folder / "adapter.safetensors").unlink()
    (folder / "adapter.safetensors").symlink_to(outside / "secret.txt")
    with Library(path) as lib, pytest.raises(SashieError, match="leads outside it"):
        lib.search("zorblat")


def test_vectors_linked_out_are_one_error_line(tmp_path, tiny_spec, outside):
    make_pages(tmp_path / "pages", 4)
    with Library(tmp_path / "lib", create=True) as lib:
        lib.add([str(tmp_path / "pages")], model=tiny_spec, regions="whole")
        folder = tmp_path / "lib" / lib.models[lib.default_model]["vectors"]
    for entry in folder.iterdir():
        entry.rename(outside / entry.name)
    folder.rmdir()
    folder.symlink_to(outside)
    with Library(tmp_path / "lib") as lib, pytest.raises(SashieError, match="leads outside"):
        lib.search("a page")


def test_a_page_cache_linked_out_writes_nothing_there(tmp_path, outside):
    root = tmp_path / "lib"
    root.mkdir()
    (root / "cache").symlink_to(outside)
    cache = PageCache(root, "cache/pages", max_bytes=2**20)
    with pytest.raises(SashieError, match="leads outside it"):
        cache.get("https://example.org/p.png", lambda: b"page")
    assert sorted(p.name for p in outside.iterdir()) == ["keep.me", "secret.txt"]


def test_the_page_cache_evicts_only_the_files_it_wrote(tmp_path):
    folder = tmp_path / "lib" / "cache" / "pages"
    folder.mkdir(parents=True)
    (folder / "notes.txt").write_bytes(b"n" * 5_000)  # put there by someone else
    cache = PageCache(tmp_path / "lib", "cache/pages", max_bytes=250)
    for name in "abc":
        cache.get(name, lambda name=name: name.encode() * 100)
    assert (folder / "notes.txt").stat().st_size == 5_000
    mine = [p for p in folder.iterdir() if p.name != "notes.txt"]
    assert sum(p.stat().st_size for p in mine) <= 250


def test_a_filter_folder_linked_out_is_never_read_or_removed(tmp_path, tiny_spec, outside):
    make_pages(tmp_path / "pages", 4)
    with Library(tmp_path / "lib", create=True) as lib:
        lib.add([str(tmp_path / "pages")], model=tiny_spec, regions="whole")
    (tmp_path / "lib" / "filter").symlink_to(outside)
    with Library(tmp_path / "lib") as lib:
        with pytest.raises(SashieError, match="leads outside it"):
            lib.filter.remove()
        with pytest.raises(SashieError, match="leads outside it"):
            lib.filter.load()
    assert sorted(os.listdir(outside)) == ["keep.me", "secret.txt"]


def test_a_manifest_linked_out_is_not_read(tmp_path, tiny_spec, outside):
    make_pages(tmp_path / "pages", 4)
    with Library(tmp_path / "lib", create=True) as lib:
        lib.add([str(tmp_path / "pages")], model=tiny_spec, regions="whole")
    manifest = tmp_path / "lib" / "manifest.json"
    (outside / "manifest.json").write_text(manifest.read_text())
    manifest.unlink()
    manifest.symlink_to(outside / "manifest.json")
    with pytest.raises(SashieError, match="leads outside it"):
        Library(tmp_path / "lib")


def test_an_error_line_never_tells_where_the_library_lies_on_the_server(tmp_path, tiny_spec):
    make_pages(tmp_path / "pages", 4)
    with Library(tmp_path / "lib", create=True) as lib:
        lib.add([str(tmp_path / "pages")], model=tiny_spec, regions="whole")
    client = TestClient(server.create_app(tmp_path / "lib"))
    answer = client.get("/api/search", params={"q": "a page", "label": "a crane"})
    error = answer.json()["error"]
    assert answer.status_code == 400 and "sashie classify LIB" in error
    assert str(tmp_path) not in error
