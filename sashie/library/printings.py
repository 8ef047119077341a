"""`lib.printings(item)`: the other printings of an item's picture in the library.

Candidates come from the vector index (the nearest items to the item's own vector, to its
mirror image's and to those of its parts: the items inside it on its page); each is then
verified on local features (sashie/printings/matching.py), which also says how it shows the
picture: its scale, rotation, mirroring and crop. Items of the item's own page are left out
(its parts and the whole page hold it trivially).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np
from PIL import ImageOps

from ..store.catalog import ItemRow
from .parts import Parts

if TYPE_CHECKING:  # OpenCV loads when a printing is first looked for
    from ..printings.matching import Features, Match

CANDIDATES = 50  # nearest items a query vector proposes
CROP_SIDE = 768  # pixels the pictures are read at (features are found at 384)
FEATURES_KEPT = 1024  # items whose features are kept (about 230 KB each)


@dataclass(frozen=True)
class Printing:
    """Another printing of the item's picture: the item showing it, the evidence (`score`
    0-1, `inliers`), where the picture lies in it and how (sashie/printings/matching.py)."""

    item: int
    score: float
    inliers: int
    agreement: float
    area: tuple[float, float, float, float]
    scale: float
    rotation: float
    mirrored: bool
    crop: float

    @classmethod
    def of(cls, item: int, found: Match) -> Printing:
        t = found.transform
        return cls(
            item,
            round(found.score, 3),
            found.inliers,
            found.agreement,
            found.area,
            t.scale,
            t.rotation,
            t.mirrored,
            t.crop,
        )

    def as_dict(self) -> dict:
        return asdict(self)


class Printings:
    """Other printings of the pictures of one library."""

    def __init__(self, parts: Parts) -> None:
        self._parts = parts
        self._features: OrderedDict[int, Features] = OrderedDict()  # by item, last used last
        self._lock = threading.Lock()

    def __call__(
        self, item_id: int, *, candidates: int = CANDIDATES, model: str | None = None
    ) -> list[Printing]:
        """The items that show the same picture as `item_id`, best evidence first."""
        parts = self._parts
        item = parts.item(int(item_id))
        picture = parts.pictures.crop(item, CROP_SIDE)
        on_page = parts.catalog.page_items(item.page_id)
        own_page = {found for found, _, _ in on_page}
        inside = [i for i, _, box in on_page if _within(box, item.bbox) and i != item.id]
        queries = [parts.vectors_of([item.id], model, None)[0]]
        queries.append(parts.query_encoder(model).encode_images([ImageOps.mirror(picture)])[0])
        if inside:
            queries += list(parts.vectors_of(inside, model, None))
        index = parts.load(model).index
        proposed: dict[int, None] = {}  # in the order found, once each
        for vector in queries:
            found, _ = index.search(np.asarray(vector, np.float32), candidates + len(own_page))
            proposed.update((int(i), None) for i in found if int(i) not in own_page)
        from ..printings.matching import features, match

        query, mirror = features(picture), features(picture, mirrored=True)
        out = []
        for row in parts.catalog.items(list(proposed)):
            verified = match(query, mirror, self._features_of(row))
            if verified is not None:
                out.append(Printing.of(row.id, verified))
        return sorted(out, key=lambda p: (-p.inliers, p.item))

    def _features_of(self, row: ItemRow) -> Features:
        """An item's features, kept for the next FEATURES_KEPT items asked."""
        from ..printings.matching import features

        kept = self._features
        with self._lock:  # a server asks from several threads
            if row.id in kept:
                kept.move_to_end(row.id)
                return kept[row.id]
        found = features(self._parts.pictures.crop(row, CROP_SIDE))
        with self._lock:
            kept[row.id] = found
            while len(kept) > FEATURES_KEPT:
                kept.popitem(last=False)
        return found


def _within(box, outer) -> bool:
    return box[0] >= outer[0] and box[1] >= outer[1] and box[2] <= outer[2] and box[3] <= outer[3]
