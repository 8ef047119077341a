"""`lib.printings(item)`, `sashie printings LIB ITEM` and the API on a small library: a mirrored,
turned, cropped reprint on another page is found with its transform; another drawing, and
the item's own page, are not."""

import json

import numpy as np
from fastapi.testclient import TestClient
from test_matching import drawing, reprinted

from sashie.app import server
from sashie.library import Library

from conftest import run_cli


def test_a_library_finds_the_other_printings_of_an_items_picture(tmp_path, tiny_spec):
    pages = tmp_path / "pages"
    pages.mkdir()
    original = drawing(1)
    reprinted(original, margin=60).save(pages / "a.png")
    reprinted(original, angle=8, scale=0.8, mirror=True, crop=(0, 0, 400, 300), margin=50).save(
        pages / "b.png"
    )
    for other in (3, 4):
        reprinted(drawing(other), margin=60).save(pages / f"c{other}.png")
    lib = Library(tmp_path / "lib", create=True)
    lib.add([str(pages)], model=tiny_spec, regions="whole")
    by_page = {row.page.rsplit("/", 1)[-1]: row.id for row in lib.items()}
    found = lib.printings(by_page["a.png"])
    assert [p.item for p in found] == [by_page["b.png"]]
    lines = np.asarray(original.convert("L")) < 128
    shown = lines[:300].sum() / lines.sum()  # the share of its lines in the 300 rows kept
    assert (
        found[0].mirrored and abs(found[0].rotation - 8) < 3 and abs(found[0].crop - shown) < 0.08
    )
    assert [p.item for p in lib.printings(by_page["c3.png"])] == []

    out = run_cli("printings", str(tmp_path / "lib"), str(by_page["b.png"]), "--json").output
    shown = json.loads(out)
    assert [p["item"] for p in shown] == [by_page["a.png"]] and shown[0]["mirrored"]

    client = TestClient(server.create_app(tmp_path / "lib"))
    served = client.get(f"/api/items/{by_page['a.png']}/printings").json()
    assert [p["item"] for p in served["printings"]] == [by_page["b.png"]]
    assert served["printings"][0]["thumbnail"] == f"/api/items/{by_page['b.png']}/thumbnail"
    assert client.get("/api/items/999999/printings").status_code == 404
    assert client.get(f"/api/items/{by_page['a.png']}/printings?candidates=0").status_code == 422
