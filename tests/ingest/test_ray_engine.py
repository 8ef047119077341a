"""`sashie index --engine ray` (sashie/ingest/ray_engine.py) against the local engine, on a
local Ray of this machine's CPUs."""

from __future__ import annotations

import os
import signal
import sys

import numpy as np
import pytest

from sashie import Library

from conftest import make_pages, run_cli, start_cli_process, stop_at_first_commit

pytestmark = pytest.mark.slow


def by_place(lib: Library) -> dict[tuple, np.ndarray]:
    """Each item's stored vector, keyed by page, detector and box (ids differ between runs);
    every item exactly once."""
    index = lib.index(version="base")
    items = {r.id: r for r in lib.items()}
    found: dict[tuple, np.ndarray] = {}
    for row, item_id in enumerate(index.item_ids.tolist()):
        item = items[item_id]
        key = (item.page, item.detector, item.bbox)
        assert key not in found, f"{key} twice"
        found[key] = index.vectors[row]
    assert len(found) == len(items)
    return found


def same_library(got: Library, expected: Library) -> None:
    want, have = by_place(expected), by_place(got)
    assert have.keys() == want.keys()
    for key in want:  # stored as float16
        np.testing.assert_allclose(have[key], want[key], atol=2e-3)
    skips = [
        {(s["uri"], s["reason"]) for s in lib.info()["skipped_inputs"]} for lib in (got, expected)
    ]
    assert skips[0] == skips[1] and len(skips[0]) == 1


@pytest.fixture(scope="module", autouse=True)
def ray_here():
    """One local Ray for the tests that index in this process (the engine joins it)."""
    import ray

    ray.init(num_cpus=3, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ray") / "pages"
    make_pages(folder, 16, size=(300, 400), seed=8)
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"not an image" * 10)
    return folder


@pytest.fixture(scope="module")
def local_library(pages, tiny_spec, tmp_path_factory):
    lib = Library(tmp_path_factory.mktemp("local") / "lib", create=True)
    lib.add([str(pages)], model=tiny_spec, regions="layout,whole", batch_size=4)
    return lib


def test_ray_indexes_the_same_items_and_vectors_as_the_local_engine(
    pages, tiny_spec, local_library, tmp_path
):
    """Two readers on a local Ray: the same items, the same vectors within float16, the
    broken page skipped with the local engine's reason."""
    lib = Library(tmp_path / "lib", create=True)
    report = lib.add(
        [str(pages)], model=tiny_spec, regions="layout,whole", batch_size=4, engine="ray", workers=2
    )
    assert report.pages_indexed == 16 and len(report.skipped) == 1
    assert "broken.png" in report.skipped[0].uri
    same_library(lib, local_library)
    again = lib.add([str(pages)], model=tiny_spec, regions="layout,whole", engine="ray")
    assert again.pages_indexed == 0 and again.vectors_added == 0  # Ray is not even started


def test_a_killed_ray_run_resumes_with_nothing_duplicated_or_missing(tiny_spec, tmp_path):
    """kill -9 of the driver (and its local Ray) once some pages are saved; the next run
    embeds only what is missing."""
    pages = tmp_path / "pages"
    make_pages(pages, 48, size=(300, 400), seed=9)
    complete = Library(tmp_path / "complete", create=True)
    complete.add([str(pages)], model=tiny_spec, regions="whole")
    lib = tmp_path / "lib"
    args = ("index", lib, pages, "--model", tiny_spec, "--regions", "whole", "--engine", "ray")
    process = start_cli_process(
        *args,
        "--workers",
        "1",
        "--batch-size",
        "1",
        "-q",
        start_new_session=True,  # Ray's processes too: kill -9 the whole group
    )
    rows = stop_at_first_commit(process, lib, lambda: os.killpg(process.pid, signal.SIGKILL), 240)
    _, stderr = process.communicate(timeout=60)
    assert rows > 0 and process.returncode == -signal.SIGKILL, stderr
    partial = Library(lib).info()
    assert 0 < partial["items"] == partial["models"][0]["vectors"] < 48, "not stopped midway"

    run_cli(*args, "--workers", "2", "-q")
    resumed = Library(lib)
    assert len(by_place(resumed)) == 48
    want, have = by_place(complete), by_place(resumed)
    assert have.keys() == want.keys()
    for key in want:
        np.testing.assert_allclose(have[key], want[key], atol=2e-3)
    vectors = resumed.path / resumed.models[resumed.default_model]["vectors"] / "vectors.f16"
    assert vectors.stat().st_size == 48 * 48 * 2  # no left-over rows


def test_ray_without_its_extra_or_its_cluster_is_one_clear_line(
    pages, tiny_spec, tmp_path, monkeypatch
):
    args = ("index", tmp_path / "lib", pages, "--model", tiny_spec, "--engine", "ray", "-q")
    unreachable = run_cli(*args, "--address", "127.0.0.1:1", check=False)
    assert unreachable.exit_code == 1
    assert unreachable.stderr.strip().splitlines() == [
        "error: cannot reach a Ray cluster at 127.0.0.1:1 ([Errno 111] Connection refused)"
    ]
    no_gpu = run_cli(*args, "--device", "cuda", check=False)
    assert no_gpu.exit_code == 1
    assert no_gpu.stderr.strip() == "error: --device cuda asked for, but the Ray cluster has no GPU"
    monkeypatch.setitem(sys.modules, "ray", None)  # as if the `ray` extra were absent
    missing = run_cli(*args, check=False)
    assert missing.exit_code == 1
    assert missing.stderr.strip() == (
        "error: --engine ray needs Ray; install it with pip install 'sashie[ray]'"
    )
    assert not (tmp_path / "lib").exists()  # nothing left behind
