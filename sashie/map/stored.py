"""A map's file, `map.safetensors` beside its model version's vectors: the layout, what placing
new items needs, and the clusters' word labels. A library folder may have been sent by anyone,
so a file that does not hold together is refused, never half used."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ..errors import SashieError
from .layout import Layout

MAP_FILE = "map.safetensors"
FORMAT = "sashie-map/1"
ARRAYS = (
    "items",
    "places",
    "clusters",
    "mean",
    "components",
    "anchors",
    "anchor_places",
    "centres",
)


def save_map(
    path: Path, items: np.ndarray, layout: Layout, words: list[list[str]], facts: dict
) -> None:
    """Write the map atomically (readers keep the old file until the new one is whole)."""
    from safetensors.numpy import save_file

    tensors: dict[str, np.ndarray] = {
        "items": np.ascontiguousarray(items, np.int64),
        "places": np.ascontiguousarray(layout.places, np.float32),
        "clusters": np.ascontiguousarray(layout.clusters, np.int32),
        "mean": np.ascontiguousarray(layout.mean, np.float32),
        "components": np.ascontiguousarray(layout.components, np.float32),
        "anchors": np.ascontiguousarray(layout.anchors, np.float32),
        "anchor_places": np.ascontiguousarray(layout.anchor_places, np.float32),
        "centres": np.ascontiguousarray(layout.centres, np.float32),
    }
    meta = {
        "format": FORMAT,
        "words": json.dumps(words, ensure_ascii=False),
        "facts": json.dumps(facts),
    }
    part = path.with_name(path.name + ".part")
    save_file(tensors, str(part), metadata=meta)
    os.replace(part, path)


def read_map(path: Path, dim: int) -> tuple[np.ndarray, Layout, list[list[str]], dict] | None:
    """The map at `path` (None when there is none); an error line when it is not sound."""
    if not path.is_file():
        return None
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="numpy") as f:
            meta = f.metadata() or {}
            if meta.get("format") != FORMAT or set(f.keys()) != set(ARRAYS):
                raise ValueError("not a sashie map")
            t = {name: f.get_tensor(name) for name in ARRAYS}
            words = json.loads(meta.get("words", "[]"))
            facts = json.loads(meta.get("facts", "{}"))
    except (SafetensorError, ValueError, OSError, json.JSONDecodeError) as err:
        raise SashieError(
            f"{path.name} is damaged ({err}); draw the map again: sashie map LIB"
        ) from None
    n, s, c = len(t["items"]), len(t["anchors"]), len(t["centres"])
    dims = t["components"].shape
    sound = (
        t["items"].dtype == np.int64 and t["places"].shape == (n, 2)
        and t["clusters"].shape == (n,) and t["clusters"].dtype == np.int32
        and len(dims) == 2 and dims[1] == dim and t["mean"].shape == (dim,)
        and t["anchors"].shape == (s, dims[0]) and t["anchor_places"].shape == (s, 2)
        and s > 0 and c > 0 and t["centres"].shape == (c, 2)
        and all(t[k].dtype == np.float32 and np.isfinite(t[k]).all() for k in ARRAYS[3:])
        and t["places"].dtype == np.float32 and bool(np.isfinite(t["places"]).all())
        and (n == 0 or (t["clusters"].min() >= 0 and t["clusters"].max() < c))
        and isinstance(words, list) and len(words) == c
        and all(isinstance(w, list) and all(isinstance(x, str) for x in w) for w in words)
        and isinstance(facts, dict)
    )  # fmt: skip
    if not sound:
        raise SashieError(f"{path.name} does not hold together; draw the map again: sashie map LIB")
    layout = Layout(
        mean=t["mean"], components=t["components"], anchors=t["anchors"],
        anchor_places=t["anchor_places"], centres=t["centres"], places=t["places"],
        clusters=t["clusters"],
    )  # fmt: skip
    return t["items"], layout, [[x[:60] for x in w[:5]] for w in words], facts
