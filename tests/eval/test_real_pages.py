"""Region figures on pages with boxes people drew (sashie/eval/real_pages.py)."""

from pathlib import Path

import pytest

from sashie.eval.real_pages import RegionScore, book_of, format_table, measure, score_page
from sashie.regions.boxes import BoxedPage


def page(name: str = "123_4") -> BoxedPage:
    return BoxedPage(
        Path(f"/pages/{name}.jpg"),
        (400, 200),
        (
            ("4_illustration", (10, 10, 110, 110)),
            ("4_illustration", (200, 20, 260, 80)),
            ("2_handwritten", (300, 0, 320, 200)),
            ("1_overall", (0, 0, 400, 200)),
        ),
    )


def test_recall_precision_and_proposals_on_text_follow_their_definitions():
    proposals = [
        (10, 10, 110, 110),  # the first illustration exactly
        (180, 0, 280, 100),  # the second at IoU 0.36: found at 0.3, not at 0.5
        (300, 10, 320, 190),  # a text line
        (0, 0, 400, 200),  # the page
    ]
    s = score_page(page(), proposals)
    assert (s.illustrations, s.found_05, s.found_03) == (2, 1, 2)
    assert (s.recall_05, s.recall_03) == (0.5, 1.0)
    assert (s.proposals, s.matched, s.on_text) == (4, 1, 1)
    assert s.precision == 0.25 and s.text_share == 0.25


def test_recall_within_the_budget_counts_only_each_pages_first_proposals():
    from sashie.eval.real_pages import BUDGET

    misses = [(300 + i, 0, 310 + i, 10) for i in range(BUDGET)]
    late = score_page(page(), [*misses, (10, 10, 110, 110)])  # found, but after BUDGET others
    early = score_page(page(), [(10, 10, 110, 110), *misses])
    assert (late.found_05, late.found_budget) == (1, 0)
    assert (early.found_05, early.found_budget) == (1, 1) and early.recall_budget == 0.5


def test_figures_add_up_by_book(tmp_path):
    from PIL import Image

    pages = []
    for name in ("111_1", "111_2", "222_1"):
        Image.new("RGB", (400, 200), "white").save(tmp_path / f"{name}.jpg")
        pages.append(BoxedPage(tmp_path / f"{name}.jpg", (400, 200), page().boxes))
    found = measure(pages, lambda image: [(10, 10, 110, 110)])
    assert list(found) == ["111", "222", "all"]
    assert (found["111"].pages, found["222"].pages, found["all"].pages) == (2, 1, 3)
    assert found["all"].recall_05 == pytest.approx(0.5) and found["all"].per_page == 1.0
    assert book_of(pages[0]) == "111"
    table = format_table([("layout", found)]).splitlines()
    assert len(table) == 2 + 3 and table[2].split("|")[2].strip() == "all"


def test_a_page_without_illustrations_has_no_recall_but_counts_its_proposals():
    empty = BoxedPage(Path("/p/9_1.jpg"), (100, 100), (("2_handwritten", (0, 0, 10, 100)),))
    s = score_page(empty, [(0, 0, 10, 100), (50, 50, 90, 90)])
    total = RegionScore()
    total += s
    assert total.illustrations == 0 and total.proposals == 2 and total.on_text == 1


def test_labelled_crops_of_a_real_page_and_the_filter_score():
    from sashie.eval.real_crops import labelled_crops, score_verdicts
    from sashie.regions import overlap

    lines = tuple(("2_handwritten", (300 + 30 * i, 60, 320 + 30 * i, 390)) for i in range(5))
    boxed = BoxedPage(
        Path("/pages/5_1.jpg"),
        (800, 500),
        (
            ("1_overall", (40, 40, 760, 400)),
            ("4_illustration", (60, 60, 260, 260)),
            ("5_stamp", (600, 300, 660, 360)),
            *lines,
        ),
    )
    crops = labelled_crops(boxed, seed=1)
    kinds = {c.kind for c in crops}
    assert kinds == {"illustration", "text", "seal", "scanner", "blank"}
    assert [c.bbox for c in crops if c.keep] == [(60, 60, 260, 260)]
    assert sum(c.kind == "text" for c in crops) == 5 + 1  # each line, one block of four
    for c in crops:
        if c.kind == "scanner":  # the bed above and below the book: outside its extent
            assert c.bbox[3] <= 40 or c.bbox[1] >= 400
        if c.kind == "blank":  # paper inside the book that touches no box
            assert not any(overlap(c.bbox, b) for label, b in boxed.boxes if label != "1_overall")
    assert labelled_crops(boxed, seed=1) == crops  # fixed by the page and the seed

    perfect = score_verdicts(crops, [c.keep for c in crops])
    assert perfect.weighted_f1 == 1.0 and perfect.keep_f1 == 1.0
    keep_all = score_verdicts(crops, [True] * len(crops))
    assert keep_all.exclude_f1 == 0.0 and keep_all.right_by_kind["illustration"] == (1, 1)
    assert keep_all.right_by_kind["text"] == (0, 6)
    assert 0 < keep_all.weighted_f1 < 0.5
