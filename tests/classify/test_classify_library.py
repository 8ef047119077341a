"""Labelling a library (`Library.classify`, `sashie classify`, `sashie labels`), its search
facets, its export and its API."""

import csv
import json

import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from sashie import Library, SashieError
from sashie.app import server
from sashie.classify.labelfile import LabelClass, LabelSet
from sashie.library import Filters
from sashie.store.transaction import Transaction

from conftest import make_pages, run_cli

LABELS = """name,ja,synonyms,attributes
red square,赤い四角,crimson block,red|square
blue square,青い四角,,blue|square
green shape,緑,,green
"""


@pytest.fixture
def library(tmp_path, tiny_spec):
    make_pages(tmp_path / "pages", 10)
    lib = Library(tmp_path / "lib", create=True)
    lib.add([str(tmp_path / "pages")], model=tiny_spec, regions="whole")
    (tmp_path / "labels.csv").write_text(LABELS, encoding="utf-8")
    return lib


def stored(lib: Library, name: str = "labels") -> dict[int, tuple]:
    return lib._parts.catalog.item_classes(name)  # the catalog's rows, as they are on disk


def test_every_item_gets_a_label_a_score_and_a_runner_up(library, tmp_path):
    report = library.labels.classify(tmp_path / "labels.csv", method="coder", other_below=None)
    assert (report.labelled, report.total, report.relabelled) == (10, 10, True)
    rows = stored(library)
    assert sorted(rows) == sorted(library.item_ids().tolist())
    names = {"red square", "blue square", "green shape"}
    for label, score, runner_up, runner_score in rows.values():
        assert label in names and runner_up in names and label != runner_up
        assert score >= runner_score
    info = library.info()["label_sets"]["labels"]
    assert info["classes"] == 3 and info["items"] == 10 and sum(info["counts"].values()) == 10


def test_only_new_items_are_labelled_again_and_a_changed_file_labels_all(library, tmp_path):
    library.labels.classify(tmp_path / "labels.csv", method="coder")
    before = stored(library)
    make_pages(tmp_path / "more", 3, seed=5)
    library.add([str(tmp_path / "more")], regions="whole")
    again = library.labels.classify(tmp_path / "labels.csv", method="coder")
    assert (again.labelled, again.total, again.relabelled) == (3, 13, False)
    after = stored(library)
    assert {i: after[i] for i in before} == before  # the old labels untouched
    nothing = library.labels.classify(tmp_path / "labels.csv", method="coder")
    assert (nothing.labelled, nothing.total) == (0, 13)

    changed = tmp_path / "labels.csv"
    changed.write_text(LABELS + "yellow dot,黄色,,yellow\n", encoding="utf-8")
    redone = library.labels.classify(changed, method="coder")
    assert (redone.labelled, redone.relabelled) == (13, True)
    other_method = library.labels.classify(changed, method="prompt")
    assert other_method.relabelled and other_method.method == "prompt"


def test_an_interrupted_run_leaves_the_previous_labels_whole(library, tmp_path, monkeypatch):
    library.labels.classify(tmp_path / "labels.csv", method="prompt")
    before = stored(library)
    record = library.labels.list()["labels"]
    real = Transaction.set_item_classes

    def interrupted(self, label_set, rows):
        real(self, label_set, list(rows)[:4])  # some rows are written, then the user hits ^C
        raise KeyboardInterrupt

    monkeypatch.setattr(Transaction, "set_item_classes", interrupted)
    (tmp_path / "labels.csv").write_text(LABELS + "yellow dot,,,\n", encoding="utf-8")
    with pytest.raises(KeyboardInterrupt):
        library.labels.classify(tmp_path / "labels.csv", method="coder")
    assert stored(library) == before
    after = library.labels.list()["labels"]
    assert (after["version"], after["method"]) == (record["version"], "prompt")


def test_a_search_narrows_to_a_label_and_leaves_one_out(library, tmp_path):
    library.labels.classify(tmp_path / "labels.csv", method="coder", other_below=None)
    rows = stored(library)
    label = max({r[0] for r in rows.values()}, key=lambda x: sum(r[0] == x for r in rows.values()))
    everything = library.search("a square", k=100)
    assert {r.class_label for r in everything} <= {r[0] for r in rows.values()}
    kept = library.search("a square", 100, where=Filters(label=label))
    assert kept and all(r.class_label == label for r in kept)
    assert len(kept) == sum(1 for r in rows.values() if r[0] == label)
    ja = {"red square": "赤い四角", "blue square": "青い四角", "green shape": "緑"}.get(label)
    if ja:  # a class's Japanese name finds it too
        assert [r.item for r in library.search("a square", 100, where=Filters(label=ja))] == [
            r.item for r in kept
        ]
    left = library.search("a square", 100, where=Filters(not_label=[label]))
    assert {r.item for r in left} == {r.item for r in everything} - {r.item for r in kept}
    library.reindex(kind="hnsw")  # through an ANN index (issue 23) the facets hold the same
    assert library.index().ann is not None
    assert [r.item for r in library.search("a square", 100, where=Filters(label=label))] == [
        r.item for r in kept
    ]
    assert [r.item for r in library.search("a square", 100, where=Filters(not_label=[label]))] == [
        r.item for r in left
    ]
    library.reindex(kind="exact")
    with pytest.raises(SashieError, match="no label 'zebra' in the label set 'labels'"):
        library.search("a square", where=Filters(label="zebra"))
    with pytest.raises(SashieError, match="no label set 'other'"):
        library.search("a square", where=Filters(label=label, label_set="other"))


def test_a_search_before_any_labels_says_what_to_do(library):
    with pytest.raises(SashieError, match="sashie classify"):
        library.search("a square", where=Filters(label="red square"))
    assert all(r.class_label is None for r in library.search("a square"))


def test_few_shot_learns_from_annotations_named_like_a_class(library, tmp_path):
    ids = library.item_ids().tolist()
    with pytest.raises(SashieError, match="annotate items with a class's name"):
        library.labels.classify(tmp_path / "labels.csv", method="coder", few_shot=True)
    library.annotations.add(ids[:3], "green shape")
    library.annotations.add(ids[3:6], "赤い四角")  # the Japanese name of "red square"
    report = library.labels.classify(tmp_path / "labels.csv", method="coder", few_shot=True)
    assert report.examples == 6 and report.method == "coder+few-shot"
    rows = stored(library)
    assert [rows[i][0] for i in ids[:3]] == ["green shape"] * 3
    assert [rows[i][0] for i in ids[3:6]] == ["red square"] * 3
    library.annotations.add(ids[6:7], "green shape")  # new examples: everything is labelled again
    assert library.labels.classify(
        tmp_path / "labels.csv", method="coder", few_shot=True
    ).relabelled


def test_labels_export_for_a_spreadsheet_and_as_parquet(library, tmp_path):
    library.labels.classify(tmp_path / "labels.csv", method="prompt")
    assert library.labels.export(tmp_path / "out.csv") == 10
    with open(tmp_path / "out.csv", encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == [
        "item", "page", "x0", "y0", "x1", "y1", "label", "score", "runner_up",
        "runner_up_score", "label_set", "version",
    ]  # fmt: skip
    assert library.labels.export(tmp_path / "out.parquet") == 10
    table = pq.read_table(tmp_path / "out.parquet").to_pydict()
    assert sorted(table["item"]) == sorted(int(r["item"]) for r in rows)
    assert table["label"] == [r["label"] for r in rows]


def test_a_label_a_spreadsheet_would_run_is_written_as_text(library, tmp_path):
    formulas = LabelSet("f", (LabelClass("=HYPERLINK(1)"), LabelClass("@SUM(A1)")))
    library.labels.classify(formulas, other_below=None)
    library.labels.export(tmp_path / "out.csv", label_set="f")
    with open(tmp_path / "out.csv", encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {r["label"] for r in rows} | {r["runner_up"] for r in rows} == {
        "'=HYPERLINK(1)",
        "'@SUM(A1)",
    }
    library.labels.export(tmp_path / "out.parquet", label_set="f")
    assert set(pq.read_table(tmp_path / "out.parquet").to_pydict()["label"]) <= {
        "=HYPERLINK(1)",
        "@SUM(A1)",
    }
    with pytest.raises(SashieError, match=r"\.csv or \.parquet"):
        library.labels.export(tmp_path / "out.xlsx", label_set="f")


def test_the_command_line_labels_narrows_and_exports(library, tmp_path):
    path = library.path
    out = run_cli("classify", path, "--labels", tmp_path / "labels.csv", "--method", "coder")
    assert "10 items labelled (all items again)" in out.output
    again = run_cli("classify", path, "--labels", tmp_path / "labels.csv", "--method", "coder")
    assert "0 items labelled (new items only)" in again.output
    label = next(iter(library.labels.list()["labels"]["counts"]))
    found = json.loads(run_cli("search", path, "a square", "--label", label, "--json").output)
    assert found["results"] and all(r["class_label"] == label for r in found["results"])
    listed = run_cli("labels", "list", path).output
    assert "labels: 3 classes, 10 items labelled" in listed
    assert "label set labels: 3 classes, 10 items labelled (coder" in run_cli("info", path).output
    run_cli("labels", "export", path, tmp_path / "x.csv")
    assert (tmp_path / "x.csv").exists()
    bad = run_cli("search", path, "a square", "--label", "zebra", check=False)
    assert bad.exit_code == 1 and bad.stderr.count("\n") == 1 and "no label 'zebra'" in bad.stderr
    (tmp_path / "bad.csv").write_text("name,colour\ncrane,red\n", encoding="utf-8")
    bad = run_cli("classify", path, "--labels", tmp_path / "bad.csv", check=False)
    assert bad.exit_code == 1 and "unknown column 'colour'" in bad.stderr
    run_cli("labels", "remove", path, "labels")
    assert Library(path).labels.list() == {}


def test_the_api_labels_narrows_and_counts_the_results(library):
    client = TestClient(server.create_app(library.path))
    classes = [{"name": "red square", "ja": ["赤い四角"]}, {"name": "blue square"}]
    done = client.post("/api/classify", json={"labels": {"name": "web", "classes": classes}})
    assert done.status_code == 200 and done.json()["labelled"] == 10
    sets = client.get("/api/label-sets").json()["label_sets"]
    assert sets["web"]["items"] == 10
    page = client.post("/api/search", data={"text": "a square", "limit": "100"}).json()
    counts = {f["label"]: f["count"] for f in page["facets"]}
    assert sum(counts.values()) == len(page["results"]) == 10
    label = page["facets"][0]["label"]
    narrowed = client.post(
        "/api/search", data={"text": "a square", "label": label, "limit": "100"}
    ).json()
    assert len(narrowed["results"]) == counts[label]
    assert all(r["class_label"] == label for r in narrowed["results"])
    assert narrowed["facets"] == [{"label": label, "count": counts[label]}]
    link = client.get("/api/search", params={"q": "a square", "not_label": label}).json()
    assert all(r["class_label"] != label for r in link["results"])
    unknown = client.get("/api/search", params={"q": "a square", "label": "zebra"})
    assert unknown.status_code == 400 and "no label 'zebra'" in unknown.json()["error"]
    bad = client.post("/api/classify", json={"labels": {"name": "x", "classes": [{"name": ""}]}})
    assert bad.status_code == 400 and "has no name" in bad.json()["error"]


def test_an_item_no_class_fits_is_other_with_its_best_class_as_runner_up(library, tmp_path):
    forced = library.labels.classify(tmp_path / "labels.csv", other_below=None)
    assert "other" not in forced.counts
    classes = stored(library)
    # the tiny model's scores are noise: at 0 deviations, items below their class's median
    relabelled = library.labels.classify(tmp_path / "labels.csv", other_below=0.0)
    assert relabelled.relabelled  # a changed rule labels every item again
    rows = stored(library)
    others = {item for item, row in rows.items() if row[0] == "other"}
    assert 0 < len(others) < len(rows) == 10
    for item, (label, score, runner_up, runner_score) in rows.items():
        if item in others:  # the class it would have had, and its score, are kept
            assert (runner_up, runner_score, score) == (classes[item][0], score, classes[item][1])
        else:
            assert rows[item] == classes[item]
    assert library.labels.list()["labels"]["counts"]["other"] == len(others)
    found = library.search("a square", 100, where=Filters(label="other"))
    assert {r.item for r in found} == others and {r.class_label for r in found} == {"other"}
    rest = library.search("a square", 100, where=Filters(not_label="other"))
    assert {r.item for r in rest} == set(rows) - others
    # the command line: the default rule, or every item forced into a class
    out = run_cli("classify", library.path, "--labels", tmp_path / "labels.csv", "--no-other")
    assert "other" not in out.stdout
    assert not {r[0] for r in stored(library).values()} & {"other"}


def test_the_typical_score_keeps_a_class_close_to_everything_from_taking_everything():
    """A hub class (its words close to every picture) wins every item when each is forced
    into a class; measured against its own typical score, only the items that stand out
    keep it."""
    import numpy as np

    from sashie.classify.coder import OTHER_BELOW, Typical, best_two

    rng = np.random.default_rng(0)
    scores = rng.normal(0.20, 0.01, (1000, 3))
    scores[:, 0] += 0.05  # the hub: above the others for every item
    scores[:20, 1] += 0.08  # 20 items really show class 1
    scores[20:30, 0] += 0.06  # 10 really show the hub's class
    forced = best_two(scores)
    assert (forced.best == 0).sum() > 950
    judged = best_two(scores, Typical.of(scores))
    kept = judged.standing >= OTHER_BELOW
    assert set(np.flatnonzero(kept & (judged.best == 0))) >= set(range(20, 30))
    assert set(np.flatnonzero(kept & (judged.best == 1))) >= set(range(20))
    assert kept.sum() < 30 + 20  # and the tail of the noise: ~1 % at 2.5 deviations


def test_the_library_opens_a_named_chat_server_with_its_own_cache(library, tmp_path, monkeypatch):
    """`classify(generator=ChatServer(...))`: the library asks the server the user named for
    each class's words (the key from the environment, as a header), and keeps the answers
    in its own cache, so a second run asks nothing."""
    from fake_chat import FakeModel

    from sashie.classify.generator import ChatServer

    chat = FakeModel()
    try:
        monkeypatch.setenv("SASHIE_GENERATOR_KEY", "k-123")
        server_ = ChatServer(chat.url, "m")
        library.labels.classify(tmp_path / "labels.csv", method="coder", generator=server_)
        asked = len(chat.requests)
        assert asked >= 3 and (library.path / "cache" / "generator.sqlite").is_file()
        assert chat.requests[0]["headers"]["Authorization"] == "Bearer k-123"
        library.labels.classify(tmp_path / "labels.csv", method="coder", generator=server_)
        assert len(chat.requests) == asked  # answered from the library's cache
        with pytest.raises(SashieError, match="--generator-model"):
            ChatServer(chat.url, " ")
    finally:
        chat.stop()
