"""The map on the web page (issue 42), in real Chromium (software WebGL) at desktop and phone
width: it draws, zooming in turns points into thumbnails, a search lights up its hits, and a
lasso selection becomes feedback that changes the next results."""

import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sashie.app import server
from sashie.eval.world.vocab import vocabulary
from sashie.library import Library

from conftest import SHOTS, indexed_world, run_cli, serving

pytestmark = pytest.mark.browser
SIZES = {"desktop": (1280, 860), "phone": (390, 780)}


@pytest.fixture(scope="module")
def library(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("map")
    indexed_world(root, pages=24, seed=53)
    with Library(root / "lib") as lib:
        lib.map.draw()
    return root / "lib"


@pytest.fixture(scope="module")
def site(library):
    with serving(server.create_app(library)) as url:
        yield url


def open_map(browser, url: str, size: str, query: str = ""):
    width, height = SIZES[size]
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    blocked: list[str] = []
    page.on("console", lambda m: blocked.append(m.text) if "Security Policy" in m.text else None)
    page.on("pageerror", lambda e: blocked.append(str(e)))
    page.goto(f"{url}/map" + (f"?q={query}" if query else ""))
    page.wait_for_function("() => window.sashieMap && window.sashieMap.ready", timeout=60_000)
    return context, page, blocked


def drawn_pixels(page) -> int:
    """Pixels of the canvas that are not its background: the points WebGL drew."""
    page.locator("#canvas").screenshot(path=str(SHOTS / "_canvas.png"))
    pixels = np.asarray(Image.open(SHOTS / "_canvas.png").convert("RGB"), np.int16)
    return int((np.abs(pixels - [255, 253, 248]).sum(axis=2) > 60).sum())


def zoom_in_on(page, point: int, steps: int = 40) -> None:
    """Turn the mouse wheel over a point until the points near it are thumbnails."""
    box = page.locator("#canvas").bounding_box()
    for _ in range(steps):
        x, y = page.evaluate(f"() => window.sashieMap.plot.getScreenPosition({point})")
        page.mouse.move(box["x"] + x, box["y"] + y)
        page.mouse.wheel(0, -200)
        time.sleep(0.3)  # the page settles 150 ms after the view stops moving
        if page.evaluate("() => window.sashieMap.thumbnails") > 0:
            return
    raise AssertionError("zooming in never showed thumbnails")


@pytest.mark.parametrize("size", SIZES)
def test_the_map_draws_a_search_lights_its_hits_and_zoom_shows_thumbnails(browser, site, size):
    concept = vocabulary().by_key[vocabulary().query_seen[0]].en
    context, page, blocked = open_map(browser, site, size)
    total = page.evaluate("() => window.sashieMap.items.length")
    assert total > 50 and drawn_pixels(page) > 200
    assert page.locator("#labels span").count() > 0  # the clusters' names, from afar
    page.fill("#text", concept)
    page.locator("#search button").click()
    page.wait_for_selector("#status:has-text('hits')")
    assert page.evaluate("() => window.sashieMap.highlighted") > 0
    assert page.input_value("#colour") == "score" and "q=" in page.url
    page.screenshot(path=SHOTS / f"24-map-search-{size}.png")
    zoom_in_on(page, 0)
    page.wait_for_function(
        "() => [...document.querySelectorAll('#thumbs img')]"
        ".some(i => i.complete && i.naturalWidth > 0)"
    )
    assert "view=" in page.url  # the view lives in the URL
    page.screenshot(path=SHOTS / f"24-map-thumbnails-{size}.png")
    context.close()
    assert not blocked, blocked


@pytest.mark.parametrize("size", SIZES)
def test_a_lasso_selection_becomes_feedback_that_changes_the_next_results(browser, site, size):
    concept = vocabulary().by_key[vocabulary().query_seen[2]].en
    context, page, blocked = open_map(browser, site, size, concept.replace(" ", "+"))
    page.wait_for_selector("#status:has-text('hits')")
    first = page.evaluate("() => [...window.sashieMap.scores.keys()].slice(0, 20)")
    page.click("#lasso")
    box = page.locator("#canvas").bounding_box()
    x0, y0, w, h = box["x"], box["y"], box["width"], box["height"]
    page.mouse.move(x0 + 0.05 * w, y0 + 0.05 * h)
    page.mouse.down()
    for fx, fy in [(0.5, 0.05), (0.5, 0.95), (0.05, 0.95), (0.05, 0.06)]:
        page.mouse.move(x0 + fx * w, y0 + fy * h, steps=8)
    page.mouse.up()
    page.wait_for_selector("#selbar:not([hidden])")
    selected = page.evaluate("() => window.sashieMap.selected.length")
    assert 0 < selected < page.evaluate("() => window.sashieMap.items.length")
    page.click("#relevant")
    page.wait_for_selector("#status:has-text('refined by the selection')")
    after = page.evaluate("() => [...window.sashieMap.scores.keys()].slice(0, 20)")
    assert after != first  # the marks changed what the search finds
    page.screenshot(path=SHOTS / f"24-map-lasso-{size}.png")
    context.close()
    assert not blocked, blocked


def test_an_exported_map_opens_from_a_disk_without_sashie(browser, library, tmp_path):
    out = tmp_path / "exhibition"
    printed = run_cli("map", str(library), "--export", str(out), "--thumbnails", "10").stdout
    assert "10 thumbnails" in printed and len(list((out / "thumbs").glob("*.jpg"))) == 10
    context = browser.new_context(viewport={"width": 1000, "height": 700})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto((out / "index.html").as_uri())
    page.wait_for_function("() => window.sashieMap && window.sashieMap.ready", timeout=60_000)
    with Library(library) as lib:
        assert page.evaluate("() => window.sashieMap.items.length") == len(lib.item_ids())
    assert drawn_pixels(page) > 200
    assert page.locator("#search").is_hidden()  # nothing to search without a server
    zoom_in_on(page, 0)  # the first points have their thumbnails
    context.close()
    assert not errors, errors
