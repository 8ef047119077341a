"""`lib.annotations`: the captions people give items, and the same as training data:
(vector, caption) pairs for `adapt`, from the library's own annotations or from an exported
annotations.jsonl, and that export itself."""

from __future__ import annotations

import builtins
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..encoders import Encoder
from ..errors import SashieError
from ..sources.images import load_image
from ..store.catalog import ItemRow
from .curations import RegionImport, import_regions
from .filtering import Filter
from .parts import Ids, Parts
from .stored import StoredVectors


class Annotations:
    """The captions of one library's items."""

    def __init__(
        self, parts: Parts, crop: Callable[[int], Image.Image], keep_filter: Filter
    ) -> None:
        self._parts = parts
        self._crop = crop
        self._filter = keep_filter

    def import_regions(self, path: str | os.PathLike) -> RegionImport:
        """Bring in the captioned regions of a IIIF Curation, an AnnotationPage or
        AnnotationList, or a list of Web Annotations on the library's canvases: each is the
        item that covers it or a new one cut from its page, with its captions
        (sashie/library/curations.py)."""
        return import_regions(self._parts, self._filter, path)

    def add(self, item_ids: Ids, caption: str) -> int:
        """Caption items (e.g. 几帳); how many (item, caption) pairs were new."""
        caption = " ".join(caption.split())
        if not caption:
            raise SashieError("an annotation needs a caption")
        known = self._parts.known_items(item_ids)
        with self._parts.catalog.transaction() as tx:
            return tx.add_annotations(known, caption)

    def remove(self, item_ids: Ids | None = None, caption: str | None = None) -> int:
        """Take captions back: every caption of these items, this caption from every item,
        or this caption from these items; how many annotations went."""
        if caption is not None:
            caption = " ".join(caption.split())
        if item_ids is None and not caption:
            raise SashieError("name the caption, the items, or both, whose annotations to remove")
        with self._parts.catalog.transaction() as tx:
            return tx.remove_annotations(
                None if item_ids is None else [int(i) for i in item_ids], caption or None
            )

    def list(self, item_ids: Ids | None = None) -> builtins.list[dict]:
        """Annotations ({"id", "item", "caption", "at"}), of the given items or all."""
        return self._parts.catalog.annotations(item_ids)

    def captions(self) -> dict[str, int]:
        """Each caption and how many items carry it, most used first."""
        return self._parts.catalog.annotation_captions()

    def export(self, out_dir: str | os.PathLike) -> Path:
        """The annotations as a fine-tuning dataset: OUT/annotations.jsonl, one line a pair
        ({"image": "crops/<item>.jpg", "caption", "item", "page", "bbox"}), and the crops."""
        annotations = self._parts.catalog.annotations()
        if not annotations:
            raise SashieError("no annotations yet")
        rows = {r.id: r for r in self._parts.catalog.items({a["item"] for a in annotations})}
        return export_pairs(annotations, rows, self._crop, Path(out_dir))


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
