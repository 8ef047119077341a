"""`lib.printings(item)`: the other printings of an item's picture in the library;
`lib.printings.group()`: the whole library in sets of printings (library/printing_groups.py).

Candidates come from the vector index (the nearest items to the item's own vector, to its
mirror image's and to those of its parts: the items inside it on its page) and, once the
library has been grouped, from the fingerprints of its local features (its own and its
mirror's); each is then verified on local features (sashie/printings/matching.py), which
also says how it shows the picture: its scale, rotation, mirroring and crop. Items of the
item's own page are left out (its parts and the whole page hold it trivially).
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import ImageOps

from ..store.catalog import ItemRow
from .parts import Parts
from .printing_export import GroupExport, export_groups
from .printing_features import FeatureShards, stamp
from .printing_groups import (
    CROP_SIDE,
    GroupingReport,
    PrintingGroups,
    Progress,
    fingerprint_index,
)

if TYPE_CHECKING:  # OpenCV loads when a printing is first looked for
    from ..printings.matching import Features, Match

CANDIDATES = 50  # nearest items a query vector (or fingerprint) proposes
FEATURES_KEPT = 1024  # items whose features are kept (about 90 KB each)


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
        self._groups = PrintingGroups(parts)
        self._features: OrderedDict[int, Features] = OrderedDict()  # by item, last used last
        self._lock = threading.Lock()
        # what `group` stored: (stamp, shards, their items, an index of their fingerprints)
        self._stored: tuple[tuple, FeatureShards, list[int], Any] | None = None

    def __call__(
        self, item_id: int, *, candidates: int = CANDIDATES, model: str | None = None
    ) -> list[Printing]:
        """The items that show the same picture as `item_id`, best evidence first."""
        from ..printings.matching import match, mirrored

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
        query = self._features_of(item, picture)
        alike = self._alike(query, candidates + len(own_page))
        proposed.update((i, None) for i in alike if i not in own_page)
        mirror = mirrored(query)
        out = []
        for row in parts.catalog.items(list(proposed)):
            verified = match(query, mirror, self._features_of(row))
            if verified is not None:
                out.append(Printing.of(row.id, verified))
        return sorted(out, key=lambda p: (-p.inliers, p.item))

    def group(self, *, progress: Progress | None = None) -> GroupingReport:
        """Group the library into sets of printings, looking only at items not looked at
        before (`progress(done, total)` is told after each step)."""
        return self._groups.update(progress=progress)

    def groups(self) -> list[list[int]]:
        """The sets of printings found by `group`, each in its books' order of years."""
        return self._groups.groups()

    def set_of(self, item_id: int) -> list[int]:
        """The set of printings found by `group` that holds the item ([] for none)."""
        return self._groups.set_of(self._parts.item(int(item_id)).id)

    def books_of(self, item_ids: list[int]) -> dict[int, dict]:
        """Where each item is printed: its book, the book's title and year, its page."""
        return self._groups.books_of([int(i) for i in item_ids])

    def export(self, out: str | os.PathLike) -> GroupExport:
        """Write the sets of printings to a .csv, .parquet or .json (IIIF) file."""
        groups = self.groups()
        printed = self.books_of([i for group in groups for i in group])
        return export_groups(self._parts, groups, printed, out)

    def counts(self) -> tuple[int, int]:
        """How many sets of printings `group` found, and the items in them."""
        return self._groups.counts()

    def _alike(self, query: Features, wanted: int) -> list[int]:
        """The stored items whose fingerprints are nearest the query's or its mirror's."""
        from ..printings.fingerprints import codebook
        from ..printings.matching import mirrored

        stored = self._stored_fingerprints()
        if stored is None:
            return []
        items, index = stored
        book = codebook()
        asked = np.stack([book.fingerprint(query), book.fingerprint(mirrored(query))])
        _, rows = index.search(asked, min(wanted, index.ntotal))
        return [items[r] for r in rows.ravel() if r >= 0]

    def _stored_fingerprints(self) -> tuple[list[int], Any] | None:
        """The stored items and an index of their fingerprints (None: none stored), read
        again when `group` has written more."""
        now = stamp(self._parts.path)
        if not now:
            return None
        with self._lock:
            if self._stored is None or self._stored[0] != now:
                shards = FeatureShards(self._parts.path)
                items = shards.items().tolist()
                self._stored = (now, shards, items, fingerprint_index(shards, items))
            return self._stored[2], self._stored[3]

    def _features_of(self, row: ItemRow, picture=None) -> Features:
        """An item's features: stored by `group`, or found and kept for the next
        FEATURES_KEPT items asked."""
        from ..printings.matching import features

        kept = self._features
        with self._lock:  # a server asks from several threads
            if row.id in kept:
                kept.move_to_end(row.id)
                return kept[row.id]
            stored = self._stored[1] if self._stored else None
        if stored is not None and row.id in stored:
            found = stored.features(row.id)
        else:
            found = features(
                picture if picture is not None else self._parts.pictures.crop(row, CROP_SIDE)
            )
        with self._lock:
            kept[row.id] = found
            while len(kept) > FEATURES_KEPT:
                kept.popitem(last=False)
        return found


def _within(box, outer) -> bool:
    return box[0] >= outer[0] and box[1] >= outer[1] and box[2] <= outer[2] and box[3] <= outer[3]
