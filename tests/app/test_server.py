"""The HTTP API: search, paging, items and pages, feedback, annotations, labels, safety."""

import io
import json

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from sashie.app import server
from sashie.app.api import search as search_api
from sashie.errors import SashieError
from sashie.eval.references import reference_pictures
from sashie.eval.world.artists import Artists
from sashie.eval.world.vocab import vocabulary
from sashie.library import Asked, Library

from conftest import indexed_world, make_pages, serving


@pytest.fixture(scope="module")
def world_library(tmp_path_factory):
    return indexed_world(tmp_path_factory.mktemp("served"), pages=24, seed=21)[1]


@pytest.fixture(scope="module")
def client(world_library):
    return TestClient(server.create_app(world_library))


def png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def references(n: int) -> list[bytes]:
    concept = vocabulary().by_key[vocabulary().query_seen[0]]
    return [png(p) for p in reference_pictures(Artists(), concept, n, seed=0)]


def test_the_page_and_the_openapi_description(client):
    page = client.get("/")
    assert page.status_code == 200 and "sashie" in page.text and "<script>" in page.text
    paths = client.get("/openapi.json").json()["paths"]
    for path in (
        "/api/search",
        "/api/feedback",
        "/api/items/{item_id}",
        "/api/annotations",
        "/api/marks",
        "/api/items/{item_id}/thumbnail",
    ):
        assert path in paths


def test_the_page_takes_its_defaults_from_the_server(client):
    from sashie.adapt.settings import AdaptSettings
    from sashie.search.query import DEFAULT_DIMS

    defaults = client.get("/api/info").json()["defaults"]
    assert defaults == {
        "dims": DEFAULT_DIMS,
        "epochs": AdaptSettings().epochs,
        "ratio": AdaptSettings().ratio,
    }
    page = client.get("/").text
    assert 'id="dims" type="number" min="1" max="4096" value' not in page  # none of its own


def test_text_search_pages_through_results_and_serves_thumbnails(client):
    first = client.post("/api/search", data={"text": "a page of text", "limit": "10"}).json()
    assert len(first["results"]) == 10 and first["more"] and first["dims"] is None
    scores = [r["score"] for r in first["results"]]
    assert scores == sorted(scores, reverse=True)
    second = client.get(f"/api/search/{first['query']}", params={"offset": 10, "limit": 10}).json()
    assert second["results"][0]["rank"] == 11
    assert not {r["item"] for r in first["results"]} & {r["item"] for r in second["results"]}
    thumb = client.get(first["results"][0]["thumbnail"])
    assert thumb.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(thumb.content)).size[0] <= 256


def test_image_and_multi_image_search(client):
    [one] = references(1)
    single = client.post(
        "/api/search", files=[("images", ("ref.png", one, "image/png"))], data={"limit": "5"}
    ).json()
    assert len(single["results"]) == 5 and single["dims"] is None
    three = [("images", (f"ref{i}.png", data, "image/png")) for i, data in enumerate(references(3))]
    multi = client.post("/api/search", files=three, data={"dims": "64", "limit": "5"}).json()
    assert multi["dims"] == 64 and len(multi["results"]) == 5
    every = client.post("/api/search", files=three, data={"dims": "all"}).json()
    assert every["dims"] is None


def test_the_api_ranks_exactly_as_the_library_does(client, world_library):
    """The server's query is `Library.query`'s: a multi-image search through the API ranks
    the items as `Library.search` does (once it ranked by the mean vector in all dimensions
    while saying it kept 64)."""
    pictures = [Image.open(io.BytesIO(data)) for data in references(3)]
    with Library(world_library) as lib:
        for dims, text in ((64, ""), (None, ""), (None, "a cat")):
            expected = lib.search(Asked(text=text or None, images=pictures, dims=dims), 20)
            files = [
                ("images", (f"ref{i}.png", png(p), "image/png")) for i, p in enumerate(pictures)
            ]
            got = client.post(
                "/api/search",
                files=files,
                data={"text": text, "dims": str(dims or "all"), "limit": "20"},
            ).json()
            assert [r["item"] for r in got["results"]] == [h.item for h in expected]
            assert [r["score"] for r in got["results"]] == pytest.approx(
                [h.score for h in expected], abs=1e-4
            )


def test_a_query_being_encoded_holds_up_no_other_request(world_library, monkeypatch):
    """The model runs in a worker thread with no lock held: while a search's words are being
    encoded, other requests are answered (they would wait for it if the model ran on the
    event loop or under the server's lock)."""
    import threading

    import httpx

    from sashie.encoders.torch_base import TorchEncoder

    encoding, release = threading.Event(), threading.Event()
    encode_texts = TorchEncoder.encode_texts

    def held(self, texts):
        if "held up" in texts[0]:
            encoding.set()
            assert release.wait(60)
        return encode_texts(self, texts)

    monkeypatch.setattr(TorchEncoder, "encode_texts", held)
    with serving(server.create_app(world_library)) as url:
        httpx.post(f"{url}/api/search", data={"text": "warm up"}, timeout=60)
        answers = []
        search = threading.Thread(
            target=lambda: answers.append(
                httpx.post(f"{url}/api/search", data={"text": "held up", "limit": "5"}, timeout=120)
            )
        )
        search.start()
        try:
            assert encoding.wait(60)
            info = httpx.get(f"{url}/api/info", timeout=30)
            other = httpx.post(f"{url}/api/search", data={"text": "a cat"}, timeout=30)
            thumbnail = httpx.get(f"{url}/api/items/1/thumbnail", timeout=30)
        finally:
            release.set()
            search.join(60)
    assert info.status_code == other.status_code == thumbnail.status_code == 200
    assert answers[0].status_code == 200 and len(answers[0].json()["results"]) == 5


def test_bad_requests_get_one_clear_message(client, monkeypatch):
    empty = client.post("/api/search", data={"text": "  "})
    assert empty.status_code == 400 and "type a query" in empty.json()["error"]
    broken = client.post("/api/search", files=[("images", ("x.png", b"not an image", "image/png"))])
    assert broken.status_code == 400 and broken.json()["error"].startswith("x.png:")
    monkeypatch.setattr(search_api, "MAX_UPLOAD_BYTES", 100)
    [big] = references(1)
    large = client.post("/api/search", files=[("images", ("big.png", big, "image/png"))])
    assert large.status_code == 400 and "larger than" in large.json()["error"]
    assert client.get("/api/search/nope").json()["error"].startswith("this search has expired")
    assert client.get("/api/items/999999").status_code == 404


def test_a_path_in_a_query_is_text_never_a_file(client, tmp_path):
    secret = tmp_path / "secret.png"
    Image.new("RGB", (40, 40), "red").save(secret)
    found = client.post("/api/search", data={"text": str(secret), "limit": "3"})
    assert found.status_code == 200  # searched as words; the file was never opened
    assert client.get(f"/api/items/1/original?path={secret}").content != secret.read_bytes()


def test_an_image_url_or_a_sum_naming_a_file_in_a_query_is_never_fetched_or_read(
    client, tmp_path, monkeypatch
):
    """Library.query reads image terms from a query's text; the server turns that off."""
    import sashie.search.query as query_module

    def refuse(uri, **_):
        raise AssertionError(f"the server read {uri}")

    monkeypatch.setattr(query_module, "load_image", refuse)
    secret = tmp_path / "secret.png"
    Image.new("RGB", (40, 40), "red").save(secret)
    for text in ("http://127.0.0.1:9/page.png", f'"a cat" + {secret}', f"{secret} - 0.5*cat"):
        found = client.post("/api/search", data={"text": text, "limit": "3"})
        assert found.status_code == 200, found.text


def test_item_details_page_and_original(client, world_library):
    hit = client.post("/api/search", data={"text": "a cat", "limit": "1"}).json()["results"][0]
    item = client.get(f"/api/items/{hit['item']}").json()
    assert item["bbox"] == hit["bbox"] and len(item["page_size"]) == 2
    assert set(item["links"]) >= {"page", "original", "thumbnail"}
    page = client.get(item["links"]["page"])
    assert Image.open(io.BytesIO(page.content)).size[0] <= 1400
    original = client.get(item["links"]["original"])
    with open(item["page"], "rb") as f:
        assert original.content == f.read()


def test_feedback_changes_the_ranking(client):
    first = client.post("/api/search", data={"text": "a picture of a dog", "limit": "20"}).json()
    items = [r["item"] for r in first["results"]]
    for learner in ("logistic", "linear_svm", "decision_tree", "rocchio"):
        refined = client.post(
            "/api/feedback",
            json={
                "query": first["query"],
                "relevant": items[3:6],
                "irrelevant": items[:3],
                "learner": learner,
                "limit": 20,
            },
        ).json()
        ranked = [r["item"] for r in refined["results"]]
        assert len(ranked) == 20 and ranked != items, learner
        assert not set(items[:3]) & set(ranked[:3]), learner
    unknown = client.post(
        "/api/feedback", json={"query": first["query"], "relevant": items[:1], "learner": "oracle"}
    )
    assert unknown.status_code == 400
    nothing = client.post("/api/feedback", json={"query": first["query"], "relevant": []})
    assert "at least one" in nothing.json()["error"]


def test_annotations_and_labels(client, world_library, tmp_path):
    items = [
        r["item"]
        for r in client.post("/api/search", data={"text": "a tree", "limit": "3"}).json()["results"]
    ]
    done = client.post("/api/annotations", json={"items": items, "caption": "几帳"}).json()
    assert done["added"] == 3
    assert (
        client.post("/api/annotations", json={"items": items, "caption": "几帳"}).json()["added"]
        == 0
    )  # the same caption twice is one annotation
    listed = client.get("/api/annotations").json()["annotations"]
    assert {a["item"] for a in listed if a["caption"] == "几帳"} == set(items)
    assert client.get(f"/api/items/{items[0]}").json()["annotations"] == ["几帳"]
    bad = client.post("/api/annotations", json={"items": [999999], "caption": "x"})
    assert bad.status_code == 400 and "no item 999999" in bad.json()["error"]

    labelled = client.post("/api/marks", json={"items": items[:2], "keep": False}).json()
    assert labelled["marked"] == 2 and labelled["exclude"] >= 2
    assert client.get(f"/api/items/{items[0]}").json()["mark"] == "exclude"

    out = Library(world_library).annotations.export(tmp_path / "dataset")
    lines = [json.loads(line) for line in (out / "annotations.jsonl").read_text().splitlines()]
    assert len(lines) == 3 and {line["caption"] for line in lines} == {"几帳"}
    crop = Image.open(out / lines[0]["image"])
    x0, y0, x1, y1 = lines[0]["bbox"]
    assert crop.size == (x1 - x0, y1 - y0)


def test_boxes_drawn_on_a_page_are_kept_checked_and_forgotten(client):
    item = client.post("/api/search", data={"text": "a tree", "limit": "1"}).json()["results"]
    item = item[0]["item"]
    details = client.get(f"/api/items/{item}").json()
    width = details["page_size"][0]
    url = f"/api/items/{item}/page-boxes"
    first = client.get(url).json()
    assert (first["boxes"], first["drawn"], first["boxed_pages"]) == ([], False, 0)
    found = first["found"]  # what the detectors cut from the page, to start from
    assert found and all(f["detector"] not in ("whole", "tiles") for f in found)
    if details["detector"] == "layout":
        assert {"box": details["bbox"], "detector": "layout"} in found
    drawn = client.put(url, json={"boxes": [[10.4, 20, 60, 90], [-5, -5, 30, 30]]}).json()
    assert drawn["boxes"] == [[10, 20, 60, 90], [0, 0, 30, 30]]  # clipped to the page
    assert drawn["drawn"] and drawn["boxed_pages"] == 1
    assert client.get(url).json()["boxes"] == drawn["boxes"]
    huge = client.put(url, json={"boxes": [[0, 0, 10**12, 10**12]]})
    assert huge.status_code == 400 and "box 1" in huge.json()["error"]
    outside = client.put(url, json={"boxes": [[width + 5, 0, width + 50, 40]]})
    assert outside.status_code == 400 and "outside the page" in outside.json()["error"]
    for bad in ({"boxes": [[1, 2, 3]]}, {"boxes": [["a", 0, 1, 1]]}, {"boxes": "0,0,1,1"},
                {"boxes": [[0, 0, 5, 5]] * 201}):  # fmt: skip
        answer = client.put(url, json=bad)
        assert answer.status_code == 422 and answer.json()["error"].startswith("boxes")
    nan = client.put(url, content=b'{"boxes": [[NaN, 0, 5, 5]]}')
    assert nan.status_code == 422
    assert client.get(url).json()["boxes"] == drawn["boxes"]  # nothing bad was kept
    none_here = client.put(url, json={"boxes": []}).json()  # looked at: no illustration
    assert (none_here["boxes"], none_here["drawn"], none_here["boxed_pages"]) == ([], True, 1)
    assert client.delete(url).json() == {"boxes": [], "drawn": False, "boxed_pages": 0}
    assert client.put("/api/items/999999/page-boxes", json={"boxes": []}).status_code == 404


def test_a_token_guards_every_request(world_library):
    guarded = TestClient(server.create_app(world_library, token="s3cret"))
    assert guarded.get("/api/info").status_code == 401
    assert guarded.get("/").status_code == 401
    assert guarded.get("/api/info", headers={"X-Sashie-Token": "s3cret"}).status_code == 200
    assert guarded.get("/api/info?token=s3cret").status_code == 401  # never in a URL
    opened = guarded.get("/?token=s3cret", follow_redirects=False)  # the link serve prints
    assert opened.status_code == 303 and opened.headers["location"] == "/"
    cookie = opened.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    assert guarded.get("/").status_code == 200  # the cookie carries it from now on
    assert guarded.get("/api/info").status_code == 200


def test_binding_beyond_this_machine_needs_a_flag(world_library):
    with pytest.raises(SashieError, match="--allow-remote"):
        server.serve(world_library, host="0.0.0.0")


def test_an_empty_library_says_so(tmp_path):
    Library(tmp_path / "empty", create=True).close()
    empty = TestClient(server.create_app(tmp_path / "empty"))
    assert empty.get("/api/info").json()["items"] == 0
    answer = empty.post("/api/search", data={"text": "a crane"})
    assert answer.status_code == 400 and "empty" in answer.json()["error"]


@pytest.mark.slow
def test_adapting_from_the_api_runs_in_the_background_and_switches_versions(tmp_path):
    import time

    lib_path = indexed_world(tmp_path, pages=12, seed=23)[1]
    client = TestClient(server.create_app(lib_path))
    first = client.post("/api/search", data={"text": "a tree", "limit": "6"}).json()
    items = [r["item"] for r in first["results"]]
    nothing = client.post("/api/adapt", json={}).json()  # no annotations: a clear failure
    while nothing["job"]["state"] == "running":
        time.sleep(0.1)
        nothing = client.get("/api/adapt").json()
    assert nothing["job"]["state"] == "failed" and "two annotations" in nothing["job"]["error"]

    client.post("/api/annotations", json={"items": items[:3], "caption": "几帳"})
    client.post("/api/annotations", json={"items": items[3:], "caption": "菫"})
    started = client.post("/api/adapt", json={"epochs": 2}).json()
    assert started["job"]["state"] == "running"
    again = client.post("/api/adapt", json={})
    assert again.status_code == 400 or again.json()["job"]["state"] in ("running", "done")
    deadline = time.time() + 120
    state = client.get("/api/adapt").json()
    while state["job"]["state"] == "running" and time.time() < deadline:
        time.sleep(0.1)
        state = client.get("/api/adapt").json()
    assert state["job"]["state"] == "done", state
    job = state["job"]  # the report as `adapt --json` gives it, less the server's own paths
    assert job["version"] == "v1" and job["captions"] == 2 and job["seconds"] > 0
    assert "folder" not in job and "loss_curve" not in job
    assert state["active"] == "v1" and [v["name"] for v in state["versions"]] == ["v1"]
    assert state["captions"] == {"几帳": 3, "菫": 3}
    info = client.get("/api/info").json()
    assert info["models"][0]["active_version"] == "v1"
    expired = client.get(f"/api/search/{first['query']}")  # made in the base model's space
    assert expired.status_code == 410 and expired.json()["expired"]  # the page searches again
    adapted = client.post("/api/search", data={"text": "几帳", "limit": "5"}).json()
    # the taught caption brings its captioned examples first (the version remembers them:
    # their likeness to themselves adds 1 to a cosine)
    assert {r["item"] for r in adapted["results"][:3]} == set(items[:3])
    assert min(r["score"] for r in adapted["results"][:3]) > 1.0
    switched = client.post("/api/adapt/use", json={"version": "base"}).json()
    assert switched["active"] == "base"
    base = client.post("/api/search", data={"text": "几帳", "limit": "5"}).json()
    assert [r["score"] for r in adapted["results"]] != [r["score"] for r in base["results"]]
    unknown = client.post("/api/adapt/use", json={"version": "v7"})
    assert unknown.status_code == 400 and "no model version 'v7'" in unknown.json()["error"]
    bad = client.post("/api/adapt", json={"ratio": 3})
    assert bad.status_code == 422


@pytest.mark.slow
def test_an_image_version_from_the_api_is_searched_and_shows_its_loss_curve(tmp_path):
    """The model panel's "for image search" (MCIP): the version records its target, becomes
    the active one, searches run in it, and its loss curve is served as a PNG."""
    import time

    lib_path = indexed_world(tmp_path, pages=12, seed=24)[1]
    client = TestClient(server.create_app(lib_path))
    items = [
        r["item"]
        for r in client.post("/api/search", data={"text": "a tree", "limit": "8"}).json()["results"]
    ]
    client.post("/api/annotations", json={"items": items[:4], "caption": "几帳"})
    client.post("/api/annotations", json={"items": items[4:], "caption": "菫"})
    wrong = client.post("/api/adapt", json={"target": "faces"})
    assert wrong.status_code == 422
    assert client.get("/api/adapt/loss/base").status_code == 404
    client.post("/api/adapt", json={"epochs": 2, "target": "images"})
    deadline = time.time() + 120
    state = client.get("/api/adapt").json()
    while state["job"]["state"] == "running" and time.time() < deadline:
        time.sleep(0.1)
        state = client.get("/api/adapt").json()
    assert state["job"]["state"] == "done", state
    assert state["versions"][0]["settings"]["target"] == "images"
    assert not state["versions"][0]["settings"]["realign"]
    plot = client.get("/api/adapt/loss/v1")
    assert plot.status_code == 200 and plot.headers["content-type"] == "image/png"
    assert plot.content.startswith(b"\x89PNG")
    assert client.get("/api/adapt/loss/v9").status_code == 400
    for hostile in ("..%2F..%2Fmanifest.json", "v1%2F..%2F..%2Fmanifest.json", "%2Fetc%2Fpasswd"):
        answer = client.get(f"/api/adapt/loss/{hostile}")  # a name, never a path
        assert answer.status_code in (400, 404) and not answer.content.startswith(b"{\n")
    assert state["active"] == "v1"
    after = client.post("/api/search", data={"text": "a crane", "limit": "5"}).json()
    assert len(after["results"]) == 5


def test_search_by_example_items_and_by_a_plain_link(client):
    first = client.post("/api/search", data={"text": "a tree", "limit": "5"}).json()
    ids = [r["item"] for r in first["results"]]
    one = client.post("/api/search", data={"items": str(ids[0]), "limit": "5"}).json()
    assert one["results"][0]["item"] == ids[0] and one["dims"] is None  # itself, first
    two = client.post("/api/search", data={"items": f"{ids[0]},{ids[1]}"}).json()
    assert two["dims"] == 192  # several examples: the dimensions they agree on
    linked = client.get("/api/search", params={"q": "a tree", "limit": 5}).json()
    assert [r["item"] for r in linked["results"]] == ids
    unknown = client.get("/api/search", params={"items": "999999"})
    assert unknown.status_code == 400 and "no item 999999" in unknown.json()["error"]
    assert client.get("/api/search", params={"items": "1,x"}).status_code == 400
    assert client.get("/api/search").status_code == 400  # nothing asked


def test_the_page_has_an_icon(client):
    icon = client.get("/favicon.ico")  # browsers ask for it: no 404 in their console
    assert icon.status_code == 200 and icon.headers["content-type"] == "image/x-icon"
    assert Image.open(io.BytesIO(icon.content)).format == "ICO"
    assert "/favicon.ico" not in client.get("/openapi.json").json()["paths"]


def test_the_page_suggests_searches_from_the_librarys_captions_and_classes(tmp_path, tiny_spec):
    """GET /api/info's example_queries, which the page offers before a search: the captions
    most used first, then the query the server was given, then the classes of the newest
    label set; at most six."""
    make_pages(tmp_path / "pages", 8)
    labels = tmp_path / "labels.csv"
    labels.write_text("name\nred square\nblue square\n", encoding="utf-8")
    with Library(tmp_path / "lib", create=True) as lib:
        lib.add([str(tmp_path / "pages")], model=tiny_spec, regions="whole")
        ids = lib.item_ids().tolist()
        lib.annotations.add(ids[:3], "几帳")
        lib.annotations.add(ids[3:4], "<b>a screen</b>")
        lib.labels.classify(labels, other_below=None)

    def suggested() -> dict:
        app = server.create_app(tmp_path / "lib", example_query="a crane")
        return TestClient(app).get("/api/info").json()

    info = suggested()
    assert info["example_queries"][:3] == ["几帳", "<b>a screen</b>", "a crane"]
    classes = info["example_queries"][3:]  # the classes that label some item, most first
    assert classes and set(classes) <= {"red square", "blue square"}
    assert info["example_query"] == "几帳"
    with Library(tmp_path / "lib") as lib:
        for i in range(8):
            lib.annotations.add(ids[4:5], f"caption {i}")
    assert len(suggested()["example_queries"]) == 6
