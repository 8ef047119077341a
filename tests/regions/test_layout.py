import pytest

from sashie import Library
from sashie.eval.world import make_world, read_truth
from sashie.regions import iou
from sashie.regions.layout import LayoutDetector
from sashie.sources.images import load_image


@pytest.mark.slow
def test_layout_finds_most_illustrations_of_a_world(tmp_path):
    truth = read_truth(make_world(tmp_path / "w", pages=16, seed=21))
    detector = LayoutDetector()
    found = total = 0
    for row in truth:
        image = load_image(row["page"])
        boxes = [r.bbox for r in detector.detect(image, None)]
        for box in boxes:
            assert 0 <= box[0] < box[2] <= row["width"] and 0 <= box[1] < box[3] <= row["height"]
        if row["kind"] == "text":  # a text-only page: text is not proposed as pictures
            assert len(boxes) <= 6
        for ill in row["illustrations"]:
            total += 1
            found += any(iou(ill["bbox"], b) >= 0.5 for b in boxes)
    assert total >= 8 and found / total >= 0.75


def test_layout_regions_are_indexed_beside_whole_pages(tmp_path, tiny_spec):
    world = make_world(tmp_path / "w", pages=4, seed=2)
    lib = Library(tmp_path / "lib", create=True)
    lib.add([str(world / "pages")], model=tiny_spec, regions="layout,whole")
    by_detector = lib.info()["items_by_detector"]
    assert by_detector["whole"] == 4 and by_detector["layout"] >= 4
