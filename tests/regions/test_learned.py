"""The `learned` region detector: its masks and boxes, the shipped weights on spreads of the
world, training and loading, config files from elsewhere; and `hybrid`, layout checked by it."""

import json

import numpy as np
import pytest
from PIL import Image

from sashie.errors import SashieError
from sashie.eval.world import SPREAD_VERSION, make_world, read_truth
from sashie.eval.world.train_regions import read_spreads
from sashie.regions import iou, load_detectors
from sashie.regions.detector_training import train
from sashie.regions.learned import (
    STRIDE,
    LearnedDetector,
    NetConfig,
    box_targets,
    load_model,
    mask_boxes,
    save_model,
)
from sashie.sources.images import load_image


def test_a_box_comes_back_from_its_core():
    """The target marks each box and its core; the masks read back give the boxes, and
    pictures that nearly touch stay apart."""
    page = (1600, 1200)
    scale = 512 / 1600
    shape = (384 // STRIDE, 512 // STRIDE)
    boxes = [(200, 150, 700, 600), (900, 700, 1400, 1100)]
    found = [box for box, _ in mask_boxes(box_targets(boxes, scale, shape, 0.25), scale, page)]
    assert len(found) == 2
    for truth in boxes:
        assert max(iou(truth, f) for f in found) > 0.9
    close = [(100, 100, 500, 500), (530, 100, 930, 500), (100, 530, 930, 700)]
    found = [b for b, _ in mask_boxes(box_targets(close, scale, shape, 0.25), scale, page)]
    assert len(found) == 3
    for truth in close:
        assert max(iou(truth, f) for f in found) > 0.8
    # a core too small to be a picture is dropped, and no mask gives no box
    assert mask_boxes(np.zeros((2, *shape), np.float32), scale, page) == []


def test_small_figures_whose_cores_stay_dark_are_found_apart():
    """Two small figures, one above the other with a caption between: the box mask is sure
    of each and less sure between them, and no core is lit. Each is a box of its own; a
    region the mask is only fairly sure of is none."""
    scale, page = 0.4, (1600, 1200)
    probability = np.zeros((2, 120, 160), np.float32)
    probability[1, 20:30, 40:50] = 0.97  # a figure
    probability[1, 30:33, 40:50] = 0.6  # the caption between, where the masks join
    probability[1, 33:43, 40:50] = 0.95  # the figure below it
    probability[1, 60:80, 100:120] = 0.7  # not sure enough without a core
    found = sorted(box for box, _ in mask_boxes(probability, scale, page))
    cell = STRIDE / scale
    figures = [
        (40 * cell, 20 * cell, 50 * cell, 30 * cell),
        (40 * cell, 33 * cell, 50 * cell, 43 * cell),
    ]
    assert len(found) == 2
    for truth, box in zip(figures, found):
        assert iou(truth, box) > 0.7, (truth, box)


@pytest.fixture(scope="module")
def spreads(tmp_path_factory):
    folder = tmp_path_factory.mktemp("spreads")
    return make_world(folder / "w", pages=12, seed=4242, version=SPREAD_VERSION)


def test_shipped_detector_finds_illustrations_on_drawn_spreads(spreads):
    """The shipped weights, on spreads of a seed it was not trained on: most pictures of
    200 pixels or more are found (small figures packed together are its known weakness:
    docs/regions-and-filter.md), and the ruler, chart and text are not proposed."""
    [detector] = load_detectors("learned")
    truth = read_truth(spreads)
    found = total = proposals = 0
    for row in truth:
        boxes = [r.bbox for r in detector.detect(load_image(row["page"]), None)]
        for r in boxes:
            x0, y0, x1, y1 = r
            assert 0 <= x0 < x1 <= row["width"] and 0 <= y0 < y1 <= row["height"]
        large = [
            i["bbox"]
            for i in row["illustrations"]
            if min(i["bbox"][2] - i["bbox"][0], i["bbox"][3] - i["bbox"][1]) >= 200
        ]
        total += len(large)
        found += sum(any(iou(t, b) >= 0.5 for b in boxes) for t in large)
        proposals += len(boxes)
    assert total >= 4
    assert found / total >= 0.6, (found, total)
    assert proposals <= 4 * len(truth)


def test_trained_saved_loaded_gives_the_same_boxes(spreads, tmp_path):
    config = NetConfig(widths=(4, 8, 8, 8, 8), input_side=256)
    images, targets = read_spreads(spreads, config, progress=False)
    net, losses = train(
        images, targets, config, steps=6, batch_size=2, crop=128, lr=1e-2, seed=0,
        progress=False,
    )  # fmt: skip
    assert len(losses) == 6 and all(np.isfinite(losses))
    save_model(net, config, tmp_path / "model")
    assert not list((tmp_path / "model").glob("*.pt*")) and not list(
        (tmp_path / "model").glob("*.bin")
    )
    page = load_image(read_truth(spreads)[0]["page"])
    loaded = LearnedDetector(tmp_path / "model")
    again = LearnedDetector(tmp_path / "model")
    first, _ = loaded.probabilities(page)
    second, _ = again.probabilities(page)
    assert np.array_equal(first, second)
    assert loaded.detect(page, None) == again.detect(page, None)


def test_a_region_model_from_elsewhere_is_checked(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    with pytest.raises(SashieError, match="no region model"):
        load_model(folder)
    (folder / "config.json").write_text(
        json.dumps({"widths": [100000, 1, 1, 1, 1], "input_side": 512, "shrink": 0.1})
    )
    with pytest.raises(SashieError, match="impossible"):
        NetConfig.from_dict(json.loads((folder / "config.json").read_text()))
    (folder / "config.json").write_text(json.dumps({"widths": "x"}))
    with pytest.raises(SashieError, match="not readable"):
        load_model(folder)
    (folder / "config.json").write_text(
        json.dumps({"widths": [4, 8, 8, 8, 8], "input_side": 256, "shrink": 0.15})
    )
    (folder / "model.safetensors").write_bytes(b"\x00" * 64)  # not safetensors
    with pytest.raises(SashieError):
        load_model(folder)


def test_a_region_config_with_infinite_or_huge_numbers_is_refused(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    for text in (
        '{"widths": [Infinity, 8, 8, 8, 8], "input_side": 256, "shrink": 0.1}',
        '{"widths": [4, 8, 8, 8, 8], "input_side": -Infinity, "shrink": 0.1}',
        '{"widths": [4, 8, 8, 8, 8], "input_side": 256, "shrink": NaN}',
        '{"widths": [' + "1, " * 3_000_000 + '1], "input_side": 256, "shrink": 0.1}',
    ):
        (folder / "config.json").write_text(text)
        with pytest.raises(SashieError):
            load_model(folder)


def test_hybrid_keeps_the_network_boxes_and_the_layout_boxes_it_confirms(spreads, tmp_path):
    """`hybrid` on spreads of the world: every box it gives is the network's own or one of
    layout's, it finds at least what the network alone finds, and it proposes far fewer boxes
    than layout; a network that sees no illustration anywhere confirms nothing."""
    import torch

    from sashie.regions.hybrid import HybridDetector, box_probability
    from sashie.regions.learned import build_net, model_folder

    [layout, learned, hybrid] = load_detectors("layout,learned,hybrid")
    counts = {"layout": 0, "learned": 0, "hybrid": 0}
    found = {"learned": 0, "hybrid": 0}
    for row in read_truth(spreads)[:6]:
        page = load_image(row["page"])
        own = [r.bbox for r in learned.detect(page, None)]
        proposed = [r.bbox for r in layout.detect(page, None)]
        mixed = hybrid.detect(page, None)
        assert {r.detector for r in mixed} <= {"hybrid"}
        assert [r.bbox for r in mixed[: len(own)]] == own
        assert all(r.bbox in proposed for r in mixed[len(own) :])
        for name, boxes in (("learned", own), ("hybrid", [r.bbox for r in mixed])):
            found[name] += sum(
                any(iou(i["bbox"], b) >= 0.5 for b in boxes) for i in row["illustrations"]
            )
        counts["layout"] += len(proposed)
        counts["learned"] += len(own)
        counts["hybrid"] += len(mixed)
    assert found["hybrid"] >= found["learned"]
    assert counts["learned"] <= counts["hybrid"] < counts["layout"]

    _, config = load_model(model_folder())
    blind = build_net(config)
    with torch.no_grad():
        blind.head.weight.zero_()
        blind.head.bias.fill_(-10.0)  # no cell is an illustration
    save_model(blind, config, tmp_path / "blind")
    page = load_image(read_truth(spreads)[0]["page"])
    assert HybridDetector(tmp_path / "blind").detect(page, None) == []

    probability = np.zeros((2, 30, 40), np.float32)
    probability[1, 10:20, 10:20] = 1.0
    scale = 0.5  # a page of 320 x 240 read at 160 x 120: cells of 8 page pixels
    assert box_probability(probability, scale, (80, 80, 160, 160)) == 1.0
    assert box_probability(probability, scale, (80, 80, 240, 160)) == 0.5


def test_a_large_page_is_read_as_its_spread_is(spreads):
    """A scan at four times a spread's resolution is averaged by whole blocks in Pillow's
    storage before the network's resizing (the memory that saves:
    tests/robustness/test_ingest_memory.py), and the network finds the same boxes on it, in
    its pixels."""
    [detector] = load_detectors("learned")
    compared = 0
    for row in read_truth(spreads)[:3]:
        spread = load_image(row["page"]).convert("RGB")
        large = Image.fromarray(np.kron(np.asarray(spread), np.ones((4, 4, 1), np.uint8)))
        small_boxes = [r.bbox for r in detector.detect(spread, None)]
        large_boxes = [tuple(v / 4 for v in r.bbox) for r in detector.detect(large, None)]
        assert len(large_boxes) == len(small_boxes)
        for box in small_boxes:
            assert max(iou(box, other) for other in large_boxes) >= 0.9
        compared += len(small_boxes)
    assert compared >= 2
