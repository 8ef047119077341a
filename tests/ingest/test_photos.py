"""Any collection, not only printed books: ordinary photographs indexed with the defaults."""

import json
from pathlib import Path

import numpy as np
from PIL import Image

from conftest import run_cli


def photographs(folder: Path, count: int = 10) -> list[Path]:
    """Ten distinct photographs: crops, flips and sizes of the two real ones scikit-learn
    ships (a temple in China, a flower)."""
    from sklearn.datasets import load_sample_images

    originals = load_sample_images().images
    folder.mkdir(parents=True)
    paths = []
    for i in range(count):
        pixels = originals[i % 2][(i // 2) * 20 :, (i // 2) * 30 :]
        if i % 3 == 1:
            pixels = pixels[:, ::-1]
        image = Image.fromarray(np.ascontiguousarray(pixels))
        image = image.resize((image.width * (4 + i % 3) // 4, image.height * (4 + i % 3) // 4))
        path = folder / f"photo{i:02d}.jpg"
        image.save(path, quality=90)
        paths.append(path)
    return paths


def test_photographs_indexed_with_the_defaults_are_items_and_are_found(tmp_path):
    paths = photographs(tmp_path / "photos")
    indexed = run_cli("index", tmp_path / "lib", tmp_path / "photos", "-q")  # all defaults
    assert "no items" not in indexed.stderr
    info = json.loads(run_cli("info", tmp_path / "lib", "--json").stdout)
    assert info["items"] >= 10 and info["items_by_detector"]["whole"] == 10
    hits = json.loads(run_cli("search", tmp_path / "lib", "a flower", "--json").stdout)
    found = {Path(hit["page"]).name for hit in hits["results"]}
    assert found == {p.name for p in paths}


def test_a_run_that_makes_no_items_says_why_and_which_option_helps(tmp_path):
    (tmp_path / "blank").mkdir()
    for i in range(3):  # blank paper: no illustration for layout to cut
        Image.new("RGB", (600, 800), (240, 235, 220 - i)).save(tmp_path / "blank" / f"{i}.png")
    quiet = run_cli("index", tmp_path / "lib", tmp_path / "blank", "--regions", "layout", "-q")
    assert "no items: layout found nothing to cut from the 3 pages read" in quiet.stderr
    assert "--regions layout,whole" in quiet.stderr
    again = run_cli("index", tmp_path / "lib", tmp_path / "blank", "--regions", "layout,whole")
    assert "3 new items" in again.stderr and "no items" not in again.stderr
