"""`sashie export`: one row per item, in clip-retrieval's layout, so that its back end (and
autofaiss, FAISS, pandas, a spreadsheet) reads what sashie wrote.

    OUT/img_emb/img_emb_0.npy          the model version's vectors, float16, row for row
    OUT/metadata/metadata_0.parquet    the same rows: image_path, url, caption (the columns
                                       clip-retrieval's back end returns), sashie's own
                                       columns, and one column per key of the page's metadata
    OUT/crops/<item>.jpg               each item's picture, which image_path names
    OUT/model.json                     model id and spec, the version, dimension, rows, columns

image_path is absolute: clip-retrieval's back end opens it from its own working directory,
wherever that is (OUT/crops/<item>.jpg is the same file, relative to OUT, when the export is
moved). `url` is the item's region from the page's IIIF Image service, or the page's own URL
for a web page without one, or empty for a local file. Crops already in OUT are kept: a
second export writes only the new items'.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from ..errors import SashieError
from ..extras import require
from ..sources.images import is_url
from ..store.catalog import ItemRow
from . import iiif

CROPS = "crops"
JPEG_QUALITY = 90
KEEP_OR_EXCLUDE = {True: "keep", False: "exclude", None: None}


@dataclass(frozen=True)
class Judged:
    """What people and the filter said of items, by item id: people's keep/exclude marks,
    the filter's verdicts and captions."""

    marks: dict[int, bool]  # True: keep
    verdicts: dict[int, bool]
    captions: dict[int, list[str]]

    def mark(self, item: int) -> str | None:
        return KEEP_OR_EXCLUDE[self.marks.get(item)]

    def verdict(self, item: int) -> str | None:
        return KEEP_OR_EXCLUDE[self.verdicts.get(item)]


@dataclass(kw_only=True)
class ExportReport:
    folder: Path
    model_id: str
    version: str  # "base" or the model version whose vectors were written
    items: int
    dim: int
    crops: int  # crop files in OUT/crops (written now or kept from before)
    crops_failed: int  # items whose page could not be read: no image_path
    crops_failed_example: str | None  # the first such item's reason

    def as_dict(self) -> dict:
        return {**asdict(self), "folder": str(self.folder)}


def export_items(
    out: Path,
    vectors: np.ndarray,
    items: list[ItemRow],
    judged: Judged,
    model: dict,
    crop: Callable[[int], Image.Image] | None,
    *,
    progress: bool = False,
) -> ExportReport:
    """Write `vectors` (one row per item of `items`) and the items' rows to `out`; `model`
    holds model_id, spec and version; `crop` gives an item's picture (None: no crop files)."""
    pa = require("pyarrow", "export", "Parquet export")
    pq = require("pyarrow.parquet", "export", "Parquet export")
    for folder in ("img_emb", "metadata"):
        (out / folder).mkdir(parents=True, exist_ok=True)
    paths, failures = write_crops(out / CROPS, items, crop, progress) if crop else ({}, [])
    columns = item_columns(items, judged, paths)
    pq.write_table(pa.table(columns), out / "metadata" / "metadata_0.parquet")
    np.save(out / "img_emb" / "img_emb_0.npy", np.asarray(vectors, np.float16))
    record = {**model, "dim": int(vectors.shape[1]), "items": len(items), "dtype": "float16"}
    record["columns"] = list(columns)
    (out / "model.json").write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n")
    return ExportReport(
        folder=out,
        model_id=model["model_id"],
        version=model["version"],
        items=len(items),
        dim=int(vectors.shape[1]),
        crops=sum(path is not None for path in paths.values()),
        crops_failed=len(failures),
        crops_failed_example=failures[0] if failures else None,
    )


def write_crops(
    folder: Path,
    items: list[ItemRow],
    crop: Callable[[int], Image.Image],
    progress: bool,
) -> tuple[dict[int, str | None], list[str]]:
    """Each item's crop as folder/<item>.jpg (kept when already there): (absolute path or
    None by item, the reasons of those that failed)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths: dict[int, str | None] = {}
    failures = []
    for row in tqdm(items, desc="crops", unit="crop", disable=not progress, leave=False):
        path = folder / f"{row.id}.jpg"
        if not path.is_file():
            try:
                picture = crop(row.id)
            except (SashieError, OSError) as e:
                paths[row.id] = None
                failures.append(f"item {row.id}: {e}")
                continue
            partial = path.with_suffix(".jpg.partial")
            picture.convert("RGB").save(partial, "JPEG", quality=JPEG_QUALITY)
            os.replace(partial, path)
        paths[row.id] = str(path.resolve())
    return paths, failures


def item_columns(
    items: list[ItemRow], judged: Judged, paths: dict[int, str | None]
) -> dict[str, list]:
    """The Parquet columns: clip-retrieval's first, then sashie's, then the page metadata's
    (one column per key; a key that clashes with one of ours is prefixed with "metadata.")."""
    columns: dict[str, list] = {
        "image_path": [paths.get(r.id) for r in items],
        "url": [item_url(r) for r in items],
        "caption": ["; ".join(judged.captions.get(r.id, [])) or None for r in items],
        "item": [r.id for r in items],
        "page": [r.page for r in items],
        "source": [r.source for r in items],
        "detector": [r.detector for r in items],
        "x0": [r.bbox[0] for r in items],
        "y0": [r.bbox[1] for r in items],
        "x1": [r.bbox[2] for r in items],
        "y1": [r.bbox[3] for r in items],
        "page_width": [r.page_size[0] for r in items],
        "page_height": [r.page_size[1] for r in items],
        "region": [_region(r) for r in items],
        "captions": [judged.captions.get(r.id, []) for r in items],
        "mark": [judged.mark(r.id) for r in items],
        "verdict": [judged.verdict(r.id) for r in items],
    }
    for key, values in metadata_columns([r.metadata for r in items]).items():
        columns[f"metadata.{key}" if key in columns else key] = values
    return columns


def plain_cell(value: object) -> object:
    """A text a spreadsheet would read as a formula ("=", "+", "-", "@" first) made plain."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def item_url(row: ItemRow) -> str | None:
    """The item's picture on the web: its region from the page's IIIF Image service, or the
    page's URL (the whole page) for a web page without one; None for a local file."""
    service = iiif.image_service(row)
    if service:
        return iiif.image_url(service, ",".join(map(str, iiif.service_box(row))), "max")
    return row.page if is_url(row.page) else None


def _region(row: ItemRow) -> str | None:
    where = iiif.place(row)
    return where.region if where else None


def metadata_columns(metadata: list[dict]) -> dict[str, list]:
    """Page metadata flattened into columns ("a.b" for nested keys), one value per row; a
    key whose values are not all of one plain type (text, integer, number, yes/no) is
    written as JSON text, so that every column has one Parquet type."""
    flat = [_flatten(m) for m in metadata]
    keys = list(dict.fromkeys(key for row in flat for key in row))
    columns = {}
    for key in keys:
        values = [row.get(key) for row in flat]
        kinds = {type(v) for v in values if v is not None}
        plain = len(kinds) <= 1 and kinds <= {str, int, float, bool}
        columns[key] = (
            values
            if plain
            else [None if v is None else json.dumps(v, ensure_ascii=False) for v in values]
        )
    return columns


def _flatten(value: dict, prefix: str = "") -> dict:
    out = {}
    for key, inner in value.items():
        if isinstance(inner, dict) and inner:
            out.update(_flatten(inner, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = inner
    return out
