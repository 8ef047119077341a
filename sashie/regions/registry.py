"""Detectors by name: `load_detectors("hybrid,whole")` resolves a comma-separated list.

`whole` and `tiles` are always at hand; `layout` (OpenCV), `learned` and `hybrid` (torch) and
`zeroshot` (transformers) are imported on first use. Detector options (a zero-shot model, its
prompt, a library's tuned `learned` weights) are passed by name.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ..errors import SashieError
from .base import Detector
from .curated import CuratedRegions
from .whole import Tiles, WholePage


def _layout(**options) -> Detector:
    from .layout import LayoutDetector  # OpenCV is imported only when layout is used

    return LayoutDetector(**options)


def _learned(**options) -> Detector:
    from .learned import LearnedDetector  # torch is imported only when it detects

    return LearnedDetector(**options)


def _hybrid(**options) -> Detector:
    from .hybrid import HybridDetector

    return HybridDetector(**options)


def _zeroshot(**options) -> Detector:
    from .zeroshot import ZeroShotDetector  # the detector's weights load on first use

    return ZeroShotDetector(**options)


def _curated(**options) -> Detector:
    if "boxes" not in options:  # run by name it would cut nothing, and a recut would drop
        raise SashieError(  # every region brought in
            "the curated detector cuts the regions `sashie annotations import` brings in; "
            "it is not run by name"
        )
    return CuratedRegions(**options)


DETECTORS: dict[str, Callable[..., Detector]] = {
    "whole": WholePage,
    "curated": _curated,
    "tiles": Tiles,
    "layout": _layout,
    "learned": _learned,
    "hybrid": _hybrid,
    "zeroshot": _zeroshot,
}
NAMED = set(DETECTORS) - {"curated"}  # what a person may name (`curated` is the import's)
# Each illustration its own item, and the page too (as the seed paper indexed them: 450 K
# pages gave 3.8 M items), so that a photograph, which has no illustrations, is one item.
# `hybrid`, not `layout`: on real scans it finds as many illustrations among a sixth of the
# boxes (none on text), so twice as many within 6 a page, and more on the world
# (docs/regions-and-filter.md, "On real scans").
DEFAULT_DETECTORS = "hybrid,whole"
NETWORK_DETECTORS = ("hybrid", "learned")  # those that read a library's tuned network


def parse_detector_names(names: str | Sequence[str]) -> list[str]:
    """Split and check a detector list such as "whole,layout"."""
    if isinstance(names, str):
        names = names.split(",")
    parsed = [n.strip() for n in names if n.strip()]
    if not parsed:
        raise SashieError("no region detector named; try --regions whole")
    unknown = [n for n in parsed if n not in DETECTORS]
    if unknown:
        raise SashieError(
            f"unknown region detector {unknown[0]!r}; known: {', '.join(sorted(NAMED))}"
        )
    return list(dict.fromkeys(parsed))


def load_detectors(
    names: str | Sequence[str | Detector], options: dict[str, dict] | None = None
) -> list[Detector]:
    """Detectors by name, each built with `options[name]`; detector objects among `names`
    are taken as they are."""
    options = options or {}
    if isinstance(names, str):
        names = [names]
    named = [n for n in names if isinstance(n, str)]
    objects = [n for n in names if not isinstance(n, str)]
    detectors = (
        [DETECTORS[name](**options.get(name, {})) for name in parse_detector_names(",".join(named))]
        if named
        else []
    )
    if not detectors and not objects:
        raise SashieError("no region detector named; try --regions whole")
    return detectors + objects
