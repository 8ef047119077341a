"""CODER scores, the label-free re-rank and the few-shot cache (sashie/classify)."""

import hashlib

import numpy as np

from sashie.classify.bank import NAME_TEMPLATES, build_bank, language
from sashie.classify.coder import Scoring, class_scores, coder_vectors
from sashie.classify.fewshot import fit_tip_adapter
from sashie.classify.labelfile import LabelClass, LabelSet
from sashie.eval.bench_classify import evaluate

DIM = 32


def encode(texts):
    """A stand-in text encoder: each text its own fixed random unit vector."""
    out = []
    for text in texts:
        seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
        v = np.random.default_rng(seed).standard_normal(DIM)
        out.append(v / np.linalg.norm(v))
    return np.asarray(out, np.float32)


LABELS = LabelSet(
    "small",
    (
        LabelClass("crane", ja=("鶴",), synonyms=("tsuru",), attributes=("long legs", "白い")),
        LabelClass("heron", attributes=("long legs", "grey")),
        LabelClass("pine", ja=("松",), attributes=("needles",), similar=("cedar",)),
        LabelClass("boat", synonyms=("ship", "舟"), attributes=("sail",)),
    ),
)


def unit(x):
    return x / np.linalg.norm(x)


def test_coder_scores_are_the_papers_formula():
    """Score = max over name/synonym similarities + mean over attribute and analogy texts,
    transcribed directly: one class, one image, one text at a time."""
    bank = build_bank(LABELS, encode, analogies=1)
    x = unit(np.random.default_rng(3).standard_normal((5, DIM))).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    got = class_scores(bank, x, Scoring("coder", rerank=False, context=1.0))

    expected = np.zeros((len(x), len(LABELS.classes)))
    for c, cls in enumerate(LABELS.classes):
        names = [
            unit(encode([t.format(x=n) for t in NAME_TEMPLATES[language(n)]]).mean(0))
            for n in cls.names
        ]
        context = [encode([text])[0] for k, kind, text in bank.texts if k == c]
        kinds = {kind for k, kind, _ in bank.texts if k == c}
        assert kinds == {"attributes", "analogies"}
        for i in range(len(x)):
            expected[i, c] = max(float(n @ x[i]) for n in names) + np.mean(
                [float(t @ x[i]) for t in context]
            )
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_the_bank_holds_each_kind_and_leaves_each_out():
    bank = build_bank(LABELS, encode, analogies=1)
    texts = [t for _, _, t in bank.texts]
    assert "a picture of crane, long legs" in texts and "白いの鶴の絵" in texts
    assert "a picture of pine, like cedar" in texts  # the file's own similar class
    assert len(bank.names) == 9  # crane 3, heron 1, pine 2, boat 3
    likeness = bank.prompt @ bank.prompt.T
    np.fill_diagonal(likeness, -np.inf)
    for c, nearest in enumerate(likeness.argmax(axis=1)):  # each class's nearest, both ways
        assert (c, int(nearest)) in bank.pairs and (int(nearest), c) in bank.pairs
    assert not bank.without("differences").pairs
    assert all(k != "attributes" for _, k, _ in bank.without("attributes").texts)
    assert len(bank.without("names").names) == 4  # each class's first name only


def test_the_rerank_never_reads_the_labels():
    """Shuffling the truth of the evaluated items changes the accuracy, never a prediction;
    and the re-rank does change predictions (so it is what is being tested)."""
    rng = np.random.default_rng(0)
    labels = LabelSet(
        "many",
        tuple(LabelClass(f"class {i}", attributes=(f"a{i}", f"b{i % 3}")) for i in range(12)),
    )
    bank = build_bank(labels, encode, analogies=3)
    keys = np.array(bank.classes)
    x = rng.standard_normal((400, DIM)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    truths = [{keys[int(i)]} for i in rng.integers(0, len(keys), len(x))]
    wide = Scoring("coder", margin=1.0, weight=5.0)  # every item is a close call
    guesses, accuracy = evaluate(bank, x, truths, keys, wide)
    shuffled = [truths[i] for i in rng.permutation(len(truths))]
    again, other = evaluate(bank, x, shuffled, keys, wide)
    assert (guesses == again).all()
    plain, _ = evaluate(bank, x, truths, keys, Scoring("coder", rerank=False))
    assert (guesses != plain).any()
    assert accuracy != other or accuracy == 0


def test_coder_vectors_are_centred_unit_rows():
    bank = build_bank(LABELS, encode)
    x = encode(["an image", "another"])
    v = coder_vectors(bank, x)
    assert v.shape == (2, len(bank.names) + len(bank.texts))
    np.testing.assert_allclose(v.mean(axis=1), 0, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1, atol=1e-5)


def test_the_few_shot_cache_learns_its_examples():
    """Three well-separated clusters the zero-shot scores get wrong: the cache, its alpha
    and beta chosen leave-one-out on the examples, gets the held-out members right."""
    rng = np.random.default_rng(1)
    centres = np.eye(3, 16, dtype=np.float32)

    def draw(n):
        labels = np.repeat(np.arange(3), n)
        x = centres[labels] + 0.1 * rng.standard_normal((len(labels), 16)).astype(np.float32)
        return x / np.linalg.norm(x, axis=1, keepdims=True), labels

    shots, shot_labels = draw(4)
    test, test_labels = draw(20)

    def wrong(labels):
        return np.eye(3, dtype=np.float32)[(labels + 1) % 3] * 0.05

    cache = fit_tip_adapter(shots, shot_labels, wrong(shot_labels), 3)
    assert cache.alpha > 0
    guesses = cache.logits(test, wrong(test_labels)).argmax(axis=1)
    assert (guesses == test_labels).mean() > 0.9


def test_the_models_own_nearest_words_become_synonyms(tmp_path):
    """The demo model, asked for the words nearest "dog", offers its Japanese name (イヌ),
    never the class's own names; a library run with them labels everything again."""
    from sashie import Library
    from sashie.classify.bank import model_words, nearest_words
    from sashie.encoders import load_encoder

    from conftest import make_pages

    demo = load_encoder("sashie-demo")
    words = model_words(demo)
    assert "drawing" in words and "ing" not in words  # whole words, not pieces
    labels = LabelSet("d", (LabelClass("dog"), LabelClass("crane", ja=("ツル",))))
    near = nearest_words(labels, demo.encode_texts, words, 3)
    assert "イヌ" in near["dog"] and len(near["crane"]) == 3
    assert not {"crane", "ツル"} & set(near["crane"])

    make_pages(tmp_path / "pages", 4)
    lib = Library(tmp_path / "lib", create=True)
    lib.add([str(tmp_path / "pages")], regions="whole")  # the demo model
    assert lib.labels.classify(labels).relabelled  # the first run labels everything
    assert lib.labels.classify(labels, nearest_words=2).relabelled  # other synonyms: all again
    assert not lib.labels.classify(labels, nearest_words=2).relabelled
