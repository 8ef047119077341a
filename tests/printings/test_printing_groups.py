"""`lib.printings.group()` (`sashie printings LIB --all`): the library in sets of printings,
looked at again only where pages are new; the sets exported as CSV, Parquet and a IIIF
AnnotationPage; a tampered or misplaced features file is one error line."""

import csv
import json

import pytest
from test_matching import drawing, reprinted

from sashie.errors import Damaged, SashieError
from sashie.library import Library
from sashie.library.iiif import linking_page
from sashie.store.catalog import ItemRow

from conftest import run_cli


def _library(tmp_path, tiny_spec):
    pages = tmp_path / "pages"
    pages.mkdir()
    reprinted(drawing(1), margin=60).save(pages / "a1.png")
    reprinted(drawing(1), angle=8, scale=0.8, mirror=True, margin=50).save(pages / "a2.png")
    reprinted(drawing(2), margin=40).save(pages / "b1.png")
    reprinted(drawing(2), scale=1.3, crop=(0, 50, 400, 400), margin=30).save(pages / "b2.png")
    for other in (3, 4, 5):
        reprinted(drawing(other), margin=60).save(pages / f"c{other}.png")
    lib = Library(tmp_path / "lib", create=True)
    lib.add([str(pages)], model=tiny_spec, regions="whole")
    return lib


def _names(lib):
    return {row.id: row.page.rsplit("/", 1)[-1] for row in lib.items()}


def test_the_library_is_grouped_into_its_sets_of_printings_and_new_pages_join_them(
    tmp_path, tiny_spec
):
    lib = _library(tmp_path, tiny_spec)
    told = []
    report = lib.printings.group(progress=lambda done, total: told.append((done, total)))
    names = _names(lib)
    assert sorted(sorted(names[i] for i in g) for g in lib.printings.groups()) == [
        ["a1.png", "a2.png"],
        ["b1.png", "b2.png"],
    ]
    assert (report.looked, report.compared, report.groups, report.grouped) == (7, 7, 2, 4)
    assert told[-1] == (14, 14)
    first_shard = sorted((tmp_path / "lib" / "printings").glob("features-*"))
    assert len(first_shard) == 1
    stamp = first_shard[0].stat().st_mtime_ns

    again = lib.printings.group()  # nothing new: nothing read again
    assert (again.looked, again.compared, again.pairs) == (0, 0, report.pairs)
    assert lib.info()["printings"] == {"compared": 7, "pairs": report.pairs}

    later = tmp_path / "later"
    later.mkdir()
    reprinted(drawing(1), angle=-5, crop=(0, 0, 400, 290), margin=45).save(later / "a3.png")
    reprinted(drawing(6), margin=60).save(later / "c6.png")
    lib.add([str(later)], model=tiny_spec, regions="whole")
    report = lib.printings.group()
    assert (report.looked, report.compared) == (2, 2)
    names = _names(lib)
    sets = sorted(sorted(names[i] for i in g) for g in lib.printings.groups())
    assert sets == [["a1.png", "a2.png", "a3.png"], ["b1.png", "b2.png"]]
    assert first_shard[0].stat().st_mtime_ns == stamp  # the old items' features kept as they were
    assert len(list((tmp_path / "lib" / "printings").glob("features-*"))) == 2

    # one item's printings are now also proposed by the stored fingerprints
    a3 = next(i for i, n in names.items() if n == "a3.png")
    assert {names[p.item] for p in lib.printings(a3, candidates=1)} == {"a1.png", "a2.png"}


def test_the_sets_are_exported_as_csv_parquet_and_a_iiif_page(tmp_path, tiny_spec):
    pq = pytest.importorskip("pyarrow.parquet")
    lib = _library(tmp_path, tiny_spec)
    run = run_cli("printings", str(tmp_path / "lib"), "--all")
    assert "2 sets of printings holding 4 items" in run.output
    names = _names(lib)

    out = run_cli("printings", str(tmp_path / "lib"), "--export", str(tmp_path / "sets.csv"))
    assert "2 sets, 4 items" in out.output
    with open(tmp_path / "sets.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    by_set: dict[str, set] = {}
    for row in rows:
        by_set.setdefault(row["group"], set()).add(names[int(row["item"])])
        assert row["page"].endswith(names[int(row["item"])]) and row["x1"]
    assert sorted(map(sorted, by_set.values())) == [["a1.png", "a2.png"], ["b1.png", "b2.png"]]

    lib.printings.export(tmp_path / "sets.parquet")
    table = pq.read_table(tmp_path / "sets.parquet").to_pydict()
    assert sorted(table["item"]) == sorted(int(r["item"]) for r in rows)

    written = lib.printings.export(tmp_path / "sets.json")  # local files: no canvas to link
    page = json.loads((tmp_path / "sets.json").read_text())
    assert page["type"] == "AnnotationPage" and page["items"] == []
    assert (written.groups, written.left_out) == (0, 4)
    with pytest.raises(SashieError, match="csv"):
        lib.printings.export(tmp_path / "sets.txt")


def test_a_iiif_page_links_each_sets_regions_on_their_canvases():
    def row(item, canvas):
        return ItemRow(
            id=item, page_id=item, page=f"https://example.org/{item}.jpg", source="m",
            detector="whole", bbox=(10, 20, 110, 220), page_size=(1000, 2000),
            metadata={"canvas": canvas, "manifest": "https://example.org/m.json"},
        )  # fmt: skip

    made = linking_page(
        [[row(1, "https://example.org/c1"), row(2, "https://example.org/c2")]], "printings"
    )
    (annotation,) = made.page["items"]
    assert annotation["motivation"] == "linking"
    targets = [(t["source"]["id"], t["selector"]["value"]) for t in annotation["target"]]
    assert targets == [
        ("https://example.org/c1", "xywh=10,20,100,200"),
        ("https://example.org/c2", "xywh=10,20,100,200"),
    ]
    alone = linking_page([[row(1, "https://example.org/c1"), row(2, "")]], "printings")
    assert alone.page["items"] == [] and alone.skipped == 2  # one on a canvas links nothing
    hostile = linking_page(  # a manifest's canvas id that is not a web address links nothing
        [[row(1, "https://example.org/c1"), row(2, "javascript:alert(1)"), row(3, "/etc/passwd")]],
        "printings",
    )
    assert hostile.page["items"] == [] and hostile.skipped == 3


def test_a_book_title_a_spreadsheet_would_run_is_written_as_text(tmp_path, tiny_spec):
    scans = tmp_path / "scans"
    for name in ("first", "second"):
        (scans / name).mkdir(parents=True)
    reprinted(drawing(1), margin=60).save(scans / "first" / "1.png")
    reprinted(drawing(1), angle=5, scale=0.8, margin=40).save(scans / "second" / "1.png")
    sheet = tmp_path / "books.csv"
    sheet.write_text('folder,title\nfirst,"=HYPERLINK(""http://evil.example"")"\nsecond,plain\n')
    lib = Library(tmp_path / "lib", create=True)
    lib.add([str(scans)], model=tiny_spec, regions="whole", metadata=sheet)
    lib.printings.group()
    lib.printings.export(tmp_path / "sets.csv")
    with open(tmp_path / "sets.csv", newline="") as f:
        titles = sorted(row["title"] for row in csv.DictReader(f))
    assert titles == ['\'=HYPERLINK("http://evil.example")', "plain"]


def test_a_tampered_features_file_is_one_error_line(tmp_path, tiny_spec):
    lib = _library(tmp_path, tiny_spec)
    lib.printings.group()
    (shard,) = (tmp_path / "lib" / "printings").glob("features-*")
    data = bytearray(shard.read_bytes())
    shard.write_bytes(bytes(data[: len(data) // 2]))
    with pytest.raises(Damaged):
        lib.printings.group()
    out = run_cli("printings", str(tmp_path / "lib"), "--all", check=False)
    assert out.exit_code != 0 and "printings features" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1

    found = lib.check()  # `sashie check` names the file; --repair drops it, keeps the pairs
    assert [p.part for p in found.problems] == [f"the printings features {shard.name}"]
    pairs = lib.printings.groups()
    repaired = lib.check(repair=True)
    assert repaired.repaired and not shard.exists()
    again = lib.printings.group()  # its items are looked at again, not compared again
    assert (again.looked, again.compared) == (7, 0) and lib.printings.groups() == pairs


def test_a_features_folder_leading_outside_the_library_is_refused(tmp_path, tiny_spec):
    lib = _library(tmp_path, tiny_spec)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (tmp_path / "lib" / "printings").symlink_to(outside)
    with pytest.raises(SashieError, match="outside"):
        lib.printings.group()
    assert list(outside.iterdir()) == []
    (problem,) = lib.check().problems
    assert "outside" in problem.reason
    lib.check(repair=True)  # the link goes; what it led to stays
    assert not (tmp_path / "lib" / "printings").exists() and outside.is_dir()


def test_a_server_groups_the_library_in_the_background_and_shows_a_set(tmp_path, tiny_spec):
    import time

    from fastapi.testclient import TestClient

    from sashie.app import server

    lib = _library(tmp_path, tiny_spec)
    names = _names(lib)
    client = TestClient(server.create_app(tmp_path / "lib"))
    assert client.get("/api/printings").json() == {
        "sets": 0, "grouped": 0, "job": {"state": "idle"},
    }  # fmt: skip
    assert client.post("/api/printings/group").json()["job"]["state"] == "running"
    for _ in range(600):
        state = client.get("/api/printings").json()
        if state["job"]["state"] != "running":
            break
        time.sleep(0.1)
    assert state["job"]["state"] == "done", state
    assert (state["sets"], state["grouped"], state["job"]["looked"]) == (2, 4, 7)
    a1 = next(i for i, n in names.items() if n == "a1.png")
    served = client.get(f"/api/items/{a1}/printings").json()
    assert sorted(names[m["item"]] for m in served["set"]) == ["a1.png", "a2.png"]
    assert all(m["thumbnail"].startswith("/api/items/") for m in served["set"])

    reader = TestClient(server.create_app(tmp_path / "lib", read_only=True))
    assert reader.post("/api/printings/group").status_code == 403


def test_past_the_exhaustive_search_an_inverted_file_finds_the_same_sets(
    tmp_path, tiny_spec, monkeypatch
):
    from sashie.library import printing_groups

    lib = _library(tmp_path, tiny_spec)
    monkeypatch.setattr(printing_groups, "FLAT_UP_TO", 0)  # a large library's index
    report = lib.printings.group()
    names = _names(lib)
    assert sorted(sorted(names[i] for i in g) for g in lib.printings.groups()) == [
        ["a1.png", "a2.png"],
        ["b1.png", "b2.png"],
    ]
    assert report.compared == 7


def test_items_joined_already_are_not_verified_again_and_the_sets_are_the_same(
    tmp_path, tiny_spec, monkeypatch
):
    """Four printings of one picture: verified in one go, every pair (6) is verified; pair by
    pair, a pair whose items are joined already is skipped, so 3 pairs join the same set."""
    from sashie.library import printing_groups

    pages = tmp_path / "pages"
    pages.mkdir()
    for n, (angle, scale) in enumerate([(0, 1.0), (5, 0.9), (-6, 1.1), (3, 0.8)]):
        reprinted(drawing(7), angle=angle, scale=scale, margin=40 + 5 * n).save(pages / f"{n}.png")
    reprinted(drawing(8), margin=60).save(pages / "other.png")
    sets = {}
    for at_once in (256, 1):
        monkeypatch.setattr(printing_groups, "VERIFIED_AT_ONCE", at_once)
        lib = Library(tmp_path / f"lib{at_once}", create=True)
        lib.add([str(pages)], model=tiny_spec, regions="whole")
        report = lib.printings.group()
        sets[at_once] = (
            report.pairs,
            sorted(sorted(_names(lib)[i] for i in g) for g in lib.printings.groups()),
        )
    assert sets[256][0] == 6 and sets[1][0] == 3
    assert sets[256][1] == sets[1][1] == [["0.png", "1.png", "2.png", "3.png"]]
