"""The web page in a real browser (issue 17): the access token never appears in a URL the
page loads or links to, data links are http(s) only, and a search the server forgot is run
again from its query instead of failing."""

import json

import pytest

from sashie.app import server
from sashie.library import Library
from sashie.store.catalog import Catalog

from conftest import indexed_world, serving

pytestmark = pytest.mark.browser
TOKEN = "s3cret-token"


@pytest.fixture(scope="module")
def guarded_site(tmp_path_factory):
    root = tmp_path_factory.mktemp("token-site")
    library = indexed_world(root, pages=6, seed=43)[1]
    with Library(library) as lib:
        first = int(lib.item_ids()[0])
    catalog = Catalog(library / "catalog.sqlite")  # what a hostile manifest could have said
    hostile = {"canvas": "javascript:alert(1)", "image_service": "//evil.example/iiif"}
    catalog.db.execute(
        "UPDATE pages SET metadata = ? WHERE id = (SELECT page_id FROM items WHERE id = ?)",
        (json.dumps(hostile), first),
    )
    catalog.close()
    with serving(server.create_app(library, token=TOKEN)) as url:
        yield url, first


def test_the_token_stays_out_of_urls_and_data_links_stay_out_of_the_page(browser, guarded_site):
    url, hostile_item = guarded_site
    context = browser.new_context()
    page = context.new_page()
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url))
    page.goto(f"{url}/?token={TOKEN}")  # the link `sashie serve` prints
    page.wait_for_selector("#libinfo:has-text('items')")
    assert "token" not in page.url
    page.fill("#text", "a tree")
    page.click("#go")
    page.wait_for_selector("#status:has-text('results in')")
    page.locator(".card img").first.wait_for()
    page.evaluate(f"openItem({hostile_item})")
    page.wait_for_selector("#viewer.open")
    hrefs = page.eval_on_selector_all("#details a", "links => links.map(a => a.href)")
    assert hrefs and all(h.startswith(url) for h in hrefs), hrefs
    assert len(requested) > 5
    assert not [u for u in requested[1:] if TOKEN in u]  # only the first, typed by the user
    context.close()


def test_a_forgotten_search_is_run_again_from_its_query(browser, guarded_site):
    url, _ = guarded_site
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{url}/?token={TOKEN}")
    page.wait_for_selector("#libinfo:has-text('items')")
    page.fill("#text", "a tree")
    page.click("#go")
    page.wait_for_selector("#status:has-text('results in')")
    shown = page.locator(".card").count()
    page.evaluate("state.query = 'f' + 'e'.repeat(31)")  # as after a restart of the server
    page.locator(".mark-yes").first.click()
    page.click("#refine")
    page.wait_for_selector("#status:has-text('refined with')")
    assert page.locator(".card").count() == shown
    context.close()
