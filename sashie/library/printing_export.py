"""Writing the library's sets of printings (`sashie printings LIB --export FILE`): a CSV or
Parquet table, one row a member, or a IIIF AnnotationPage that links each set's members."""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import SashieError
from ..extras import require
from . import iiif
from .export import plain_cell
from .parts import Parts

FORMATS = (".csv", ".parquet", ".json")
COLUMNS = (
    *("group", "position", "item", "book", "title", "year", "page_number", "page"),
    *("x0", "y0", "x1", "y1", "region"),
)


@dataclass(frozen=True)
class GroupExport:
    """What was written: the file, the sets and their members (in a IIIF export, those
    on a IIIF canvas; `left_out` the others)."""

    path: str
    groups: int
    items: int
    left_out: int

    def as_dict(self) -> dict:
        return self.__dict__.copy()


def export_groups(
    parts: Parts, groups: list[list[int]], printed: dict[int, dict], out: str | os.PathLike
) -> GroupExport:
    """Write `groups` (lists of item ids) to `out`, in the format its suffix names;
    `printed`: each item's book, title, year and page number (PrintingGroups.books_of)."""
    path = Path(out)
    if path.suffix.lower() not in FORMATS:
        raise SashieError(f"{path.name}: write sets of printings to a {', '.join(FORMATS)} file")
    rows = {row.id: row for row in parts.catalog.items([i for g in groups for i in g])}
    groups = [[i for i in group if i in rows] for group in groups]
    if path.suffix.lower() == ".json":
        made = iiif.linking_page(
            [[rows[i] for i in group] for group in groups], "printings of one picture"
        )
        path.write_text(json.dumps(made.page, ensure_ascii=False, indent=1) + "\n")
        return GroupExport(
            str(path), made.annotations, sum(map(len, groups)) - made.skipped, made.skipped
        )
    table = _table(groups, rows, printed)
    if path.suffix.lower() == ".parquet":
        pa = require("pyarrow", "export", "Parquet export")
        pq = require("pyarrow.parquet", "export", "Parquet export")
        pq.write_table(pa.table({name: [r[name] for r in table] for name in COLUMNS}), path)
    else:
        with path.open("w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, COLUMNS)
            writer.writeheader()
            writer.writerows({k: plain_cell(v) for k, v in row.items()} for row in table)
    return GroupExport(str(path), len(groups), len(table), 0)


def _table(groups: list[list[int]], rows: dict, printed: dict[int, dict]) -> list[dict]:
    table = []
    for number, group in enumerate(groups, start=1):
        for position, item in enumerate(group, start=1):
            row = rows[item]
            where = iiif.place(row)
            table.append(
                {
                    "group": number,
                    "position": position,
                    "item": item,
                    **{k: printed.get(item, {}).get(k) for k in ("book", "title", "year")},
                    "page_number": printed.get(item, {}).get("page_number"),
                    "page": row.page,
                    **dict(zip(("x0", "y0", "x1", "y1"), row.bbox, strict=True)),
                    "region": where.region if where else None,
                }
            )
    return table
