"""`hybrid`: the `layout` detector's proposals that the `learned` network confirms, and the
network's own boxes.

`layout` finds most illustrations but proposes twenty boxes a real page (colour charts,
rulers, columns of text, frames); `learned` proposes one or two, nearly all illustrations,
but misses small figures and cuts some boxes loosely. Here the network reads the page once:
its boxes are kept, and a layout proposal is kept too when the network's box mask averages at
least CONFIRM inside it (the mask's own threshold) and it is not a box already kept (IoU under
0.5). docs/regions-and-filter.md measures it against both, on the world and on real scans.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ..sources.pages import PageRef
from .base import BBox, Region, iou
from .layout import LayoutDetector
from .learned import DEFAULT_MODEL, STRIDE, THRESHOLD, LearnedDetector, mask_boxes

CONFIRM = THRESHOLD
SAME_BOX = 0.5  # a proposal overlapping a kept box this much is that box


def box_probability(probability: np.ndarray, scale: float, box: BBox) -> float:
    """The mean of the network's box mask inside a box given in page pixels."""
    x0, y0, x1, y1 = (int(v * scale / STRIDE) for v in box)
    cells = probability[1][y0 : max(y0 + 1, y1), x0 : max(x0 + 1, x1)]
    return float(cells.mean()) if cells.size else 0.0


class HybridDetector:
    name = "hybrid"

    def __init__(self, model: str | Path = DEFAULT_MODEL, confirm: float = CONFIRM) -> None:
        self.learned = LearnedDetector(model)
        self.layout = LayoutDetector()
        self.confirm = confirm

    def detect(self, image: Image.Image, page: PageRef | None = None) -> list[Region]:
        probability, scale = self.learned.probabilities(image)
        kept = [
            Region(box, self.name, score)
            for box, score in mask_boxes(probability, scale, image.size)
        ]
        for proposal in self.layout.detect(image, page):
            score = box_probability(probability, scale, proposal.bbox)
            if score >= self.confirm and all(iou(proposal.bbox, k.bbox) < SAME_BOX for k in kept):
                kept.append(Region(proposal.bbox, self.name, score))
        return kept
