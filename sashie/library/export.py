"""`sashie export`: a model's vectors as .npy and the items' metadata as Parquet, row for row
(clip-retrieval's layout), so that other tools read what sashie wrote."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..extras import require
from ..store.catalog import ItemRow
from .stored import StoredVectors


def export_vectors(
    stored: StoredVectors, items: list[ItemRow], out: Path, model_id: str, spec: str
) -> Path:
    """OUT/img_emb/img_emb_0.npy, OUT/metadata/metadata_0.parquet and OUT/model.json; `items`
    are the rows of the stored vectors' live items, in row order."""
    pa = require("pyarrow", "export", "Parquet export")
    pq = require("pyarrow.parquet", "export", "Parquet export")
    (out / "img_emb").mkdir(parents=True, exist_ok=True)
    (out / "metadata").mkdir(parents=True, exist_ok=True)
    np.save(out / "img_emb" / "img_emb_0.npy", np.asarray(stored.vectors()[stored.live]))
    table = pa.table(
        {
            "item": [r.id for r in items],
            "image_path": [r.page for r in items],
            "source": [r.source for r in items],
            "detector": [r.detector for r in items],
            "x0": [r.bbox[0] for r in items],
            "y0": [r.bbox[1] for r in items],
            "x1": [r.bbox[2] for r in items],
            "y1": [r.bbox[3] for r in items],
            "page_width": [r.page_size[0] for r in items],
            "page_height": [r.page_size[1] for r in items],
            "metadata": [json.dumps(r.metadata, ensure_ascii=False) for r in items],
        }
    )
    pq.write_table(table, out / "metadata" / "metadata_0.parquet")
    (out / "model.json").write_text(
        json.dumps(
            {"model_id": model_id, "dim": stored.file.dim, "spec": spec, "items": len(items)},
            indent=2,
            ensure_ascii=False,
        )
        + "\n"
    )
    return out
