"""A library shared by several processes and sent by strangers (issue 17): manifest changes
are read-modify-write, readers notice what others changed, a library never grants remote
code, two creators do not collide, and a killed adaptation's folder can be removed."""

import json
import multiprocessing
import shutil

import pytest

from sashie.adapt.settings import AdaptSettings
from sashie.errors import SashieError
from sashie.library import Library
from sashie.library.manifest import Manifest

from conftest import make_pages, run_cli


@pytest.fixture
def small_library(tmp_path):
    make_pages(tmp_path / "pages", 12)
    with Library(tmp_path / "lib", create=True) as lib:
        lib.add([str(tmp_path / "pages")], regions="whole")
    return tmp_path / "lib"


def adapted_elsewhere(path) -> None:
    """What `sashie annotations add` and `sashie adapt` do, in another Library."""
    with Library(path) as other:
        items = other.item_ids().tolist()
        other.annotations.add(items[:3], "几帳")
        other.annotations.add(items[3:6], "菫")
        other.versions.adapt(settings=AdaptSettings(epochs=1, min_steps=2, batch=4))


def test_a_stale_manifest_copy_never_overwrites_anothers_change(small_library):
    server_copy = Manifest(small_library)
    model = server_copy.default_model
    Manifest(small_library).add_version(model, "v1", {"name": "v1"})  # the command line
    server_copy.set_active(model, "base")  # the web page, from its older copy
    on_disk = json.loads((small_library / "manifest.json").read_text())
    assert "v1" in on_disk["models"][model]["versions"]
    assert on_disk["models"][model]["active"] is None


def test_an_open_library_sees_a_version_made_elsewhere_and_keeps_it(small_library):
    server_lib = Library(small_library)
    server_lib.search("a crane")  # vectors and model loaded
    adapted_elsewhere(small_library)
    assert server_lib.versions.active() == "v1"
    assert server_lib.query_encoder().model_id.endswith("+v1")
    server_lib.versions.use("base")  # switching back from the page keeps v1
    assert [v["name"] for v in Library(small_library).versions.list()["versions"]] == ["v1"]
    server_lib.close()


def test_an_open_library_searches_pages_indexed_elsewhere(small_library, tmp_path):
    server_lib = Library(small_library)
    before = server_lib.search("a crane", k=1000)
    make_pages(tmp_path / "more", 6, seed=5)
    with Library(small_library) as other:
        other.add([str(tmp_path / "more")], regions="whole")
    after = server_lib.search("a crane", k=1000)
    assert len(after) == len(before) + 6 == server_lib.info()["items"]
    server_lib.close()


def test_a_library_cannot_grant_its_model_remote_code(small_library):
    manifest = json.loads((small_library / "manifest.json").read_text())
    for entry in manifest["models"].values():
        entry["trust_remote_code"] = True  # what a library someone sent may say
    (small_library / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(SashieError, match="--trust-remote-code"):
        Library(small_library).search("a crane")
    refused = run_cli("search", small_library, "a crane", check=False)
    assert refused.exit_code == 1 and "--trust-remote-code" in refused.stderr
    assert Library(small_library, trust_remote_code=True).search("a crane")  # the user's word
    run_cli("search", small_library, "a crane", "--trust-remote-code")


def create_library(args) -> str:
    path, barrier = args
    barrier.wait()
    try:
        Library(path, create=True).close()
        return "ok"
    except Exception as e:  # a failure is the result this test counts
        return f"{type(e).__name__}: {e}"


def test_two_processes_creating_one_library_both_succeed(tmp_path):
    context = multiprocessing.get_context("fork")
    failures = []
    with context.Manager() as manager, context.Pool(2) as pool:
        for round_ in range(25):
            barrier = manager.Barrier(2)
            path = tmp_path / f"lib{round_}"
            results = pool.map(create_library, [(path, barrier)] * 2)
            failures += [r for r in results if r != "ok"]
            Manifest(path)  # a readable library
    assert not failures, failures[:3]


def test_a_killed_adaptations_folder_is_listed_and_can_be_removed(small_library):
    adapted_elsewhere(small_library)
    lib = Library(small_library)
    v1 = small_library / "adapters"
    folder = next(v1.rglob("v1"))
    leftover = folder.parent / "v4"  # what `kill -9` during `sashie adapt` leaves
    shutil.copytree(folder, leftover)
    (leftover / "version.json").unlink()
    assert lib.versions.list()["unfinished"] == ["v4"]
    assert "v4" in run_cli("versions", "list", small_library).stdout
    run_cli("versions", "remove", small_library, "v4")
    assert not leftover.exists() and "unfinished" not in lib.versions.list()
    with pytest.raises(SashieError, match="no model version"):
        lib.versions.remove("v9")
    with pytest.raises(SashieError, match="no model version"):
        lib.versions.remove("../../pages")
