"""What scripts and other tools read. `sashie export`: one row per item (its crop, its URL,
its captions, labels and filter verdict, the active version's vectors), read the way
clip-retrieval's back end reads it, and a FAISS index built on it as autofaiss builds one
answers as sashie does. `search --json`, `--csv` and the API's results: every fact of an
item. `--json` on the commands that print a report."""

import csv
import io
import json
import os
import re
from pathlib import Path

import faiss
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image, ImageDraw

from sashie import Library
from sashie.adapt.settings import AdaptSettings
from sashie.library import Filters

from conftest import run_cli

SERVICE = "http://127.0.0.1:9/iiif"  # a closed port: crops fall back to the page's file
CANVAS = "https://example.org/book/canvas"
PAGE = (300, 400)
# what clip-retrieval's back end returns of each row (clip_back.py, columns_to_return)
CLIP_RETRIEVAL_COLUMNS = ["url", "image_path", "caption", "NSFW"]


def drawn_pages(folder: Path, count: int, seed: int) -> list[Path]:
    """Pages of paper with one drawn figure each, which the layout detector finds."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        page = Image.new("RGB", PAGE, tuple(int(v) for v in rng.integers(200, 245, 3)))
        draw = ImageDraw.Draw(page)
        x, y = (int(v) for v in rng.integers(30, 120, 2))
        ink = tuple(int(v) for v in rng.integers(0, 120, 3))
        draw.ellipse((x, y, x + 120, y + 140), outline=ink, width=3)
        draw.line((x + 10, y + 20, x + 110, y + 120), fill=ink, width=3)
        draw.rectangle((x + 30, y + 40, x + 60, y + 70), outline=(150, 30, 30), width=3)
        paths.append(folder / f"page{i}.png")
        page.save(paths[-1])
    return paths


def manifest(pages: list[Path]) -> dict:
    """A local IIIF v3 manifest: canvases three times the page's size, images served twice
    its size by an Image service."""
    w, h = PAGE
    return {
        "@context": "http://iiif.io/api/presentation/3/context.json",
        "id": "https://example.org/book/manifest.json",
        "type": "Manifest",
        "label": {"en": ["A book"]},
        "items": [
            {
                "id": f"{CANVAS}/{i}",
                "type": "Canvas",
                "width": 3 * w,
                "height": 3 * h,
                "label": {"none": [f"p. {i + 1}"]},
                "items": [
                    {
                        "type": "AnnotationPage",
                        "items": [
                            {
                                "type": "Annotation",
                                "motivation": "painting",
                                "body": {
                                    "id": page.name,
                                    "type": "Image",
                                    "width": 2 * w,
                                    "height": 2 * h,
                                    "service": [{"id": f"{SERVICE}/{i}", "type": "ImageService3"}],
                                },
                            }
                        ],
                    }
                ],
            }
            for i, page in enumerate(pages)
        ],
    }


@pytest.fixture(scope="module")
def library(tmp_path_factory, tiny_spec) -> Library:
    """A library of local pages and a IIIF book, labelled through the command line, filtered,
    captioned and adapted (v1 active)."""
    root = tmp_path_factory.mktemp("marked")
    drawn_pages(root / "scans", 8, seed=1)
    book = drawn_pages(root / "book", 3, seed=2)
    (root / "book" / "manifest.json").write_text(json.dumps(manifest(book)))
    sources = [root / "scans", root / "book" / "manifest.json"]
    args = ("index", root / "lib", *sources, "--model", tiny_spec, "--regions", "layout,whole")
    report = json.loads(run_cli(*args, "--json").stdout)
    assert report["pages_indexed"] == 11 and report["items_added"] > 20
    lib = Library(root / "lib")
    ids = lib.item_ids().tolist()
    marks = root / "marks.csv"
    marks.write_text("".join(f"{i},{['exclude', 'keep'][n % 2]}\n" for n, i in enumerate(ids[:20])))
    labelled = json.loads(run_cli("filter", "mark", root / "lib", "--csv", marks, "--json").stdout)
    assert labelled == {"marked": 20, "marked_keep": 10, "keep": 10, "exclude": 10}
    lib.filter.train(learners=["svm"])
    applied = json.loads(run_cli("filter", "apply", root / "lib", "--json").stdout)
    assert applied["scored"] == len(ids) == applied["kept"] + applied["excluded"]
    lib.annotations.add(ids[:3], "a crane")
    lib.annotations.add(ids[:2], "鶴")
    listed = json.loads(run_cli("annotations", "list", root / "lib", "--json").stdout)
    assert [(a["item"], a["caption"]) for a in listed["annotations"]] == [
        *((i, "a crane") for i in ids[:3]),
        *((i, "鶴") for i in ids[:2]),
    ]
    lib.versions.adapt(settings=AdaptSettings(epochs=1, min_steps=2))
    return lib


@pytest.fixture(scope="module")
def exported(library, tmp_path_factory):
    """The library exported: (library, export folder, the export's JSON report)."""
    out = tmp_path_factory.mktemp("exported") / "out"
    report = json.loads(run_cli("export", library.path, out, "--json").stdout)
    return library, out, report


def read_like_clip_retrieval(out: Path) -> tuple[np.ndarray, pa.Table]:
    """The embeddings as embedding-reader reads an .npy (its header's dtype, then float32),
    and the metadata as clip_back's ParquetMetadataProvider concatenates it (sorted files)."""
    files = sorted((out / "img_emb").glob("*.npy"))
    with open(files[0], "rb") as f:
        header = f.read(128).decode("latin-1")
    assert re.search(r"'descr': '([<f0-9]+)'", header).group(1) == "<f2"
    vectors = np.concatenate([np.load(f) for f in files]).astype(np.float32)
    tables = [pq.read_table(f) for f in sorted((out / "metadata").glob("*.parquet"))]
    return vectors, pa.concat_tables(tables)


def test_an_export_is_read_as_clip_retrievals_back_end_reads_it(exported):
    lib, out, report = exported
    vectors, table = read_like_clip_retrieval(out)
    assert len(vectors) == table.num_rows == report["items"] == len(lib.item_ids())
    assert report["version"] == "v1" and report["crops"] == report["items"]
    model = json.loads((out / "model.json").read_text())
    assert model["version"] == "v1" and model["model_id"] == lib.default_model
    assert model["spec"] == lib.models[lib.default_model]["spec"]

    # the active version's vectors, row for row with the items
    rows = table.to_pylist()
    items = [row["item"] for row in rows]
    np.testing.assert_array_equal(vectors, lib.vectors_of(items, version="v1"))
    assert not np.allclose(vectors, lib.vectors_of(items, version="base"))

    excluded = set(lib.index().item_ids[lib.filter.excluded_rows()].tolist())
    marked, keep = lib.filter.marks()
    marks = dict(zip(marked.tolist(), keep.tolist()))
    captions: dict[int, list[str]] = {}
    for a in lib.annotations.list():
        captions.setdefault(a["item"], []).append(a["caption"])
    assert sorted(map(len, captions.values())) == [1, 2, 2]
    wanted = list(set(CLIP_RETRIEVAL_COLUMNS) & set(table.column_names))
    for i, row in enumerate(rows):
        item = lib.item(row["item"])
        # clip_back: metadata_provider.get(ids, columns_to_return), then the image at
        # image_path opened from the back end's working directory
        meta = table.slice(i, 1).select(wanted).to_pylist()[0]
        assert os.path.isabs(meta["image_path"]) and os.path.exists(meta["image_path"])
        x0, y0, x1, y1 = item.bbox
        with Image.open(meta["image_path"]) as crop:
            assert crop.format == "JPEG" and crop.size == (x1 - x0, y1 - y0)
        assert Path(meta["image_path"]) == (out / "crops" / f"{item.id}.jpg").resolve()
        assert meta["caption"] == ("; ".join(captions[item.id]) if item.id in captions else None)
        assert row["captions"] == captions.get(item.id, [])
        assert row["mark"] == {True: "keep", False: "exclude", None: None}[marks.get(item.id)]
        assert row["verdict"] == ("exclude" if item.id in excluded else "keep")
        assert (row["page"], row["detector"]) == (item.page, item.detector)
        assert (row["x0"], row["y0"], row["x1"], row["y1"]) == item.bbox

        if "canvas" not in item.metadata:  # a local page: no URL, no canvas
            assert meta["url"] is None and row["region"] is None and row["canvas"] is None
            continue
        # a IIIF page: the region from its Image service (pixels of the served image, twice
        # the page's) and on its canvas (three times the page's); metadata keys as columns
        n = row["canvas_index"]
        box = ",".join(map(str, (2 * x0, 2 * y0, 2 * (x1 - x0), 2 * (y1 - y0))))
        assert meta["url"] == f"{SERVICE}/{n}/{box}/max/0/default.jpg"
        xywh = ",".join(map(str, (3 * x0, 3 * y0, 3 * (x1 - x0), 3 * (y1 - y0))))
        assert row["region"] == f"{CANVAS}/{n}#xywh={xywh}"
        assert row["canvas"] == f"{CANVAS}/{n}" and row["canvas_label"] == f"p. {n + 1}"
    assert {row["verdict"] for row in rows} == {"keep", "exclude"}
    assert len({row["canvas"] for row in rows} - {None}) == 3  # the book's three pages


def test_a_faiss_index_built_on_the_export_answers_as_sashie_does(exported):
    lib, out, _ = exported
    vectors, table = read_like_clip_retrieval(out)
    # autofaiss: inner product (its default metric), "Flat" below 1,000 vectors
    index = faiss.index_factory(vectors.shape[1], "Flat", faiss.METRIC_INNER_PRODUCT)
    index.add(vectors)
    items = np.array(table.column("item").to_pylist())
    for text in ("a crane", "a page"):
        query = lib.query(text).vector  # through the active version's text encoder
        scores, rows = index.search(query[None, :].astype(np.float32), 5)
        hits = lib.search(text, 5, where=Filters(all_items=True))
        assert items[rows[0]].tolist() == [h.item for h in hits]
        np.testing.assert_allclose(scores[0], [h.score for h in hits], atol=1e-5)


def test_the_base_vectors_and_no_crops_when_asked(library, tmp_path):
    lib = library
    base = tmp_path / "base"
    run_cli("export", lib.path, base, "--version", "base", "--no-crops")
    vectors, table = read_like_clip_retrieval(base)
    items = table.column("item").to_pylist()
    np.testing.assert_array_equal(vectors, lib.vectors_of(items, version="base"))
    assert json.loads((base / "model.json").read_text())["version"] == "base"
    assert set(table.column("image_path").to_pylist()) == {None}
    assert not (base / "crops").exists()
    done = run_cli("export", lib.path, base, "--version", "v9", check=False)
    assert done.exit_code == 1 and done.stderr.startswith("error: no model version 'v9'")


def test_search_json_csv_and_the_api_give_every_fact_of_an_item(library):
    from fastapi.testclient import TestClient

    from sashie.app import server

    args = ("search", library.path, "a crane", "--all", "-k", "100")
    found = json.loads(run_cli(*args, "--json").stdout)["results"]
    assert len(found) == len(library.item_ids())
    api = TestClient(server.create_app(library.path))
    served = api.post("/api/search", data={"text": "a crane", "all_items": "true"}).json()
    by_item = {r["item"]: r for r in served["results"]}
    rows = list(csv.DictReader(io.StringIO(run_cli(*args, "--csv").stdout)))
    assert [int(row["item"]) for row in rows] == [r["item"] for r in found]
    marked, keep = library.filter.marks()
    marks = dict(zip(marked.tolist(), keep.tolist()))
    excluded = set(library.index().item_ids[library.filter.excluded_rows()].tolist())
    for r, row in zip(found, rows):
        item = library.item(r["item"])
        where = library.iiif_target(item.id) if "canvas" in item.metadata else None
        expected = {
            "page": item.page,
            "bbox": list(item.bbox),
            "page_size": list(item.page_size),
            "detector": item.detector,
            "source": item.source,
            "metadata": item.metadata,
            "canvas": where and where["canvas"],
            "region": where and where["region"],
            "mark": {True: "keep", False: "exclude", None: None}[marks.get(item.id)],
            "verdict": "exclude" if item.id in excluded else "keep",
            "captions": [a["caption"] for a in library.annotations.list([item.id])],
        }
        assert {key: r[key] for key in expected} == expected
        assert {key: by_item[item.id][key] for key in expected} == expected  # the API's
        assert row["region"] == (expected["region"] or "")
        assert row["captions"] == "; ".join(expected["captions"])
        assert [int(row[k]) for k in ("x0", "y0", "x1", "y1")] == expected["bbox"]
    assert {r["detector"] for r in found} == {"layout", "whole"}
    assert sum(r["region"] is not None for r in found) >= 3
