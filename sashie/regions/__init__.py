"""Region detectors: a page image in, the boxes worth embedding out (bbox in page pixels).

base.py      Region, BBox, iou/overlap, clean_regions, tile_boxes, the Detector protocol
registry.py  detectors by name: load_detectors("hybrid,whole")
whole.py     `whole` (the page) and `tiles` (overlapping tiles of a large page)
layout.py    `layout`: illustrations found by page analysis (OpenCV, no weights)
zeroshot.py  `zeroshot`: an open-vocabulary detector (OWLv2, Grounding DINO) by prompt
"""

from .base import BBox, Detector, Region, clean_regions, iou, overlap, tile_boxes
from .registry import (
    DEFAULT_DETECTORS,
    DETECTORS,
    NETWORK_DETECTORS,
    load_detectors,
    parse_detector_names,
)

__all__ = [
    "DEFAULT_DETECTORS",
    "DETECTORS",
    "NETWORK_DETECTORS",
    "BBox",
    "Detector",
    "Region",
    "clean_regions",
    "iou",
    "load_detectors",
    "overlap",
    "parse_detector_names",
    "tile_boxes",
]
