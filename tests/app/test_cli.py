"""The command line as a person meets it: how fast it answers a mistake, what it prints."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

import pytest

from sashie import Library
from sashie.app.cli.search import results_table

from conftest import run_cli

HEAVY = ("torch", "transformers", "sklearn", "faiss", "cv2", "fastapi")


def imported_by(*args: str) -> tuple[subprocess.CompletedProcess, set[str]]:
    """Run `sashie ARGS` in its own process with Python's import tracing: the finished
    process and the top-level packages it imported."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "sashie", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    names = set()
    for line in done.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    return done, names


@pytest.fixture(scope="module")
def small_library(tmp_path_factory, tiny_spec):
    from conftest import make_pages

    root = tmp_path_factory.mktemp("cli")
    make_pages(root / "pages", 24)
    with Library(root / "lib", create=True) as lib:
        lib.add([str(root / "pages")], model=tiny_spec, regions="whole")
    return root / "lib"


def test_a_missing_query_picture_is_reported_before_torch_is_imported(small_library, tmp_path):
    done, names = imported_by("search", str(small_library), "-i", str(tmp_path / "nope.png"))
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if not line.startswith("import time:")]
    assert errors == [f"error: cannot use query image {tmp_path / 'nope.png'}: file not found"]
    assert not names & set(HEAVY), names & set(HEAVY)


@pytest.mark.parametrize(
    "args",
    [
        ("--help",),
        ("search", "--help"),
        ("info", "{lib}"),
        ("versions", "list", "{lib}"),
        ("search", "/no/such/library", "a crane"),
    ],
)
def test_commands_that_load_no_model_import_no_heavy_package(small_library, args):
    done, names = imported_by(*(a.format(lib=small_library) for a in args))
    assert done.returncode in (0, 1), done.stderr[-2000:]
    assert not names & set(HEAVY), names & set(HEAVY)


@pytest.mark.parametrize("ids", ["12,x", "-3", str(2**64)])
def test_item_ids_are_read_by_the_servers_rule_too(small_library, ids):
    """One rule for item ids everywhere: a negative or 65-bit id is refused in one line, as
    the HTTP API refuses it, not passed on to the catalog."""
    done = run_cli("search", small_library, "a crane", "--relevant", ids, check=False)
    assert done.exit_code == 1
    assert done.stderr.startswith("error: ") and len(done.stderr.splitlines()) == 1


def test_the_table_shows_a_screenful_with_paths_relative_to_their_folder(small_library):
    lines = run_cli("search", small_library, "a square").stdout.splitlines()
    assert lines[0].split() == ["rank", "score", "item", "box", "x,y", "wxh", "page"]
    assert len(lines) == 1 + 20
    pages = [line.split()[-1] for line in lines[1:]]
    assert all(p.startswith("page00") and p.endswith(".png") for p in pages), pages
    assert len(run_cli("search", small_library, "a square", "--k", "22").stdout.splitlines()) == 23
    as_json = json.loads(run_cli("search", small_library, "a square", "--json").stdout)
    assert len(as_json["results"]) == 24  # --json: every fact, 100 results by default
    assert as_json["results"][0]["page"].startswith(str(small_library.parent / "pages"))


def test_a_page_name_cannot_send_control_sequences_to_the_terminal():
    from sashie.app.cli.search import shown_page

    hostile = "/books/\x1b]0;owned\x07page\x1b[2J.png"
    assert shown_page(hostile, "/books") == "?]0;owned?page?[2J.png"
    assert shown_page("https://example.org/a\x1b[31m.png", "m.json") == "example.org/a?[31m.png"


def test_a_long_path_is_shortened_from_the_left_to_fit_the_terminal(small_library):
    [hit] = Library(small_library).search("a square", k=1)
    deep = "/".join(["a-rather-long-folder-name"] * 6) + "/鶴の巻/page0001.png"
    table = results_table([replace(hit, page=deep, source="/elsewhere")], width=80)
    row = table.splitlines()[1]
    assert row.endswith("/鶴の巻/page0001.png") and "…" in row
    assert len(row) + row.count("鶴") + row.count("の") + row.count("巻") == 80
