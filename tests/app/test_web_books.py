"""Books on the web page (issue 40): results narrowed by a click on a book's chip (and the
link keeps it), each card showing its book and page, a card's viewer link opening a viewer
(a local stand-in page here) at the manifest, canvas and region of the result, and the
book's pages shown with their pictures boxed, a click on one searching from it. Real
Chromium."""

import json
import urllib.parse

import pytest
from test_web_share import BLOCKED, iiif_book, items, open_page, search

from sashie.app import server
from sashie.library import Library

from conftest import SHOTS, make_pages, serving, web_server

pytestmark = pytest.mark.browser

STAND_IN = b"""<!doctype html><meta charset="utf-8"><title>viewer</title><pre id="asked"></pre>
<script>
const asked = new URLSearchParams(location.hash.slice(1));
document.getElementById("asked").textContent = JSON.stringify(Object.fromEntries(asked));
</script>"""


def stand_in(handler) -> None:
    handler.send_response(200)
    handler.send_header("Content-Type", "text/html; charset=utf-8")
    handler.send_header("Content-Length", str(len(STAND_IN)))
    handler.end_headers()
    handler.wfile.write(STAND_IN)


def test_a_book_chip_narrows_and_a_card_opens_its_region_in_a_viewer(
    browser, tmp_path, monkeypatch
):
    BLOCKED.clear()
    pages = make_pages(tmp_path / "pages", 3, size=(200, 300))
    routes = {f"/p{i}.png": page.read_bytes() for i, page in enumerate(pages)}
    make_pages(tmp_path / "scans" / "another", 4, seed=8)
    with web_server(routes) as (_, base):
        routes["/viewer.html"] = stand_in
        monkeypatch.setenv("SASHIE_PRIVATE_HOSTS", "127.0.0.1")  # its pages: this machine's
        monkeypatch.setenv(
            "SASHIE_VIEWER",
            f"{base}/viewer.html#manifest={{manifest}}&canvas={{canvas}}&xywh={{xywh}}",
        )
        library = iiif_book(tmp_path, routes, base)
        Library(library).add([str(tmp_path / "scans")], regions="whole")
        drawn = tmp_path / "drawn.json"  # a picture a curator boxed on the first canvas
        drawn.write_text(json.dumps([{
            "type": "Annotation",
            "body": {"type": "TextualBody", "value": "鶴"},
            "target": f"{base}/canvas/0#xywh=100,100,200,200",
        }]))  # fmt: skip
        curated = Library(library).annotations.import_regions(drawn)
        assert curated.items_made == 1
        with serving(server.create_app(library)) as url:
            context, page = open_page(browser, f"{url}/")
            everything = search(page, "a page")
            assert len(everything) == 8  # 3 + 4 pages, and the picture a curator boxed
            chip = page.locator("#facets button", has_text="a book")
            assert chip.inner_text() == "book: a book (4)"
            chip.click()
            page.wait_for_selector("#facets button.on")
            page.wait_for_selector("#status:has-text('results in')")
            narrowed = items(page)
            assert len(narrowed) == 4 and set(narrowed) < set(everything)
            assert "book=" in page.url  # the link keeps the narrowing
            shown = page.locator(".card .book").first.inner_text()
            assert shown.startswith("a book p.")
            page.screenshot(path=SHOTS / "20-results-narrowed-to-a-book.png")
            with page.expect_popup() as opened:
                page.locator(".card .book a.open-viewer").first.click()
            viewer = opened.value
            viewer.wait_for_selector("#asked:not(:empty)")
            asked = dict(urllib.parse.parse_qsl(viewer.evaluate("location.hash.slice(1)")))
            assert asked["manifest"] == f"{base}/manifest.json"
            assert asked["canvas"].startswith(f"{base}/canvas/")
            # a whole page, or the boxed picture, on the 400 x 600 canvas
            assert asked["xywh"] in ("0,0,400,600", "100,100,200,200")
            page.click("#facets button.on")  # every book again
            page.wait_for_selector("#facets button.on", state="detached")
            page.wait_for_selector("#status:has-text('results in')")
            assert sorted(items(page)) == sorted(everything)
            page.locator(".card", has_text="a book").first.locator("img").click()
            page.wait_for_selector("#bookstrip .leaf img")
            assert page.locator("#bookstrip .leaf").count() == 3  # the book's three pages
            assert page.locator("#bookstrip .leaf.here").count() == 1
            box = page.locator("#bookstrip .box")
            assert box.count() == 1  # the boxed picture (whole pages are not boxed)
            picture = box.get_attribute("data-item")
            page.screenshot(path=SHOTS / "21-a-book-s-pages-with-their-pictures.png")
            box.click()
            page.wait_for_selector("#status:has-text('results in')")
            assert f"items={picture}" in page.url and items(page)[0] == picture
            context.close()
    assert not BLOCKED, BLOCKED  # the page's Content-Security-Policy refused nothing
