"""`zeroshot`: an open-vocabulary object detector through transformers (OWLv2, OWL-ViT or
Grounding DINO) asked for a prompt ("object", as in the seed paper), for users with the weights.

    sashie index LIB scans/ --regions zeroshot,whole \\
        --detector-model google/owlv2-base-patch16-ensemble --detector-prompt object

Boxes scoring under the threshold are dropped, then near-duplicates (non-maximum
suppression). Pages much larger than the detector's input are also cut into overlapping tiles,
each detected at full resolution, so that small illustrations on large scans are found.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from ..errors import SashieError
from ..sources.pages import PageRef
from .base import Region, clean_regions, tile_boxes

DEFAULT_MODEL = "google/owlv2-base-patch16-ensemble"
DEFAULT_PROMPT = "object"
DEFAULT_THRESHOLD = 0.1
NMS_IOU = 0.5


class ZeroShotDetector:
    name = "zeroshot"

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        *,
        prompt: str = DEFAULT_PROMPT,
        threshold: float = DEFAULT_THRESHOLD,
        nms_iou: float = NMS_IOU,
        tile: bool = True,
        device: str | None = None,
    ) -> None:
        import torch
        from transformers import AutoModelForZeroShotObjectDetection, AutoProcessor

        try:
            self.processor = AutoProcessor.from_pretrained(model)
            self.model = AutoModelForZeroShotObjectDetection.from_pretrained(model).eval()
        except (OSError, ValueError) as e:
            raise SashieError(
                f"cannot load the zero-shot detector {model!r} ({str(e).splitlines()[0]})"
            ) from None
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.model.to(self.device)
        self.grounding = self.model.config.model_type.startswith("grounding")
        self.prompt, self.threshold, self.nms_iou, self.tile = prompt, threshold, nms_iou, tile
        size = getattr(self.processor.image_processor, "size", None) or {}
        self.input_side = int(size.get("height") or size.get("shortest_edge") or 960)

    def _detect_once(self, image: Image.Image) -> list[tuple[tuple[int, int, int, int], float]]:
        import torch

        text = self.prompt if not self.grounding else self.prompt.rstrip(".") + "."
        inputs = self.processor(
            text=[[text]] if not self.grounding else [text], images=image, return_tensors="pt"
        ).to(self.device)
        with torch.no_grad():
            outputs = self.model(**inputs)
        # OWLv2 pads the image to a square before resizing: its boxes refer to that square
        square = max(image.size) if self.model.config.model_type == "owlv2" else None
        target = (square, square) if square else (image.height, image.width)
        found = self.processor.post_process_grounded_object_detection(
            outputs, threshold=self.threshold, target_sizes=[target]
        )[0]
        boxes = found["boxes"].float().cpu().numpy().reshape(-1, 4)
        scores = found["scores"].float().cpu().numpy().reshape(-1)
        out = []
        for (x0, y0, x1, y1), score in zip(boxes, scores):
            box = (
                max(0, int(np.floor(x0))),
                max(0, int(np.floor(y0))),
                min(image.width, int(np.ceil(x1))),
                min(image.height, int(np.ceil(y1))),
            )
            if box[2] > box[0] and box[3] > box[1]:
                out.append((box, float(score)))
        return out

    def detect(self, image: Image.Image, page: PageRef) -> list[Region]:
        found = [Region(box, self.name, score) for box, score in self._detect_once(image)]
        if self.tile:
            for tx0, ty0, tx1, ty1 in tile_boxes(image.size, 2 * self.input_side):
                for (x0, y0, x1, y1), score in self._detect_once(image.crop((tx0, ty0, tx1, ty1))):
                    found.append(Region((x0 + tx0, y0 + ty0, x1 + tx0, y1 + ty0), self.name, score))
        return clean_regions(found, image.size, duplicate_iou=self.nms_iou)
