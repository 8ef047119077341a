import hashlib
import json

import numpy as np

from sashie.eval.world import make_world, read_truth
from sashie.eval.world.artists import ARTISTS, Artists, alpha_bbox, load_concepts
from sashie.eval.world.vocab import caption, vocabulary

from conftest import run_cli

SMALL = (400, 600)  # quarter-size pages keep the tests fast; the code path is the same


def digest(folder):
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_same_seed_same_bytes_other_seed_other_pages(tmp_path):
    a = make_world(tmp_path / "a", pages=6, seed=11, size=SMALL, workers=2)
    b = make_world(tmp_path / "b", pages=6, seed=11, size=SMALL, workers=1)
    c = make_world(tmp_path / "c", pages=6, seed=12, size=SMALL, workers=2)
    assert digest(a) == digest(b)
    assert digest(a)["truth.jsonl"] != digest(c)["truth.jsonl"]


def test_ground_truth_is_consistent(tmp_path):
    world = make_world(tmp_path / "w", pages=40, seed=3, size=SMALL)
    truth = read_truth(world)
    meta = json.loads((world / "world.json").read_text())
    known = {c["key"] for c in meta["concepts"]}
    kinds = {row["kind"] for row in truth}
    assert kinds <= {"text", "mixed", "full", "blank"} and len(kinds) >= 3
    from PIL import Image

    for row in truth:
        with Image.open(row["page"]) as image:
            assert image.size == (row["width"], row["height"]) == SMALL
        for box in [i["bbox"] for i in row["illustrations"]] + row["text_blocks"]:
            x0, y0, x1, y1 = box
            assert 0 <= x0 < x1 <= row["width"] and 0 <= y0 < y1 <= row["height"]
        for illustration in row["illustrations"]:
            assert 1 <= len(illustration["concepts"]) <= 4
            assert set(illustration["concepts"]) <= known
            assert illustration["style"] in ("ink", "colour")
            assert len(illustration["figures"]) == len(illustration["concepts"])
            x0, y0, x1, y1 = illustration["bbox"]
            for f in illustration["figures"]:  # each figure lies inside its illustration
                assert x0 <= f[0] < f[2] <= x1 and y0 <= f[1] < f[3] <= y1
        if row["kind"] in ("mixed", "full"):
            assert row["illustrations"]
        if row["kind"] == "blank":
            assert not row["illustrations"] and not row["text_blocks"]
    assert sum(len(r["illustrations"]) for r in truth) > 10


def test_every_concept_is_drawn_by_all_three_artists():
    concepts = load_concepts()
    assert len(concepts) >= 1000
    assert len({c.en for c in concepts}) == len({c.ja for c in concepts}) == len(concepts)
    artists = Artists()
    for concept in concepts:
        for artist in ARTISTS:
            drawing = artists.draw(concept, artist, 40)
            assert alpha_bbox(drawing) is not None, (concept, artist)


def test_vocabulary_split_is_fixed_and_heldout_names_stay_out_of_captions():
    vocab = vocabulary()
    assert vocab == vocabulary()
    assert len(vocab.heldout) >= 50 and len(vocab.query_seen) >= 20
    assert set(vocab.query_heldout) <= vocab.heldout
    assert not set(vocab.query_seen) & vocab.heldout
    rng = np.random.default_rng(0)
    seen = vocab.seen
    for _ in range(200):
        picked = [seen[i] for i in rng.choice(len(seen), 2, replace=False)]
        for language in ("en", "ja"):
            text = caption(rng, picked, "ink", language)
            assert picked[0].en in text or picked[0].ja in text


def test_world_command(tmp_path):
    run_cli("world", tmp_path / "w", "--pages", "3", "--seed", "1", "-q")
    assert len(list((tmp_path / "w" / "pages").glob("*.jpg"))) == 3
    done = run_cli("world", tmp_path / "w", "--pages", "3", check=False)
    assert done.exit_code != 0 and done.stderr.startswith("error: ")


def test_a_crop_of_one_figure_shows_that_concept_only():
    from sashie.eval.truth import item_concepts

    truth = [
        {
            "page": "p",
            "illustrations": [
                {
                    "bbox": [0, 0, 200, 200],
                    "concepts": ["cat", "dog"],
                    "figures": [[0, 0, 90, 90], [110, 110, 200, 200]],
                }
            ],
        }
    ]
    whole, cat, dog, both, page = (
        [0, 0, 200, 200],
        [0, 0, 100, 100],
        [100, 100, 200, 200],
        [0, 0, 200, 120],
        [0, 0, 1000, 1000],
    )
    boxes = [("p", b) for b in (whole, cat, dog, both, page)]
    assert item_concepts(boxes, truth) == [{"cat", "dog"}, set(), set(), {"cat", "dog"}, set()]
    assert item_concepts(boxes, truth, figures=True) == [
        {"cat", "dog"},
        {"cat"},
        {"dog"},
        {"cat", "dog"},
        set(),
    ]


def test_spread_world_same_seed_same_bytes_and_consistent_truth(tmp_path):
    """Version 3: spreads as scanned, with the scanner's furniture in the truth."""
    a = make_world(tmp_path / "a", pages=6, seed=21, version=3, workers=2)
    b = make_world(tmp_path / "b", pages=6, seed=21, version=3, workers=1)
    assert digest(a) == digest(b)
    meta = json.loads((a / "world.json").read_text())
    assert meta["world_version"] == 3 and "openclipart" in meta["artists"]
    known = {c["key"] for c in meta["concepts"]}
    furniture = set()
    for row in read_truth(a):
        assert row["kind"] == "spread" and (row["width"], row["height"]) == (1600, 1200)
        boxes = [i["bbox"] for i in row["illustrations"]] + row["text_blocks"]
        boxes += [f["bbox"] for f in row["furniture"]]
        for x0, y0, x1, y1 in boxes:
            assert 0 <= x0 < x1 <= 1600 and 0 <= y0 < y1 <= 1200
        for ill in row["illustrations"]:
            assert set(ill["concepts"]) <= known and len(ill["figures"]) == len(ill["concepts"])
        furniture |= {f["kind"] for f in row["furniture"]}
    assert furniture & {"ruler", "chart", "label"}
    assert sum(len(r["illustrations"]) for r in read_truth(a)) >= 3


def test_old_world_version_is_still_drawn_and_unknown_ones_refused(tmp_path):
    import pytest

    from sashie.errors import SashieError
    from sashie.eval.world import world_meta

    world = make_world(tmp_path / "v2", pages=2, seed=1, size=SMALL, version=2)
    assert world_meta(world)["world_version"] == 2
    assert "furniture" not in read_truth(world)[0]
    with pytest.raises(SashieError, match="version 9"):
        make_world(tmp_path / "v9", pages=2, seed=1, version=9)


def test_engraved_figures_shade_pale_fills_more_lightly_than_dark_ones():
    """A later book's figures (the spread world's printed books) are printed in tone: pale
    fills get a few dots, dark fills many, where a woodblock cut leaves pale fills blank."""
    from PIL import Image

    from sashie.eval.world.woodblock import line_art

    art = Image.new("RGBA", (120, 60), (0, 0, 0, 0))
    art.paste((200, 200, 200, 255), (0, 0, 60, 60))  # pale half
    art.paste((60, 60, 60, 255), (60, 0, 120, 60))  # dark half
    inked = np.asarray(line_art(art, np.random.default_rng(3), tone=True).convert("L")) < 128
    pale, dark = inked[8:52, 8:52].mean(), inked[8:52, 68:112].mean()
    assert 0.03 < pale < dark
    cut = np.asarray(line_art(art, np.random.default_rng(3)).convert("L")) < 128
    assert cut[8:52, 8:52].mean() < 0.01  # the woodblock leaves a pale fill uncut
