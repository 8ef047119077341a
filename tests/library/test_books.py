"""Books as researchers know them (issue 40): each manifest, folder or list is a book with
what its source says of it (IIIF v2 in the NDL's and the NIJL's shapes, v3, a sidecar CSV
read as hostile input), and searches filter, sort, group and count results by their books,
with the ANN index and with feedback."""

import base64
import json
import sqlite3
import urllib.parse

import pytest
from fastapi.testclient import TestClient

from sashie.app import server
from sashie.errors import SashieError
from sashie.library import Filters, Library, book_facets, by_book, sort_results
from sashie.store.books import parse_conditions

from conftest import make_pages, run_cli


def ndl_v2(images: list[str]) -> dict:
    """A manifest in the National Diet Library's IIIF 2.1 shape (written from its documented
    fields: English metadata labels, attribution, license, related)."""
    return {
        "@context": "http://iiif.io/api/presentation/2/context.json",
        "@id": "https://dl.ndl.go.jp/api/iiif/2568591/manifest.json",
        "@type": "sc:Manifest",
        "label": "絵本写宝袋",
        "metadata": [
            {"label": "Title", "value": "絵本写宝袋"},
            {"label": "Author", "value": "橘守国 画"},
            {"label": "Publisher", "value": "渋川清右衛門"},
            {"label": "Date", "value": "享保5"},
            {"label": "Place of Publication", "value": "大坂"},
            {"label": "Call Number", "value": "特1-123"},
        ],
        "license": "https://dl.ndl.go.jp/ja/pdm",
        "attribution": "国立国会図書館 National Diet Library, JAPAN",
        "related": "https://dl.ndl.go.jp/pid/2568591",
        "sequences": [{"@type": "sc:Sequence", "canvases": _v2_canvases(images)}],
    }  # fmt: skip


def _v2_canvases(images: list[str]) -> list[dict]:
    return [_v2_canvas(i, p) for i, p in enumerate(images)]


def nijl_v2(images: list[str]) -> dict:
    """A manifest in the shape of the NIJL's (国文学研究資料館) IIIF 2.1 manifests: Japanese
    metadata labels, a language-tagged value, an HTML link in a value."""
    return {
        "@context": "http://iiif.io/api/presentation/2/context.json",
        "@id": "https://kokusho.nijl.ac.jp/biblio/200014778/manifest",
        "@type": "sc:Manifest",
        "label": [{"@value": "北斎漫画", "@language": "ja"}],
        "metadata": [
            {"label": "書名", "value": "北斎漫画"},
            {"label": "著者", "value": "葛飾北斎"},
            {"label": "刊写", "value": "刊"},
            {"label": "刊年", "value": "文化11年"},
            {"label": "出版地", "value": "名古屋"},
            {"label": "URL", "value": "<a href='https://kokusho.nijl.ac.jp/biblio/200014778'>here</a>"},
        ],
        "license": "https://creativecommons.org/licenses/by-sa/4.0/",
        "attribution": "国文学研究資料館",
        "sequences": [{"canvases": _v2_canvases(images)}],
    }  # fmt: skip


def v3(images: list[str]) -> dict:
    """A IIIF 3 manifest: language maps, navDate, requiredStatement, rights, homepage."""
    return {
        "@context": "http://iiif.io/api/presentation/3/context.json",
        "id": "https://example.org/iiif/ehon/manifest",
        "type": "Manifest",
        "label": {"en": ["Picture book of birds"], "ja": ["絵本鳥"]},
        "metadata": [{"label": {"en": ["Artist"]}, "value": {"none": ["Kitao Masayoshi"]}}],
        "navDate": "1789-01-01T00:00:00Z",
        "requiredStatement": {"label": {"en": ["Attribution"]}, "value": {"en": ["A library"]}},
        "rights": "http://creativecommons.org/publicdomain/mark/1.0/",
        "homepage": [{"id": "https://example.org/books/ehon", "type": "Text"}],
        "items": [
            {
                "id": f"https://example.org/iiif/ehon/canvas/{i}",
                "type": "Canvas",
                "items": [{"items": [{"body": {"id": path, "type": "Image"}}]}],
            }
            for i, path in enumerate(images)
        ],
    }


def _v2_canvas(index: int, path: str) -> dict:
    return {
        "@id": f"https://example.org/canvas/{index}",
        "@type": "sc:Canvas",
        "images": [{"resource": {"@id": path}}],
    }


@pytest.fixture
def manifests(tmp_path):
    out = {}
    for name, shape in (("ndl", ndl_v2), ("nijl", nijl_v2), ("v3", v3)):
        pages = make_pages(tmp_path / name, 3, seed=len(out))
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(shape([p.name for p in pages]), ensure_ascii=False))
        (tmp_path / name / path.name).write_bytes(path.read_bytes())
        out[name] = tmp_path / name / path.name
    return out


def test_manifests_v2_and_v3_give_their_books(tmp_path, manifests):
    with Library(tmp_path / "lib", create=True) as lib:
        lib.add([str(p) for p in manifests.values()], regions="whole")
        books = {b["title"]: b for b in lib.books.list()}
        results = lib.search("a page", k=20)
    ndl, nijl, three = (
        books["絵本写宝袋"],
        books["北斎漫画"],
        books["Picture book of birds / 絵本鳥"],
    )
    assert (ndl["creator"], ndl["date"], ndl["place"]) == ("橘守国 画", "享保5", "大坂")
    assert (ndl["year_from"], ndl["year_to"]) == (1720, 1720)
    assert ndl["rights"] == "https://dl.ndl.go.jp/ja/pdm"
    assert ndl["homepage"] == "https://dl.ndl.go.jp/pid/2568591"
    assert ndl["fields"]["Publisher"] == "渋川清右衛門"
    assert ndl["fields"]["requiredStatement"].startswith("国立国会図書館")
    assert ndl["key"] == "https://dl.ndl.go.jp/api/iiif/2568591/manifest.json"
    assert (nijl["creator"], nijl["year_from"], nijl["place"]) == ("葛飾北斎", 1814, "名古屋")
    assert nijl["homepage"] == "https://kokusho.nijl.ac.jp/biblio/200014778"  # from its link
    assert (three["creator"], three["year_from"]) == ("Kitao Masayoshi", 1789)  # its navDate
    assert three["fields"]["navDate"] == "1789-01-01T00:00:00Z"
    assert three["homepage"] == "https://example.org/books/ehon"
    assert all(b["pages"] == 3 and b["items"] == 3 for b in books.values())
    numbers = sorted((r.book["title"], r.page_number) for r in results)
    assert numbers == sorted((t, n) for t in books for n in (1, 2, 3))


HOSTILE_CSV = (
    "folder,書名,著者,刊年,出版地,homepage,note\n"
    'early,"=HYPERLINK(""http://evil"")",Artist\x07One,寛政8年,江戸,javascript:alert(1),"<b>x</b>"\n'
    "middle,Middle book,Artist Two,1750,京,https://example.org/m," + "y" * 50_000 + "\n"
    "late,Late book,Artist Two,明治十二年,東京,,\n"
    "../../etc,Nothing,,,,,\n"
)


@pytest.fixture
def shelves(tmp_path):
    """Three folders of scans, each a book, and a sidecar naming them (hostile cells too)."""
    for seed, name in enumerate(("early", "middle", "late")):
        make_pages(tmp_path / "scans" / name, 6, seed=10 + seed)
    (tmp_path / "books.csv").write_text(HOSTILE_CSV, encoding="utf-8")
    with Library(tmp_path / "lib", create=True) as lib:
        lib.add([str(tmp_path / "scans")], regions="whole", metadata=tmp_path / "books.csv")
        lib.reindex(kind="hnsw")  # searches go through the ANN index
    return tmp_path / "lib"


def test_a_sidecar_describes_folders_and_is_read_as_hostile_input(shelves):
    books = {b["key"].rsplit("/", 1)[-1]: b for b in Library(shelves).books.list()}
    assert set(books) == {"early", "middle", "late"}
    early, middle, late = books["early"], books["middle"], books["late"]
    assert early["title"] == '=HYPERLINK("http://evil")'  # kept as text, never run
    assert early["creator"] == "ArtistOne"  # the control character dropped
    assert early["homepage"] is None  # not an http(s) URL
    assert early["fields"]["note"] == "x"
    assert (early["year_from"], middle["year_from"], late["year_from"]) == (1796, 1750, 1879)
    assert len(middle["fields"]["note"]) == 2000  # bounded
    assert middle["homepage"] == "https://example.org/m"


@pytest.mark.parametrize(
    ("name", "content", "error"),
    [
        ("b.csv", "title,date\nA,1796\n", "no key"),
        ("b.csv", b"folder,title\n\xff\xfe,x\n", "UTF-8"),
        ("b.json", '{"a": ' * 100_000 + "1" + "}" * 100_000, "not JSON"),
        ("b.json", "[1, 2]", "not a record"),
        ("b.json", '"text"', "not a list"),
    ],
)
def test_a_sidecar_that_cannot_be_used_is_one_error_line(tmp_path, pages, name, content, error):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    with pytest.raises(SashieError, match=error):
        Library(tmp_path / "lib", create=True).add([str(pages)], metadata=path)


def _years(results):
    return [r.book["year_from"] for r in results]


def test_books_filter_sort_and_count_search_results_with_the_ann_index(shelves):
    lib = Library(shelves)
    assert lib.info()["models"][0]["ann_index"]["kind"] == "hnsw"
    everything = lib.search("a page", k=18)
    assert sorted(set(_years(everything))) == [1750, 1796, 1879]
    old = lib.search("a page", k=18, where=Filters(conditions="year<1800"))
    assert sorted(set(_years(old))) == [1750, 1796] and len(old) == 12
    by_artist = lib.search("a page", k=18, where=Filters(conditions="creator~artist two"))
    assert sorted(set(_years(by_artist))) == [1750, 1879]
    middle = next(b["id"] for b in lib.books.list() if b["title"] == "Middle book")
    one = lib.search("a page", k=18, where=Filters(book=middle, conditions="year>=1700"))
    assert {r.book["id"] for r in one} == {middle} and len(one) == 6
    assert lib.search("a page", k=18, where=Filters(book=middle, conditions="year>1800")) == []
    ordered = sort_results(everything, "year")
    assert _years(ordered) == sorted(_years(everything))
    assert [r.rank for r in ordered] == list(range(1, 19))
    facets = book_facets(everything)
    assert {f["century"]: f["count"] for f in facets["century"]} == {
        "18th century": 12,
        "19th century": 6,
    }
    assert {f["creator"]: f["count"] for f in facets["creator"]}["Artist Two"] == 12
    groups = by_book(everything, per_book=2)
    assert len(groups) == 3 and all(len(g.results) == 2 and g.count == 6 for g in groups)
    cut = everything[5].score
    assert all(r.score >= cut for r in lib.search("a page", k=18, where=Filters(min_score=cut)))


def test_books_filter_feedback_too(shelves):
    lib = Library(shelves)
    items = [r.item for r in lib.search("a page", k=18)]
    refined = lib.feedback("a page", 18, relevant=items[:2], where=Filters(conditions="year=1879"))
    assert refined and set(_years(refined)) == {1879}


def test_the_command_line_and_the_api_narrow_by_books(shelves):
    listed = run_cli("books", shelves)
    assert "Middle book" in listed.stdout and "1750" in listed.stdout
    found = json.loads(
        run_cli("search", shelves, "a page", "--where", "year<1760", "--json").stdout
    )
    assert {r["book"]["year_from"] for r in found["results"]} == {1750}
    assert found["facets"]["century"] == [{"century": "18th century", "count": 6}]
    grouped = run_cli("search", shelves, "a page", "--by-book", "--sort", "year")
    assert grouped.stdout.index("寛政8年") < grouped.stdout.index("明治十二年")
    bad = run_cli("search", shelves, "a page", "--where", "year<later", check=False)
    assert bad.exit_code == 1 and "whole number" in bad.stderr
    client = TestClient(server.create_app(shelves))
    answer = client.get(
        "/api/search", params={"q": "a page", "where": "year>=1800", "sort": "year"}
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert {r["book"]["year_from"] for r in body["results"]} == {1879}
    assert body["book_facets"]["book"][0]["count"] == 6
    assert client.get("/api/books").json()["books"][0]["pages"] == 6
    refused = client.get("/api/search", params={"q": "a page", "where": "drop table books"})
    assert refused.status_code == 400 and "not a condition" in refused.json()["error"]


def test_a_catalog_from_before_books_is_brought_up_to_date(tmp_path, pages):
    with Library(tmp_path / "lib", create=True) as lib:
        lib.add([str(pages)], regions="whole")
    db = sqlite3.connect(tmp_path / "lib" / "catalog.sqlite")
    db.execute("DROP INDEX pages_book")
    db.execute("ALTER TABLE pages DROP COLUMN book_id")
    db.execute("ALTER TABLE pages DROP COLUMN page_number")
    db.execute("DROP TABLE books")
    db.commit()
    db.close()
    with Library(tmp_path / "lib", read_only=True) as old:  # read as it is: no books
        assert old.books.list() == [] and old.search("a page", k=3)
        assert old.search("a page", k=3, where=Filters(conditions="year<1900")) == []
    with Library(tmp_path / "lib") as lib:  # opened to write: brought up to date
        lib.add([str(pages)], regions="whole")  # nothing re-read; the books recorded
        assert [b["pages"] for b in lib.books.list()] == [12]
        assert lib.search("a page", k=3)[0].page_number is not None


def test_results_open_in_a_viewer_at_their_region(tmp_path, manifests, monkeypatch):
    with Library(tmp_path / "lib", create=True) as lib:
        lib.add([str(manifests["ndl"])], regions="whole")
        hit = lib.search("a page", k=1)[0]
        assert hit.homepage == "https://dl.ndl.go.jp/pid/2568591"
        state = json.loads(
            urllib.parse.unquote(base64.urlsafe_b64decode(hit.content_state + "==").decode())
        )
        assert state["target"]["source"]["id"] == hit.canvas
        manifest = urllib.parse.quote(hit.book["key"], safe="")
        xywh = urllib.parse.quote(hit.region.split("#xywh=")[1], safe="")
        index = hit.page_number - 1
        assert hit.viewer_url == (
            f"https://uv-v4.netlify.app/#?manifest={manifest}&cv={index}&xywh={xywh}"
        )
        monkeypatch.setenv("SASHIE_VIEWER", "mirador")
        assert lib.search("a page", k=1)[0].viewer_url.endswith(hit.content_state)
        monkeypatch.setenv("SASHIE_VIEWER", "https://viewer.example/?m={manifest}&c={canvas}")
        own = lib.search("a page", k=1)[0].viewer_url
        assert (
            own
            == f"https://viewer.example/?m={manifest}&c={urllib.parse.quote(hit.canvas, safe='')}"
        )
        monkeypatch.setenv("SASHIE_VIEWER", "none")
        assert lib.search("a page", k=1)[0].viewer_url is None
        monkeypatch.setenv("SASHIE_VIEWER", "javascript:alert(1)//{manifest}")
        with pytest.raises(SashieError, match="SASHIE_VIEWER"):
            lib.search("a page", k=1)


@pytest.mark.parametrize(
    ("text", "read"),
    [
        ("year<1700", [("year", "<", 1700)]),
        ("year>=1600 AND creator~北斎", [("year", ">=", 1600), ("creator", "~", "北斎")]),
        (
            'title="Birds and flowers" and year=1796',
            [("title", "=", "Birds and flowers"), ("year", "=", 1796)],
        ),
        ("creator='Kitao, Masayoshi'", [("creator", "=", "Kitao, Masayoshi")]),
        ("place=江戸 and book!=3", [("place", "=", "江戸"), ("book", "!=", 3)]),
    ],
)
def test_conditions_are_read(text, read):
    assert [(c.field, c.op, c.value) for c in parse_conditions(text)] == read


@pytest.mark.parametrize(
    "text",
    ["year<later", "book<3", "colour=red", "title<A", "year<1700; drop table books", "x" * 1001],
)
def test_a_condition_that_is_not_one_is_one_error_line(text):
    with pytest.raises(SashieError):
        parse_conditions(text)


def test_a_curation_json_groups_regions_by_manifest(tmp_path, manifests):
    with Library(tmp_path / "lib", create=True) as lib:
        lib.add([str(manifests["ndl"]), str(manifests["v3"])], regions="whole")
        items = lib.item_ids().tolist()
        lib.annotations.add(items[1:5], "鶴")
        regions = {lib.iiif_target(i)["region"] for i in items[1:5]}
    out = tmp_path / "cranes.json"
    run_cli("export-iiif", tmp_path / "lib", out, "--caption", "鶴", "--curation")
    curation = json.loads(out.read_text(encoding="utf-8"))
    assert curation["@type"] == "cr:Curation"
    assert "http://codh.rois.ac.jp/iiif/curation/1/context.json" in curation["@context"]
    within = {s["within"]["@id"]: s for s in curation["selections"]}
    assert set(within) == {
        "https://dl.ndl.go.jp/api/iiif/2568591/manifest.json",
        "https://example.org/iiif/ehon/manifest",
    }
    members = [m for s in curation["selections"] for m in s["members"]]
    assert {m["@id"] for m in members} == regions
    assert all(m["@type"] == "sc:Canvas" and m["label"] == "鶴" for m in members)
    client = TestClient(server.create_app(tmp_path / "lib"))
    answer = client.get("/api/iiif/annotations", params={"caption": "鶴", "curation": True})
    assert answer.status_code == 200 and answer.json()["@type"] == "cr:Curation"


def another_tools_page(canvas: str) -> dict:
    """An AnnotationPage as a web annotation tool writes one: HTML comments, tags, and a
    region on a canvas the library does not hold."""

    def note(xywh, *bodies, on=canvas):
        return {
            "id": f"https://tool.example/anno/{xywh}",
            "type": "Annotation",
            "motivation": "commenting",
            "body": [{"type": "TextualBody", "value": v, "purpose": p} for v, p in bodies],
            "target": {
                "source": on,
                "selector": {"type": "FragmentSelector", "value": f"xywh={xywh}"},
            },
        }

    return {
        "@context": "http://iiif.io/api/presentation/3/context.json",
        "id": "https://tool.example/page/1",
        "type": "AnnotationPage",
        "items": [
            note("10,20,50,60", ("<p>鶴</p>", "commenting"), ("bird", "tagging")),
            note("30,40,60,70", ("松", "tagging")),
            note("0,0,50,50", ("elsewhere", "tagging"), on="https://other.example/canvas/9"),
        ],
    }


def test_regions_from_another_tool_become_items_and_a_curation_goes_round(tmp_path, manifests):
    canvas = "https://example.org/canvas/1"
    page = tmp_path / "page.json"
    page.write_text(json.dumps(another_tools_page(canvas), ensure_ascii=False))
    with Library(tmp_path / "a", create=True) as lib:
        lib.add([str(manifests["ndl"])], regions="whole")
        report = lib.annotations.import_regions(page)
        assert (report.regions, report.items_made, report.items_found) == (3, 2, 0)
        assert report.skipped[0][0] == "https://other.example/canvas/9"
        made = sorted({a["item"] for a in lib.annotations.list()})
        captions = {
            (lib.iiif_target(a["item"])["region"], a["caption"]) for a in lib.annotations.list()
        }
        assert {c for _, c in captions} == {"鶴", "bird", "松"}
        assert {r for r, _ in captions} == {
            f"{canvas}#xywh=10,20,50,60",
            f"{canvas}#xywh=30,40,60,70",
        }
        assert lib.search("a page", k=10, where=Filters(all_items=True))  # they are searched
        again = lib.annotations.import_regions(page)  # the same file again: nothing new
        assert (again.items_made, again.items_found, again.annotations) == (0, 2, 0)
        curation = lib.iiif_annotations(made, curation=True).page
    out = tmp_path / "curation.json"
    out.write_text(json.dumps(curation, ensure_ascii=False))
    with Library(tmp_path / "b", create=True) as fresh:
        fresh.add([str(manifests["ndl"])], regions="whole")
        report = fresh.annotations.import_regions(out)
        assert (report.items_made, report.annotations) == (2, 3)
        brought = {
            (fresh.iiif_target(a["item"])["region"], a["caption"]) for a in fresh.annotations.list()
        }
    assert brought == captions  # the same regions and captions
    listed = run_cli("annotations", "import", tmp_path / "b", out, "--json")
    assert json.loads(listed.stdout)["items_found"] == 2


@pytest.mark.parametrize(
    "content",
    ['{"@type": "cr:Curation", "selections": 5}', '{"type": "Manifest"}', "[1, 2", '"text"'],
)
def test_a_file_of_regions_that_cannot_be_used_is_one_line_or_skips(tmp_path, pages, content):
    path = tmp_path / "regions.json"
    path.write_text(content)
    with Library(tmp_path / "lib", create=True) as lib:
        lib.add([str(pages)], regions="whole")
        try:
            report = lib.annotations.import_regions(path)
        except SashieError as e:
            assert "\n" not in str(e)
        else:
            assert report.items_made == 0 and report.annotations == 0


def test_year_and_book_conditions_meet_the_same_books_without_sqlite_as_with_it():
    """`BookYears.matching` (numpy, the first search with a new date range) keeps SQL's
    three-valued logic: a missing year is neither before nor after, not even for `!=`."""
    from sashie.store.books import Books
    from sashie.store.schema import SCHEMA

    db = sqlite3.connect(":memory:")
    db.executescript(SCHEMA)
    ranges = [(1600, 1600), (1650, 1700), (None, None), (1699, 1701), (None, 1700), (1700, None)]
    ranges += [(y, y + int(y % 7)) for y in range(1580, 1800, 13)]
    db.executemany(
        "INSERT INTO books (id, key, year_from, year_to, at) VALUES (?, ?, ?, ?, 0)",
        [(i + 1, f"b{i}", a, b) for i, (a, b) in enumerate(ranges)],
    )
    books = Books(lambda sql, params=(): db.execute(sql, params).fetchall(), True)
    years = books.years()
    asked = [f"year{op}{y}" for op in ("<", "<=", ">", ">=", "=", "!=") for y in (1600, 1700)]
    asked += ["book=3", "book!=3", "year>=1650 and year<1710", "year!=1700 and book!=1"]
    for text in asked:
        conditions = parse_conditions(text)
        assert sorted(years.matching(conditions)) == sorted(books.matching(conditions)), text
    assert years.matching(parse_conditions("creator~北斎")) is None  # SQLite's to answer


def test_a_filter_kept_between_searches_is_made_again_when_the_catalog_changes(shelves, tmp_path):
    lib = Library(shelves)
    old = Filters(conditions="year<1800")
    assert len(lib.search("a page", k=50, where=old)) == 12
    make_pages(tmp_path / "more" / "extra", 4, seed=31)
    (tmp_path / "more.csv").write_text("folder,title,date\nextra,Extra,1701\n", encoding="utf-8")
    lib.add([str(tmp_path / "more")], regions="whole", metadata=tmp_path / "more.csv")
    assert len(lib.search("a page", k=50, where=old)) == 16
    assert {r.book["year_from"] for r in lib.search("a page", k=50, where=old)} == {
        1701,
        1750,
        1796,
    }
