"""The labelling bench's open-set part (sashie/eval/bench_classify.py): a small label set
over every crop, each item forced into a class or labelled "other"."""

import numpy as np
import pytest

from sashie import Library
from sashie.eval.bench_classify import OPEN_SET_CLASSES, OPEN_SETS, format_open_set, run_open_set
from sashie.eval.truth import ORACLE_ILLUSTRATION, ORACLE_TEXT, OracleRegions, item_concepts
from sashie.eval.world import make_world, read_truth
from sashie.eval.world.vocab import vocabulary


@pytest.mark.slow  # a world drawn and indexed
def test_the_open_set_bench_measures_each_class_under_each_rule(tmp_path):
    world = make_world(tmp_path / "world", pages=40, seed=7, size=(400, 600))
    truth = read_truth(world)
    lib = Library(tmp_path / "lib", create=True)
    lib.add([str(world / "pages")], regions=["whole", OracleRegions(truth)])
    index = lib.index()
    rows = {r.id: r for r in lib.items(index.item_ids.tolist())}
    ordered = [rows[i] for i in index.item_ids.tolist()]
    concepts = item_concepts([(r.page, r.bbox) for r in ordered], truth)
    crops = np.isin([r.detector for r in ordered], [ORACLE_ILLUSTRATION, ORACLE_TEXT])
    found, items = run_open_set(lib, concepts, crops, vocabulary())
    assert items == crops.sum()
    forced = [r for r in found if r.rule == "forced"]
    other = [r for r in found if r.rule != "forced"]
    classes = OPEN_SETS * OPEN_SET_CLASSES
    assert len(forced) == len(other) == classes + OPEN_SETS  # each class, and "other", a set
    # forced: every crop is some class's member; with "other", fewer are, and some are other
    assert sum(r.members for r in forced if r.label != "other") == OPEN_SETS * items
    assert sum(r.members for r in other if r.label == "other") > 0
    assert all(r.right <= min(r.members, r.showing) for r in found if r.label != "other")
    table = format_open_set(found, items)
    assert len(table) == 3 + classes + 1 and "other below 2.5" in table[1]
    assert lib.labels.list() == {}  # the bench's sets are removed after


def test_few_shot_leaves_out_the_shots_a_small_world_has_no_crops_left_for():
    from sashie.encoders import load_encoder
    from sashie.eval.bench_classify import ClassifyExperiment, _few_shot

    vocab = vocabulary()
    rng = np.random.default_rng(0)
    concepts = [{key} for key in vocab.query for _ in range(3)]  # three crops a class
    vectors = rng.normal(size=(len(concepts), 512)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    out = ClassifyExperiment()
    _few_shot(
        out, load_encoder("sashie-demo"), vectors, concepts, np.ones(len(concepts), bool), vocab, 0
    )
    assert sorted(out.few_shot) == [0, 1, 2]  # 4, 8 and 16 shots would leave nothing to measure
