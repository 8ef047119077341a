"""What the demo model reads besides its concept names (sashie/eval/world/wordings.py) and how
the trainer uses it, on small made-up lexicons: held-out names never beside a picture,
kept-back wordings read by no training, the tokenizer, the text-text loss."""

import numpy as np
import pytest

from sashie.adapt.paraphrase import is_japanese
from sashie.eval.lexicon.jmdict import Entry
from sashie.eval.lexicon.wordnet import Synset
from sashie.eval.world.artists import Concept
from sashie.eval.world.samples import SampleMeta
from sashie.eval.world.wordings import build_language, heads, names_heldout

CONCEPTS = (
    Concept("k1", "c", "crane", "鶴"),
    Concept("k2", "h", "heron", "鷺"),  # held out
    Concept("k3", "p", "pine", "松"),
    Concept("k4", "d", "crying cat", "泣いている猫"),
)
HELDOUT = frozenset({"k2"})
SYNSETS = {
    "n1": Synset("n1", ("bird",), (), "a warm-blooded egg-laying vertebrate", 5),
    "n2": Synset("n2", ("wader", "wading bird"), ("n1",), "a long-legged bird of shallows", 5),
    "n3": Synset("n3", ("crane",), ("n2",), "large long-necked wading bird of marshes", 5),
    "n4": Synset("n4", ("crane", "derrick"), ("n6",), "lifts heavy things", 6),
    "n5": Synset("n5", ("heron", "grey wader"), ("n2",), "grey or white wading bird", 5),
    "n6": Synset("n6", ("machine",), (), "a device that does work", 6),
    # "tall bird" is crane's kept-back gloss (entry 11): pine may not say it either
    "n7": Synset("n7", ("pine", "pine tree", "heron pine", "tall bird"), (), "needle tree", 20),
    "n8": Synset("n8", ("cat", "true cat"), (), "feline mammal", 5),
    "n9": Synset("n9", ("crane fly",), ("n1",), "a heron-like insect", 5),
}
ENTRIES = (
    Entry(10, ("鶴",), ("つる",), (("crane",),)),  # even: the training half
    Entry(11, ("鶴",), ("たず",), (("crane", "tall bird"),)),  # odd: kept back
    Entry(20, ("鷺",), ("さぎ",), (("heron",),)),
    Entry(30, ("松",), ("まつ",), (("pine tree",),)),
    Entry(32, ("松",), ("しょう",), (("waiting",),)),  # read 松 but another word
    Entry(40, ("図",), ("ず",), (("figure",),)),
)


@pytest.fixture(scope="module")
def language():
    return build_language(CONCEPTS, HELDOUT, SYNSETS, ENTRIES)


def test_captions_get_synonyms_hypernyms_and_the_training_half_of_jmdict(language):
    crane = language.captions["k1"]
    assert "a wader" in crane.en and "a bird" not in crane.en  # one level above the bird
    assert "derrick" not in crane.en  # the machine is another sense
    assert "つる" in crane.ja  # entry 10, even
    assert "たず" not in crane.ja and "tall bird" not in crane.en  # entry 11, odd: kept back
    assert "まつ" in language.captions["k3"].ja
    assert "しょう" not in language.captions["k3"].ja  # 松 read another way, "waiting"
    assert "a cat" in language.captions["k4"].en  # a crying cat is a cat


def test_kept_back_wordings_are_read_by_no_training(language):
    crane = language.bench["k1"]
    assert "large long-necked wading bird of marshes" in crane.en  # its own sense's gloss
    assert "たず" in crane.ja and "tall bird" in crane.en  # its odd JMdict entry
    kept = {w for words in language.bench.values() for w in (*words.en, *words.ja)}
    read = {t for pair in language.pairs for t in pair}
    read |= {w for words in language.captions.values() for w in (*words.en, *words.ja)}
    assert kept and not kept & read
    assert "tall bird" not in language.captions["k3"].en  # pine's synonym, crane's kept gloss


def test_held_out_concepts_are_named_in_text_pairs_but_never_beside_a_picture(language):
    from sashie.eval.world.train import sample_caption

    assert "k2" not in language.captions
    assert any("heron" in a or "heron" in b for a, b in language.pairs)  # a word it knows
    assert "grey wader" in [b for a, b in language.pairs if a == "heron"]
    names = names_heldout([CONCEPTS[1]])
    assert names("a grey heron") and names("鷺の絵") and not names("a crane")
    rng = np.random.default_rng(0)
    seen = tuple(c for c in CONCEPTS if c.key not in HELDOUT)
    for _ in range(400):
        picked = tuple(int(i) for i in rng.choice(len(seen), 2, replace=False))
        meta = SampleMeta("illustration", "ink", picked)
        caption = sample_caption(rng, meta, seen, language)
        assert not names(caption), caption


def test_general_pairs_come_from_the_rest_of_both_dictionaries(language):
    assert ("図", "figure") in language.pairs  # JMdict, even entry
    assert ("machine", "a device that does work") in language.pairs  # a gloss not kept back
    assert ("crane fly", "a bird") in language.pairs
    assert language.pairs[: language.concept_pairs][0] == ("crane", "鶴")


def test_heads_name_the_thing_a_compound_name_draws():
    assert heads("sun with face")[:2] == ["sun with face", "sun"]
    assert "cat" in heads("crying cat") and "pig" in heads("pig face")
    assert "book" in heads("books")


def test_the_tokenizer_reads_dictionary_words_back_as_written(language):
    from sashie.eval.world.train import train_tokenizer

    seen = tuple(c for c in CONCEPTS if c.key not in HELDOUT)
    tokenizer = train_tokenizer(seen, 0, language, size=400)
    for text in ("a wading bird of marshes", "つるの挿絵", "grey wader"):
        ids = tokenizer(text)["input_ids"]
        assert tokenizer.decode(ids, skip_special_tokens=True) == text
    plain = train_tokenizer(seen, 0, None, size=400)
    assert len(tokenizer("a wading bird")["input_ids"]) < len(plain("a wading bird")["input_ids"])


def test_a_step_of_the_text_pair_loss_brings_a_pair_closer(language):
    import torch
    import torch.nn.functional as F

    from sashie.eval.world.train import build_model, text_pair_loss, train_tokenizer

    torch.manual_seed(0)
    seen = tuple(c for c in CONCEPTS if c.key not in HELDOUT)
    tokenizer = train_tokenizer(seen, 0, language, size=400)
    tiny = dict(
        resolution=16,
        patch=8,
        vision=dict(
            hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2
        ),
        text=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2),
    )
    model = build_model(tokenizer, tiny)
    pairs = [("heron", "grey wader"), ("pine", "pine tree"), ("図", "figure"), ("鶴", "つる")]

    def closeness() -> float:
        with torch.no_grad():
            tokens = tokenizer(["heron", "grey wader"], padding=True, return_tensors="pt")
            features = model.get_text_features(**tokens)
            features = F.normalize(getattr(features, "pooler_output", features), dim=-1)
            return float(features[0] @ features[1])

    before = closeness()
    optimizer = torch.optim.SGD(model.text_model.parameters(), lr=0.5)
    text_pair_loss(model, tokenizer, pairs, "cpu").backward()
    optimizer.step()
    assert closeness() > before


def test_handwritten_paraphrases_cover_every_query_concept_in_both_languages():
    from sashie.eval.bench_paraphrase import handwritten_wordings
    from sashie.eval.world.vocab import vocabulary

    vocab = vocabulary()
    written = handwritten_wordings(list(vocab.query))
    for key in vocab.query:
        for language in ("en", "ja"):
            texts = written[key, language]
            assert len(texts) >= 2 and all(t.strip() for t in texts), (key, language)
            assert all(is_japanese(t) == (language == "ja") for t in texts), texts
