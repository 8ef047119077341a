"""Composed search by pseudo-words (issue 19): the picture becomes tokens that the frozen text
tower reads with the words. Token insertion reads exactly like the real words; training moves
composed queries toward their targets; a saved composer loads without pickle and gives the
same vectors; a model that cannot take tokens, a version mismatch and bad input are one
clear error (or a note, when the method was left to choose)."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch

from sashie.compose.composer import Composer, prompt_for
from sashie.compose.settings import ComposeSettings
from sashie.compose.slots import CannotTakeTokens, TokenSlots, token_slots
from sashie.compose.token_training import train_token_learner
from sashie.encoders import load_encoder, registry
from sashie.errors import SashieError
from sashie.library import Asked, Library

from conftest import make_pages, run_cli

QUICK = ComposeSettings(steps=30, batch=16, negatives=32, light_epochs=2, light_steps=10)


@pytest.mark.parametrize("spec", ["sashie-demo", "tiny"])
def test_tokens_that_are_the_words_own_embeddings_read_as_the_words(spec, tiny_spec):
    encoder = load_encoder(tiny_spec if spec == "tiny" else spec)
    slots = token_slots(encoder)
    cases = [
        ("a *", " crane", "a crane"),
        ("a * in ink", " crane", "a crane in ink"),
        ("* with a pine", "old crane", "old crane with a pine"),
    ]
    for prompt, word, sentence in cases:
        tokens = slots.vocabulary[slots.word_ids(word)][None]
        with torch.inference_mode():  # with a longer prompt beside it: padding must not matter
            read = slots.encode([prompt, prompt + " x y"], torch.cat([tokens, tokens]))
        expected = encoder.encode_texts([sentence])[0]
        got = read[0].numpy() / np.linalg.norm(read[0].numpy())
        np.testing.assert_allclose(got, expected, atol=1e-5)
        other = read[1].numpy() / np.linalg.norm(read[1].numpy())
        np.testing.assert_allclose(other, encoder.encode_texts([sentence + " x y"])[0], atol=1e-5)


def test_prompts_put_japanese_words_before_the_picture():
    assert prompt_for("hand-coloured") == "a picture of * hand-coloured"
    assert prompt_for("彩色の") == "彩色の*の絵"
    assert prompt_for("with a * star") == "a picture of * with a star"  # no second slot


@pytest.fixture(scope="module")
def world_library(tmp_path_factory):
    from conftest import indexed_world

    root = tmp_path_factory.mktemp("compose")
    world, lib = indexed_world(root, pages=30, seed=5)
    return world, lib


def _rank_of_own(slots, learner, vectors):
    """Each vector's rank among all, for the text feature of its own pseudo-words."""
    with torch.no_grad():
        tokens = learner(torch.from_numpy(vectors))
        features = slots.encode(["a picture of *"] * len(vectors), tokens).float().numpy()
    features /= np.linalg.norm(features, axis=1, keepdims=True)
    scores = features @ vectors.T
    return (scores > scores[np.arange(len(vectors)), np.arange(len(vectors))][:, None]).sum(1)


@pytest.mark.slow  # an evaluation world indexed and a composer trained
def test_training_moves_composed_queries_toward_their_targets(world_library):
    _, path = world_library
    lib = Library(path)
    index = lib.index()
    vectors = index.take(np.arange(len(index)))
    slots = token_slots(lib.query_encoder())
    settings = ComposeSettings(steps=150, batch=32, negatives=64)
    untrained, _ = train_token_learner(
        slots, vectors, vectors, vectors, settings, steps=1, device="cpu"
    )
    trained, losses = train_token_learner(
        slots, vectors, vectors, vectors, settings, steps=150, device="cpu"
    )
    before, after = _rank_of_own(slots, untrained, vectors), _rank_of_own(slots, trained, vectors)
    assert losses[-1] < losses[0]
    assert np.median(after) < np.median(before) / 2, (np.median(before), np.median(after))


@pytest.mark.slow  # an evaluation world indexed and a composer trained
def test_a_trained_composer_is_saved_without_pickle_and_used_by_search(world_library, tmp_path):
    world, path = world_library
    lib = Library(path)
    report = lib.composer.train(QUICK)
    files = sorted(p.name for p in report.folder.iterdir())
    assert files == ["composer.json", "composer.safetensors"]
    record = json.loads((report.folder / "composer.json").read_text())
    assert record["model_id"] == lib.query_encoder().model_id and record["version"] == "base"
    assert record["data_hash"] and record["light_crops"] > 0

    loaded = Composer.load(report.folder)
    composer = lib.composer.get()
    slots = token_slots(lib.query_encoder())
    picture = lib.index().take([3])[0]
    for light in (False, True):
        np.testing.assert_allclose(
            loaded.query_vector(slots, picture, "in ink", light=light),
            composer.query_vector(slots, picture, "in ink", light=light),
            atol=1e-6,
        )
    page = sorted((world / "pages").iterdir())[0]
    tokens = lib.query(Asked(images=[str(page)], modify="in ink"))  # auto: the composer now
    assert tokens.note is None
    np.testing.assert_allclose(
        tokens.vector,
        lib.query(Asked(images=[str(page)], modify="in ink", modify_method="tokens")).vector,
    )
    summed = lib.query(Asked(images=[str(page)], modify="in ink", modify_method="sum"))
    assert not np.allclose(tokens.vector, summed.vector)
    assert lib.info()["models"][0]["composers"]["base"]["light"] is True


@pytest.mark.slow  # an evaluation world indexed and a composer trained
def test_the_light_method_never_runs_the_gallery_image_tower(world_library):
    world, path = world_library
    lib = Library(path)
    if lib.composer.get() is None:
        lib.composer.train(QUICK)
    encoder = lib.query_encoder()
    calls = []
    original = encoder.image_features
    encoder.image_features = lambda pixels: calls.append(len(pixels)) or original(pixels)
    try:
        page = sorted((world / "pages").iterdir())[1]
        hits = lib.search(Asked(images=[str(page)], modify="with a pine", modify_method="light"), 5)
        assert len(hits) == 5 and calls == []
        lib.search(Asked(images=[str(page)], modify="with a pine", modify_method="tokens"), 5)
        assert calls == [1]
    finally:
        del encoder.image_features


class WordsOnly:
    """An encoder that gives vectors but no access to its tokenizer or text tower (as a
    model served by another program would)."""

    def __init__(self, inner):
        self._inner = inner
        self.model_id = "words-only:" + inner.model_id
        self.dim, self.image_size, self.device = inner.dim, inner.image_size, inner.device

    def preprocess(self, image):
        return self._inner.preprocess(image)

    def preparer(self):
        return self._inner.preparer()

    def encode_pixels(self, pixels, batch_size=None):
        return self._inner.encode_pixels(pixels, batch_size)

    def encode_texts(self, texts):
        return self._inner.encode_texts(texts)

    def encode_images(self, images):
        return self._inner.encode_images(images)


def test_a_model_that_cannot_take_tokens_says_so_and_searches_by_sum(
    tmp_path, tiny_spec, monkeypatch
):
    monkeypatch.setitem(
        registry.BACKENDS, "wordsonly", lambda rest, **o: WordsOnly(load_encoder(tiny_spec))
    )
    with pytest.raises(CannotTakeTokens, match="cannot take pseudo-word tokens"):
        TokenSlots(WordsOnly(load_encoder(tiny_spec)))
    pages = make_pages(tmp_path / "pages", 20)
    lib = Library(tmp_path / "lib", create=True)
    lib.add([str(tmp_path / "pages")], model="wordsonly:x", regions="whole")
    with pytest.raises(SashieError, match="cannot take pseudo-word tokens"):
        lib.composer.train(QUICK)
    with pytest.raises(SashieError, match="cannot take pseudo-word tokens"):
        lib.query(Asked(images=[str(pages[0])], modify="red", modify_method="tokens"))
    query = lib.query(Asked(images=[str(pages[0])], modify="red"))
    assert "cannot take pseudo-word tokens" in query.note and "sum method" in query.note
    summed = lib.query(Asked(images=[str(pages[0])], modify="red", modify_method="sum"))
    np.testing.assert_allclose(query.vector, summed.vector)


def test_a_composer_of_another_version_is_not_used(tmp_path, tiny_spec):
    pages = make_pages(tmp_path / "pages", 24)
    lib = Library(tmp_path / "lib", create=True)
    lib.add([str(tmp_path / "pages")], model=tiny_spec, regions="whole")
    lib.composer.train(ComposeSettings(steps=5, batch=8, negatives=8, light=False))
    lib.annotations.add(lib.item_ids()[:6].tolist(), "a red square")
    lib.versions.adapt(settings=None)
    assert lib.versions.active() == "v1"
    picture = str(pages[0])
    query = lib.query(Asked(images=[picture], modify="blue"))
    assert "trained for version base, not the active v1" in query.note
    with pytest.raises(SashieError, match="trained for version base"):
        lib.query(Asked(images=[picture], modify="blue", modify_method="tokens"))
    with pytest.raises(SashieError, match="trained for version base"):
        lib.query(Asked(images=[picture], modify="blue", modify_method="light"))
    lib.versions.use("base")
    assert lib.query(Asked(images=[picture], modify="blue")).note is None


@pytest.mark.slow  # an evaluation world indexed and a composer trained
def test_bad_input_is_one_error_line(world_library):
    world, path = world_library
    lib = Library(path)
    page = str(sorted((world / "pages").iterdir())[0])
    with pytest.raises(SashieError, match="needs words"):
        lib.query(Asked(images=[page], modify="   ", modify_method="tokens"))
    with pytest.raises(SashieError, match="give an --image"):
        lib.query(Asked(text="a crane", modify="in ink", modify_method="tokens"))
    with pytest.raises(SashieError, match="modify method must be one of"):
        lib.query(Asked(images=[page], modify="in ink", modify_method="magic"))
    with pytest.raises(SashieError, match="--tokens must be between"):
        lib.composer.train(ComposeSettings(tokens=0))
    result = run_cli(
        "search", path, "-i", page, "--modify", "in ink", "--modify-method", "x", check=False
    )
    assert result.exit_code == 2 and "modify-method" in result.stderr


@pytest.mark.slow  # an evaluation world indexed and a composer trained
def test_the_command_line_trains_shows_and_uses_the_composer(world_library):
    world, path = world_library
    pictures = make_pages(path.parent / "query-like", 3, size=(40, 40), seed=9)
    out = run_cli(
        "compose", "train", path, "--steps", "20", "--light-epochs", "1",
        "--pictures", pictures[0].parent, "--json",
    )  # fmt: skip
    record = json.loads(out.stdout)
    assert record["settings"]["steps"] == 20 and record["light_parameters"] > 0
    assert record["light_query_like"] == 3
    empty = path.parent / "no-pictures"
    empty.mkdir(exist_ok=True)
    refused = run_cli("compose", "train", path, "--pictures", empty, check=False)
    assert refused.exit_code != 0 and "no pictures in" in refused.stderr
    assert "composer  for base" in run_cli("info", path).stdout
    page = str(sorted((world / "pages").iterdir())[2])
    for method in ("tokens", "light", "sum"):
        found = json.loads(
            run_cli(
                "search",
                path,
                "-i",
                page,
                "--modify",
                "彩色の",
                "--modify-method",
                method,
                "-k",
                "3",
                "--json",
            ).stdout
        )["results"]
        assert len(found) == 3


@pytest.mark.slow  # an evaluation world indexed and a composer trained
def test_the_api_composes_by_each_method_and_refuses_an_unknown_one(world_library):
    from fastapi.testclient import TestClient

    from sashie.app import server

    world, path = world_library
    lib = Library(path)
    if lib.composer.get() is None:
        lib.composer.train(QUICK)
    page = sorted((world / "pages").iterdir())[0]
    client = TestClient(server.create_app(path))
    scores = {}
    for method in ("sum", "tokens", "light"):
        answer = client.post(
            "/api/search",
            data={"modify": "with a pine", "modify_method": method, "limit": "4"},
            files=[("images", ("p.jpg", page.read_bytes(), "image/jpeg"))],
        )
        assert answer.status_code == 200, answer.text
        scores[method] = [r["score"] for r in answer.json()["results"]]
        assert len(scores[method]) == 4 and answer.json()["note"] is None
    assert scores["sum"] != scores["tokens"] != scores["light"]
    items = ",".join(str(i) for i in lib.item_ids()[:1])
    linked = client.get("/api/search", params={"items": items, "modify": "in ink"})
    assert linked.status_code == 200
    bad = client.get("/api/search", params={"items": items, "modify": "x", "modify_method": "?"})
    assert bad.status_code == 400 and "modify method" in bad.json()["error"]


def test_training_in_a_terminal_says_first_how_long_it_will_take(tmp_path, tiny_spec, capsys):
    make_pages(tmp_path / "pages", 24)
    Library(tmp_path / "lib", create=True).add([str(tmp_path / "pages")], model=tiny_spec)
    lib = Library(tmp_path / "lib", progress=True)
    capsys.readouterr()
    settings = ComposeSettings(steps=30, batch=8, negatives=8, light_epochs=2, light_steps=10)
    report = lib.composer.train(settings)
    err = capsys.readouterr().err.replace("\r", "\n").splitlines()
    first = next(line for line in err if line.strip())
    assert re.fullmatch(
        r"composer: about \d+ s: 40 token-learner steps, \d+ crops from 24 pages and 2 "
        r"light-encoder steps \(a token-learner step takes \d\.\d\d s here\)",
        first,
    ), first
    assert any(re.search(r"composer: +\d+%\|.*\| [\d:]+ elapsed, [\d:?]+ left", e) for e in err)
    assert report.record["estimated_seconds"] > 0
    # without a terminal, no estimate is made (nothing is timed beforehand)
    quiet = Library(tmp_path / "lib").composer.train(settings)
    assert "estimated_seconds" not in quiet.record
    assert capsys.readouterr().err == ""


def test_the_bar_fills_each_stage_in_proportion_to_its_estimate():
    from sashie.library.composing import ComposePlan, PlannedBar

    plan = ComposePlan(
        token_steps=100,
        pages=10,
        crops=40,
        light_steps=4,
        light_token_steps=50,
        per_token_step=0.5,
        per_page=1.0,
        per_light_step=2.5,
    )
    assert plan.stages() == [("tokens", 50.0), ("crops", 10.0), ("light", 10.0), ("tokens", 25.0)]
    bar = PlannedBar(plan)
    seen = []
    for stage, total in (("tokens", 100), ("crops", 10), ("light", 4), ("tokens", 50)):
        for done in range(1, total + 1):
            bar.update(stage, done, total)
        seen.append(bar.bar.n)
    bar.close()
    assert seen == [50, 60, 70, 95]
