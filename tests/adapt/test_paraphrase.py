"""Paraphrases for ParaCLIP (sashie/adapt/paraphrase.py) and its three-term loss."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from fake_chat import FakeModel, Reply

from sashie.adapt.losses import paraphrase_loss
from sashie.adapt.paraphrase import (
    EN_TEMPLATES,
    JA_TEMPLATES,
    EndpointParaphraser,
    RuleParaphraser,
    content_words,
    half_of,
    other_script,
    shares_words,
)
from sashie.classify.generator import ChatEndpoint, GeneratorError
from sashie.eval.world.labels import world_label_set
from sashie.eval.world.vocab import vocabulary


@pytest.fixture(scope="module")
def world_labels():
    return world_label_set(vocabulary().concepts)


def test_content_words_of_both_languages():
    assert content_words("an old print of cranes") == {"old", "print", "crane"}
    assert content_words("つるのスケッチ") == {"つる", "スケッチ"}
    assert content_words("鶴を描いた絵") == {"鶴", "描", "絵"}
    assert shares_words("鶴の挿絵", "鶴を描いた絵")  # 絵 and 鶴
    assert not shares_words("a picture of a dog", "イヌの絵")
    assert other_script("つる") == "ツル" and other_script("ツル") == "つる"
    assert other_script("鶴") is None


def test_the_second_paraphrase_never_shares_a_word_with_the_first(world_labels):
    """Every concept, every name, both languages, plain and in a template: x'' has no content
    word of x'; most captions get one."""
    para = RuleParaphraser.from_labels(world_labels, seed=3)
    made = 0
    captions = [
        text
        for c in world_labels.classes
        for name in c.names
        for text in (name, f"an illustration of {name}" if name.isascii() else f"{name}の挿絵")
    ]
    for caption in captions:
        found = para.paraphrase(caption)
        assert found is not None and found.first != caption
        if found.second is not None:
            made += 1
            assert not content_words(found.second) & content_words(found.first), found
    assert made > 0.4 * len(captions)  # those with a specific keyword or a kana spelling


def test_the_halves_share_no_template_and_no_keyword(world_labels):
    train = RuleParaphraser.from_labels(world_labels, half="train")
    heldout = RuleParaphraser.from_labels(world_labels, half="heldout")
    for lang in ("en", "ja"):
        assert not set(train.templates[lang]) & set(heldout.templates[lang])
    assert set(half_of(EN_TEMPLATES, "train")) | set(half_of(EN_TEMPLATES, "heldout")) == set(
        EN_TEMPLATES
    )
    assert len(half_of(JA_TEMPLATES, "heldout")) >= 5
    for c in world_labels.classes:
        names = set(c.names)
        a = set(train.lexicon[c.name.casefold()]) - names
        b = set(heldout.lexicon[c.name.casefold()]) - names
        assert not a & b


def test_the_benchs_held_out_set_has_five_wordings_and_no_shared_keyword(world_labels):
    """Each query concept has >= 5 held-out wordings a language; a keyword several concepts
    share ("animal") is a category, kept out of the held-out set as out of training."""
    from collections import Counter

    from sashie.eval.bench_paraphrase import held_out_wordings

    vocab = vocabulary()
    held = RuleParaphraser.from_labels(world_labels, half="heldout")
    train = RuleParaphraser.from_labels(world_labels, half="train")
    uses = Counter(k.casefold() for c in world_labels.classes for k in set(c.attributes))
    shared = {k for k, n in uses.items() if n > 1}
    for key in (*vocab.query_seen, *vocab.query_heldout):
        concept = vocab.by_key[key]
        for lang, name in (("en", concept.en), ("ja", concept.ja)):
            wordings = held_out_wordings(held, name, lang)
            assert len(wordings) >= 5, (name, wordings)
            others = {held.core(w).casefold() for w in wordings} - {name.casefold()}
            assert not others & shared, (name, others & shared)
            assert not set(wordings) & {t.format(x=name) for t in train.templates[lang]}


def test_a_caption_without_other_names_gets_no_second_paraphrase():
    para = RuleParaphraser(seed=0)
    found = para.paraphrase("几帳")
    assert found.first != "几帳" and "几帳" in found.first
    assert found.second is None  # every way to say it repeats 几帳


def direct_info_nce(a, b, scale):
    """InfoNCE over a batch, both directions, written out row by row (all groups distinct)."""
    n = len(a)
    total = 0.0
    for i in range(n):
        row = [scale * float(a[i] @ b[j]) for j in range(n)]
        column = [scale * float(a[j] @ b[i]) for j in range(n)]
        total += -row[i] + torch.logsumexp(torch.tensor(row), 0).item()
        total += -column[i] + torch.logsumexp(torch.tensor(column), 0).item()
    return total / (2 * n)


def test_the_three_term_loss_is_the_papers():
    torch.manual_seed(0)
    image, x, first, second = (F.normalize(torch.randn(6, 8), dim=-1) for _ in range(4))
    groups = range(6)
    got = paraphrase_loss(10.0, image, x, first, second, groups)
    expected = (
        direct_info_nce(image, second, 10.0)
        + direct_info_nce(x, first, 10.0)
        + direct_info_nce(first, second, 10.0)
    )
    assert float(got) == pytest.approx(expected, rel=1e-5)
    alone = paraphrase_loss(10.0, image, x, first, second, groups, terms=["first"])
    assert float(alone) == pytest.approx(direct_info_nce(x, first, 10.0), rel=1e-5)
    with pytest.raises(ValueError):
        paraphrase_loss(10.0, image, x, first, second, groups, terms=["x"])


@pytest.fixture
def chat_server():
    model = FakeModel()
    yield model
    model.stop()


def test_a_chat_server_paraphrases_twice(chat_server, tmp_path):
    answers = {
        "Caption: a crane": "a picture of a crane bird",
        "Caption: a picture": "an old print showing a tsuru",
    }
    chat_server.answer = lambda prompt: next(v for k, v in answers.items() if k in prompt)
    endpoint = ChatEndpoint(chat_server.url, "m", cache_dir=tmp_path)
    found = EndpointParaphraser(endpoint).paraphrase("a crane")
    assert (found.first, found.second) == (
        "a picture of a crane bird",
        "an old print showing a tsuru",
    )
    prompts = [r["messages"][-1]["content"] for r in chat_server.requests]
    assert "keeping its meaning" in prompts[0] and "avoiding the words" in prompts[1]


def test_a_second_paraphrase_that_repeats_words_is_refused(chat_server, tmp_path):
    chat_server.answer = lambda prompt: "a crane picture"  # x'' = x': shares every word
    endpoint = ChatEndpoint(chat_server.url, "m", cache_dir=tmp_path)
    assert EndpointParaphraser(endpoint).paraphrase("a crane").second is None
    fallback = RuleParaphraser([(["a crane picture"], ["tsuru"])], half="all")
    found = EndpointParaphraser(endpoint, fallback).paraphrase("a crane")
    assert found.second is not None and not shares_words(found.second, found.first)


def test_a_server_that_talks_nonsense_stalls_or_is_gone_is_one_error_line(chat_server, tmp_path):
    endpoint = ChatEndpoint(chat_server.url, "m", timeout=0.5, retries=0, role="paraphraser")
    chat_server.replies = [Reply(body=b"<html>not json</html>")]
    with pytest.raises(GeneratorError) as nonsense:
        EndpointParaphraser(endpoint).paraphrase("a crane")
    chat_server.replies = [Reply(body=b"{}", delay=2.0)]
    with pytest.raises(GeneratorError) as stalled:
        EndpointParaphraser(endpoint).paraphrase("a fox")
    chat_server.stop()
    with pytest.raises(GeneratorError) as gone:
        EndpointParaphraser(endpoint).paraphrase("a dog")
    for error in (nonsense, stalled, gone):
        assert "\n" not in str(error.value)
        assert str(error.value).startswith(("the paraphraser at", "cannot reach the paraphraser"))
    assert "no answer in 0.5 s" in str(stalled.value)


def file_digest(path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_paraphrase_training_brings_a_held_out_pair_together_without_touching_images(
    tmp_path, tiny_spec
):
    """The tiny model, tuned on paraphrases of two captions (the training half of the
    templates), puts two wordings it never trained on (templates of the held-out half)
    closer together; the stored image vectors stay byte for byte what they were."""
    import numpy as np

    from sashie import Library
    from sashie.adapt.settings import AdaptSettings

    from conftest import make_pages

    make_pages(tmp_path / "pages", 16, seed=3)
    lib = Library(tmp_path / "lib", create=True)
    lib.add([str(tmp_path / "pages")], model=tiny_spec, regions="whole")
    items = lib.index().item_ids.tolist()
    lib.annotations.add(items[:8], "zorblat")
    lib.annotations.add(items[8:12], "quix")
    vector_files = sorted((tmp_path / "lib" / "vectors").rglob("*.*"))
    before_files = {p: file_digest(p) for p in vector_files}
    pair = ["a drawing of zorblat", "wibble in an old book"]
    heldout = half_of(EN_TEMPLATES, "heldout")
    assert set(pair) <= {t.format(x=n) for t in heldout for n in ("zorblat", "wibble")}

    def closeness() -> float:
        a, b = lib.query_encoder().encode_texts(pair)
        return float(a @ b)

    start = closeness()
    concepts = [(["zorblat"], ["wibble", "flonk"]), (["quix"], ["frob", "snib"])]
    paraphraser = RuleParaphraser(concepts, half="train", seed=1)
    assert not set(paraphraser.templates["en"]) & set(heldout)
    settings = AdaptSettings(
        epochs=1, min_steps=120, batch=8, paraphrase=True, teach=False, train_adapter=False
    )
    report = lib.versions.adapt(settings=settings, paraphraser=paraphraser)
    assert report.version == "v1" and lib.versions.active() == "v1"
    after = closeness()
    assert after > start + 0.05, (start, after)
    assert {p: file_digest(p) for p in vector_files} == before_files
    lib.versions.use("base")
    assert abs(closeness() - start) < 1e-6
    np.testing.assert_array_equal(lib.index().item_ids, np.array(items))


def test_the_command_line_teaches_paraphrases_as_a_version(tmp_path, tiny_spec):
    import json

    from sashie import Library

    from conftest import make_pages, run_cli

    make_pages(tmp_path / "pages", 8, seed=2)
    lib = Library(tmp_path / "lib", create=True)
    lib.add([str(tmp_path / "pages")], model=tiny_spec, regions="whole")
    items = lib.index().item_ids.tolist()
    lib.annotations.add(items[:4], "crane")
    lib.annotations.add(items[4:], "つる")
    path = tmp_path / "lib"
    bad = run_cli("adapt", path, "--no-teach", check=False)
    assert bad.exit_code == 1 and "go with --paraphrase" in bad.stderr
    gone = run_cli(
        "adapt", path, "--paraphrase", "--paraphraser", "http://127.0.0.1:9",
        "--paraphraser-model", "m", check=False,
    )  # fmt: skip
    assert gone.exit_code == 1 and "cannot reach the paraphraser" in gone.stderr
    assert gone.stderr.count("\n") == 1
    out = run_cli("adapt", path, "--paraphrase", "--epochs", "1", "--min-steps", "5", "--json")
    report = json.loads(out.output)
    assert report["version"] == "v1"
    record = Library(path).versions.list()["versions"][0]
    assert record["settings"]["paraphrase"] is True
    assert record["paraphrases"] > 0  # つる <-> ツル at least


def test_keywords_many_concepts_share_are_not_paraphrases():
    """'animal' names a category of dog and cat, not dog: it is left out of both."""
    para = RuleParaphraser(
        [(["dog"], ["animal", "puppy"]), (["cat"], ["animal", "kitten"]), (["cow"], ["dog"])],
        half="all",
    )
    assert para.names_for("dog") == ["puppy"] and para.names_for("cat") == ["kitten"]
    assert para.names_for("cow") == []  # "dog" is another concept's name


def test_a_label_sets_surest_items_can_be_learnt_with_their_paraphrases(tmp_path, tiny_spec):
    """`adapt --label-examples N`: the N items of each class `classify` was surest of join the
    pairs, captioned by their class; without labels, or with an annotations file, one line."""
    import pytest

    from sashie import Library, SashieError
    from sashie.adapt.settings import AdaptSettings
    from sashie.classify.labelfile import LabelClass, LabelSet

    from conftest import make_pages

    make_pages(tmp_path / "pages", 12, seed=4)
    lib = Library(tmp_path / "lib", create=True)
    lib.add([str(tmp_path / "pages")], model=tiny_spec, regions="whole")
    settings = AdaptSettings(epochs=1, min_steps=5, batch=4, paraphrase=True)
    with pytest.raises(SashieError, match="no labels yet"):
        lib.versions.adapt(settings=settings, label_examples=2)
    lib.labels.classify(LabelSet("s", (LabelClass("red", ja=("あか",)), LabelClass("blue"))))
    counts = lib.labels.list()["s"]["counts"]
    report = lib.versions.adapt(settings=settings, label_examples=2)
    assert report.pairs == sum(min(2, n) for n in counts.values())
    record = lib.versions.list()["versions"][-1]
    assert record["annotations"] == "library + 2 label examples a class"
    rows = lib._parts.catalog.item_classes("s")  # the surest: the largest lead over the runner-up
    leads = sorted((r[1] - r[3], item) for item, r in rows.items() if r[0] == "red")
    chosen = [a for a in (lib._parts.catalog.confident_items("s", 2)) if a[1] == "red"]
    assert [item for item, _ in chosen] == [item for _, item in sorted(leads, reverse=True)[:2]]
    with pytest.raises(SashieError, match="not a file"):
        lib.versions.adapt(settings=settings, label_examples=2, annotations=tmp_path / "a.jsonl")
