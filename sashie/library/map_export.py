"""A map written out to a folder that opens without sashie (issue 42: a library's exhibition
page): the points and clusters as one script (`map-data.js`, so that the page also opens from
a disk, where browsers refuse to fetch files) and the thumbnails of the first `thumbnails`
points in the map's order of priority (`thumbs/ITEM.jpg`). The page's own files are the web
page's (sashie/app/cli/mapping.py copies them)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image
from tqdm import tqdm

from ..errors import SashieError

THUMB_SIDE = 160


@dataclass(frozen=True)
class MapExport:
    folder: Path
    points: int
    thumbnails: int
    missing: int  # thumbnails that could not be made (a page gone, a fetch refused)

    def as_dict(self) -> dict:
        return {k: str(v) if isinstance(v, Path) else v for k, v in self.__dict__.items()}


def write_map_folder(
    folder: Path,
    binary: bytes,
    meta: dict,
    items: list[int],
    crop: Callable[[int, int], Image.Image],
    *,
    progress: bool = False,
) -> MapExport:
    """Write `map-data.js` (meta and the points' binary, base64) and the items' thumbnails."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise SashieError(f"{folder} is a file; name a folder to write the map into")
    thumbs = folder / "thumbs"
    thumbs.mkdir(parents=True, exist_ok=True)
    data = {"meta": meta, "points": base64.b64encode(binary).decode("ascii")}
    # JSON is a JavaScript expression; "</" is escaped so that no text ends a script early
    text = json.dumps(data, ensure_ascii=True).replace("</", "<\\/")
    (folder / "map-data.js").write_text(f"window.SASHIE_MAP = {text};\n", encoding="ascii")
    missing = 0
    for item in tqdm(items, desc="thumbnails", unit="item", disable=not progress):
        try:
            picture = crop(int(item), THUMB_SIDE).convert("RGB")
        except (SashieError, OSError):
            missing += 1
            continue
        picture.save(thumbs / f"{int(item)}.jpg", quality=85)
    return MapExport(folder, int.from_bytes(binary[4:8], "little"), len(items) - missing, missing)
