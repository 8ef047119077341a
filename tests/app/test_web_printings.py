"""Other printings on the web page (issue 41): the open result's "Other printings" button
shows the same picture in other books, oldest book first, with how each shows it; a library
not grouped yet can be grouped from there, in the background; a click opens a printing.
Real Chromium."""

import sys
from pathlib import Path

import pytest
from playwright.sync_api import expect
from test_web_share import BLOCKED, open_page, search

from sashie.app import server
from sashie.library import Library

from conftest import SHOTS, serving

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "printings"))
from test_matching import drawing, reprinted

pytestmark = pytest.mark.browser


def test_the_other_printings_of_a_picture_are_shown_oldest_book_first(browser, tmp_path):
    BLOCKED.clear()
    scans = tmp_path / "scans"
    books = {"late": 1820, "early": 1700, "middle": 1765, "undated": None}
    for name in books:
        (scans / name).mkdir(parents=True)
    reprinted(drawing(1), margin=60).save(scans / "middle" / "1.png")
    reprinted(drawing(1), angle=6, scale=0.8, mirror=True, margin=50).save(scans / "late" / "1.png")
    reprinted(drawing(1), crop=(0, 0, 400, 300), margin=40).save(scans / "early" / "1.png")
    reprinted(drawing(2), margin=60).save(scans / "undated" / "1.png")
    sheet = tmp_path / "books.csv"
    sheet.write_text(
        "folder,title,date\n"
        + "".join(f"{name},The {name} book,{year or ''}\n" for name, year in books.items())
    )
    library = tmp_path / "lib"
    lib = Library(library, create=True)
    lib.add([str(scans)], regions="whole", metadata=sheet)
    year_of = {row.id: books[Path(row.page).parent.name] for row in lib.items()}
    middle = next(i for i, y in year_of.items() if y == 1765)
    with serving(server.create_app(library)) as url:
        context, page = open_page(browser, f"{url}/")
        search(page, "a picture")
        page.locator(f'.card[data-item="{middle}"] img').click()
        page.locator("#details button.printings").click()
        page.wait_for_selector("#printstrip .printing img")
        shown = page.eval_on_selector_all(
            "#printstrip .printing", "leaves => leaves.map(l => Number(l.dataset.item))"
        )
        assert [year_of[i] for i in shown] == [1700, 1765, 1820]  # oldest first; not drawing 2
        assert page.locator("#printstrip .printing.here").get_attribute("data-item") == str(middle)
        late = page.locator("#printstrip .printing").nth(2)
        assert "mirrored" in late.get_attribute("title")
        assert "1820 · The late book" in late.inner_text()
        # not grouped yet: the strip offers to group the library, in the background
        page.locator("#printstrip button.group").click()
        page.wait_for_selector("#status:has-text('1 set of printings holding 3 items')")
        page.wait_for_selector("#printstrip .printing img")
        assert page.locator("#printstrip button.group").count() == 0  # now in a set
        assert len(lib.printings.groups()) == 1
        page.screenshot(path=SHOTS / "22-other-printings-of-a-picture.png")
        late = page.locator("#printstrip .printing").nth(2)
        late.click()
        expect(page.locator("#details dd").first).to_have_text(str(shown[2]))  # it is open
        context.close()
    assert not BLOCKED, BLOCKED
