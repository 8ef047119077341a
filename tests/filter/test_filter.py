"""The keep/exclude filter: learners, saving without pickle, labels, apply, kept-only search."""

import json
import pickle

import numpy as np
import pytest

from sashie.errors import SashieError
from sashie.eval.truth import judge_library_items
from sashie.eval.world import make_world
from sashie.filter.learners import LEARNERS, train_filter
from sashie.filter.marking import read_mark_csv
from sashie.filter.model import KeepFilter
from sashie.library import Filters, Library

from conftest import indexed_world, run_cli


def separable(n=240, dim=64, seed=0):
    """Unit vectors whose class shows in a few dimensions, like picture vs text crops."""
    rng = np.random.default_rng(seed)
    keep = rng.random(n) < 0.4
    x = rng.normal(size=(n, dim)).astype(np.float32)
    x[keep, :4] += 2.5
    return x / np.linalg.norm(x, axis=1, keepdims=True), keep


@pytest.fixture(scope="module")
def report():
    x, keep = separable()
    return train_filter(x, keep, seed=0)


@pytest.mark.slow
def test_all_five_learners_are_tuned_and_scored_on_held_out_labels(report):
    assert [r.name for r in report.results] == list(LEARNERS)
    assert report.train_size == 192 and report.test_size == 48
    for r in report.results:
        assert r.metrics["weighted_f1"] > 0.8, r.name  # the classes are easy to tell apart
        assert sum(c["support"] for c in r.per_class.values()) == 48
    as_json = report.as_dict()
    assert set(as_json["models"]) == set(LEARNERS) and as_json["best"] in LEARNERS
    assert "weighted_f1" in as_json["models"]["random_forest"]


@pytest.mark.slow
def test_saved_filters_load_without_running_code_and_score_the_same(report, tmp_path, monkeypatch):
    x, _ = separable(seed=1)
    before = {r.name: r.filter.scores(x) for r in report.results}
    for r in report.results:
        r.filter.save(tmp_path / r.name)

    def refuse(*args, **kwargs):
        raise AssertionError("a filter file was unpickled")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    for name in LEARNERS:
        files = sorted(p.name for p in (tmp_path / name).iterdir())
        assert files[0] == "filter.json" and len(files) == 2
        assert files[1].split(".")[-1] in ("safetensors", "json", "txt")
        assert not (tmp_path / name / files[1]).read_bytes().startswith(b"\x80")  # pickle
        loaded = KeepFilter.load(tmp_path / name)
        assert loaded.learner == name
        np.testing.assert_allclose(loaded.scores(x), before[name], atol=1e-4)


def test_too_few_labels_is_a_clear_error():
    x, _keep = separable(n=30)
    with pytest.raises(SashieError, match="too few labels"):
        train_filter(x, np.zeros(30, bool))


def test_label_csv(tmp_path):
    path = tmp_path / "marks.csv"
    path.write_text("item,label\n3,keep\n4,exclude\n5,1\n")
    assert read_mark_csv(path) == ([3, 4, 5], [True, False, True])
    path.write_text("3,maybe\n")
    with pytest.raises(SashieError, match=r"marks\.csv:1"):
        read_mark_csv(path)


@pytest.fixture(scope="module")
def world_library(tmp_path_factory):
    """A small evaluation world indexed with layout + whole and the demo model."""
    root = tmp_path_factory.mktemp("filtered")
    world, library = indexed_world(root, pages=30, seed=11)
    return root, world, Library(library)


@pytest.mark.slow
def test_filter_round_trip_through_the_command_line(world_library):
    root, world, lib = world_library
    run_cli("filter", "mark", root / "lib", "--ground-truth", world, "--n", "100000")
    counts = json.loads(run_cli("info", root / "lib", "--json").stdout)["marks"]
    assert counts["keep"] >= 10 and counts["exclude"] >= 10
    out = run_cli("filter", "train", root / "lib", "--learners", "svm,mlp", "--json").stdout
    tables = json.loads(out)
    assert set(tables["models"]) == {"svm", "mlp"} and tables["best"] in ("svm", "mlp")
    lib = Library(root / "lib")
    info = lib.info()
    assert info["filter"]["learner"] == tables["best"]
    assert info["filter"]["kept"] + info["filter"]["excluded"] == info["items"]
    assert info["filter"]["excluded"] > 0

    # searches cover kept items unless asked for all
    excluded = set(lib.index().item_ids[lib.filter.excluded_rows()].tolist())
    kept_hits = lib.search("a page of text", k=10_000)
    all_hits = lib.search("a page of text", 10_000, where=Filters(all_items=True))
    assert len(all_hits) == info["items"]
    assert len(kept_hits) == info["items"] - len(excluded)
    assert not excluded & {h.item for h in kept_hits}
    cli = json.loads(
        run_cli("search", root / "lib", "a page of text", "-k", "10000", "--all", "--json").stdout
    )
    assert len(cli["results"]) == info["items"]

    # through an ANN index (issue 23) the exclusions hold the same
    lib.reindex(kind="hnsw")
    through_index = lib.search("a page of text", k=10_000)
    assert lib.index().ann is not None
    assert [h.item for h in through_index] == [h.item for h in kept_hits]
    assert not excluded & {h.item for h in lib.search("a page of text", k=20)}
    lib.reindex(kind="exact")

    # the filter is better than keeping everything, judged by the ground truth
    ids, keep, _ = judge_library_items(lib, world)
    figures = lib.filter.evaluate(ids, keep)
    assert figures["items"] == info["items"]
    assert figures["overall"]["accuracy"] > keep.mean()
    text = run_cli("filter", "evaluate", root / "lib", "--ground-truth", world).stdout
    assert "weighted precision" in text


def test_new_pages_are_filtered_on_indexing(world_library, tmp_path):
    _root, world, lib = world_library
    if lib.filter.load() is None:  # when run alone
        lib.filter.mark(*_all_truth(lib, world), source="ground-truth")
        lib.filter.train(learners=["svm"])
    more = make_world(tmp_path / "more", pages=4, seed=12, size=(400, 600))
    report = lib.add([str(more / "pages")], regions="layout,whole")
    assert report.filtered["scored"] == report.items_added > 0
    counts = lib.counts()
    assert counts["kept"] + counts["excluded"] == counts["items"]  # every item scored
    lib.filter.remove()
    assert lib.info()["filter"] is None
    assert len(lib.search("a page of text", k=10_000)) == lib.info()["items"]


def _all_truth(lib, world):
    ids, keep, _ = judge_library_items(lib, world)
    return ids, keep.tolist()


def test_interactive_marking_shows_crops_and_records_answers(world_library):
    """Under its old spelling too (`filter label`), for one release, with a note."""
    root, _, lib = world_library
    before = lib.counts()
    r = run_cli(
        "filter",
        "label",
        root / "lib",
        "--interactive",
        "--n",
        "4",
        "--seed",
        "3",
        input="k\ne\ns\nq\n",
    )
    shown = [line.split(": ", 1)[1] for line in r.stdout.splitlines() if line.startswith("[")]
    assert len(shown) == 4 and all(path.endswith(".png") for path in shown)
    after = lib.counts()
    marked = lambda c: c["marked_keep"] + c["marked_exclude"]  # noqa: E731
    assert marked(after) - marked(before) <= 2
    assert "marked 2 items (1 keep)" in r.stderr
    assert "note: `label` is now spelled `mark`" in r.stderr


def test_wrong_use_of_filter_commands(world_library, tmp_path):
    root, _world, _ = world_library
    r = run_cli("filter", "mark", root / "lib", check=False)
    assert r.exit_code == 1 and "exactly one of" in r.output
    empty = tmp_path / "empty"
    Library(empty, create=True)
    r = run_cli("filter", "apply", empty, check=False)
    assert r.exit_code == 1 and "no filter yet" in r.output
    r = run_cli("filter", "train", root / "lib", "--learners", "boosted_guess", check=False)
    assert r.exit_code == 1 and "unknown learner" in r.output


def test_labels_can_be_forgotten(world_library):
    _, _, lib = world_library
    ids = lib.item_ids()[:4].tolist()
    lib.filter.mark(ids, [True, False, True, False], "test")
    assert lib.filter.unmark(ids[:2]) == 2
    labelled, keep = lib.filter.marks(ids)
    assert labelled.tolist() == ids[2:] and keep.tolist() == [True, False]
    before = lib.counts()
    assert lib.filter.unmark() == before["marked_keep"] + before["marked_exclude"] > 0
    assert lib.counts()["marked_keep"] == lib.counts()["marked_exclude"] == 0
