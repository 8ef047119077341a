"""Annotations as training data: (vector, caption) pairs for `adapt`, from the library's own
annotations or from an exported annotations.jsonl, and the export itself."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..encoders import Encoder
from ..errors import SashieError
from ..sources.images import load_image
from ..store.catalog import ItemRow
from .stored import StoredVectors


@dataclass
class Pairs:
    """What `adapt` learns from: base vectors, their captions, and a key for each pair
    ((item, caption), or (-1, "image<TAB>caption") for a crop that is not an item)."""

    vectors: np.ndarray
    captions: list[str]
    keys: list[tuple[int, str]]


def library_pairs(
    annotations: list[dict], base_vectors: Callable[[list[int]], np.ndarray]
) -> Pairs:
    """The pairs of the library's annotations ({"item", "caption"} each)."""
    if len(annotations) < 2:
        raise SashieError(
            "adapt needs at least two annotations; caption items with "
            "`sashie annotations add` or on the web page"
        )
    items = [a["item"] for a in annotations]
    captions = [a["caption"] for a in annotations]
    return Pairs(base_vectors(items), captions, list(zip(items, captions)))


def file_pairs(
    path: Path,
    stored: StoredVectors,
    base_vectors: Callable[[list[int]], np.ndarray],
    encoder: Callable[[], Encoder],
) -> Pairs:
    """Pairs from an annotations.jsonl (`sashie annotations export`): an item of this library
    brings its stored vector; any other line's crop ("image", relative to the file) is encoded
    once by the base encoder."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise SashieError(f"cannot read annotations {path} ({e})") from None
    stored_ids = set(stored.item_ids[stored.live].tolist())
    items: list[tuple[int, int]] = []
    crops: list[tuple[int, Path]] = []
    captions: list[str] = []
    keys: list[tuple[int, str]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            pair = json.loads(line)
            caption = " ".join(str(pair["caption"]).split())
        except (json.JSONDecodeError, KeyError, TypeError):
            raise SashieError(f"{path}:{number}: expected a JSON object with a caption") from None
        item = pair.get("item")
        if isinstance(item, int) and item in stored_ids:
            items.append((len(captions), item))
            keys.append((item, caption))
        elif isinstance(pair.get("image"), str):
            crops.append((len(captions), path.parent / pair["image"]))
            keys.append((-1, f"{pair['image']}\t{caption}"))
        else:
            raise SashieError(f"{path}:{number}: neither an item of this library nor an image")
        captions.append(caption)
    if len(captions) < 2:
        raise SashieError(f"{path} holds fewer than two annotations")
    vectors = np.zeros((len(captions), stored.file.dim), np.float32)
    if items:
        vectors[[i for i, _ in items]] = base_vectors([t for _, t in items])
    if crops:
        try:
            pictures = [load_image(str(file)) for _, file in crops]
        except Exception as e:
            raise SashieError(f"cannot read a crop listed in {path} ({e})") from None
        vectors[[i for i, _ in crops]] = encoder().encode_images(pictures)
    return Pairs(vectors, captions, keys)


def export_pairs(
    annotations: Sequence[dict],
    rows: dict[int, ItemRow],
    crop: Callable[[int], Image.Image],
    out: Path,
) -> Path:
    """OUT/annotations.jsonl, one line a pair ({"image": "crops/<item>.jpg", "caption", "item",
    "page", "bbox"}), and the crops."""
    (out / "crops").mkdir(parents=True, exist_ok=True)
    lines = []
    for a in annotations:
        row = rows[a["item"]]
        path = out / "crops" / f"{row.id}.jpg"
        if not path.exists():
            crop(row.id).save(path, "JPEG", quality=92)
        lines.append(
            json.dumps(
                {
                    "image": f"crops/{row.id}.jpg",
                    "caption": a["caption"],
                    "item": row.id,
                    "page": row.page,
                    "bbox": list(row.bbox),
                },
                ensure_ascii=False,
            )
        )
    (out / "annotations.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out
