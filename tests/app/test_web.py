"""The web page in a real headless browser (Debian's Chromium driven by Playwright): search by
text, by one and by three uploaded images, a result on its page, two rounds of feedback, an
annotation and a keep/exclude label. Screenshots go to ./screenshots/ for a person to look at."""

import time

import pytest

from sashie.app import server
from sashie.eval.references import reference_pictures
from sashie.eval.world.artists import Artists
from sashie.eval.world.vocab import vocabulary
from sashie.library import Library

from conftest import SHOTS, indexed_world, serving

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("web")
    indexed_world(root, pages=24, seed=31)
    pictures = []
    concept = vocabulary().by_key[vocabulary().query_seen[1]]
    for i, picture in enumerate(reference_pictures(Artists(), concept, 3, seed=2)):
        path = root / f"reference-{i}.png"
        picture.save(path)
        pictures.append(str(path))
    with serving(server.create_app(root / "lib")) as url:
        yield f"{url}/", root / "lib", pictures


@pytest.fixture
def page(browser, site):
    """The page, under the server's Content-Security-Policy: a test fails if the policy
    blocked anything the page does."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    blocked = []
    page.on("console", lambda m: blocked.append(m.text) if "Security Policy" in m.text else None)
    page.goto(site[0])
    page.wait_for_selector("#libinfo:has-text('items')")
    yield page
    context.close()
    assert not blocked, blocked


def wait_until(page, expression: str, arg=None, timeout: float = 30) -> None:
    """Poll a JavaScript expression until it is true (wait_for_function evaluates strings in
    the page, which its Content-Security-Policy forbids)."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression, arg):
        assert time.monotonic() < deadline, f"timed out waiting for {expression}"
        time.sleep(0.05)


def search(page, text=""):
    page.fill("#text", text)
    page.click("#go")
    page.wait_for_selector("#status:has-text('results in')")
    return page.locator(".card")


def test_search_by_text_shows_a_grid_of_crops(page):
    cards = search(page, "a picture of a cat")
    assert cards.count() == 100
    first = cards.first.locator("img")
    wait_until(page, "img => img.complete && img.naturalWidth > 0", first.element_handle())
    page.screenshot(path=SHOTS / "01-text-search.png")
    page.click("#more")
    wait_until(page, "document.querySelectorAll('.card').length > 100")


def test_search_by_one_and_by_three_images(page, site):
    _, _, pictures = site
    page.set_input_files("#files", pictures[:1])
    assert page.locator("#examples img").count() == 1
    assert page.locator("#dimsbox").is_hidden()
    search(page)
    assert page.locator(".card").count() > 0
    page.set_input_files("#files", pictures[1:])
    assert page.locator("#examples img").count() == 3
    assert page.locator("#dimsbox").is_visible()
    page.fill("#dims", "128")
    search(page)
    assert "128 dimensions selected" in page.inner_text("#status")
    page.screenshot(path=SHOTS / "02-three-images.png")


def test_a_result_opens_on_its_page_with_its_region_outlined(page):
    search(page, "a picture of a tree")
    page.locator(".card img").first.click()
    page.wait_for_selector("#viewer.open")
    wait_until(page, "document.getElementById('pageimg').complete")
    box = page.locator("#outline").bounding_box()
    assert box["width"] > 5 and box["height"] > 5
    assert "page" in page.inner_text("#details") and "original" in page.inner_text("#details")
    page.screenshot(path=SHOTS / "03-result-on-its-page.png")
    page.keyboard.press("Escape")
    assert page.locator("#viewer.open").count() == 0


def test_a_curator_boxes_the_illustrations_of_a_page_by_dragging(page, site):
    search(page, "a picture of a tree")
    page.locator(".card img").first.click()
    page.wait_for_selector("#viewer.open")
    wait_until(page, "document.getElementById('pageimg').complete")
    item = int(page.evaluate("document.querySelector('.card').dataset.item"))
    lib = Library(site[1])
    width = lib.item(item).page_size[0]
    page.click("#boxtools button:has-text('Draw boxes')")
    page.wait_for_selector("#pagebox.drawing")
    found = lib.regions.found(item)  # the detectors' boxes, to correct rather than draw anew
    page.click("#boxtools button:has-text('Start from found')")
    assert page.locator(".drawnbox").count() == len(found) > 0
    page.click("#boxtools button:has-text('Clear')")
    assert page.locator(".drawnbox").count() == 0
    picture = page.locator("#pageimg").bounding_box()
    scale = picture["width"] / width
    corners = [(0.2, 0.3), (0.6, 0.5)]  # of the page's width and height
    (x0, y0), (x1, y1) = (
        (picture["x"] + fx * picture["width"], picture["y"] + fy * picture["height"])
        for fx, fy in corners
    )
    page.mouse.move(x0, y0)
    page.mouse.down()
    page.mouse.move((x0 + x1) / 2, (y0 + y1) / 2, steps=3)
    page.mouse.move(x1, y1, steps=3)
    page.mouse.up()
    page.mouse.move(x0 + 3, y0 + 3)  # a click, not a drag: no box
    page.mouse.down()
    page.mouse.up()
    assert page.locator(".drawnbox").count() == 1
    page.click("#boxtools button:has-text('Save boxes')")
    page.wait_for_selector("#status:has-text('saved 1 box')")
    page.screenshot(path=SHOTS / "14-boxes-drawn-on-a-page.png")
    [saved] = lib.regions.drawn(item)
    wanted = [(x0 - picture["x"]) / scale, (y0 - picture["y"]) / scale,
              (x1 - picture["x"]) / scale, (y1 - picture["y"]) / scale]  # fmt: skip
    assert all(abs(got - want) <= 2 / scale + 1 for got, want in zip(saved, wanted)), saved
    page.click(".drawnbox button")  # take it off again, and say the page holds none
    page.click("#boxtools button:has-text('Save boxes')")
    page.wait_for_selector("#status:has-text('saved 0 boxes')")
    assert lib.regions.drawn(item) == []
    page.click("#boxtools button:has-text('Forget page')")
    page.wait_for_selector("#status:has-text('no longer teaches')")
    assert lib.regions.drawn(item) is None and page.locator("#pagebox.drawing").count() == 0


def test_two_rounds_of_feedback(page):
    search(page, "a picture of a dog")
    cards = page.locator(".card")
    before = [cards.nth(i).get_attribute("data-item") for i in range(10)]
    cards.nth(4).locator(".mark-yes").click()
    cards.nth(6).locator(".mark-yes").click()
    cards.nth(0).locator(".mark-no").click()
    assert "2 ✓, 1 ✗" in page.inner_text("#refine")
    page.click("#refine")
    page.wait_for_selector("#status:has-text('refined with 3 marks')")
    after = [page.locator(".card").nth(i).get_attribute("data-item") for i in range(10)]
    assert after[:2] == [before[4], before[6]] and before[0] not in after
    page.locator(".card").nth(5).locator(".mark-no").click()
    page.locator(".card").nth(3).locator(".mark-yes").click()
    page.select_option("#learner", "rocchio")
    page.click("#refine")
    page.wait_for_selector("#status:has-text('refined with 5 marks (rocchio)')")
    assert page.locator(".card.relevant").count() == 3
    page.screenshot(path=SHOTS / "04-feedback-round-2.png")


def test_annotate_and_mark_selected_results(page, site):
    search(page, "a picture of a flower")
    cards = page.locator(".card")
    items = [int(cards.nth(i).get_attribute("data-item")) for i in (0, 1)]
    for i in (0, 1):
        cards.nth(i).locator(".pick").click()
    page.fill("#caption", "几帳")
    page.click("#annotate")
    page.wait_for_selector("#status:has-text('annotated 2 items')")
    page.screenshot(path=SHOTS / "05-annotated.png")
    cards.nth(2).locator(".pick").click()
    page.click("#exclude")
    page.wait_for_selector("#status:has-text('marked 1 item exclude')")
    lib = Library(site[1])
    assert {a["item"] for a in lib.annotations.list() if a["caption"] == "几帳"} == set(items)
    assert lib.counts()["marked_exclude"] == 1
    lib.close()


def test_teach_the_model_the_annotations_and_switch_back(page, site):
    search(page, "a picture of a bird")
    cards = page.locator(".card")
    for caption, picks in (("几帳", (0, 1, 2)), ("菫", (3, 4, 5))):
        for i in picks:
            cards.nth(i).locator(".pick").click()
        page.fill("#caption", caption)
        page.click("#annotate")
        page.wait_for_selector(f"#status:has-text('as “{caption}”')")
    page.click("#teachbtn")
    page.wait_for_selector("#captions td:has-text('几帳')")
    page.fill("#epochs", "2")
    page.click("#adapt")
    page.wait_for_selector("#adaptstate:has-text('learnt')", timeout=120_000)
    page.wait_for_selector("#libinfo:has-text('model v')")
    page.screenshot(path=SHOTS / "07-adapted.png")
    version = page.locator("#version").input_value()
    assert version.startswith("v")
    page.select_option("#version", "base")
    page.wait_for_selector("#status:has-text('model version base is active')")
    assert "model v" not in page.locator("#libinfo").inner_text()
    lib = Library(site[1])
    assert lib.versions.active() == "base" and version in lib.models[lib.default_model]["versions"]
    lib.close()
    # the same panel tunes image search (MCIP) and links the version's loss curve
    assert page.locator("#realignbox").is_hidden()
    page.select_option("#target", "images")
    assert page.locator("#realignbox").is_visible()
    page.click("#adapt")
    page.wait_for_selector("#adaptstate:has-text('learnt')", timeout=120_000)
    page.wait_for_selector("#version option:has-text('for image search')", state="attached")
    link = page.locator("#losslink")
    assert link.is_visible()
    plot = page.request.get(link.evaluate("a => a.href"))
    assert plot.ok and plot.headers["content-type"] == "image/png"
    page.select_option("#version", "base")
    page.wait_for_selector("#status:has-text('model version base is active')")
    page.wait_for_selector("#losslink", state="hidden")


def test_an_empty_query_is_explained(page):
    page.fill("#text", "")
    page.click("#go")
    page.wait_for_selector("#status.error:has-text('type a query')")
