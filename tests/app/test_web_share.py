"""The web page as people share and use it (issue 18): a link reproduces a search, every
action has a key, a phone (375 px) gets a one-line header, a full-width page and zoom, and the
page shows its states. Real Chromium at 1366 and 375 px; screenshots in ./screenshots/."""

import json
import re
import shutil
import subprocess
import time

import httpx
import iiif_prezi3
import pytest
from playwright.sync_api import expect

from sashie.app import server
from sashie.library import Asked, Library

from conftest import SHOTS, indexed_world, make_pages, serving, web_server

pytestmark = pytest.mark.browser
EXAMPLE = "a picture of a tree"
BLOCKED: list[str] = []  # what the page's Content-Security-Policy refused


@pytest.fixture(autouse=True)
def nothing_blocked():
    """Each test fails if the Content-Security-Policy blocked anything the page did."""
    BLOCKED.clear()
    yield
    assert not BLOCKED, BLOCKED


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("share")
    indexed_world(root, pages=12, seed=47)
    with serving(server.create_app(root / "lib", example_query=EXAMPLE)) as url:
        yield url


def open_page(browser, url: str, width: int = 1366, height: int = 900):
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    page.on("console", lambda m: BLOCKED.append(m.text) if "Security Policy" in m.text else None)
    page.goto(url)
    page.wait_for_selector("#libinfo:has-text('items')", state="attached")  # hidden on a phone
    return context, page


def search(page, text: str) -> list[str]:
    page.fill("#text", text)
    page.click("#go")
    page.wait_for_selector("#status:has-text('results in')")
    return items(page)


def items(page) -> list[str]:
    return page.eval_on_selector_all(".card", "cards => cards.map(c => c.dataset.item)")


def test_a_link_reproduces_a_search_with_example_items_and_the_open_result(browser, site):
    context, page = open_page(browser, f"{site}/")
    assert page.locator("#bar").is_hidden()  # no action bar before there are results
    assert EXAMPLE in page.get_attribute("#text", "placeholder")
    first = search(page, "a tree")
    assert "q=a+tree" in page.url
    page.locator(".card .use").nth(0).click()
    page.locator(".card .use").nth(1).click()
    assert page.locator("#examples img.item").count() == 2
    page.click("#go")
    page.wait_for_selector("#status:has-text('dimensions selected')")
    with_examples = items(page)
    assert f"items={first[0]}%2C{first[1]}" in page.url
    page.locator(".card img").nth(2).click()
    page.wait_for_selector("#viewer.open")
    shared = page.url
    assert f"item={with_examples[2]}" in shared
    context.close()

    context, again = open_page(browser, shared)  # someone opens the link
    again.wait_for_selector("#viewer.open")
    assert items(again) == with_examples
    assert again.locator("#examples img.item").count() == 2
    assert again.input_value("#text") == "a tree"
    assert shown(again) == with_examples[2]
    context.close()

    plain = httpx.get(f"{site}/api/search", params={"q": "a tree", "limit": 10}).json()
    assert [str(r["item"]) for r in plain["results"]] == first[:10]


def test_every_action_has_a_key(browser, site):
    context, page = open_page(browser, f"{site}/")
    with page.expect_file_chooser() as chooser:
        page.focus("#drop")
        page.keyboard.press("Enter")
    assert chooser.value.is_multiple()
    found = search(page, "a tree")
    cards = page.locator(".card")
    cards.nth(0).focus()
    page.keyboard.press("y")
    page.keyboard.press("s")
    assert "relevant" in cards.nth(0).get_attribute("class")
    assert page.inner_text("#selected") == "1 selected"
    cards.nth(1).focus()
    page.keyboard.press("n")
    assert "irrelevant" in cards.nth(1).get_attribute("class")
    page.keyboard.press("Enter")
    page.wait_for_selector("#viewer.open")
    assert page.evaluate("document.getElementById('viewer').contains(document.activeElement)")
    assert shown(page) == found[1]
    page.keyboard.press("ArrowRight")
    until(lambda: shown(page) == found[2])
    page.keyboard.press("ArrowLeft")
    until(lambda: shown(page) == found[1])
    page.keyboard.press("Escape")
    assert page.locator("#viewer").is_hidden()
    assert page.evaluate("document.activeElement.dataset.item") == found[1]  # focus given back
    page.screenshot(path=SHOTS / "08-keyboard-1366.png")
    context.close()


def test_a_phone_gets_one_header_line_a_full_width_page_and_zoom(browser, site):
    context, page = open_page(browser, f"{site}/", width=375, height=740)
    header = page.locator("#header").bounding_box()
    assert header["height"] < 60  # one line: the title, the box, Search and the menu
    assert page.locator("#menu").is_visible() and page.locator("#drop").is_hidden()
    page.click("#menu")
    assert page.locator("#drop").is_visible() and page.locator("#allitems").is_visible()
    page.click("#menu")
    search(page, "a tree")
    assert page.evaluate("document.documentElement.scrollWidth") <= 375  # nothing overflows
    page.screenshot(path=SHOTS / "09-phone-results-375.png")
    page.locator(".card img").first.click()
    page.wait_for_selector("#viewer.open")
    wait_loaded(page)
    image = page.locator("#pageimg").bounding_box()
    details = page.locator("#details").bounding_box()
    assert image["width"] > 340  # the page, full width
    assert details["y"] >= image["y"] + image["height"] - 1  # its details below it
    outline = page.locator("#outline").bounding_box()
    page.click("#zoomin")
    zoomed = page.locator("#pageimg").bounding_box()
    assert zoomed["width"] > image["width"] * 1.4
    assert page.locator("#outline").bounding_box()["width"] > outline["width"] * 1.4
    page.click("#zoomfit")
    page.screenshot(path=SHOTS / "10-phone-viewer-375.png")
    context.close()


def test_the_page_shows_its_states(browser, site):
    context, page = open_page(browser, f"{site}/")
    held = []  # the search request, held until its busy state has been seen
    page.route("**/api/search", lambda route: held.append(route))
    page.fill("#text", "a tree")
    page.click("#go")
    expect(page.locator("#status")).to_have_class(re.compile("busy"))
    assert len(held) == 1
    held[0].continue_()
    page.unroute("**/api/search")
    page.wait_for_selector("#status:has-text('results in')")
    assert page.locator("#bar").is_visible()
    page.wait_for_selector(".card img.loaded")
    page.locator(".card .pick").first.click()
    page.click("#keep")
    page.wait_for_selector("#status:has-text('marked 1 item keep')")
    page.screenshot(path=SHOTS / "11-states-1366.png")
    context.close()


def shown(page) -> str:
    """The item the viewer shows (its details begin with it)."""
    return page.inner_text("#details dd")


def until(condition, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def wait_loaded(page) -> None:
    until(lambda: page.evaluate("document.getElementById('pageimg').complete"))


def test_results_from_a_iiif_manifest_go_out_as_iiif(browser, tmp_path):
    """The page's IIIF button saves the results as a valid AnnotationPage, and a result
    opened on its page links to its region on the canvas (in canvas coordinates: the canvas
    is twice the size of the image served)."""
    pages = make_pages(tmp_path / "pages", 3, size=(200, 300))
    routes = {f"/p{i}.png": page.read_bytes() for i, page in enumerate(pages)}

    with web_server(routes) as (_, base):
        library = iiif_book(tmp_path, routes, base)
        with serving(server.create_app(library)) as url:
            context, page = open_page(browser, f"{url}/")
            search(page, "a page")
            with page.expect_download() as saved:
                page.click("#iiif")
            written = json.loads(open(saved.value.path(), encoding="utf-8").read())
            iiif_prezi3.AnnotationPage(**written)  # raises when not valid Presentation 3
            assert len(written["items"]) == 3
            page.locator(".card img").first.click()
            page.wait_for_selector("#viewer.open")
            region = page.get_attribute("#details a:has-text('region on the canvas')", "href")
            assert region.startswith(f"{base}/canvas/") and region.endswith("#xywh=0,0,400,600")
            context.close()


def iiif_book(tmp_path, routes: dict, base: str):
    """A three-canvas v3 manifest served at `base` (canvases 400 x 600 painted with the
    200 x 300 pages in `routes`), indexed with whole-page items: the library's folder."""
    canvases = [
        {
            "id": f"{base}/canvas/{i}",
            "type": "Canvas",
            "width": 400,
            "height": 600,
            "items": [
                {
                    "id": f"{base}/page/{i}",
                    "type": "AnnotationPage",
                    "items": [
                        {
                            "id": f"{base}/anno/{i}",
                            "type": "Annotation",
                            "motivation": "painting",
                            "target": f"{base}/canvas/{i}",
                            "body": {
                                "id": f"{base}/p{i}.png",
                                "type": "Image",
                                "width": 200,
                                "height": 300,
                            },
                        }
                    ],
                }
            ],
        }
        for i in range(3)
    ]
    manifest = {
        "@context": "http://iiif.io/api/presentation/3/context.json",
        "id": f"{base}/manifest.json",
        "type": "Manifest",
        "label": {"en": ["a book"]},
        "items": canvases,
    }
    routes["/manifest.json"] = json.dumps(manifest).encode()
    with Library(tmp_path / "lib", create=True) as lib:
        lib.add([f"{base}/manifest.json"], regions="whole")
    return tmp_path / "lib"


def test_a_caption_and_a_mark_can_be_taken_back(browser, site):
    context, page = open_page(browser, f"{site}/")
    search(page, "a tree")
    page.locator(".card .pick").nth(0).click()
    page.locator(".card .pick").nth(1).click()
    page.fill("#caption", "松")
    page.click("#annotate")
    page.wait_for_selector("#status:has-text('annotated 2 items')")
    before = httpx.get(f"{site}/api/info").json()["annotations"]
    page.click("#status .undo")
    page.wait_for_selector("#status:has-text('removed “松” from 2 items')")
    assert httpx.get(f"{site}/api/info").json()["annotations"] == before - 2
    page.locator(".card .pick").nth(0).click()
    page.click("#exclude")
    page.wait_for_selector("#status:has-text('marked 1 item exclude')")
    page.click("#status .undo")
    page.wait_for_selector("#status:has-text('took back the marks of 1 item')")
    assert "0 exclude in all" in page.inner_text("#status")
    context.close()


def test_a_dropped_picture_changed_by_words(browser, site, tmp_path):
    (picture,) = make_pages(tmp_path / "pictures", 1, size=(160, 220))
    context, page = open_page(browser, f"{site}/")
    assert page.locator("#modifybox").is_hidden()  # nothing to change yet
    page.set_input_files("#files", str(picture))
    page.fill("#modify", "in ink")
    page.click("#go")
    page.wait_for_selector("#status:has-text('results in')")
    assert page.locator(".card").count() > 0
    page.fill("#modify", "")
    page.click("#go")
    page.wait_for_selector("#status:has-text('results in')")
    plain_first = page.locator(".card .meta span").first.inner_text()
    page.fill("#modify", "hand-coloured")
    page.click("#go")
    until(lambda: page.locator(".card .meta span").first.inner_text() != plain_first)
    page.screenshot(path=SHOTS / "12-picture-changed-by-words.png")
    context.close()


@pytest.fixture(scope="module")
def composed_site(tmp_path_factory):
    """A library whose active version has a composer: the page's searches use tokens."""
    from sashie.compose.settings import ComposeSettings

    root = tmp_path_factory.mktemp("composed")
    _, path = indexed_world(root, pages=12, seed=48)
    Library(path).composer.train(ComposeSettings(steps=30, batch=16, negatives=32, light=False))
    with serving(server.create_app(path)) as url:
        yield url, path


def test_the_page_changes_a_picture_by_the_trained_tokens(browser, composed_site, tmp_path):
    url, path = composed_site
    (picture,) = make_pages(tmp_path / "pictures", 1, size=(160, 220))
    lib = Library(path)
    by_tokens = lib.search(Asked(images=[str(picture)], modify="in ink", modify_method="tokens"), 4)
    by_sum = lib.search(Asked(images=[str(picture)], modify="in ink", modify_method="sum"), 4)
    assert [r.item for r in by_tokens] != [r.item for r in by_sum]
    context, page = open_page(browser, f"{url}/")
    page.set_input_files("#files", str(picture))
    page.fill("#modify", "in ink")
    page.click("#go")
    page.wait_for_selector("#status:has-text('results in')")
    assert "note" not in page.inner_text("#status")
    shown = [int(i) for i in page.evaluate(
        "[...document.querySelectorAll('#grid .card')].slice(0, 4).map(c => c.dataset.item)"
    )]  # fmt: skip
    assert shown == [r.item for r in by_tokens]
    context.close()


@pytest.fixture(scope="module")
def labelled_site(tmp_path_factory):
    """A library labelled with the world's classes (`sashie classify`)."""
    from sashie.eval.world.labels import world_label_set
    from sashie.eval.world.vocab import vocabulary

    root = tmp_path_factory.mktemp("labelled")
    _, path = indexed_world(root, pages=12, seed=49)
    Library(path).labels.classify(world_label_set(vocabulary().concepts[:200]))
    with serving(server.create_app(path)) as url:
        yield url


def test_a_click_on_a_label_narrows_the_results(browser, labelled_site):
    context, page = open_page(browser, f"{labelled_site}/")
    everything = search(page, "a picture")
    page.wait_for_selector("#facets button")
    chips = page.locator("#facets button")
    first = chips.nth(0).inner_text()  # "label (count)", most frequent first
    label, count = first.rsplit(" (", 1)
    assert int(count.rstrip(")")) < len(everything)
    chips.nth(0).click()
    page.wait_for_selector("#facets button.on")
    page.wait_for_selector("#status:has-text('results in')")
    narrowed = items(page)
    labels = page.eval_on_selector_all(".card", "cards => cards.map(c => c.dataset.label)")
    assert len(narrowed) == int(count.rstrip(")")) and set(labels) == {label}
    assert set(narrowed) < set(everything)
    assert "label=" in page.url  # the link keeps the narrowing
    page.screenshot(path=SHOTS / "13-results-narrowed-by-label.png")
    page.click("#facets button.on")  # the narrowing taken back
    page.wait_for_selector("#facets button.on", state="detached")
    page.wait_for_selector("#status:has-text('results in')")
    assert items(page) == everything
    context.close()


# Characters a control may use besides Latin-1: symbols that Western fonts carry (DejaVu,
# Segoe UI, Helvetica), so the page reads on a machine without a Japanese font.
SYMBOLS = set("✓✗☐☑‹›−–—…“”←→")


def controls_text(page) -> list[tuple[str, str]]:
    """(where, text) of everything a person reads to use the page: buttons, labels, options,
    placeholders, tooltips and accessible names (the library's data, as example links, aside)."""
    return page.evaluate(
        """() => {
      const out = [];
      const name = (el) => `${el.tagName.toLowerCase()}#${el.id}.${el.className}`;
      const read = "button, label, option, h2, #bar span, #landing p";
      for (const el of document.querySelectorAll(read)) out.push([name(el), el.textContent]);
      for (const attr of ["placeholder", "title", "aria-label"]) {
        for (const el of document.querySelectorAll(`[${attr}]`)) {
          out.push([name(el), el.getAttribute(attr)]);
        }
      }
      return out.filter(([where]) => !where.startsWith("a#"));
    }"""
    )


def test_the_controls_read_without_a_japanese_font(browser, site):
    """Issue 35: without a CJK font, 挿絵, the Japanese placeholders and the ＋ button were
    boxes. Controls use Latin letters and common symbols; Japanese text has a font stack
    that names the Japanese fonts of each system."""
    context, page = open_page(browser, f"{site}/")
    search(page, "a tree")
    page.locator(".card .pick").first.click()
    example = httpx.get(f"{site}/api/info").json()["example_query"] or ""
    texts = controls_text(page)
    assert any(where.startswith("button#refine") for where, _ in texts)
    unreadable = [
        (where, text)
        for where, text in texts
        if any(ord(c) > 0xFF and c not in SYMBOLS for c in text.replace(example, ""))
    ]
    assert not unreadable
    assert page.locator(".card .use").first.inner_text() == "+"
    fonts = page.evaluate(
        """() => ["body", "#text", "#titleja"]
             .map((css) => getComputedStyle(document.querySelector(css)).fontFamily)"""
    )
    for stack in fonts:
        assert "Noto Sans CJK JP" in stack and "Hiragino Sans" in stack and "Meiryo" in stack
        assert stack.endswith("sans-serif")
    if shutil.which("fc-list"):  # the heading's 挿絵 shows only where a font draws it
        japanese = subprocess.run(["fc-list", ":lang=ja"], capture_output=True, text=True)
        assert page.locator("#titleja").is_visible() == bool(japanese.stdout.strip())
    context.close()


def test_the_options_say_what_they_do(browser, site):
    """The checkbox beside the dimensions said "all", the other "include filtered-out items"."""
    context, page = open_page(browser, f"{site}/")
    for item in search(page, "a tree")[:2]:
        page.click(f".card[data-item='{item}'] .use")
    labels = page.evaluate(
        """() => Object.fromEntries(["alldims", "allitems", "dims"].map((id) => {
          const label = document.getElementById(id).closest("label");
          return [id, [label.textContent.trim(), label.title]];
        }))"""
    )
    assert labels["alldims"][0] == "use every dimension"
    assert labels["allitems"][0] == "also items the filter left out"
    assert labels["dims"][0] == "dimensions"
    assert all(len(title) > 20 for _, title in labels.values())  # a tooltip says more
    context.close()


def test_the_landing_page_shows_the_library_and_example_searches(browser, site):
    """Before a search, the page says what the library holds and offers searches drawn from
    its own captions (shown as text, never as markup); one click runs one."""
    caption = "<b>松</b> & pine"
    first = httpx.get(f"{site}/api/search", params={"q": "a tree", "limit": 2}).json()
    items = [r["item"] for r in first["results"]]
    httpx.post(f"{site}/api/annotations", json={"items": items, "caption": caption})
    try:
        context, page = open_page(browser, f"{site}/")
        landing = page.locator("#landing")
        expect(landing).to_be_visible()
        info = httpx.get(f"{site}/api/info").json()
        text = landing.inner_text()
        assert f"{info['pages']:,} pages" in text and f"{info['items']:,} items" in text
        assert "drop pictures" in text and "+ example images" in text
        links = page.locator("#landing a")
        assert links.all_inner_texts()[:2] == [caption, EXAMPLE]  # the captions first
        assert page.locator("#landing b").count() == 0
        page.screenshot(path=SHOTS / "14-landing-1366.png")
        links.nth(1).click()
        page.wait_for_selector("#status:has-text('results in')")
        assert page.input_value("#text") == EXAMPLE and "q=a+picture+of+a+tree" in page.url
        assert landing.is_hidden() and page.locator(".card").count() > 0
        page.go_back()  # the landing again, as before the search
        expect(landing).to_be_visible()
        context.close()
    finally:
        httpx.delete(f"{site}/api/annotations", params={"caption": caption})


def test_a_phone_shows_the_first_result_near_the_top(browser, site):
    """At 375 x 667 the controls took ~400 px above the first result, with a stray "|"."""
    context, page = open_page(browser, f"{site}/", width=375, height=667)
    search(page, "a tree")
    assert page.locator(".card").first.bounding_box()["y"] <= 250
    stray = page.evaluate(
        """() => {
      const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
      const found = [];
      while (walker.nextNode()) {
        const node = walker.currentNode;
        if (node.textContent.trim() === "|") found.push(node.parentElement.outerHTML);
      }
      return found;
    }"""
    )
    assert not stray
    page.locator(".card .pick").first.click()  # a selection brings its tools
    assert page.locator("#caption").is_visible() and page.locator("#annotate").is_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    page.screenshot(path=SHOTS / "15-phone-first-result-375.png")
    context.close()


def test_the_page_loads_without_a_failed_request(browser, site):
    """Not even the browser's own request for /favicon.ico fails (by the name localhost:
    Chromium remembers a failed icon per address for as long as it runs)."""
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    page = context.new_page()
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    page.goto(f"{site.replace('127.0.0.1', 'localhost')}/")
    search(page, "a tree")
    page.wait_for_selector(".card img.loaded")
    assert not errors
    context.close()
