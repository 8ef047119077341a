import json
import os
import shutil
import signal
import sys

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from sashie import Library, SashieError
from sashie.library import Asked

from conftest import cli_json, make_pages, run_cli, start_cli_process, stop_at_first_commit
from tiny_clip import build_tiny_clip


def vectors_by_page(lib: Library, model=None) -> dict[str, np.ndarray]:
    """Each item's stored vector, keyed by page path and bbox (ids may differ between runs)."""
    index = lib.index(model, version="base")
    items = {r.id: r for r in lib.items()}
    return {
        (items[i].page, items[i].bbox): index.vectors[row]
        for row, i in enumerate(index.item_ids.tolist())
    }


def test_reindexing_embeds_only_what_is_new_or_changed(tmp_path, tiny_spec):
    folder = tmp_path / "pages"
    paths = make_pages(folder, 6)
    lib = Library(tmp_path / "lib", create=True)
    first = lib.add([str(folder)], model=tiny_spec, regions="whole")
    assert (first.pages_indexed, first.vectors_added) == (6, 6)

    again = lib.add([str(folder)], regions="whole")
    assert (again.pages_unchanged, again.vectors_added) == (6, 0)

    make_pages(tmp_path / "more", 2, seed=9)
    os.replace(tmp_path / "more" / "page0000.png", folder / "new.png")
    Image.new("RGB", (96, 128), "black").save(paths[2])  # changed content
    os.utime(paths[3], ns=(1, 1))  # touched, same bytes: not re-embedded
    before = vectors_by_page(lib)
    third = lib.add([str(folder)], regions="whole")
    assert (third.pages_indexed, third.vectors_added, third.items_added) == (3, 2, 2)
    after = vectors_by_page(lib)
    assert len(after) == 7 == lib.info()["items"]
    key = (str(paths[2]), (0, 0, 96, 128))
    assert not np.allclose(before[key], after[key])
    assert lib.add([str(folder)], regions="whole").pages_unchanged == 7


def test_copies_of_indexed_pages_are_recorded_not_indexed_again(tmp_path, tiny_spec):
    originals = tmp_path / "scans"
    make_pages(originals, 6)
    lib = Library(tmp_path / "lib", create=True)
    lib.add([str(originals)], model=tiny_spec, regions="whole")
    copied = tmp_path / "copy of scans"
    shutil.copytree(originals, copied)
    make_pages(tmp_path / "other", 1, seed=3)
    shutil.copy(tmp_path / "other" / "page0000.png", copied / "new.png")
    report = lib.add([str(copied)], regions="whole")
    assert (report.pages_copied, report.pages_indexed, report.vectors_added) == (6, 1, 1)
    assert "6 copies of pages indexed" in report.summary()
    facts = lib.info()
    assert (facts["pages"], facts["items"], facts["copies"]) == (7, 7, 6)
    [hit] = lib.search(Asked(images=[originals / "page0002.png"]), 1)
    assert hit.page == str(originals / "page0002.png")
    assert hit.copies == (str(copied / "page0002.png"),)
    # seen again: nothing is read; a copy whose bytes change becomes a page of its own
    assert lib.add([str(copied)], regions="whole").pages_unchanged == 7
    Image.new("RGB", (96, 128), "navy").save(copied / "page0004.png")
    changed = lib.add([str(copied)], regions="whole")
    assert (changed.pages_indexed, changed.pages_copied, changed.vectors_added) == (1, 0, 1)
    assert lib.info()["copies"] == 5
    # two new files with the same bytes in one run: one page, one copy, no extra vectors
    twins = tmp_path / "twins"
    twins.mkdir()
    Image.new("RGB", (96, 128), "olive").save(twins / "a.png")
    shutil.copy(twins / "a.png", twins / "b.png")
    both = lib.add([str(twins)], regions="whole")
    assert (both.pages_indexed, both.pages_copied, both.vectors_added) == (1, 1, 1)
    assert lib.info()["items"] == len(lib.index()) == 9


def test_a_second_model_lives_beside_the_first(tmp_path, tiny_spec):
    other = build_tiny_clip(tmp_path / "other-clip", seed=1)
    folder = tmp_path / "pages"
    make_pages(folder, 5)
    lib = Library(tmp_path / "lib", create=True)
    lib.add([str(folder)], model=tiny_spec, regions="whole")
    report = lib.add([str(folder)], model=f"hf:{other}", regions="whole")
    assert report.items_added == 0 and report.vectors_added == 5  # same items, new vectors
    info = lib.info()
    assert [m["vectors"] for m in info["models"]] == [5, 5]
    assert info["models"][0]["default"] and not info["models"][1]["default"]
    first, second = vectors_by_page(lib), vectors_by_page(lib, f"hf:{other}")
    assert first.keys() == second.keys()
    assert not np.allclose(next(iter(first.values())), next(iter(second.values())))
    by_default = lib.search("a page", k=5)
    by_other = lib.search("a page", k=5, model=f"hf:{other}")
    assert {h.item for h in by_default} == {h.item for h in by_other}
    assert [h.score for h in by_default] != [h.score for h in by_other]


def test_a_model_that_changed_since_indexing_is_refused(tmp_path, pages):
    model_dir = build_tiny_clip(tmp_path / "clip")
    lib = Library(tmp_path / "lib", create=True)
    lib.add([str(pages)], model=f"hf:{model_dir}", regions="whole")
    build_tiny_clip(model_dir, seed=7)  # retrained in place
    with pytest.raises(SashieError, match="index again"):
        Library(tmp_path / "lib").search("crane")


def test_search_results_and_json(tmp_path, tiny_spec, pages):
    lib_path = tmp_path / "lib"
    run_cli("index", "--regions", "whole", lib_path, pages, "--model", tiny_spec, "-q")
    results = cli_json("search", lib_path, "a red crane", "--k", "5", "--json")["results"]
    assert [r["rank"] for r in results] == [1, 2, 3, 4, 5]
    assert set(results[0]) == {
        *("rank", "item", "score", "page", "bbox", "page_size", "detector", "source"),
        *("metadata", "mark", "verdict", "captions", "canvas", "region", "class_label"),
        *("copies", "book", "page_number", "content_state", "viewer_url", "homepage"),
    }
    scores = [r["score"] for r in results]
    assert scores == sorted(scores, reverse=True)
    # an image query finds its own page first
    probe = pages / "page0007.png"
    best = cli_json("search", lib_path, "--image", probe, "--k", "1", "--json")["results"][0]
    assert best["page"] == str(probe) and best["score"] == pytest.approx(1.0, abs=2e-3)
    # several images: lowest-CV dimensions; random control; all dimensions
    examples = [pages / "page0001.png", pages / "page0002.png", pages / "page0003.png"]
    args = [a for p in examples for a in ("--image", p)]
    for extra in ([], ["--select", "random", "--seed", "3"], ["--dims", "all"]):
        hits = cli_json("search", lib_path, *args, "--dims", "16", "--json", *extra)["results"]
        assert len(hits) == 12
    text = run_cli("search", lib_path, f'"ink" + {probe} - 0.5*"text"', "--k", "3").stdout
    assert "rank" in text and "page00" in text


def test_a_query_vector_of_another_dimension_is_refused(tmp_path, tiny_spec, pages):
    lib = Library(tmp_path / "lib", create=True)
    lib.add([str(pages)], model=tiny_spec, regions="whole")
    assert len(lib.search(np.ones(48), 3)) == 3
    with pytest.raises(SashieError, match="query has 512 dimensions, library 48"):
        lib.search(np.ones(512))
    with pytest.raises(SashieError, match="no vectors of model"):
        lib.search("crane", model="hf:some/other-model")


def test_export_writes_npy_and_parquet_row_for_row(tmp_path, tiny_spec, pages):
    lib = Library(tmp_path / "lib", create=True)
    lib.add([str(pages)], model=tiny_spec, regions="whole")
    out = tmp_path / "export"
    run_cli("export", tmp_path / "lib", out)
    vectors = np.load(out / "img_emb" / "img_emb_0.npy")
    table = pq.read_table(out / "metadata" / "metadata_0.parquet").to_pylist()
    assert vectors.shape == (12, 48) and len(table) == 12
    stored = vectors_by_page(lib)
    for row, meta in zip(vectors, table):
        bbox = (meta["x0"], meta["y0"], meta["x1"], meta["y1"])
        np.testing.assert_array_equal(row, stored[(meta["page"], bbox)])
    assert json.loads((out / "model.json").read_text())["dim"] == 48


def test_a_missing_extra_is_one_line_that_names_it(tmp_path, tiny_spec, pages, monkeypatch):
    lib = Library(tmp_path / "lib", create=True)
    lib.add([str(pages)], model=tiny_spec, regions="whole")
    for module in ("pyarrow", "pyarrow.parquet"):
        monkeypatch.setitem(sys.modules, module, None)  # as if the `export` extra were absent
    done = run_cli("export", tmp_path / "lib", tmp_path / "out", check=False)
    assert done.exit_code == 1
    assert done.stderr.strip() == (
        "error: Parquet export needs the 'export' extra: pip install 'sashie[export]'"
    )


def interrupt_midway(lib, folder, spec, how, total):
    """Start an index run, stop it with `how` once some (not all) pages are committed."""
    process = start_cli_process(
        "index",
        "--regions",
        "whole",
        lib,
        folder,
        "--model",
        spec,
        "--batch-size",
        "2",
        "--workers",
        "1",
        "-q",
    )
    rows = stop_at_first_commit(process, lib, lambda: process.send_signal(how))
    _, stderr = process.communicate(timeout=60)
    assert 0 < rows < total, f"could not stop the run midway (rows={rows}): {stderr}"
    return process.returncode, stderr


@pytest.mark.slow
@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGINT])
def test_an_interrupted_run_resumes_to_the_same_library(tmp_path, tiny_spec, how):
    total = 150
    folder = tmp_path / "pages"
    make_pages(folder, total, size=(300, 400))
    complete = Library(tmp_path / "complete", create=True)
    complete.add([str(folder)], model=tiny_spec, batch_size=2, regions="whole")

    lib = tmp_path / "interrupted"
    code, stderr = interrupt_midway(lib, folder, tiny_spec, how, total)
    if how == signal.SIGINT:
        assert code == 130 and "run the same command again to resume" in stderr
        assert "Traceback" not in stderr
    else:
        assert code == -signal.SIGKILL
    partial = Library(lib).info()
    assert 0 < partial["pages"] < total and partial["items"] == partial["models"][0]["vectors"]

    run_cli(
        "index", "--regions", "whole", lib, folder, "--model", tiny_spec, "--batch-size", "2", "-q"
    )
    resumed = Library(lib)
    assert resumed.info()["items"] == total
    expected, got = vectors_by_page(complete), vectors_by_page(resumed)
    assert got.keys() == expected.keys()
    for key in expected:
        np.testing.assert_allclose(got[key], expected[key], atol=2e-3)
    vectors = resumed.path / resumed.models[resumed.default_model]["vectors"] / "vectors.f16"
    assert vectors.stat().st_size == total * 48 * 2  # no left-over rows


def test_one_writer_at_a_time(tmp_path, tiny_spec, pages):
    import fcntl

    lib = Library(tmp_path / "lib", create=True)
    with open(tmp_path / "lib" / "lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(SashieError, match="another process"):
            lib.add([str(pages)], model=tiny_spec, regions="whole")
