"""Crops of real pages labelled from the boxes people drew, for measuring the keep/exclude
filter on real scans.

From each page of a VOC folder (NDL-DocL's labels):
- keep: every illustration box;
- exclude, by kind:
  - "text": every text line, and blocks of four neighbouring lines (what a detector cuts
    when it takes a passage for a picture);
  - "seal": every stamp box;
  - "scanner": the bed outside the book's extent (`1_overall`) cut into pieces, where the
    colour chart, the ruler and the label lie;
  - "blank": pieces of paper inside the book that touch no box.
The crops are fixed by the page and a seed, not by any detector, so every filter is measured
on the same set.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from ..filter.learners import verdict_metrics
from ..regions import BBox, overlap
from ..regions.base import MIN_SIDE
from ..regions.boxes import BoxedPage
from .real_pages import ILLUSTRATIONS, TEXT_LINES

BOOK = frozenset({"1_overall"})
STAMPS = frozenset({"5_stamp"})
KINDS = ("illustration", "text", "seal", "scanner", "blank")
BLANK_PER_PAGE = 3


@dataclass(frozen=True)
class LabelledCrop:
    page: BoxedPage
    bbox: BBox
    kind: str  # one of KINDS

    @property
    def keep(self) -> bool:
        return self.kind == "illustration"


def labelled_crops(page: BoxedPage, seed: int = 0) -> list[LabelledCrop]:
    """The crops of one page with their kinds (see the module's docstring)."""
    crops = [LabelledCrop(page, b, "illustration") for b in page.labelled(ILLUSTRATIONS)]
    lines = sorted(page.labelled(TEXT_LINES), key=lambda b: (b[0], b[1]))
    crops += [LabelledCrop(page, b, "text") for b in lines]
    for i in range(0, len(lines) - 3, 4):
        group = lines[i : i + 4]
        block = (
            min(b[0] for b in group), min(b[1] for b in group),
            max(b[2] for b in group), max(b[3] for b in group),
        )  # fmt: skip
        if not any(overlap(block, ill) for ill in page.labelled(ILLUSTRATIONS)):
            crops.append(LabelledCrop(page, block, "text"))
    crops += [LabelledCrop(page, b, "seal") for b in page.labelled(STAMPS)]
    crops += [LabelledCrop(page, b, "scanner") for b in _outside_book(page)]
    crops += [LabelledCrop(page, b, "blank") for b in _blank_paper(page, seed)]
    return [
        c for c in crops if c.bbox[2] - c.bbox[0] >= MIN_SIDE and c.bbox[3] - c.bbox[1] >= MIN_SIDE
    ]


def _outside_book(page: BoxedPage) -> list[BBox]:
    """The bed above and below the book, in pieces about as wide as they are tall x 4."""
    width, height = page.size
    books = page.labelled(BOOK)
    if not books:
        return []
    top = min(b[1] for b in books)
    bottom = max(b[3] for b in books)
    pieces = []
    for y0, y1 in ((0, top), (bottom, height)):
        tall = y1 - y0
        if tall < MIN_SIDE:
            continue
        step = max(tall * 4, 200)
        pieces += [(x, y0, min(width, x + step), y1) for x in range(0, width - MIN_SIDE, step)]
    return pieces


def _blank_paper(page: BoxedPage, seed: int) -> list[BBox]:
    """A few pieces of the book's paper that touch no box drawn on the page."""
    books = page.labelled(BOOK)
    if not books:
        return []
    x0, y0, x1, y1 = books[0]
    drawn = [b for label, b in page.boxes if label not in BOOK]
    rng = np.random.default_rng([seed, *page.size, len(page.boxes)])
    found: list[BBox] = []
    for _ in range(200):
        side = int(rng.integers(80, 240))
        if x1 - x0 <= side or y1 - y0 <= side:
            break
        x, y = int(rng.integers(x0, x1 - side)), int(rng.integers(y0, y1 - side))
        box = (x, y, x + side, y + side)
        if not any(overlap(box, b) for b in drawn + found):
            found.append(box)
        if len(found) == BLANK_PER_PAGE:
            break
    return found


@dataclass
class FilterScore:
    """The filter's verdicts on labelled crops: F1 of each class, weighted F1 (by each
    class's share of the crops) and, for each kind of crop, the share judged right."""

    keep_f1: float
    exclude_f1: float
    weighted_f1: float
    right_by_kind: dict[str, tuple[int, int]]  # kind -> (right, of)


def score_verdicts(crops: list[LabelledCrop], kept: list[bool]) -> FilterScore:
    truth = np.array([c.keep for c in crops], bool)
    said = np.array(kept, bool)
    overall, per_class = verdict_metrics(truth, said)
    right: Counter = Counter()
    total: Counter = Counter(c.kind for c in crops)
    for crop, verdict in zip(crops, said):
        right[crop.kind] += int(verdict == crop.keep)
    return FilterScore(
        per_class["keep"]["f1"], per_class["exclude"]["f1"], overall["weighted_f1"],
        {kind: (right[kind], total[kind]) for kind in KINDS if total[kind]},
    )  # fmt: skip


def format_filter_table(rows: list[tuple[str, FilterScore]]) -> str:
    head = (
        f"| {'filter':<28} | {'keep F1':>7} | {'exclude F1':>10} | {'weighted F1':>11} | "
        + " | ".join(f"{k:>12}" for k in KINDS)
        + " |"
    )
    lines = [head, "|" + "|".join("-" * len(c) for c in head.split("|")[1:-1]) + "|"]
    for name, s in rows:
        judged = {k: f"{right}/{of}" for k, (right, of) in s.right_by_kind.items()}
        kinds = " | ".join(f"{judged.get(k, '-'):>12}" for k in KINDS)
        lines.append(
            f"| {name:<28} | {s.keep_f1:>7.3f} | {s.exclude_f1:>10.3f} | {s.weighted_f1:>11.3f} | "
            f"{kinds} |"
        )
    return "\n".join(lines)
