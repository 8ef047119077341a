"""IIIF in and out, against a local web server that serves a manifest, its pages and a small
IIIF Image API: boxes stay in page pixels and map onto the canvas; a found region becomes a
Content State and found regions an AnnotationPage, both valid IIIF Presentation 3 (checked by
iiif-prezi3, the IIIF community's Presentation 3 models); thumbnails ask the image service for
just their region, and pages without one are fetched once into the library's cache."""

import base64
import http.server
import io
import json
import re
import threading
import urllib.parse
import urllib.request
from collections import Counter

import iiif_prezi3
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from sashie import Library
from sashie.app.server import create_app
from sashie.errors import BadInput, NotFound, SashieError
from sashie.library.pictures import PageCache, Pictures, page_cache_bytes
from sashie.regions.base import Region
from sashie.sources.pages import manifest_pages
from sashie.store.catalog import ItemRow

from conftest import make_pages, run_cli

PAGE = (400, 600)  # what a page's URL gives (the server sends a reduced copy)
FULL = (800, 1200)  # the canvas, and the full image of the page's IIIF Image service
BOX = (100, 150, 300, 450)  # in page pixels
ON_CANVAS = [200, 300, 400, 600]  # x, y, w, h on the canvas
GRID = [(x, y, x + 100, y + 150) for y in range(0, 600, 150) for x in range(0, 400, 100)]


class Boxes:
    """A region detector that finds the same boxes on every page."""

    name = "boxes"

    def __init__(self, boxes):
        self.boxes = boxes

    def detect(self, image, page):
        return [Region(box, self.name) for box in self.boxes]


def picture(seed: int) -> Image.Image:
    """A page: smooth gradients and a block, so that crops from two sources can be compared."""
    y, x = np.mgrid[0 : PAGE[1], 0 : PAGE[0]]
    pixels = np.stack([x * 255 // PAGE[0], y * 255 // PAGE[1], np.full_like(x, 40 * seed)], -1)
    pixels[200:400, 150:300] = (250, 250, 250)
    return Image.fromarray(pixels.astype(np.uint8))


def encoded(image: Image.Image, kind: str) -> bytes:
    out = io.BytesIO()
    image.save(out, kind, quality=95)
    return out.getvalue()


class Handler(http.server.BaseHTTPRequestHandler):
    """Fixed routes, and a IIIF Image API (`/iiif/<name>/<region>/<size>/0/default.jpg`)
    over the server's full-size images. Every request is counted."""

    def do_GET(self):
        server = self.server
        with server.lock:
            server.hits[self.path] += 1
        body = server.routes.get(self.path)
        match = re.fullmatch(r"/iiif/(\w+)/([^/]+)/([^/]+)/0/default\.jpg", self.path)
        if body is None and match and match[1] in server.services:
            body = image_api(server.services[match[1]], match[2], match[3])
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def image_api(full: Image.Image, region: str, size: str) -> bytes | None:
    if region == "full":
        box = (0, 0, *full.size)
    else:
        x, y, w, h = map(int, region.split(","))
        box = (x, y, x + w, y + h)
    image = full.crop(box)
    if size.startswith("!"):
        image.thumbnail(tuple(map(int, size[1:].split(","))))  # never larger (Image API 3)
    elif size != "max":
        return None
    return encoded(image, "JPEG")


@pytest.fixture
def web(monkeypatch):
    """A local web server: (the server, with .routes, .services and .hits; its base URL).
    Its pages are this machine's, which a library shows only when SASHIE_PRIVATE_HOSTS
    allows it (a library's own intranet server, as a curator would allow it)."""
    monkeypatch.setenv("SASHIE_PRIVATE_HOSTS", "127.0.0.1")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.routes, server.services, server.hits = {}, {}, Counter()
    server.lock = threading.Lock()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def v3_manifest(base: str, pages: int, *, sizes=True, services=True) -> dict:
    canvases = []
    for i in range(pages):
        body = {"id": f"{base}/img/p{i}.png", "type": "Image", "format": "image/png"}
        canvas = {"id": f"{base}/canvas/{i}", "type": "Canvas", "label": {"en": [f"p. {i}"]}}
        if sizes:
            body |= {"width": FULL[0], "height": FULL[1]}
            canvas |= {"width": FULL[0], "height": FULL[1]}
        if services:
            body["service"] = [{"id": f"{base}/iiif/p{i}", "type": "ImageService3"}]
        painting = {"id": f"{base}/anno/{i}", "type": "Annotation", "motivation": "painting"}
        painting |= {"body": body, "target": canvas["id"]}
        canvas["items"] = [
            {"id": f"{base}/page/{i}", "type": "AnnotationPage", "items": [painting]}
        ]
        canvases.append(canvas)
    return {
        "@context": "http://iiif.io/api/presentation/3/context.json",
        "id": f"{base}/manifest.json",
        "type": "Manifest",
        "label": {"en": ["A book"]},
        "items": canvases,
    }


def serve_book(server, base, pages=1, **options):
    for i in range(pages):
        server.routes[f"/img/p{i}.png"] = encoded(picture(i), "PNG")
        if options.get("services", True):
            server.services[f"p{i}"] = picture(i).resize(FULL)
    server.routes["/manifest.json"] = json.dumps(v3_manifest(base, pages, **options)).encode()


def index_book(path, spec, base, boxes=(BOX,)) -> Library:
    lib = Library(path, create=True)
    lib.add([f"{base}/manifest.json"], model=spec, regions=[Boxes(list(boxes))])
    return lib


def content_state_of(value: str) -> dict:
    """A content-state encoding decoded (Content State 1.0, section 6)."""
    padded = value + "=" * (-len(value) % 4)
    return json.loads(urllib.parse.unquote(base64.urlsafe_b64decode(padded).decode("ascii")))


def mean_difference(a: Image.Image, b: Image.Image) -> float:
    b = b.resize(a.size)
    return float(np.abs(np.asarray(a, float) - np.asarray(b, float)).mean())


def iiif_app(path):
    """The server's app, with its IIIF endpoints."""
    return create_app(path)


# --- 1. boxes in page pixels, regions on the canvas --------------------------------------


def test_a_manifest_gives_canvas_and_image_sizes():
    doc = v3_manifest("https://example.org", 1)
    doc["items"].append(json.loads(json.dumps(doc["items"][0])))
    doc["items"][1] |= {"width": "3200", "height": True}  # not sizes: left out
    first, second = manifest_pages(doc, "https://example.org/manifest.json", print)
    assert (first.metadata["canvas_width"], first.metadata["canvas_height"]) == FULL
    assert (first.metadata["image_width"], first.metadata["image_height"]) == FULL
    assert "canvas_width" not in second.metadata and "image_width" in second.metadata


def test_boxes_stay_in_page_pixels_and_regions_are_on_the_canvas(tmp_path, web, tiny_spec):
    server, base = web
    serve_book(server, base)
    with index_book(tmp_path / "lib", tiny_spec, base) as lib:
        (row,) = lib.items()
        assert row.bbox == BOX and row.page_size == PAGE  # as found, in the page's pixels
        target = lib.iiif_target(row.id)
    assert target["canvas"] == f"{base}/canvas/0"
    assert target["manifest"] == f"{base}/manifest.json"
    assert target["canvas_size"] == list(FULL)
    assert target["xywh"] == ON_CANVAS  # not (100, 150, 200, 300): a quarter of it
    assert target["region"] == f"{base}/canvas/0#xywh=200,300,400,600"
    assert target["image_region"] == f"{base}/iiif/p0/200,300,400,600/max/0/default.jpg"
    with urllib.request.urlopen(target["image_region"]) as answer:
        region = Image.open(io.BytesIO(answer.read())).convert("RGB")
    assert region.size == (400, 600)  # the whole of what was found, at full resolution
    assert mean_difference(region, picture(0).crop(BOX)) < 3


def test_indexing_again_records_canvas_sizes_without_fetching_pages(tmp_path, web, tiny_spec):
    server, base = web
    serve_book(server, base, sizes=False)  # a library indexed before sizes were kept
    with index_book(tmp_path / "lib", tiny_spec, base) as lib:
        item = lib.items()[0].id
        assert lib.iiif_target(item)["xywh"] == [100, 150, 200, 300]  # no canvas size known
        serve_book(server, base)
        report = lib.add([f"{base}/manifest.json"], model=tiny_spec, regions=[Boxes([BOX])])
        assert report.pages_unchanged == 1
        assert lib.iiif_target(item)["xywh"] == ON_CANVAS
    assert server.hits["/img/p0.png"] == 1


# --- 2. IIIF out: a Content State, an AnnotationPage ----------------------------------------


def test_a_found_region_is_a_valid_content_state(tmp_path, web, tiny_spec):
    server, base = web
    serve_book(server, base)
    with index_book(tmp_path / "lib", tiny_spec, base) as lib:
        target = lib.iiif_target(lib.items()[0].id)
    state = target["content_state"]
    iiif_prezi3.Annotation(**state)  # raises when not valid Presentation 3
    assert state["motivation"] == ["contentState"]
    assert state["target"]["source"] == {
        "id": f"{base}/canvas/0",
        "type": "Canvas",
        "partOf": [{"id": f"{base}/manifest.json", "type": "Manifest"}],
    }
    assert state["target"]["selector"]["value"] == "xywh=200,300,400,600"
    assert re.fullmatch(r"[A-Za-z0-9_-]+", target["iiif_content"])  # base64url, no padding
    assert content_state_of(target["iiif_content"]) == state


@pytest.fixture
def mixed_library(tmp_path, web, tiny_spec):
    """Two IIIF pages of GRID boxes and three local pages: (library path, base URL)."""
    server, base = web
    serve_book(server, base, pages=2)
    with index_book(tmp_path / "lib", tiny_spec, base, boxes=GRID) as lib:
        lib.add([str(make_pages(tmp_path / "local", 3)[0].parent)], regions="whole")
        iiif_items = [r.id for r in lib.items() if r.metadata.get("canvas")]
        lib.annotations.add(iiif_items[:3], "几帳")
        lib.filter.mark(iiif_items[3:5], [True, True])
    return tmp_path / "lib", base


def test_found_regions_are_a_valid_annotation_page(mixed_library):
    path, base = mixed_library
    with Library(path) as lib:
        results = lib.search("a page", k=40)
        local = sum(1 for r in results if not r.metadata.get("canvas"))
        export = lib.iiif_annotations(
            [r.item for r in results], scores=[r.score for r in results], title="a page"
        )
        by_caption = lib.iiif_annotations(caption="  几帳 ")
        by_mark = lib.iiif_annotations(mark="keep")
        with pytest.raises(SashieError, match=r"^no item is marked exclude$"):
            lib.iiif_annotations(mark="exclude")
    assert local == 3 and export.skipped == 3 and export.annotations == 32
    page = export.page
    iiif_prezi3.AnnotationPage(**page)
    assert page["label"] == {"none": ["a page"]}
    first = page["items"][0]
    assert first["target"]["source"]["partOf"] == [
        {"id": f"{base}/manifest.json", "type": "Manifest"}
    ]
    describing = first["body"][-1]
    assert describing["purpose"] == "describing"
    assert describing["value"].startswith("a page: #") and ", score 0." in describing["value"]
    assert len({a["id"] for a in page["items"]}) == 32

    iiif_prezi3.AnnotationPage(**by_caption.page)
    assert by_caption.annotations == 3
    for annotation in by_caption.page["items"]:
        assert {
            "type": "TextualBody",
            "value": "几帳",
            "format": "text/plain",
            "purpose": "tagging",
        } in annotation["body"]
    iiif_prezi3.AnnotationPage(**by_mark.page)
    assert by_mark.annotations == 2 and by_mark.page["label"] == {"none": ["marked keep"]}


def test_the_command_line_writes_iiif(mixed_library, tmp_path):
    path, base = mixed_library
    out = tmp_path / "found.json"
    done = run_cli("export-iiif", path, out, "--query", "a page", "-k", 40)
    assert "32 regions written" in done.stderr and "3 not from a IIIF manifest" in done.stderr
    iiif_prezi3.AnnotationPage(**json.loads(out.read_text(encoding="utf-8")))
    run_cli("export-iiif", path, out, "--caption", "几帳")
    assert len(json.loads(out.read_text(encoding="utf-8"))["items"]) == 3

    refused = run_cli("export-iiif", path, out, check=False)
    assert refused.exit_code == 1
    assert refused.stderr == "error: name one of --query, --caption, --mark or --items\n"

    with Library(path) as lib:
        rows = lib.items()
    iiif_item = next(r.id for r in rows if r.metadata.get("canvas"))
    local_item = next(r.id for r in rows if not r.metadata.get("canvas"))
    link = run_cli("iiif-link", path, iiif_item).stdout
    assert f"region         {base}/canvas/0#xywh=0,0,200,300" in link
    linked = json.loads(run_cli("iiif-link", path, iiif_item, "--json").stdout)
    assert content_state_of(linked["iiif_content"]) == linked["content_state"]
    missing = run_cli("iiif-link", path, local_item, check=False)
    assert missing.stderr == (
        f"error: item {local_item} is not from a IIIF manifest (its page has no canvas)\n"
    )


def test_the_http_api_gives_links_and_annotation_pages(mixed_library):
    path, base = mixed_library
    client = TestClient(iiif_app(path))
    with Library(path) as lib:
        rows = lib.items()
    iiif_items = [r.id for r in rows if r.metadata.get("canvas")]
    local_item = next(r.id for r in rows if not r.metadata.get("canvas"))

    target = client.get(f"/api/items/{iiif_items[0]}/iiif").json()
    assert target["region"] == f"{base}/canvas/0#xywh=0,0,200,300"
    iiif_prezi3.Annotation(**target["content_state"])
    missing = client.get(f"/api/items/{local_item}/iiif")
    assert missing.status_code == 404 and "not from a IIIF manifest" in missing.json()["error"]

    asked = {"items": [*iiif_items[:4], local_item], "scores": [0.9, 0.8, 0.7, 0.6, 0.5]}
    answer = client.post("/api/iiif/annotations", json={**asked, "title": "a crane"})
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/ld+json")
    assert answer.headers["x-sashie-annotations"] == "4"
    assert answer.headers["x-sashie-skipped"] == "1"
    iiif_prezi3.AnnotationPage(**answer.json())

    by_caption = client.get("/api/iiif/annotations", params={"caption": "几帳"})
    assert by_caption.headers["x-sashie-annotations"] == "3"
    iiif_prezi3.AnnotationPage(**by_caption.json())
    assert client.get("/api/iiif/annotations", params={"mark": "keep"}).status_code == 200
    for bad in ({"mark": "maybe"}, {}, {"mark": "exclude"}):
        refused = client.get("/api/iiif/annotations", params=bad)
        assert refused.status_code in (400, 422) and refused.json()["error"]
    uneven = client.post("/api/iiif/annotations", json={"items": iiif_items[:2], "scores": [1]})
    assert uneven.status_code == 400


# --- 3. thumbnails without fetching whole pages ---------------------------------------------


def test_thumbnails_ask_the_image_service_for_their_region(tmp_path, web, tiny_spec):
    server, base = web
    serve_book(server, base)
    index_book(tmp_path / "lib", tiny_spec, base, boxes=GRID).close()
    assert server.hits["/img/p0.png"] == 1  # read once, to index it
    client = TestClient(iiif_app(tmp_path / "lib"))
    items = [r.id for r in Library(tmp_path / "lib").items()]
    assert len(items) == 16
    for item, box in zip(items, GRID):
        answer = client.get(f"/api/items/{item}/thumbnail", params={"size": 128})
        thumbnail = Image.open(io.BytesIO(answer.content)).convert("RGB")
        assert max(thumbnail.size) <= 128
        assert mean_difference(thumbnail, picture(0).crop(box)) < 6
    assert server.hits["/img/p0.png"] == 1  # the page was not fetched again, 16 times
    regions = [path for path in server.hits if path.startswith("/iiif/p0/")]
    assert len(regions) == 16
    assert f"/iiif/p0/{200},{300},{200},{300}/!128,128/0/default.jpg" in regions
    page = client.get(f"/api/items/{items[0]}/page", params={"size": 300})
    assert Image.open(io.BytesIO(page.content)).size == (200, 300)
    assert server.hits["/iiif/p0/full/!300,300/0/default.jpg"] == 1


def test_pages_without_a_service_are_fetched_once_and_kept(tmp_path, web, tiny_spec):
    server, base = web
    serve_book(server, base, services=False)
    index_book(tmp_path / "lib", tiny_spec, base, boxes=GRID).close()
    items = [r.id for r in Library(tmp_path / "lib").items()]
    client = TestClient(iiif_app(tmp_path / "lib"))
    for item in items:
        assert client.get(f"/api/items/{item}/thumbnail").status_code == 200
    assert server.hits["/img/p0.png"] == 2  # indexing, then once into the cache
    assert len(list((tmp_path / "lib" / "cache" / "pages").iterdir())) == 1

    restarted = TestClient(iiif_app(tmp_path / "lib"))
    for item in items:
        assert restarted.get(f"/api/items/{item}/thumbnail", params={"size": 64}).status_code == 200
    assert server.hits["/img/p0.png"] == 2


def test_a_failing_service_falls_back_to_the_page(tmp_path, web, tiny_spec):
    server, base = web
    serve_book(server, base)
    with index_book(tmp_path / "lib", tiny_spec, base) as lib:
        server.services.clear()  # the service now answers 404
        crop = lib.crop(lib.items()[0].id)
    assert crop.size == (200, 300) and mean_difference(crop, picture(0).crop(BOX)) < 3


def test_the_page_cache_keeps_the_most_recently_used_under_its_limit(tmp_path, monkeypatch):
    cache = PageCache(tmp_path, "pages", max_bytes=250)
    fetched = []

    def page(name):
        fetched.append(name)
        return name.encode() * 100

    for name in ("a", "b", "a", "c", "a", "b"):
        assert cache.get(name, lambda name=name: page(name)) == name.encode() * 100
    assert fetched == ["a", "b", "c", "b"]  # b was the least recently used when c came
    assert sum(f.stat().st_size for f in (tmp_path / "pages").iterdir()) <= 250

    monkeypatch.setenv("SASHIE_PAGE_CACHE_MB", "64")
    assert page_cache_bytes() == 64 * 2**20
    monkeypatch.setenv("SASHIE_PAGE_CACHE_MB", "lots")
    with pytest.raises(SashieError, match=r"^SASHIE_PAGE_CACHE_MB must be a whole number"):
        page_cache_bytes()


def test_a_local_item_has_no_iiif_target(tmp_path, tiny_spec, pages):
    with Library(tmp_path / "lib", create=True) as lib:
        lib.add([str(pages)], model=tiny_spec, regions="whole")
        with pytest.raises(NotFound, match="is not from a IIIF manifest"):
            lib.iiif_target(lib.items()[0].id)


@pytest.mark.parametrize("source", ["https://example.org/manifest.json", "/a/local/folder"])
def test_pages_recorded_in_a_library_come_only_from_public_addresses(
    tmp_path, web, monkeypatch, source
):
    """A catalog may have been changed (a library folder someone sent): a page it records,
    whatever source it names, may not make the server fetch from this machine unless the
    person running sashie allowed that host."""
    monkeypatch.delenv("SASHIE_PRIVATE_HOSTS")
    server, base = web
    serve_book(server, base)
    row = ItemRow(
        id=1,
        page_id=1,
        page=f"{base}/img/p0.png",
        source=source,
        detector="boxes",
        bbox=BOX,
        page_size=PAGE,
        metadata={"canvas": f"{base}/canvas/0", "image_service": f"{base}/iiif/p0"},
    )
    pictures = Pictures(PageCache(tmp_path, "pages", 2**20))
    with pytest.raises(BadInput, match=r"^refused: a page recorded in the library may not"):
        pictures.crop(row, 64)
    assert not server.hits
    monkeypatch.setenv("SASHIE_PRIVATE_HOSTS", "127.0.0.1")  # the curator's own server
    assert pictures.crop(row, 64).size


def test_boxes_drawn_on_canvases_teach_the_library_its_detector(tmp_path, web, tiny_spec):
    """`sashie regions train LIB --boxes annotations.json`: a IIIF AnnotationPage's canvas
    regions become boxes on the library's pages in page pixels; a canvas the library does not
    hold is skipped with its reason."""
    from sashie.library.region_model import canvas_pages
    from sashie.regions.boxes import read_canvas_boxes

    server, base = web
    serve_book(server, base, pages=2)
    lib = index_book(tmp_path / "lib", tiny_spec, base)
    selector = {"type": "FragmentSelector", "value": "xywh=" + ",".join(map(str, ON_CANVAS))}
    items = [
        {"target": f"{base}/canvas/0#xywh=" + ",".join(map(str, ON_CANVAS))},
        {"target": {"source": {"id": f"{base}/canvas/1"}, "selector": selector}},
        {"target": "https://elsewhere.example/canvas/9#xywh=1,2,3,4"},
    ]
    annotations = tmp_path / "annotations.json"
    annotations.write_text(json.dumps({"type": "AnnotationPage", "items": items}))

    report = lib.regions.train(annotations, steps=2)
    assert (report.pages, report.boxes) == (2, 2)
    assert report.skipped == [
        ("https://elsewhere.example/canvas/9", "no page of the library is on this canvas")
    ]
    assert (tmp_path / "lib" / "regions" / "learned" / "model.safetensors").is_file()

    drawn, _ = read_canvas_boxes(annotations)
    meta = {"canvas": f"{base}/canvas/0", "canvas_width": FULL[0], "canvas_height": FULL[1]}
    [page] = canvas_pages(drawn[:1], [(1, f"{base}/img/p0.png", f"{base}/manifest.json", meta)], [])
    assert page.size == PAGE and page.boxes == (("illustration", BOX),)
