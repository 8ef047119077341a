"""`lib.map`: a map of every item (issue 42), one a model version, in `map.safetensors` beside
its vectors (sashie/map/). `draw` lays it out anew; `update` places the items indexed since,
moving none; `points` gives what the page draws, a viewport at a time, the points in a fixed
order of priority so that a first view of a large library is an even sample of it, and a
closer view fills in; `select` gives the items inside a lasso."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..errors import SashieError
from ..map.layout import BLOCK, SAMPLE, Layout, fit
from ..map.stored import MAP_FILE, read_map, save_map
from ..map.words import cluster_words, vocabulary
from .manifest import BASE
from .map_export import MapExport, write_map_folder
from .parts import Parts
from .paths import inside

MOST_POINTS = 1_000_000  # points one view may ask for
LASSO_CORNERS = 4096  # corners a lasso may have


@dataclass(frozen=True)
class MapReport:
    """What `draw` or `update` did."""

    model: str
    version: str
    items: int
    laid_out: int  # by t-SNE (the sample)
    placed: int  # placed among them
    clusters: int
    seconds: float

    def as_dict(self) -> dict:
        return self.__dict__.copy()


@dataclass(frozen=True)
class MapPoints:
    """Points of a map, in order of priority: item ids, places (n, 2), clusters, books (0:
    none), years (the first of the book's range; NaN: none), classes in the newest label set
    (0: none, else 1 + the class's place in `MapFacts`'s `classes`)."""

    items: np.ndarray
    places: np.ndarray
    clusters: np.ndarray
    books: np.ndarray
    years: np.ndarray
    classes: np.ndarray
    total: int  # points in the whole map

    def binary(self) -> bytes:
        """The points as the page reads them: a 16-byte head ("SMAP", count, total, 0), then
        x, y (float32 pairs), items (uint32), books (uint32), years (float32), clusters
        (uint16), classes (uint16)."""
        n = len(self.items)
        head = np.array([0x50414D53, n, self.total, 0], np.uint32)  # "SMAP" little-endian
        return b"".join(
            a.tobytes()
            for a in (
                head,
                np.ascontiguousarray(self.places, "<f4"),
                self.items.astype("<u4"),
                self.books.astype("<u4"),
                self.years.astype("<f4"),
                self.clusters.astype("<u2"),
                self.classes.astype("<u2"),
            )
        )


@dataclass
class _Loaded:
    stamp: tuple
    items: np.ndarray
    layout: Layout
    words: list[list[str]]
    facts: dict
    live: tuple[object, np.ndarray, np.ndarray] | None = None  # (index, live, books)


class CollectionMap:
    """The library's maps."""

    def __init__(self, parts: Parts) -> None:
        self._parts = parts
        self._loaded: dict[tuple[str, str], _Loaded] = {}
        self._class_cache: tuple[tuple, tuple[list[str], np.ndarray, np.ndarray]] | None = None

    def _where(self, model: str | None) -> tuple[str, str, Path]:
        parts = self._parts
        model_id = parts.model_id(model)
        version = parts.active(model_id)
        manifest = parts.manifest
        if version == BASE:
            folder = manifest.folder / manifest.models[model_id]["vectors"]
        else:
            folder = parts.versions.where(model_id, version)
        return model_id, version, inside(manifest.folder, folder / MAP_FILE)

    def exists(self, model: str | None = None) -> bool:
        """Whether the active version of the model has a map."""
        if not self._parts.manifest.models:
            return False
        return self._where(model)[2].is_file()

    def draw(
        self,
        *,
        model: str | None = None,
        sample: int = SAMPLE,
        seed: int = 0,
        progress: Callable[[int, int], None] | None = None,
    ) -> MapReport:
        """Lay out every live item of the model's active version anew: t-SNE of `sample`
        items, the rest placed among them; clusters named by the model's words."""
        parts = self._parts
        if not 2 <= sample <= 200_000:
            raise SashieError("the sample must be between 2 and 200,000 items")
        started = time.perf_counter()
        with parts.writing():
            model_id, version, path = self._where(model)
            index = parts.load(model_id).index
            if len(index) == 0:
                raise SashieError("the library has no items to map yet; index some pages first")
            rng = np.random.default_rng(seed)
            rows = np.sort(rng.permutation(len(index))[: min(sample, len(index))])
            layout = fit(index.take(rows), seed=seed)
            rest = np.setdiff1d(np.arange(len(index)), rows)
            bar = tqdm(total=len(rest), desc="placing", unit="item", disable=not parts.progress)
            done = [0]

            def step(count: int) -> None:
                bar.update(count)
                done[0] += count
                if progress:
                    progress(done[0], len(rest))

            places, clusters = layout.place(
                (index.take(rest[i : i + BLOCK]) for i in range(0, len(rest), BLOCK)), step
            )
            bar.close()
            items = np.concatenate([index.item_ids[rows], index.item_ids[rest]])
            layout.places = np.concatenate([layout.places, places])
            layout.clusters = np.concatenate([layout.clusters, clusters])
            words = self._words(model_id, layout, index.take(rows))
            facts = {
                "sample": len(rows),
                "seed": seed,
                "drawn": time.strftime("%Y-%m-%dT%H:%M:%S"),
            }
            save_map(path, items, layout, words, facts)
        return MapReport(
            model_id, version, len(items), len(rows), len(rest), len(layout.centres),
            round(time.perf_counter() - started, 1),
        )  # fmt: skip

    def update(self, *, model: str | None = None) -> MapReport:
        """Place the items indexed since the map was drawn (none of the others moves); items
        removed since are dropped. Draws the map when there is none."""
        parts = self._parts
        started = time.perf_counter()
        with parts.writing():
            model_id, version, path = self._where(model)
            held = self._read(model_id, version, path)
            if held is None:
                return self.draw(model=model)
            index = parts.load(model_id).index
            live = np.isin(held.items, index.item_ids)
            new = np.flatnonzero(~np.isin(index.item_ids, held.items))
            layout = held.layout
            places, clusters = layout.place(
                index.take(new[i : i + BLOCK]) for i in range(0, len(new), BLOCK)
            )
            if len(new) or not live.all():
                layout.places = np.concatenate([layout.places[live], places])
                layout.clusters = np.concatenate([layout.clusters[live], clusters])
                items = np.concatenate([held.items[live], index.item_ids[new]])
                save_map(path, items, layout, held.words, held.facts)
        return MapReport(
            model_id, version, int(live.sum()) + len(new), 0, len(new), len(layout.centres),
            round(time.perf_counter() - started, 1),
        )  # fmt: skip

    def _words(self, model_id: str, layout: Layout, sample: np.ndarray) -> list[list[str]]:
        encoder = self._parts.query_encoder(model_id)
        tokenizer = getattr(encoder, "tokenizer", None) or getattr(
            self._parts.encoder(model_id), "tokenizer", None
        )
        words = vocabulary(tokenizer)
        if not words:
            return [[] for _ in layout.centres]
        vectors = np.concatenate(
            [encoder.encode_texts(words[i : i + 256]) for i in range(0, len(words), 256)]
        )
        sampled = layout.clusters[: len(sample)]
        members = [sample[sampled == c] for c in range(len(layout.centres))]
        return cluster_words(members, vectors, words)

    def _read(self, model_id: str, version: str, path: Path) -> _Loaded | None:
        try:
            info = path.stat()
        except OSError:
            return None
        stamp = (info.st_ino, info.st_size, info.st_mtime_ns)
        held = self._loaded.get((model_id, version))
        if held is not None and held.stamp == stamp:
            return held
        read = read_map(path, self._parts.manifest.models[model_id]["dim"])
        if read is None:
            return None
        items, layout, words, facts = read
        order = np.argsort(_priority(items), kind="stable")
        layout.places, layout.clusters = layout.places[order], layout.clusters[order]
        held = _Loaded(stamp, items[order], layout, words, facts)
        self._loaded[(model_id, version)] = held
        return held

    def _held(self, model: str | None) -> _Loaded:
        model_id, version, path = self._where(model)
        held = self._read(model_id, version, path)
        if held is None:
            raise SashieError("this library has no map yet: draw one with `sashie map LIB`")
        return held

    def points(
        self,
        box: tuple[float, float, float, float] | None = None,
        limit: int = MOST_POINTS,
        *,
        model: str | None = None,
    ) -> MapPoints:
        """The live points inside `box` (x0, y0, x1, y1; all when None), at most `limit`,
        the highest in priority first (the same items each time)."""
        if not 1 <= limit <= MOST_POINTS:
            raise SashieError(f"a view may ask for 1 to {MOST_POINTS:,} points")
        held = self._held(model)
        places = held.layout.places
        live, books = self._against_index(held, model)
        keep = live.copy()
        total = int(keep.sum())
        if box is not None:
            x0, y0, x1, y1 = box
            keep &= (places[:, 0] >= x0) & (places[:, 0] <= x1)
            keep &= (places[:, 1] >= y0) & (places[:, 1] <= y1)
        rows = np.flatnonzero(keep)[:limit]
        items = held.items[rows]
        return MapPoints(
            items, places[rows], held.layout.clusters[rows], books[rows],
            self._years(books[rows], model), self._class_codes(items), total,
        )  # fmt: skip

    def class_names(self) -> list[str]:
        """The classes of the newest label set, in the order `MapPoints.classes` counts them
        from 1; [] when the library has no label set."""
        return self._classes_held()[0]

    def _classes_held(self) -> tuple[list[str], np.ndarray, np.ndarray]:
        """(class names, labelled item ids sorted, their codes), read once a label set."""
        from .labels import Labels

        labels = Labels(self._parts)
        if labels.newest() is None:
            return [], np.zeros(0, np.int64), np.zeros(0, np.uint16)
        record = labels.record(None)
        key = (record["name"], record["version"], record["at"])
        if self._class_cache is None or self._class_cache[0] != key:
            items, names = self._parts.catalog.labelled_items(record["name"])
            classes = sorted(set(names))
            code = {name: i + 1 for i, name in enumerate(classes)}
            order = np.argsort(items)
            codes = np.array([code[n] for n in names], np.uint16)[order]
            self._class_cache = (key, (classes, items[order], codes))
        return self._class_cache[1]

    def _class_codes(self, items: np.ndarray) -> np.ndarray:
        _, labelled, codes = self._classes_held()
        if not len(labelled):
            return np.zeros(len(items), np.uint16)
        at = np.clip(np.searchsorted(labelled, items), 0, len(labelled) - 1)
        return np.where(labelled[at] == items, codes[at], 0).astype(np.uint16)

    def _live(self, held: _Loaded, model: str | None) -> np.ndarray:
        """Which of the map's items are live (the model's loaded index holds them)."""
        return self._against_index(held, model)[0]

    def _against_index(self, held: _Loaded, model: str | None) -> tuple[np.ndarray, np.ndarray]:
        """(which map items are live, each one's book id; 0: none), worked out once for the
        index loaded now, from its rows' books, which searches keep too."""
        index = self._parts.load(model).index
        if held.live is None or held.live[0] is not index:
            runs = self._parts.book_rows(model)
            row_books = np.repeat(runs.books, runs.lengths)
            order = np.argsort(index.item_ids)
            n = len(order)
            at = np.clip(
                np.searchsorted(index.item_ids, held.items, sorter=order), 0, max(n - 1, 0)
            )
            rows = order[at] if n else np.zeros(len(held.items), np.int64)
            live = index.item_ids[rows] == held.items if n else np.zeros(len(held.items), bool)
            books = np.where(live, row_books[rows] if n else 0, 0).astype(np.int64)
            held.live = (index, live, books)
        return held.live[1], held.live[2]

    def _years(self, books: np.ndarray, model: str | None) -> np.ndarray:
        """The first year of each book (NaN: none), from the years searches keep."""
        years = self._parts.book_years(model)
        if not len(years.ids):
            return np.full(len(books), np.nan, np.float32)
        where = np.clip(np.searchsorted(years.ids, books), 0, len(years.ids) - 1)
        dated = years.ids[where] == books
        return np.where(dated, years.year_from[where], np.nan).astype(np.float32)

    def clusters(self, *, model: str | None = None) -> list[dict]:
        """Each cluster: its centre, items, the model's words for it and, where the library
        has a label set, the class most of its items have in the newest (with the share)."""
        held = self._held(model)
        live = self._live(held, model)
        names = self.class_names()
        codes = self._class_codes(held.items)
        out = []
        for c, centre in enumerate(held.layout.centres):
            members = live & (held.layout.clusters == c)
            count = int(members.sum())
            entry = {
                "cluster": c, "x": float(centre[0]), "y": float(centre[1]),
                "items": count, "words": held.words[c], "label": None, "share": None,
            }  # fmt: skip
            named = np.bincount(codes[members], minlength=len(names) + 1)[1:]
            if named.any():
                best = int(named.argmax())
                entry["label"], entry["share"] = names[best], round(int(named[best]) / count, 3)
            out.append(entry)
        return out

    def facts(self, *, model: str | None = None) -> dict | None:
        """The map's model, version, items and when it was drawn; None when there is none."""
        if not self.exists(model):
            return None
        model_id, version, _ = self._where(model)
        held = self._held(model)
        return {"model": model_id, "version": version, "items": len(held.items), **held.facts}

    def select(self, polygon: list[tuple[float, float]], *, model: str | None = None) -> list[int]:
        """The live items inside a lasso (its corners in map coordinates; even-odd rule)."""
        corners = np.asarray(polygon, np.float64)
        if corners.ndim != 2 or corners.shape[1] != 2 or not 3 <= len(corners) <= LASSO_CORNERS:
            raise SashieError(f"a lasso needs 3 to {LASSO_CORNERS} corners, each [x, y]")
        if not np.isfinite(corners).all():
            raise SashieError("a lasso's corners must be numbers")
        held = self._held(model)
        places = held.layout.places
        low, high = corners.min(axis=0), corners.max(axis=0)
        near = np.flatnonzero(((places >= low) & (places <= high)).all(axis=1))
        inside_ = _inside(places[near].astype(np.float64), corners)
        rows = near[inside_]
        return sorted(int(i) for i in held.items[rows[self._live(held, model)[rows]]])

    def export(
        self, folder: str | Path, *, thumbnails: int = 20_000, model: str | None = None
    ) -> MapExport:
        """Write the map's data to `folder` for a page that opens without sashie: every live
        point, the clusters, and the thumbnails of the first `thumbnails` points in the
        map's order of priority (an even sample of a larger library)."""
        if not 0 <= thumbnails <= MOST_POINTS:
            raise SashieError(f"thumbnails must be between 0 and {MOST_POINTS:,}")
        points = self.points(model=model)
        meta = {
            "map": self.facts(model=model),
            "clusters": self.clusters(model=model),
            "classes": self.class_names(),
            "thumbnails": min(thumbnails, len(points.items)),  # the first points have them
        }
        crop = lambda item, side: self._parts.pictures.crop(self._parts.item(item), side)  # noqa: E731
        return write_map_folder(
            Path(folder), points.binary(), meta, points.items[:thumbnails].tolist(), crop,
            progress=self._parts.progress,
        )  # fmt: skip


def _priority(items: np.ndarray) -> np.ndarray:
    """A fixed pseudo-random rank of each item (a multiplicative hash of its id)."""
    return (items.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(11)


def _inside(points: np.ndarray, corners: np.ndarray) -> np.ndarray:
    """Which points lie inside the polygon (even-odd rule), by crossings of each edge."""
    x, y = points[:, 0], points[:, 1]
    inside = np.zeros(len(points), bool)
    ends = np.roll(corners, -1, axis=0)
    for (x0, y0), (x1, y1) in zip(corners, ends, strict=True):
        spans = (y0 > y) != (y1 > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            cross = x0 + (y - y0) * (x1 - x0) / (y1 - y0)
        inside ^= spans & (x < cross)
    return inside
