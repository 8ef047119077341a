"""A library's own region detector: fine-tuned on a curator's boxes, used by its indexing, and
`reindex --regions` cutting the pages again (sashie/library/region_model.py)."""

import json

import numpy as np
import pytest
from PIL import Image, ImageDraw

from sashie.errors import SashieError
from sashie.library import Library
from sashie.regions import iou, load_detectors
from sashie.regions.learned import build_net, load_model, model_folder, save_model

from conftest import run_cli


def boxed_pages(folder, count=4, seed=0):
    """Pages of faint text strokes with one hatched square each (the illustration), and a
    VOC file beside each page boxing it."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    boxes = []
    for i in range(count):
        page = Image.new("RGB", (640, 480), (235, 225, 200))
        draw = ImageDraw.Draw(page)
        for x in range(40, 600, 30):  # columns of "text"
            draw.line((x, 40, x, 440), fill=(120, 110, 100), width=3)
        side = int(rng.integers(120, 200))
        x0, y0 = int(rng.integers(20, 640 - side - 20)), int(rng.integers(20, 480 - side - 20))
        draw.rectangle((x0, y0, x0 + side, y0 + side), fill=(245, 240, 230))
        for k in range(0, side, 6):
            draw.line((x0 + k, y0, x0, y0 + k), fill=(20, 20, 20), width=2)
        page.save(folder / f"p_{i}.jpg")
        box = (x0, y0, x0 + side, y0 + side)
        boxes.append(box)
        (folder / f"p_{i}.xml").write_text(
            "<annotation><object><name>illustration</name><bndbox>"
            f"<xmin>{box[0]}</xmin><ymin>{box[1]}</ymin><xmax>{box[2]}</xmax>"
            f"<ymax>{box[3]}</ymax></bndbox></object></annotation>"
        )
    return boxes


def best_iou(detector, folder, boxes) -> float:
    found = []
    for i, box in enumerate(boxes):
        proposals = [r.bbox for r in detector.detect(Image.open(folder / f"p_{i}.jpg"), None)]
        found.append(max((iou(box, p) for p in proposals), default=0.0))
    return float(np.mean(found))


@pytest.mark.slow
def test_a_collection_fine_tune_moves_boxes_toward_the_given_ones(tmp_path):
    boxes = boxed_pages(tmp_path / "boxes")
    [shipped] = load_detectors("learned")
    before = best_iou(shipped, tmp_path / "boxes", boxes)
    lib = Library(tmp_path / "lib", create=True)
    report = lib.regions.train(tmp_path / "boxes", steps=60)
    assert (report.pages, report.boxes, report.base) == (4, 4, "sashie-regions")
    saved = tmp_path / "lib" / "regions" / "learned"
    assert {p.name for p in saved.iterdir()} == {
        "config.json",
        "model.safetensors",
        "TRAINING.json",
    }
    assert json.loads((saved / "TRAINING.json").read_text())["boxes"] == 4
    [tuned] = load_detectors("learned", {"learned": {"model": saved}})
    after = best_iou(tuned, tmp_path / "boxes", boxes)
    assert after > max(0.5, before + 0.1), (before, after)
    # a second run starts from the library's own detector
    assert lib.regions.train(tmp_path / "boxes", steps=2).base == "library"


def test_boxes_that_name_no_illustration_are_refused(tmp_path):
    boxed_pages(tmp_path / "boxes", count=1)
    lib = Library(tmp_path / "lib", create=True)
    with pytest.raises(SashieError, match="--label"):
        lib.regions.train(tmp_path / "boxes", labels=["4_illustration"], steps=1)
    with pytest.raises(SashieError, match="no boxed pages"):
        lib.regions.train(tmp_path / "lib", steps=1)
    assert not (tmp_path / "lib" / "regions").exists()


def drawn_library(tmp_path, tiny_spec, count=4):
    """A library of boxed pages (indexed whole) and each page's box, by item."""
    boxes = boxed_pages(tmp_path / "pages", count=count)
    lib = Library(tmp_path / "lib", create=True)
    lib.add([str(tmp_path / "pages")], model=tiny_spec, regions="whole")
    item = {row.page.rsplit("/", 1)[-1]: row.id for row in lib.items()}
    return lib, {item[f"p_{i}.jpg"]: box for i, box in enumerate(boxes)}


@pytest.mark.slow
def test_boxes_drawn_on_the_librarys_pages_teach_its_detector(tmp_path, tiny_spec):
    lib, drawn = drawn_library(tmp_path, tiny_spec)
    for item, box in drawn.items():
        assert lib.regions.draw(item, [list(box)]) == [box]
    [shipped] = load_detectors("learned")
    pages = tmp_path / "pages"
    boxes = list(drawn.values())
    before = best_iou(shipped, pages, boxes)
    report = lib.regions.train(steps=60)
    assert (report.pages, report.boxes, report.skipped) == (4, 4, [])
    [tuned] = load_detectors("learned", {"learned": {"model": tmp_path / "lib/regions/learned"}})
    after = best_iou(tuned, pages, boxes)
    assert after > max(0.5, before + 0.1), (before, after)


def test_drawn_boxes_are_checked_and_a_tampered_record_reads_safely(tmp_path, tiny_spec):
    import sqlite3

    from sashie.errors import BadInput

    lib, drawn = drawn_library(tmp_path, tiny_spec, count=2)
    first, second = drawn
    with pytest.raises(SashieError, match="no boxes drawn"):
        lib.regions.train()
    assert lib.regions.drawn(first) is None
    for hostile in ([[0, 0, float("nan"), 5]], [[0, 0, 5]], [["0", 0, 5, 5]], [[True, 0, 5, 5]],
                    "0,0,5,5", [[0, 0, 5, 5]] * 201, [[700, 500, 900, 600]]):  # fmt: skip
        with pytest.raises(BadInput):
            lib.regions.draw(first, hostile)
    assert lib.regions.drawn(first) is None and lib.regions.boxed_pages() == 0
    assert lib.regions.draw(first, [[600, 400, 700, 500]]) == [(600, 400, 640, 480)]
    assert lib.regions.draw(second, []) == [] and lib.regions.drawn(second) == []
    assert lib.regions.boxed_pages() == 2
    with pytest.raises(SashieError, match="no item"):
        lib.regions.draw(10**9, [])
    db = sqlite3.connect(tmp_path / "lib" / "catalog.sqlite")
    tampered = '[[1, 2, 30, 40], [0, 0, 1e300, 5], "x", [5, 5, 5, 5], [-9, -9, 99999, 99999]]'
    for item, text in ((first, tampered), (second, "{")):
        page = lib.item(item).page_id
        db.execute("UPDATE drawn_boxes SET boxes = ? WHERE page_id = ?", (text, page))
    db.commit()
    db.close()
    assert lib.regions.drawn(first) == [(1, 2, 30, 40), (0, 0, 640, 480)]
    assert lib.regions.drawn(second) == []
    lib.regions.forget(first)
    assert lib.regions.drawn(first) is None and lib.regions.boxed_pages() == 1
    refused = run_cli("regions", "train", str(tmp_path / "lib"), "--label", "x", check=False)
    assert refused.exit_code != 0 and "--label needs --boxes" in refused.stderr


def constant_model(folder, core: float):
    """A detector that calls every cell an illustration (core > 0) or none (core < 0)."""
    import torch

    _, config = load_model(model_folder())
    net = build_net(config)
    with torch.no_grad():
        net.head.weight.zero_()
        net.head.bias.fill_(core)
    save_model(net, config, folder)


def items_of(lib, detector):
    return {(row.page, row.bbox): row.id for row in lib.items() if row.detector == detector}


def test_reindex_regions_recuts_only_what_changed_and_encodes_only_new_boxes(tmp_path, tiny_spec):
    boxed_pages(tmp_path / "pages", count=3)
    lib = Library(tmp_path / "lib", create=True)
    lib.add([str(tmp_path / "pages")], model=tiny_spec, regions="whole")
    own = tmp_path / "lib" / "regions" / "learned"
    constant_model(own, 10.0)  # the library's own detector: the whole page is a picture
    first = lib.add([str(tmp_path / "pages")], regions="learned")
    learned = items_of(lib, "learned")
    whole = items_of(lib, "whole")
    assert first.pages_indexed == 3 and len(learned) == 3 and len(whole) == 3

    same = lib.recut("learned")  # the same detector cuts the same boxes: nothing changes
    assert (same.items_added, same.items_removed, same.vectors_added) == (0, 0, 0)
    assert items_of(lib, "learned") == learned

    lib.annotations.add([next(iter(whole.values()))], "a page")
    constant_model(own, -10.0)  # retrained: it now cuts nothing
    gone = lib.recut("learned")
    assert (gone.items_added, gone.items_removed, gone.vectors_added) == (0, 3, 0)
    assert items_of(lib, "learned") == {} and items_of(lib, "whole") == whole
    assert lib.info()["items"] == 3 and len(lib.annotations.list()) == 1  # the page's caption stays

    constant_model(own, 10.0)  # and again: new boxes are cut and only they are encoded
    back = run_cli("reindex", str(tmp_path / "lib"), "--regions", "learned", "--json")
    report = json.loads(back.stdout)
    assert (report["items_added"], report["items_removed"], report["vectors_added"]) == (3, 0, 3)
    assert items_of(lib, "whole") == whole
    refused = run_cli("reindex", str(tmp_path / "lib"), "--regions", "nope", check=False)
    assert refused.exit_code != 0 and "unknown region detector" in refused.stderr


def test_a_library_region_model_through_a_link_is_refused(tmp_path):
    from sashie.library.region_model import own_model

    elsewhere = tmp_path / "elsewhere"
    constant_model(elsewhere, 1.0)
    (tmp_path / "lib" / "regions").mkdir(parents=True)
    (tmp_path / "lib" / "regions" / "learned").symlink_to(elsewhere)
    with pytest.raises(SashieError, match="link"):
        own_model(tmp_path / "lib")


def test_a_library_moves_to_other_detectors_dropping_the_old_ones_items(tmp_path, tiny_spec):
    """`reindex --regions learned --drop layout`: the new detector's boxes are cut and
    encoded, the dropped detector's items go, the rest (the pages) keep theirs."""
    boxed_pages(tmp_path / "pages", count=3)
    lib = Library(tmp_path / "lib", create=True)
    lib.add([str(tmp_path / "pages")], model=tiny_spec, regions="layout,whole")
    layout, whole = items_of(lib, "layout"), items_of(lib, "whole")
    assert len(layout) >= 3 and len(whole) == 3
    constant_model(tmp_path / "lib" / "regions" / "learned", 10.0)

    kept = lib.recut("learned")  # without --drop layout's items stay beside the new
    assert (kept.items_added, kept.items_removed) == (3, 0) and items_of(lib, "layout") == layout
    moved = run_cli(
        "reindex", str(tmp_path / "lib"), "--regions", "learned", "--drop", "layout", "--json"
    )
    report = json.loads(moved.stdout)
    assert (report["items_added"], report["items_removed"]) == (0, len(layout))
    assert items_of(lib, "layout") == {} and items_of(lib, "whole") == whole
    assert len(items_of(lib, "learned")) == 3
    for wrong, says in (
        (["--drop", "layout"], "--drop goes with --regions"),
        (["--regions", "learned", "--drop", "learned"], "either run again or dropped"),
    ):
        refused = run_cli("reindex", str(tmp_path / "lib"), *wrong, check=False)
        assert refused.exit_code != 0 and says in refused.stderr


def test_recut_by_default_cuts_again_with_the_detectors_the_library_uses(tmp_path, tiny_spec):
    """`lib.recut()` after `regions.train`: a library indexed with hybrid (the default) is cut
    again with hybrid, not given a second set of crops by `learned` beside it."""
    boxed_pages(tmp_path / "pages", count=2)
    lib = Library(tmp_path / "lib", create=True)
    lib.add([str(tmp_path / "pages")], model=tiny_spec, regions="whole")
    constant_model(tmp_path / "lib" / "regions" / "learned", 10.0)
    lib.add([str(tmp_path / "pages")], regions="hybrid,whole")
    hybrid = items_of(lib, "hybrid")
    assert hybrid

    same = lib.recut()
    assert (same.items_added, same.items_removed, same.vectors_added) == (0, 0, 0)
    assert items_of(lib, "learned") == {} and items_of(lib, "hybrid") == hybrid
