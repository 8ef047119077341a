"""Ground truth, in one place: what an item of a library shows, judged by a world's truth.jsonl.

Every figure sashie reports on an evaluation world counts relevance here:
- `GroundTruth.concepts`: the concepts of the illustrations a box matches at IoU >= 0.5; with
  `parts`, also of those covering at least half of the box (a crop of a figure); with
  `figures`, also each concept whose own figure the box shows (at least half of the figure
  inside the box, at least half of the box picture);
- `GroundTruth.judge`: (keep, text_only) as a careful labeller would judge a crop for the
  keep/exclude filter: keep when it matches an illustration at IoU >= 0.5 or illustrations
  cover at least half of it; text_only when it touches no illustration and overlaps text.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import SashieError
from ..regions import BBox, Region, iou, overlap
from ..sources.pages import PageRef
from .world import read_truth

ORACLE_ILLUSTRATION = "oracle-illustration"
ORACLE_TEXT = "oracle-text"


def _area(box: Sequence[int]) -> int:
    return (box[2] - box[0]) * (box[3] - box[1])


class GroundTruth:
    """A world's truth by page (`truth`: the rows of `read_truth`)."""

    def __init__(self, truth: list[dict]) -> None:
        self.by_page = {row["page"]: row for row in truth}

    @classmethod
    def of_world(cls, world: str | os.PathLike) -> GroundTruth:
        if not (Path(world) / "truth.jsonl").is_file():
            raise SashieError(f"{world} is not an evaluation world (no truth.jsonl)")
        return cls(read_truth(world))

    def concepts(
        self, page: str, bbox: BBox, *, parts: bool = False, figures: bool = False
    ) -> set[str]:
        """The concepts the box shows (see the module's docstring)."""
        found: set[str] = set()
        area = max(1, _area(bbox))
        for ill in self.by_page[page]["illustrations"]:
            box = ill["bbox"]
            if iou(bbox, box) >= 0.5 or (parts and overlap(bbox, box) >= area / 2):
                found |= set(ill["concepts"])
            elif figures and overlap(bbox, box) >= area / 2:
                for concept, figure in zip(ill["concepts"], ill.get("figures", ())):
                    if overlap(bbox, figure) >= _area(figure) / 2:
                        found.add(concept)
        return found

    def styles(self, page: str, bbox: BBox, *, parts: bool = False) -> set[str]:
        """The styles ("ink", "colour") of the illustrations the box matches at IoU >= 0.5
        (with `parts`, also of those covering at least half of it)."""
        area = max(1, _area(bbox))
        return {
            ill["style"]
            for ill in self.by_page[page]["illustrations"]
            if iou(bbox, ill["bbox"]) >= 0.5 or (parts and overlap(bbox, ill["bbox"]) >= area / 2)
        }

    def judge(self, page: str, bbox: BBox) -> tuple[bool, bool]:
        """(keep, text_only) for the box (see the module's docstring)."""
        row = self.by_page[page]
        area = max(1, _area(bbox))
        pictures = [ill["bbox"] for ill in row["illustrations"]]
        covered = sum(overlap(bbox, p) for p in pictures) / area
        keep = covered >= 0.5 or any(iou(bbox, p) >= 0.5 for p in pictures)
        text_only = covered == 0 and any(overlap(bbox, t) > 0 for t in row["text_blocks"])
        return keep, text_only

    def judge_all(self, boxes: list[tuple[str, BBox]]) -> tuple[np.ndarray, np.ndarray]:
        """(keep, text_only) arrays: `judge` of each (page, bbox)."""
        judged = [self.judge(page, bbox) for page, bbox in boxes]
        keep = np.array([k for k, _ in judged], bool).reshape(-1)
        text_only = np.array([t for _, t in judged], bool).reshape(-1)
        return keep, text_only


def item_concepts(
    boxes: list[tuple[str, BBox]], truth: list[dict], *, parts: bool = False, figures: bool = False
) -> list[set[str]]:
    """`GroundTruth.concepts` of each (page, bbox)."""
    ground = GroundTruth(truth)
    return [ground.concepts(page, bbox, parts=parts, figures=figures) for page, bbox in boxes]


def judge_items(boxes: list[tuple[str, BBox]], truth: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """(keep, text_only) arrays: `GroundTruth.judge` of each (page, bbox)."""
    return GroundTruth(truth).judge_all(boxes)


def judge_library_items(
    lib, world: str | os.PathLike, item_ids: list[int] | None = None
) -> tuple[list[int], np.ndarray, np.ndarray]:
    """(item ids, keep, text_only) of the library's items on the world's pages (all items
    when `item_ids` is None), judged by its ground truth."""
    ground = GroundTruth.of_world(world)
    rows = [r for r in lib.items(item_ids) if r.page in ground.by_page]
    if not rows:
        raise SashieError(f"none of the library's pages are in {world}")
    keep, text_only = ground.judge_all([(r.page, r.bbox) for r in rows])
    return [r.id for r in rows], keep, text_only


def ground_truth_marks(
    lib, world: str | os.PathLike, n: int, seed: int
) -> tuple[list[int], list[bool]]:
    """`n` random items marked keep/exclude from an evaluation world's ground truth."""
    from ..filter.marking import sample_items

    ids, keep, _ = judge_library_items(lib, world, sample_items(lib, n, seed, unmarked=False))
    return ids, keep.tolist()


class OracleRegions:
    """A region detector that reads a world's ground truth: its illustrations and text blocks
    (the bench measures the model on these, apart from region detection)."""

    name = "oracle"

    def __init__(self, truth: list[dict]) -> None:
        self.by_page = GroundTruth(truth).by_page

    def detect(self, image: Image.Image, page: PageRef) -> list[Region]:
        row = self.by_page.get(page.uri)
        if row is None:
            return []
        return [Region(tuple(i["bbox"]), ORACLE_ILLUSTRATION) for i in row["illustrations"]] + [
            Region(tuple(b), ORACLE_TEXT) for b in row["text_blocks"]
        ]
