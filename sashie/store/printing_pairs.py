"""Reading the pairs of printings `sashie printings --all` verified (the catalog's
printing_pairs table; Transaction.put_printing_pairs writes them)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass

Query = Callable[[str, Sequence], list[tuple]]


@dataclass(frozen=True)
class PairRow:
    """Items `a` < `b` show one picture: `inliers` local features agree on one map, which
    lays `agreement` of a's lines on b's; `transform`: how b shows it (scale, rotation,
    mirrored, crop, area)."""

    a: int
    b: int
    inliers: int
    agreement: float
    transform: dict


class PrintingPairs:
    def __init__(self, query: Query, present: bool) -> None:
        self._query = query
        self._present = present  # an older catalog opened read-only has no such table

    def all(self) -> list[PairRow]:
        """Every verified pair, by a then b."""
        if not self._present:
            return []
        rows = self._query("SELECT a, b, inliers, agreement, transform FROM printing_pairs", ())
        return [_row(*row) for row in rows]

    def joined(self, items: list[int]) -> set[int]:
        """The items paired with any of `items`."""
        if not self._present or not items:
            return set()
        found: set[int] = set()
        for start in range(0, len(items), 400):
            chunk = [int(i) for i in items[start : start + 400]]
            marks = ",".join("?" * len(chunk))
            for a, b in self._query(
                f"SELECT a, b FROM printing_pairs WHERE a IN ({marks}) OR b IN ({marks})",
                chunk + chunk,
            ):
                found.update((int(a), int(b)))
        return found

    def compared(self) -> set[int]:
        """The items compared with all others (by `printings --all`)."""
        if not self._present:
            return set()
        return {int(i) for (i,) in self._query("SELECT item_id FROM printings_compared", ())}

    def count(self) -> int:
        """The pairs verified."""
        if not self._present:
            return 0
        return int(self._query("SELECT COUNT(*) FROM printing_pairs", ())[0][0])

    def compared_count(self) -> int:
        """The items compared with all others."""
        if not self._present:
            return 0
        return int(self._query("SELECT COUNT(*) FROM printings_compared", ())[0][0])


def _row(a: int, b: int, inliers: int, agreement: float, transform: str) -> PairRow:
    try:
        found = json.loads(transform)
    except ValueError:
        found = {}
    return PairRow(
        int(a), int(b), int(inliers), float(agreement), found if isinstance(found, dict) else {}
    )
