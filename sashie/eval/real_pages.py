"""Region detection measured on real scans with boxes people drew (a VOC folder, such as the
NDL-DocL pages in ../shared/real-pages/ndl-docl): what a detector's proposals find of the
illustrations, how many it makes, and how many of them are text.

- recall at IoU >= 0.5 and >= 0.3: the share of illustration boxes some proposal overlaps so;
- recall at IoU >= 0.5 within BUDGET proposals a page: the same for each page's first BUDGET
  proposals, best first (the issue's target: at most 6 a page; a detector without scores, such
  as `layout`, in its own order);
- proposals a page, and precision: the share of proposals that overlap an illustration at
  IoU >= 0.5;
- on text: the share of proposals that text-line boxes cover by at least ON_TEXT of their area
  (columns of cursive or printed text, what a search of illustrations should never show);
- pages/s: detection alone, decoding not counted.

Figures are kept by book (a page's name up to its last "_": the NDL persistent id) and for all
pages together.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
from PIL import Image

from ..regions import BBox, iou
from ..regions.boxes import BoxedPage
from ..sources.images import load_image

ILLUSTRATIONS = frozenset({"4_illustration"})  # NDL-DocL's label
TEXT_LINES = frozenset({"2_handwritten", "3_typography", "6_headline", "7_caption", "8_textline"})
ON_TEXT = 0.5  # a proposal lies on text when text lines cover this share of its area
BUDGET = 6  # proposals a page a search of illustrations can afford to show

Proposer = Callable[[Image.Image], list[BBox]]  # a page's proposals, best first


@dataclass
class RegionScore:
    pages: int = 0
    illustrations: int = 0
    found_05: int = 0  # illustrations some proposal overlaps at IoU >= 0.5
    found_03: int = 0
    found_budget: int = 0  # illustrations the page's first BUDGET proposals overlap at >= 0.5
    proposals: int = 0
    matched: int = 0  # proposals overlapping an illustration at IoU >= 0.5
    on_text: int = 0  # proposals lying on text lines
    seconds: float = 0.0

    def __iadd__(self, other: RegionScore) -> RegionScore:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))
        return self

    @property
    def recall_05(self) -> float:
        return self.found_05 / self.illustrations if self.illustrations else float("nan")

    @property
    def recall_budget(self) -> float:
        return self.found_budget / self.illustrations if self.illustrations else float("nan")

    @property
    def recall_03(self) -> float:
        return self.found_03 / self.illustrations if self.illustrations else float("nan")

    @property
    def per_page(self) -> float:
        return self.proposals / max(self.pages, 1)

    @property
    def precision(self) -> float:
        return self.matched / max(self.proposals, 1)

    @property
    def text_share(self) -> float:
        return self.on_text / max(self.proposals, 1)

    @property
    def pages_per_s(self) -> float:
        return self.pages / self.seconds if self.seconds > 0 else float("inf")


def book_of(page: BoxedPage) -> str:
    return Path(page.image).stem.rsplit("_", 1)[0]


def score_page(page: BoxedPage, proposals: list[BBox], seconds: float = 0.0) -> RegionScore:
    """One page's figures for these proposals (best first)."""
    truths = page.labelled(ILLUSTRATIONS)
    text = _text_mask(page)
    return RegionScore(
        pages=1,
        illustrations=len(truths),
        found_05=sum(any(iou(t, b) >= 0.5 for b in proposals) for t in truths),
        found_budget=sum(any(iou(t, b) >= 0.5 for b in proposals[:BUDGET]) for t in truths),
        found_03=sum(any(iou(t, b) >= 0.3 for b in proposals) for t in truths),
        proposals=len(proposals),
        matched=sum(any(iou(t, b) >= 0.5 for t in truths) for b in proposals),
        on_text=sum(_covered(text, b) >= ON_TEXT for b in proposals),
        seconds=seconds,
    )


def measure(pages: list[BoxedPage], propose: Proposer) -> dict[str, RegionScore]:
    """Each book's figures and all pages' ("all"), for a detector's proposals."""
    by_book: dict[str, RegionScore] = {}
    total = RegionScore()
    for page in pages:
        image = load_image(str(page.image))
        started = time.perf_counter()
        boxes = propose(image)
        score = score_page(page, boxes, time.perf_counter() - started)
        book = by_book.setdefault(book_of(page), RegionScore())
        book += score
        total += score
    return {**dict(sorted(by_book.items())), "all": total}


def format_table(rows: list[tuple[str, dict[str, RegionScore]]]) -> str:
    """One line per (regions, book), all pages first."""
    head = (
        f"| {'regions':<22} | {'book':<8} | {'pages':>5} | {'ills':>4} | {'recall@0.5':>10} | "
        f"{'recall@0.3':>10} | {f'recall@0.5, {BUDGET}/page':>17} | {'proposals/page':>14} | "
        f"{'precision':>9} | {'on text':>7} | {'pages/s':>7} |"
    )
    lines = [head, "|" + "|".join("-" * len(c) for c in head.split("|")[1:-1]) + "|"]
    for name, books in rows:
        for book, s in sorted(books.items(), key=lambda kv: kv[0] != "all"):
            recall = "-" if not s.illustrations else f"{s.recall_05:.3f}"
            loose = "-" if not s.illustrations else f"{s.recall_03:.3f}"
            budget = "-" if not s.illustrations else f"{s.recall_budget:.3f}"
            lines.append(
                f"| {name:<22} | {book:<8} | {s.pages:>5} | {s.illustrations:>4} | {recall:>10} | "
                f"{loose:>10} | {budget:>17} | {s.per_page:>14.1f} | {s.precision:>9.3f} | "
                f"{s.text_share:>7.3f} | {s.pages_per_s:>7.1f} |"
            )
    return "\n".join(lines)


def _text_mask(page: BoxedPage, scale: int = 4) -> np.ndarray:
    """Where text lines are, at 1/scale of the page's size."""
    width, height = page.size
    mask = np.zeros((height // scale + 1, width // scale + 1), bool)
    for x0, y0, x1, y1 in page.labelled(TEXT_LINES):
        mask[y0 // scale : y1 // scale + 1, x0 // scale : x1 // scale + 1] = True
    return mask


def _covered(mask: np.ndarray, box: BBox, scale: int = 4) -> float:
    x0, y0, x1, y1 = (v // scale for v in box)
    area = mask[y0 : y1 + 1, x0 : x1 + 1]
    return float(area.mean()) if area.size else 0.0
