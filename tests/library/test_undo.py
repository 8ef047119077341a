"""Captions and labels can be taken back (the command line and the API), and `adapt` warns
when a caption has too few examples to be learnt."""

import json
import time

import pytest
from fastapi.testclient import TestClient

from sashie import Library, SashieError
from sashie.app import server

from conftest import run_cli


@pytest.fixture
def lib(tmp_path, tiny_spec, pages) -> Library:
    library = Library(tmp_path / "lib", create=True)
    library.add([str(pages)], model=tiny_spec, regions="whole")
    return library


def pairs(lib: Library) -> list[tuple[int, str]]:
    return [(a["item"], a["caption"]) for a in lib.annotations.list()]


def test_annotations_are_removed_by_caption_by_item_or_both(lib):
    a, b, c, d = lib.item_ids()[:4].tolist()
    lib.annotations.add([a, b, c], "a crane")
    lib.annotations.add([a, b], "鶴")
    lib.annotations.add([d], "a  pine")
    removed = json.loads(run_cli("annotations", "remove", lib.path, "鶴", a, "--json").stdout)
    assert removed == {"removed": 1, "annotations": 5}
    done = run_cli("annotations", "remove", lib.path, "a crane")  # from every item
    assert done.stderr == "3 annotations removed\n"
    assert run_cli("annotations", "remove", lib.path, d).stderr == "1 annotations removed\n"
    assert pairs(lib) == [(b, "鶴")]
    assert (
        lib.annotations.remove([b], " 鶴 ") == 1 and pairs(lib) == []
    )  # spaces as annotate reads them
    bad = run_cli("annotations", "remove", lib.path, "鶴", "x12", check=False)
    assert (
        bad.exit_code == 1
        and bad.stderr == "error: expected item ids after the caption, got 'x12'\n"
    )
    with pytest.raises(SashieError, match="name the caption, the items, or both"):
        lib.annotations.remove()


def test_the_api_takes_captions_and_labels_back(lib):
    a, b, c = lib.item_ids()[:3].tolist()
    client = TestClient(server.create_app(lib.path))
    client.post("/api/annotations", json={"items": [a, b], "caption": "几帳"})
    client.post("/api/annotations", json={"items": [a], "caption": "鶴"})
    undo = client.delete("/api/annotations", params={"caption": "几帳", "items": [a]})
    assert undo.json() == {"removed": 1, "annotations": 2}
    assert client.delete("/api/annotations", params={"items": [a]}).json()["removed"] == 1
    assert client.get(f"/api/items/{a}").json()["annotations"] == []
    assert client.delete("/api/annotations", params={"caption": "几帳"}).json() == {
        "removed": 1,
        "annotations": 0,
    }
    nothing = client.delete("/api/annotations")
    assert nothing.status_code == 400 and "name the caption" in nothing.json()["error"]

    client.post("/api/marks", json={"items": [a, b, c], "keep": True})
    unmarked = client.delete("/api/marks", params={"items": [a, b]}).json()
    assert unmarked == {"removed": 2, "keep": 1, "exclude": 0}
    assert client.get(f"/api/items/{a}").json()["mark"] is None
    assert client.get(f"/api/items/{c}").json()["mark"] == "keep"
    assert client.delete("/api/marks").status_code == 422


def test_marks_are_forgotten_from_the_command_line(lib):
    ids = lib.item_ids()[:4].tolist()
    lib.filter.mark(ids, [True, False, True, False])
    done = json.loads(run_cli("filter", "unmark", lib.path, *ids[:2], "--json").stdout)
    assert done == {"removed": 2, "keep": 1, "exclude": 1}
    assert "2 marks forgotten" in run_cli("filter", "unmark", lib.path, "--all").stderr
    assert lib.counts()["marked_keep"] == lib.counts()["marked_exclude"] == 0
    bad = run_cli("filter", "unmark", lib.path, check=False)
    assert bad.exit_code == 1 and "give --all" in bad.stderr


@pytest.mark.slow
def test_adapt_warns_of_captions_with_too_few_examples(lib):
    from sashie.library.adapting import FEW_EXAMPLES

    ids = lib.item_ids().tolist()
    lib.annotations.add(ids[:2], "a crane")
    lib.annotations.add(ids[2 : 2 + FEW_EXAMPLES], "a pine")
    args = ("adapt", lib.path, "--epochs", "1", "--min-steps", "2")
    warning = json.loads(run_cli(*args, "--json").stdout)["warning"]
    assert warning.startswith(f"1 of 2 captions have fewer than {FEW_EXAMPLES} examples: ")
    assert "a crane (2)" in warning and "a pine" not in warning
    assert f"warning: {warning}\n" in run_cli(*args).stderr

    lib.annotations.add(ids[2 : 2 + FEW_EXAMPLES], "a crane")  # enough of both: no warning
    assert json.loads(run_cli(*args, "--json").stdout)["warning"] is None

    lib.annotations.remove(caption="a pine")
    client = TestClient(server.create_app(lib.path))  # the page's adaptation says it too
    lib.annotations.add(ids[:1], "a pine")
    state = client.post("/api/adapt", json={"epochs": 1}).json()
    deadline = time.time() + 120
    while state["job"]["state"] == "running" and time.time() < deadline:
        time.sleep(0.1)
        state = client.get("/api/adapt").json()
    assert state["job"]["state"] == "done", state
    assert "a pine (1)" in state["job"]["warning"]
