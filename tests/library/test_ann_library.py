"""A library's ANN index (issue 23): built on request or by size, kept current by indexing,
built for a version when it is applied, crash-safe, ignored when unsound; searches through it
equal exact ones where the index sees every row, and the filter's exclusions and label facets
hold."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from fastapi.testclient import TestClient

from sashie.adapt.settings import AdaptSettings
from sashie.app import server
from sashie.library import Library

from conftest import make_pages, run_cli

QUERIES = ("a red page", "a square", "a picture of a tree")


def same_results(lib: Library, **kwargs) -> None:
    """Searches through the index give exactly the exact scan's items and scores."""
    for text in QUERIES:
        ann = lib.search(text, k=10, **kwargs)
        exact = lib.search(text, k=10, exact=True, **kwargs)
        assert [r.item for r in ann] == [r.item for r in exact]
        assert [r.score for r in ann] == [r.score for r in exact]


@pytest.fixture
def small(tmp_path, tiny_spec):
    make_pages(tmp_path / "pages", 24, seed=5)
    lib = Library(tmp_path / "lib", create=True)
    lib.add([str(tmp_path / "pages")], model=tiny_spec, regions="whole", index_kind="hnsw")
    return lib, tmp_path


def ann_of(lib: Library) -> dict | None:
    return lib.info()["models"][0]["ann_index"]


def test_a_small_library_has_no_index_unless_asked(tmp_path, tiny_spec):
    make_pages(tmp_path / "pages", 6)
    lib = Library(tmp_path / "lib", create=True)
    report = lib.add([str(tmp_path / "pages")], model=tiny_spec, regions="whole")
    assert report.ann == "none" and ann_of(lib) is None
    assert lib.index().ann is None


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_ann_results_equal_exact_results_where_the_index_sees_every_row(small, kind):
    lib, _ = small
    done = lib.reindex(kind=kind, ef=1000, nprobe=1000)
    assert done["done"] == "built" and done["index"]["kind"] == kind
    assert done["index"]["rows"] == 24 and ann_of(lib)["kind"] == kind
    assert lib.index().ann is not None
    same_results(lib)


def test_new_pages_are_added_to_the_index(small):
    lib, tmp_path = small
    assert ann_of(lib)["rows"] == 24
    make_pages(tmp_path / "more", 12, seed=6)
    report = lib.add([str(tmp_path / "more")], regions="whole")
    assert report.ann == "extended" and "ANN index extended" in report.summary()
    assert ann_of(lib)["rows"] == 36 and ann_of(lib)["kind"] == "hnsw"
    new = sorted(set(lib.item_ids().tolist()))[-1]
    found = lib.search(lib.vectors_of([new])[0], 3)
    assert found[0].item == new
    assert lib.add([str(tmp_path / "more")], regions="whole").ann == "current"


def test_a_version_gets_its_index_when_applied(small):
    lib, _ = small
    lib.reindex(ef=1000)
    items = lib.index().item_ids.tolist()
    lib.annotations.add(items[:6], "zorblat")
    lib.annotations.add(items[6:12], "quix")
    lib.versions.adapt(settings=AdaptSettings(epochs=20, batch=8, seed=0))
    assert lib.versions.active() == "v1"
    assert ann_of(lib)["kind"] == "hnsw" and lib.index().ann is not None
    same_results(lib)
    base_file = lib.path / lib.models[next(iter(lib.models))]["vectors"] / "vectors.f16"
    before = base_file.read_bytes()
    lib.reindex()  # the version's index again: the base vectors are never touched
    assert base_file.read_bytes() == before
    lib.versions.use("base")
    assert lib.index().ann is not None
    same_results(lib)


def test_an_unsound_index_file_is_ignored_and_searches_scan(small):
    lib, _ = small
    path = lib.path / lib.models[next(iter(lib.models))]["vectors"] / "ann.index"
    data = path.read_bytes()
    header, _, body = data.partition(b"\n")
    for bad in (body[: len(body) // 3], b"\x00" * len(body)):
        path.write_bytes(header + b"\n" + bad)
        reopened = Library(lib.path)
        assert reopened.index().ann is None and ann_of(reopened) is None
        assert reopened.search("a square", k=5)  # the exact scan answers
    lib.reindex()
    assert Library(lib.path).index().ann is not None


def test_a_malformed_choice_in_the_manifest_is_ignored(small):
    """The remembered --index-kind / --nprobe / --ef come from a file someone may have sent."""
    lib, _ = small
    manifest = lib.path / "manifest.json"
    data = json.loads(manifest.read_text())
    for bad in (
        {"kind": "../../etc/passwd", "nprobe": 8},
        {"kind": "ivf", "nprobe": "; rm -rf /", "ef": -1},
        {"nprobe": 10**12},
        ["ivf"],
    ):
        data["models"][next(iter(data["models"]))]["ann"] = bad
        manifest.write_text(json.dumps(data))
        reopened = Library(lib.path)
        same_results(reopened)  # the settings of the index file are used
        rebuilt = reopened.reindex()  # no kind was chosen: the kind there is, rebuilt
        assert rebuilt["done"] == "built" and rebuilt["index"]["kind"] == "hnsw"


SLOW_SAVE = """
import os, sys, time
from sashie.library import Library

def stuck(fd):  # the index is written, not yet synced: the moment to be killed
    print("writing", flush=True)
    time.sleep(60)

os.fsync = stuck
Library(sys.argv[1]).reindex(kind="ivf")
"""


def test_kill_during_a_build_leaves_the_previous_index(small):
    lib, _ = small
    before = ann_of(lib)
    builder = subprocess.Popen(
        [sys.executable, "-c", SLOW_SAVE, str(lib.path)], stdout=subprocess.PIPE, text=True
    )
    assert builder.stdout.readline().strip() == "writing"
    same_results(lib)  # searches go on while it builds
    os.kill(builder.pid, signal.SIGKILL)
    builder.wait()
    reopened = Library(lib.path)
    assert ann_of(reopened) == before and reopened.index().ann.kind == "hnsw"
    same_results(reopened)
    assert reopened.reindex()["done"] == "built"  # the lock died with the process


def test_an_index_built_by_another_process_is_noticed(small):
    lib, _ = small
    searcher = Library(lib.path)
    assert searcher.index().ann.kind == "hnsw"
    time.sleep(0.01)
    run_cli("reindex", lib.path, "--index-kind", "ivf", "--nprobe", "1000", "-q")
    assert searcher.index().ann.kind == "ivf"
    same_results(searcher)
    run_cli("reindex", lib.path, "--index-kind", "exact")
    assert searcher.index().ann is None and ann_of(searcher) is None


def test_the_command_line_and_the_api(small):
    lib, _ = small
    out = json.loads(run_cli("reindex", lib.path, "--index-kind", "ivf", "--json").stdout)
    assert out["index"]["kind"] == "ivf" and out["version"] == "base"
    assert lib.models[next(iter(lib.models))]["ann"] == {"kind": "ivf"}  # remembered
    hits = json.loads(run_cli("search", lib.path, "a square", "--exact", "--json").stdout)
    assert [r["item"] for r in hits["results"]] == [
        r.item for r in lib.search("a square", exact=True)
    ]
    run_cli("search", lib.path, "a square", "--nprobe", "4", "--ef", "10")
    few = run_cli("reindex", lib.path, "--index-kind", "ivfpq", check=False)
    assert few.exit_code == 1 and "too few for an ivfpq index" in few.output
    assert few.output.count("\n") == 1  # one line, no traceback
    assert lib.models[next(iter(lib.models))]["ann"] == {"kind": "ivf"}  # not remembered
    bad = run_cli("reindex", lib.path, "--index-kind", "lsh", check=False)
    assert bad.exit_code == 2 and "--index-kind" in bad.output
    bad = run_cli("search", lib.path, "a square", "--nprobe", "0", check=False)
    assert bad.exit_code == 2 and "--nprobe" in bad.output
    said = run_cli("info", lib.path).output
    assert "search    ivf ANN index of 24 vectors" in said
    scan = lib.info()["models"][0]["exact_scan"]
    assert f"scan      in {scan['precision']}, the fastest here within 1 byte(s)" in said
    assert scan["precision"] == "int8" and set(scan["ns_per_row"]) >= {"int8", "float32"}
    client = TestClient(server.create_app(lib.path))
    exact = client.post("/api/search", data={"text": "a square", "exact": "true"}).json()
    linked = client.get("/api/search", params={"q": "a square", "exact": True}).json()
    assert [r["item"] for r in exact["results"]] == [r["item"] for r in linked["results"]]
    assert [r["item"] for r in exact["results"]] == [
        r.item for r in lib.search("a square", k=len(exact["results"]), exact=True)
    ]
