"""Teaching the model a collection's words: the adapter, model versions, switching, safety."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

from sashie.adapt.adapter import VisualAdapter, apply_adapter
from sashie.adapt.phrasings import vocabulary_anchors
from sashie.adapt.settings import AdaptSettings
from sashie.adapt.training import train_adapter
from sashie.encoders import load_encoder
from sashie.errors import SashieError
from sashie.library import Library

from conftest import cli_json, make_pages, run_cli

# A tiny random model learns in many short steps at a high rate (its byte-level tokenizer has
# no words, so no anchors are kept).
QUICK = AdaptSettings(epochs=300, batch=8, lr=3e-3, adapter_lr=1e-2, seed=0)


def direct_formula(v: np.ndarray, arrays: dict, ratio: float) -> np.ndarray:
    """A(v) = normalize(R * (W2 relu(W1 v + b1) + b2) + (1 - R) * v), written out."""
    hidden = np.maximum(v @ arrays["down.weight"].T + arrays["down.bias"], 0)
    out = ratio * (hidden @ arrays["up.weight"].T + arrays["up.bias"]) + (1 - ratio) * v
    return out / np.linalg.norm(out, axis=1, keepdims=True)


@pytest.mark.parametrize("ratio", [0.2, 0.5, 0.8])
def test_adapter_shapes_and_residual_blend_follow_the_formula(ratio):
    torch.manual_seed(1)
    adapter = VisualAdapter(64, ratio)
    assert adapter.down.weight.shape == (16, 64) and adapter.up.weight.shape == (64, 16)
    for p in adapter.parameters():  # a trained adapter: no zero weights left
        torch.nn.init.normal_(p, std=0.3)
    arrays = {k: v.detach().numpy().astype(np.float64) for k, v in adapter.state_dict().items()}
    rng = np.random.default_rng(0)
    v = rng.standard_normal((50, 64))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    expected = direct_formula(v, arrays, ratio)
    with torch.no_grad():
        trained_path = adapter(torch.from_numpy(v.astype(np.float32))).numpy()
    np.testing.assert_allclose(trained_path, expected, atol=1e-5)
    applied = apply_adapter(adapter, v.astype(np.float16), step=7)  # blocks of 7 rows
    assert applied.dtype == np.float16 and applied.shape == (50, 64)
    np.testing.assert_allclose(applied.astype(np.float64), expected, atol=2e-3)


def test_an_untrained_adapter_leaves_vectors_where_they_are():
    v = np.random.default_rng(0).standard_normal((5, 32)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    np.testing.assert_allclose(apply_adapter(VisualAdapter(32, 0.2), v), v, atol=1e-3)


@pytest.mark.parametrize("mapped", [True, False])
def test_version_vectors_are_written_block_by_block_from_several_threads(tmp_path, mapped):
    from sashie.adapt.version_files import write_version_vectors
    from sashie.store.vectors import ITEM_FILE, VECTOR_FILE

    rows, dim = 1003, 64  # 15 blocks of whole pages (written around the page cache), a tail
    base = np.random.default_rng(1).standard_normal((rows, dim)).astype(np.float32)
    base = (base / np.linalg.norm(base, axis=1, keepdims=True)).astype(np.float16)
    if mapped:
        base.tofile(tmp_path / "base.f16")
        base = np.memmap(tmp_path / "base.f16", np.float16, "r", shape=(rows, dim))
    torch.manual_seed(0)
    adapter = VisualAdapter(dim, 0.3)
    torch.nn.init.normal_(adapter.up.weight, std=0.1)
    threads, counts = torch.get_num_threads(), []
    ids = np.arange(rows, dtype=np.int64) * 7
    write_version_vectors(tmp_path / "v", adapter, base, ids, step=64, progress=counts.append)
    written = np.fromfile(tmp_path / "v" / VECTOR_FILE, np.float16).reshape(rows, dim)
    np.testing.assert_allclose(
        written.astype(np.float32),
        apply_adapter(adapter, np.asarray(base)).astype(np.float32),
        atol=2e-3,
    )
    assert np.abs(written.astype(np.float32) - np.asarray(base, np.float32)).max() > 0.01
    np.testing.assert_array_equal(np.fromfile(tmp_path / "v" / ITEM_FILE, np.int64), ids)
    assert sum(counts) == rows and len(counts) == 16
    assert sorted(p.name for p in (tmp_path / "v").iterdir()) == sorted([ITEM_FILE, VECTOR_FILE])
    assert torch.get_num_threads() == threads


@pytest.fixture
def annotated(tmp_path, tiny_spec):
    """A library of 24 pages whose first 8 items are captioned 'zorblat'."""
    make_pages(tmp_path / "pages", 24, seed=3)
    lib = Library(tmp_path / "lib", create=True)
    lib.add([str(tmp_path / "pages")], model=tiny_spec, regions="whole")
    items = lib.index().item_ids.tolist()
    lib.annotations.add(items[:8], "zorblat")
    lib.annotations.add(items[8:12], "quix")
    return lib, items


def word_margin(lib: Library, word: str, items: list[int]) -> float:
    """How much closer the word's text vector is to these items than to the others."""
    index = lib.index()
    scores = index.vectors @ lib.query_encoder().encode_texts([word])[0]
    mine = np.isin(index.item_ids, items)
    return float(scores[mine].mean() - scores[~mine].mean())


@pytest.mark.slow
def test_adapting_teaches_a_word_and_changes_the_text_encoder(annotated, tiny_clip):
    from safetensors.numpy import load_file

    lib, items = annotated
    before = word_margin(lib, "zorblat", items[:8])
    report = lib.versions.adapt(settings=QUICK)
    assert report.version == "v1" and report.pairs == 12 and report.captions == 2
    assert lib.versions.active() == "v1"
    assert report.trained.epoch_losses[-1] < report.trained.epoch_losses[0]
    after = word_margin(lib, "zorblat", items[:8])
    assert after > before + 0.1, (before, after)
    hits = [r.item for r in lib.search("zorblat", k=8)]
    assert len(set(hits) & set(items[:8])) >= 5

    tuned = load_file(report.folder / "text-encoder.safetensors")
    base = load_file(tiny_clip / "model.safetensors")
    assert any(name.startswith("text_model.") for name in tuned)
    assert not any(name.startswith("vision_model.") for name in tuned)  # the image side is frozen
    changed = [n for n in tuned if not np.allclose(tuned[n], base[n])]
    assert len(changed) > len(tuned) // 2
    record = json.loads((report.folder / "version.json").read_text())
    assert record["base_model"] == lib.default_model and len(record["data_hash"]) == 12
    assert record["settings"]["epochs"] == 300 and len(record["losses"]) == 300 * 2
    assert (
        record["remembered_examples"] == 0 and lib.versions.memory() is None
    )  # no words, no memory
    assert Image.open(report.folder / "loss.png").size[0] > 100

    lib.versions.use("base")  # back: the base encoder and vectors, the word unknown again
    assert abs(word_margin(lib, "zorblat", items[:8]) - before) < 1e-6
    lib.versions.use("v1")
    assert abs(word_margin(lib, "zorblat", items[:8]) - after) < 1e-6


@pytest.mark.slow
def test_training_takes_at_least_min_steps(annotated):
    lib, _ = annotated
    report = lib.versions.adapt(settings=AdaptSettings(epochs=1, batch=8, min_steps=10))
    # 12 pairs in batches of 8 are 2 steps an epoch: 5 epochs reach 10 steps
    assert len(report.trained.losses) == 10 and len(report.trained.epoch_losses) == 5


@pytest.fixture(scope="module")
def demo_encoder():
    return load_encoder("sashie-demo")


def test_vocabulary_anchors_are_the_models_words_but_not_the_taught_ones(demo_encoder):
    anchors = vocabulary_anchors(demo_encoder.tokenizer, ["a crane", "鶴の挿絵"], count=400)
    assert len(set(anchors)) == len(anchors)
    company = [a for a in anchors if "crane" in a.replace("illustration of", "").split()]
    assert len(company) == 8  # "crane" beside other words (see below)
    anchors = [a for a in anchors if a not in company]
    assert 390 <= len(anchors) <= 400
    phrases = [a for a in anchors if a.startswith("an illustration of ") or "の挿絵" in a]
    bare = [a for a in anchors if a not in phrases]
    assert len(phrases) >= 190 and len(bare) >= 190
    assert all(len(w) >= 2 and w.isalpha() for w in bare)
    assert any(not w.isascii() for w in bare)  # Japanese words too, from the same tokenizer
    words = {a.removeprefix("an illustration of ").removesuffix("の挿絵") for a in anchors}
    assert not {"crane", "鶴", "挿絵", "an"} & words
    # a many-word caption's words are kept in other company; the caption itself moves
    anchors = vocabulary_anchors(demo_encoder.tokenizer, ["frowning face"], count=400)
    in_company = [a for a in anchors if "face" in a.split()]
    assert len(in_company) >= 8 and "frowning face" not in " ".join(anchors)
    assert vocabulary_anchors(demo_encoder.tokenizer, [], count=400, seed=1) != vocabulary_anchors(
        demo_encoder.tokenizer, [], count=400, seed=2
    )


@pytest.mark.slow
def test_anchors_keep_the_models_other_words_in_place(demo_encoder):
    """Teaching a new word at a high rate moves every text vector; the anchor loss holds the
    model's own vocabulary (measured on words it did not train on) where it was."""
    rng = np.random.default_rng(0)
    images = rng.standard_normal((32, demo_encoder.dim)).astype(np.float32)
    captions = ["zorblat"] * 16 + ["quixotl"] * 16
    words = vocabulary_anchors(demo_encoder.tokenizer, captions, count=6000, seed=9)[-200:]
    before = demo_encoder.encode_texts(words)
    drift = {}
    for weight in (0.0, 30.0):
        encoder = load_encoder("sashie-demo")
        settings = AdaptSettings(
            epochs=1, min_steps=20, batch=16, lr=3e-3, train_adapter=False, anchor_weight=weight
        )
        train_adapter(encoder, images, captions, settings)
        drift[weight] = float(1 - (encoder.encode_texts(words) * before).sum(1).mean())
    assert drift[30.0] < drift[0.0] / 2, drift


@pytest.mark.slow
def test_stored_adapted_vectors_equal_encoding_the_images_again(annotated, tmp_path):
    from sashie.sources.images import load_image

    lib, items = annotated
    lib.versions.adapt(settings=QUICK)
    encoder = lib.query_encoder()  # base image encoder + the adapter
    rows = lib.items(items[:10])
    fresh = encoder.encode_images([load_image(r.page).crop(r.bbox) for r in rows])
    stored = lib.vectors_of(items[:10])
    np.testing.assert_allclose(stored, fresh, atol=2e-3)  # float16 storage
    assert not np.allclose(stored, lib.vectors_of(items[:10], version="base"), atol=1e-3)


@pytest.mark.slow
def test_pages_indexed_later_go_through_the_active_adapter(annotated, tmp_path, tiny_spec):
    lib, items = annotated
    report = lib.versions.adapt(settings=QUICK)
    make_pages(tmp_path / "more", 5, seed=99)
    lib.add([str(tmp_path / "more")], regions="whole")
    new_items = sorted(set(lib.index(version="base").item_ids.tolist()) - set(items))
    assert len(new_items) == 5
    expected = apply_adapter(report.trained.adapter, lib.vectors_of(new_items, version="base"))
    np.testing.assert_allclose(lib.vectors_of(new_items), expected.astype(np.float32), atol=2e-3)
    reopened = Library(lib.path)  # stored, not only computed in memory
    assert reopened._parts.versions.done_rows(lib.default_model, "v1") == 29


@pytest.mark.slow
def test_adapting_again_starts_from_the_base(annotated):
    lib, _items = annotated
    first = lib.versions.adapt(settings=QUICK)
    second = lib.versions.adapt(settings=QUICK)
    assert second.version == "v2" and lib.versions.active() == "v2"
    # same data, same seed, both from the base: the same model, not one stacked on another
    assert first.trained.losses == pytest.approx(second.trained.losses, rel=1e-4)
    v1, v2 = lib.index(version="v1"), lib.index(version="v2")
    np.testing.assert_allclose(v2.take(np.arange(len(v2))), v1.take(np.arange(len(v1))), atol=2e-3)


KILLER = textwrap.dedent("""
    import os, signal, sys
    from sashie.adapt.settings import AdaptSettings
    from sashie.library import Library
    lib = Library(sys.argv[1])
    where = sys.argv[2]
    if where == "manifest":  # everything written, killed before the switch
        lib._parts.manifest.update = lambda change: os.kill(os.getpid(), signal.SIGKILL)
    def progress(state):
        if where == "applying" and state["stage"] == "applying":
            os.kill(os.getpid(), signal.SIGKILL)
    lib.versions.adapt(settings=AdaptSettings(epochs=2, batch=8), progress=progress)
""")


@pytest.mark.slow
@pytest.mark.parametrize("where", ["applying", "manifest"])
def test_kill_9_during_apply_leaves_the_old_version_active_and_whole(annotated, where):
    lib, _items = annotated
    v1_file = lib.versions.adapt(settings=QUICK).folder / "vectors.f16"
    v1_bytes = v1_file.read_bytes()
    v1_hits = [r.item for r in lib.search("zorblat", k=5)]
    done = subprocess.run(
        [sys.executable, "-c", KILLER, str(lib.path), where],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr
    reopened = Library(lib.path)
    assert reopened.versions.active() == "v1"
    assert [v["name"] for v in reopened.versions.list()["versions"]] == ["v1"]
    assert v1_file.read_bytes() == v1_bytes
    assert [r.item for r in reopened.search("zorblat", k=5)] == v1_hits
    # the interrupted run's folder keeps its name; the next run is v3 and works
    assert reopened.versions.adapt(settings=QUICK).version == "v3"
    assert reopened.versions.active() == "v3"


@pytest.mark.slow
def test_an_exported_annotation_file_trains_the_same_way(annotated, tmp_path):
    lib, _items = annotated
    out = lib.annotations.export(tmp_path / "export")
    report = lib.versions.adapt(annotations=out / "annotations.jsonl", settings=QUICK)
    assert report.pairs == 12
    # a file from elsewhere: crops this library does not hold are encoded once
    lines = (out / "annotations.jsonl").read_text().splitlines()
    foreign = [json.dumps({**json.loads(line), "item": None}) for line in lines]
    (out / "foreign.jsonl").write_text("\n".join(foreign) + "\n")
    assert lib.versions.adapt(annotations=out / "foreign.jsonl", settings=QUICK).pairs == 12
    (out / "bad.jsonl").write_text('{"image": "crops/x.jpg"}\n')
    with pytest.raises(SashieError, match=r"bad\.jsonl:1: expected a JSON object with a caption"):
        lib.versions.adapt(annotations=out / "bad.jsonl")


@pytest.mark.slow
def test_cli_adapt_and_versions_list_use_remove_with_clear_errors(tmp_path, tiny_spec):
    make_pages(tmp_path / "pages", 10, seed=5)
    lib = tmp_path / "lib"
    run_cli("index", lib, tmp_path / "pages", "--model", tiny_spec, "--regions", "whole")
    none = run_cli("adapt", lib, check=False)
    assert none.exit_code == 1 and "needs at least two annotations" in none.output
    run_cli("annotations", "add", lib, "zorblat", 1, 2, 3)
    run_cli("annotations", "add", lib, "quix", 4, 5)
    done = run_cli("adapt", lib, "--epochs", "2", "--batch", "4", "--ratio", "0.5")
    lines = done.stdout.splitlines()
    assert len(lines) == 3, lines  # a summary, the loss curve, the active version: no table
    assert lines[0].startswith("v1: learnt captions (adapter + text encoder) from 5 pairs of 2")
    assert lines[1].startswith("loss curve: ") and lines[1].endswith("v1/loss.png")
    assert lines[2].startswith("active model version: v1 (")
    listed = run_cli("versions", "list", lib).stdout.splitlines()
    assert listed[1].split() == ["version", "made", "kind", "data"]
    assert listed[2].split() == ["base", "the", "model", "itself"]
    v1_row = listed[3].split()
    assert v1_row[:2] == ["*", "v1"] and v1_row[4] == "captions"
    assert "5 pairs of 2 captions from library" in listed[3]
    assert "active model version: base" in run_cli("versions", "use", lib, "base").output
    assert "* base" in run_cli("versions", "list", lib).output
    wrong = run_cli("versions", "use", lib, "v9", check=False)
    assert (
        wrong.exit_code == 1 and "no model version 'v9'; this library has: base, v1" in wrong.output
    )
    only = json.loads(run_cli("adapt", lib, "--only", "adapter", "--json").stdout)
    assert (only["version"], only["kind"], only["parts"]) == ("v2", "captions", "adapter")
    assert only["loss_curve"].endswith("v2/loss.png")
    v2 = next((lib / "adapters").glob("*/v2"))
    assert (v2 / "adapter.safetensors").is_file()
    assert not (v2 / "text-encoder.safetensors").exists()  # adapter only: the base text encoder
    active = run_cli("versions", "remove", lib, "v2", check=False)
    assert active.exit_code == 1 and "v2 is the active version" in active.output
    assert "removed model version v1" in run_cli("versions", "remove", lib, "v1").output
    assert not (v2.parent / "v1").exists()
    assert "v1" not in run_cli("versions", "list", lib).output
    assert json.loads(run_cli("versions", "list", lib, "--json").stdout)["active"] == "v2"
    assert run_cli("versions", "use", lib, "v1", check=False).exit_code == 1
    run_cli("adapt", lib, "--for", "images", "--realign", "--epochs", "1", "--min-steps", "2")
    kinds = [v["kind"] for v in cli_json("versions", "list", lib, "--json")["versions"]]
    assert kinds == ["captions", "images + realign"]
    bad = run_cli("adapt", lib, "--ratio", "1.5", check=False)
    assert bad.exit_code == 2 and "--ratio" in bad.output


def test_scores_with_examples_follow_the_formula():
    from sashie.search.ranking import VectorIndex

    rng = np.random.default_rng(4)
    unit = lambda a: (a / np.linalg.norm(a, axis=-1, keepdims=True)).astype(np.float32)  # noqa: E731
    vectors, query, examples = (unit(rng.standard_normal(s)) for s in ((3000, 16), 16, (5, 16)))
    vectors = vectors.astype(np.float16).astype(np.float32)  # as a library stores them
    index = VectorIndex(vectors, np.arange(3000))
    got = index.scores(query, examples=examples, weight=0.7, sharpness=4.0)
    nearest = (vectors @ examples.T).max(1)
    np.testing.assert_allclose(
        got, vectors @ query + 0.7 * np.exp(-4.0 * (1 - nearest)), rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(
        index.scores(query, examples=examples[:0]), vectors @ query, rtol=1e-6, atol=1e-7
    )  # (sashie sums in float64: the last float32 bit may differ from NumPy's float32 sum)


@pytest.fixture
def demo_annotated(tmp_path):
    """A demo-model library of 24 pages whose first 8 items are captioned 'zorblat'."""
    make_pages(tmp_path / "pages", 24, seed=3)
    lib = Library(tmp_path / "lib", create=True)
    lib.add([str(tmp_path / "pages")], model="sashie-demo", regions="whole")
    items = lib.index().item_ids.tolist()
    lib.annotations.add(items[:8], "zorblat")
    lib.annotations.add(items[8:12], "quixotl")
    return lib, items


@pytest.mark.slow
def test_a_version_remembers_its_examples_and_a_taught_word_finds_them(demo_annotated):
    lib, items = demo_annotated
    settings = AdaptSettings(epochs=1, min_steps=5, batch=8)
    lib.versions.adapt(settings=settings)
    assert lib.versions.list()["versions"][0]["remembered_examples"] == 12
    memory = lib.versions.memory()
    encoder = lib.query_encoder()
    taught = encoder.encode_texts(["zorblat"])[0]
    assert len(memory.asked_for(taught)) == 8  # its own examples, not quixotl's
    phrased = encoder.encode_texts(["an illustration of zorblat", "a picture of quixotl"])
    assert [len(memory.asked_for(v)) for v in phrased] == [8, 4]
    np.testing.assert_allclose(memory.asked_for(taught), lib.vectors_of(items[:8]), atol=2e-3)
    # a word the model already knows (one of the anchors training kept) asks for none
    known = vocabulary_anchors(encoder.inner.tokenizer, ["zorblat", "quixotl"], seed=0)[0]
    assert len(memory.asked_for(encoder.encode_texts([known])[0])) == 0
    assert {r.item for r in lib.search("zorblat", k=8)} == set(items[:8])

    plain = lib.versions.adapt(settings=replace(settings, example_weight=0.0))
    assert lib.versions.memory() is None and not (plain.folder / "examples.safetensors").exists()
    assert len({r.item for r in lib.search("zorblat", k=8)} & set(items[:8])) < 8
    lib.versions.use("base")
    assert lib.versions.memory() is None


def test_without_the_plot_extra_a_version_has_no_loss_curve(annotated, monkeypatch):
    lib, _ = annotated
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if `plot` were not installed
    report = lib.versions.adapt(settings=AdaptSettings(epochs=1, batch=8, min_steps=2))
    assert not (report.folder / "loss.png").exists()
    assert (report.folder / "version.json").is_file() and lib.versions.active() == report.version


@pytest.mark.parametrize(
    "choices, adapter, text",
    [
        ({}, True, True),
        ({"only": "text"}, False, True),
        ({"only": "adapter"}, True, False),
        ({"target": "images"}, True, False),  # MCIP: the image side alone
        ({"target": "images", "realign": True}, True, True),  # then Re-A tunes the text
        ({"teach": False, "paraphrase": True}, False, True),  # ParaCLIP alone: text only
    ],
)
def test_the_parts_to_train_follow_from_a_persons_choices_by_one_rule(choices, adapter, text):
    """The CLI and the HTTP API both choose the parts to train with AdaptSettings.choose."""
    settings = AdaptSettings.choose(**choices)
    settings.check()
    assert (settings.train_adapter, settings.train_text) == (adapter, text)
