"""The printings world (sashie/eval/world/reprints.py): blocks printed again in other books,
each later printing of one kind, with near misses and unique pictures, and its truth."""

import csv
import hashlib
import json

from sashie.eval.world.reprints import KINDS, make_printings_world, read_printings


def test_a_printings_world_records_each_blocks_printings_and_its_books(tmp_path):
    world = make_printings_world(tmp_path / "w", blocks=4, seed=3)
    truth = read_printings(world)
    blocks = {t["block"] for t in truth if t["block"] is not None}
    assert blocks == {0, 1, 2, 3}
    for block in blocks:
        kinds = [t["kind"] for t in truth if t["block"] == block]
        assert kinds.count("original") == 1 and 2 <= len(kinds) <= 5
        assert set(kinds) <= {"original", "nearmiss", *KINDS}
    assert sum(t["kind"] == "unique" for t in truth) == 4
    block_concepts = {c for t in truth if t["block"] is not None for c in t["concepts"]}
    assert not block_concepts & {c for t in truth if t["kind"] == "unique" for c in t["concepts"]}
    books = {row["folder"]: int(row["date"]) for row in csv.DictReader(open(world / "books.csv"))}
    assert {t["page"].split("/")[-2] for t in truth} == set(books)
    for row in truth:
        assert (world / "pages").exists() and open(row["page"], "rb").read(2) == b"\xff\xd8"


def test_the_same_seed_draws_the_same_bytes(tmp_path):
    def digest(folder):
        world = make_printings_world(folder, blocks=1, seed=5)
        lines = (world / "printings.jsonl").read_text().splitlines()
        pages = [json.loads(line)["page"] for line in lines]
        return [hashlib.sha256((world / p).read_bytes()).hexdigest() for p in pages]

    assert digest(tmp_path / "a") == digest(tmp_path / "b")
