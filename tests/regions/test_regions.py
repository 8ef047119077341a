"""Region detectors beside layout: the zero-shot detector (a tiny random OWLv2), tiles, and
the clean-up of every detector's boxes."""

import numpy as np
import pytest
from PIL import Image

from sashie.errors import SashieError
from sashie.library import Library
from sashie.regions import Region, clean_regions, load_detectors, tile_boxes
from sashie.regions.whole import Tiles

from conftest import run_cli
from tiny_clip import build_tiny_owlv2


@pytest.fixture(scope="module")
def owl(tmp_path_factory):
    return build_tiny_owlv2(tmp_path_factory.mktemp("owlv2"))


def noise_page(width, height, seed=0):
    rng = np.random.default_rng(seed)
    return Image.fromarray((rng.random((height, width, 3)) * 255).astype(np.uint8))


def test_zeroshot_detector_finds_boxes_inside_the_page(owl):
    [detector] = load_detectors(
        "zeroshot", {"zeroshot": {"model": str(owl), "threshold": 0.0, "tile": False}}
    )
    page = noise_page(300, 200)
    regions = detector.detect(page, None)
    assert regions and all(r.detector == "zeroshot" for r in regions)
    for r in regions:
        x0, y0, x1, y1 = r.bbox
        assert 0 <= x0 < x1 <= 300 and 0 <= y0 < y1 <= 200
    # non-maximum suppression: no two kept boxes overlap at IoU >= 0.5, best score first
    assert regions == clean_regions(regions, page.size, duplicate_iou=0.5)
    assert [r.score for r in regions] == sorted((r.score for r in regions), reverse=True)
    assert regions == detector.detect(page, None)  # deterministic


def test_zeroshot_detector_tiles_large_pages(owl):
    [plain] = load_detectors(
        ["zeroshot"], {"zeroshot": {"model": str(owl), "threshold": 0.0, "tile": False}}
    )
    [tiled] = load_detectors(["zeroshot"], {"zeroshot": {"model": str(owl), "threshold": 0.0}})
    page = noise_page(400, 260, seed=1)  # input side 64: tiles of 128 pixels
    assert len(tiled.detect(page, None)) > len(plain.detect(page, None))


def test_zeroshot_through_indexing_and_a_clear_error_for_a_missing_model(owl, tmp_path, pages):
    lib = Library(tmp_path / "lib", create=True)
    lib.add(
        [str(pages)],
        regions="whole,zeroshot",
        detector_options={"zeroshot": {"model": str(owl), "threshold": 0.0}},
    )
    by_detector = lib.info()["items_by_detector"]
    assert by_detector["whole"] == len(list(pages.iterdir())) and by_detector["zeroshot"] > 0
    r = run_cli(
        "index",
        tmp_path / "other",
        pages,
        "--regions",
        "zeroshot",
        "--detector-model",
        str(tmp_path / "nothing-here"),
        check=False,
    )
    assert r.exit_code == 1 and "cannot load the zero-shot detector" in r.output


def test_tiles_cover_a_large_page_with_overlap():
    boxes = tile_boxes((3000, 2000), 1024)
    assert tile_boxes((1000, 800), 1024) == []
    covered = np.zeros((2000, 3000), bool)
    for x0, y0, x1, y1 in boxes:
        assert x1 - x0 == 1024 and y1 - y0 == 1024
        covered[y0:y1, x0:x1] = True
    assert covered.all()
    assert len(Tiles(1024).detect(Image.new("RGB", (3000, 2000)), None)) == len(boxes) == 4 * 3


def test_clean_regions_drops_tiny_boxes_and_near_duplicates():
    regions = [
        Region((0, 0, 100, 100), "a", 0.5),
        Region((1, 1, 100, 100), "b", 0.9),
        Region((10, 10, 20, 20), "a", 1.0),
        Region((50, 50, 400, 400), "a", 0.2),
    ]
    kept = clean_regions(regions, (200, 200))
    assert kept == [Region((1, 1, 100, 100), "b", 0.9), Region((50, 50, 200, 200), "a", 0.2)]
    in_order = clean_regions(regions, (200, 200), by_score=False)
    assert in_order[0] == Region((0, 0, 100, 100), "a", 0.5)
    # a page smaller than the minimum side is still one region
    assert clean_regions([Region((0, 0, 8, 8), "whole")], (8, 8)) == [Region((0, 0, 8, 8), "whole")]


def test_unknown_detector_is_named():
    with pytest.raises(SashieError, match="known: hybrid, layout, learned, tiles, whole, zeroshot"):
        load_detectors("layout,guess")


def test_the_curated_detector_is_not_run_by_name():
    """Run by name it would cut nothing, and a recut would drop every imported region."""
    with pytest.raises(SashieError, match="not run by name"):
        load_detectors("curated")
