"""Composed search, the `sum` baseline (issue 19, first part): a picture changed by words
is the unit picture vector plus weight times the unit vector of the words, re-normalised; the
same query from Python, the command line and the HTTP API; bad input is one error line."""

import json

import numpy as np
import pytest
from fastapi.testclient import TestClient

from sashie.app import server
from sashie.errors import SashieError
from sashie.library import Asked, Library

from conftest import run_cli


@pytest.fixture
def library(tmp_path, tiny_spec, pages):
    with Library(tmp_path / "lib", create=True) as lib:
        lib.add([str(pages)], model=tiny_spec, regions="whole")
    return tmp_path / "lib"


def unit(v):
    return v / np.linalg.norm(v)


def test_sum_is_the_unit_picture_plus_weighted_unit_words(library, pages):
    lib = Library(library)
    picture = str(sorted(pages.iterdir())[0])
    image = lib.query(Asked(images=[picture])).vector
    words = lib.query("hand-coloured").vector
    for weight in (0.5, 1.0, 3.0):
        composed = lib.query(Asked(images=[picture], modify="hand-coloured", modify_weight=weight))
        np.testing.assert_allclose(
            composed.vector, unit(unit(image) + weight * unit(words)), atol=1e-5
        )
        assert composed.terms[-1].kind == "modifier" and not composed.text_only
    hits = lib.search(Asked(images=[picture], modify="hand-coloured"), 5)
    assert len(hits) == 5
    by_item = lib.query(
        Asked(items=[hits[0].item], modify="hand-coloured")
    )  # an item as the picture
    assert by_item.vector.shape == image.shape


def test_bad_composed_queries_are_one_clear_error(library, pages):
    lib = Library(library)
    picture = str(sorted(pages.iterdir())[0])
    with pytest.raises(SashieError, match="give an --image"):
        lib.query(Asked(text="a crane", modify="hand-coloured"))
    with pytest.raises(SashieError, match="needs words"):
        lib.query(Asked(images=[picture], modify="   "))
    with pytest.raises(SashieError, match="weight"):
        lib.query(Asked(images=[picture], modify="ink", modify_weight=0))
    answer = run_cli("search", library, "--modify", "hand-coloured", "a crane", check=False)
    assert answer.exit_code == 1 and "give an --image" in answer.stderr


def test_the_command_line_and_the_api_compose_the_same_query(library, pages):
    picture = sorted(pages.iterdir())[0]
    out = run_cli("search", library, "-i", picture, "--modify", "in ink", "--k", "4", "--json")
    cli_items = [r["item"] for r in json.loads(out.stdout)["results"]]
    with Library(library) as lib:
        python_items = [
            r.item for r in lib.search(Asked(images=[str(picture)], modify="in ink"), 4)
        ]
    client = TestClient(server.create_app(library))
    answer = client.post(
        "/api/search",
        data={"modify": "in ink", "limit": "4"},
        files=[("images", ("p.png", picture.read_bytes(), "image/png"))],
    ).json()
    assert cli_items == python_items
    assert len(answer["results"]) == 4
    plain = client.post(
        "/api/search",
        data={"limit": "4"},
        files=[("images", ("p.png", picture.read_bytes(), "image/png"))],
    ).json()
    assert [r["score"] for r in answer["results"]] != [r["score"] for r in plain["results"]]
    linked = client.get("/api/search", params={"items": cli_items[0], "modify": "in ink"})
    assert linked.status_code == 200
