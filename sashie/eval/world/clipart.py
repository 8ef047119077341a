"""Openclipart drawings as image-caption pairs for the demo model: pictures of many more
things than emoji, each with what its author called it (title and keywords; English).

The authors' metadata is noisy: icon sets titled "Part of the Flat Icon Collection", keywords
such as "hash(0x85c8ce4)" or "computer" on every icon. A title that says nothing of the
picture gives way to the words of the file's name; such keywords are dropped. A drawing whose
title or keywords name a held-out concept is left out: held-out concepts are never drawn or
named beside a picture.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..lexicon.openclipart import ROOT, Drawing, drawings
from .woodblock import MAX_SVG_BYTES

_NOISE = re.compile(r"hash|icon|theme|collection|clipart|openclip|svg|\d|_|@|http", re.I)
MAX_TITLE_WORDS = 6
TEMPLATES = ("{x}", "a drawing of {x}", "a picture of {x}", "line art of {x}", "{x}, clip art")


@dataclass(frozen=True)
class CaptionedDrawing:
    path: str
    title: str
    keywords: tuple[str, ...]


def clean_title(drawing: Drawing) -> str | None:
    """The author's title, or the file name's words when the title is an icon set's or too
    long; None when neither says anything."""
    for title in (drawing.title, _words(drawing.path.stem)):
        title = " ".join(title.split())
        if title and not _NOISE.search(title) and len(title.split()) <= MAX_TITLE_WORDS:
            return title.lower()
    return None


def _words(stem: str) -> str:
    return " ".join(w for w in re.split(r"[-_\s]+", stem) if w.isalpha() and len(w) > 1)


def captioned_drawings(
    names_heldout: Callable[[str], bool], root: Path = ROOT, unread: set[str] | None = None
) -> list[CaptionedDrawing]:
    """The installed drawings small enough to render quickly, with a title that says
    something, none naming a held-out concept; a title or keyword in `unread` (kept-back
    wordings, case-folded) leaves out the drawing or the keyword."""
    unread = unread or set()
    found = []
    for drawing in drawings(root):
        title = clean_title(drawing)
        if drawing.path.stat().st_size > MAX_SVG_BYTES or title is None or title in unread:
            continue
        keywords = tuple(
            k.lower()
            for k in drawing.keywords
            if not _NOISE.search(k) and 2 < len(k) <= 25 and k.lower() not in unread
        )
        if names_heldout(title) or any(names_heldout(k) for k in keywords):
            continue
        found.append(CaptionedDrawing(str(drawing.path), title, keywords[:8]))
    return found


def clipart_caption(rng: np.random.Generator, drawing: CaptionedDrawing) -> str:
    """Its title in a template, or (a third of the time, when it has some) a few of its
    keywords."""
    if drawing.keywords and rng.random() < 1 / 3:
        count = int(rng.integers(1, min(3, len(drawing.keywords)) + 1))
        picked = rng.choice(len(drawing.keywords), count, replace=False)
        return ", ".join(drawing.keywords[int(i)] for i in picked)
    template = TEMPLATES[int(rng.integers(len(TEMPLATES)))]
    return template.format(x=drawing.title)
