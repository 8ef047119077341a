"""The words the demo model reads besides its concept names: other wordings of each concept
for its captions, text-text pairs (synonyms, translations, glosses) that place a word never
seen beside a picture near what it means, and wordings kept back for measuring.

From English WordNet (Debian `wordnet-base`), JMdict (PyPI `jamdict-data`) and the CLDR
keywords the world already carries (sashie/eval/lexicon/ reads them; nothing of their text is
kept in this repository). Who may read what:

- **captions** (image-caption pairs, seen concepts only): the concept's WordNet synonyms and
  its hypernym one level up ("a wading bird"), the forms and English glosses of its JMdict
  entries of the training half (even sequence numbers), and the CLDR keywords of the
  paraphraser's training half. A wording that names a held-out concept is dropped: held-out
  concepts are never drawn or named beside a picture.
- **text-text pairs** (every concept, held-out ones too, as a real model knows words it has
  never seen pictured): each concept's names with each other and with its caption wordings,
  and general pairs from the rest of WordNet (a noun and its synonym, its hypernym, its
  gloss) and from JMdict's training half (a word and its first English gloss).
- **kept back** (`bench`, read by no training): the gloss of the concept's own WordNet sense,
  its JMdict entries of the other half (odd numbers), and the CLDR keywords of the
  paraphraser's held-out half. No caption wording and no side of a text pair equals one of
  them, whichever concept or dictionary entry it came from.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from ...adapt.paraphrase import RuleParaphraser, other_script
from ..lexicon.jmdict import Entry
from ..lexicon.wordnet import Synset, hypernym_words
from .artists import Concept
from .clipart import CaptionedDrawing
from .labels import world_label_set

MAX_GLOSS_WORDS = 12  # a longer gloss is cut at its first comma or semicolon, else skipped
MAX_JMDICT_GLOSS_WORDS = 4
# lexicographer files of things one can draw: animal, artifact, body, food, location, object,
# person, phenomenon, plant, shape, substance
DRAWABLE = frozenset({5, 6, 8, 13, 15, 17, 18, 19, 20, 25, 27})
_WORD = re.compile(r"[a-z]+")
_PAREN = re.compile(r"\s*\([^)]*\)")
STOPWORDS = frozenset({"a", "an", "the", "of", "with", "in", "on", "to", "and", "or", "face"})


@dataclass(frozen=True)
class Words:
    """Other wordings of one concept, by language."""

    en: tuple[str, ...] = ()
    ja: tuple[str, ...] = ()

    def of(self, language: str) -> tuple[str, ...]:
        return self.ja if language == "ja" else self.en


@dataclass
class Language:
    captions: dict[str, Words] = field(default_factory=dict)  # by concept key, seen only
    bench: dict[str, Words] = field(default_factory=dict)  # by concept key, kept back
    pairs: list[tuple[str, str]] = field(default_factory=list)  # text-text
    concept_pairs: int = 0  # the first this many pairs are the concepts' own
    drawings: list[CaptionedDrawing] = field(default_factory=list)  # Openclipart's, captioned

    def unread(self) -> set[str]:
        """The kept-back wordings, case-folded: no training reads any of them as a text."""
        return {w.casefold() for words in self.bench.values() for w in (*words.en, *words.ja)}

    def counts(self) -> dict[str, int]:
        return {
            "caption_wordings": sum(len(w.en) + len(w.ja) for w in self.captions.values()),
            "bench_wordings": sum(len(w.en) + len(w.ja) for w in self.bench.values()),
            "text_pairs": len(self.pairs),
            "concept_text_pairs": self.concept_pairs,
            "captioned_drawings": len(self.drawings),
        }


def article(phrase: str) -> str:
    """ "a wading bird", "an owl"."""
    return ("an " if phrase[:1].lower() in "aeiou" else "a ") + phrase


def short_gloss(gloss: str, limit: int = MAX_GLOSS_WORDS) -> str | None:
    """A gloss as a caption would say it: its first clause, if short enough."""
    gloss = _PAREN.sub("", gloss).strip()
    if len(gloss.split()) > limit:
        gloss = re.split(r"[;,]", gloss)[0].strip()
    return gloss if gloss and len(gloss.split()) <= limit else None


def concept_synset(
    concept: Concept, keywords: Iterable[str], by_word: dict[str, list[Synset]], synsets
) -> tuple[Synset, bool] | None:
    """The WordNet noun sense of a concept's English name, and whether it is the name's own
    (else the sense of its head: "crying cat" -> cat, "sun with face" -> sun, "books" ->
    book). Of a word's senses, the one whose words, gloss and hypernyms share most words with
    the concept's names and keywords; on a tie, a thing one can draw (an animal, an artifact,
    a plant, food, ...) before an act or an idea, then the earliest."""
    wanted = {w for k in (concept.en, *keywords) for w in _WORD.findall(k.casefold())}
    wanted -= STOPWORDS

    def rank(s: Synset) -> tuple[int, bool]:
        text = " ".join((*s.words, s.gloss, *hypernym_words(synsets, s, depth=3))).casefold()
        return len(wanted & set(_WORD.findall(text))), s.lexfile in DRAWABLE

    for word in heads(concept.en):
        if senses := by_word.get(word, []):
            return max(senses, key=rank), word == concept.en.casefold()  # max keeps the first
    return None


def heads(name: str) -> list[str]:
    """The words that may name a concept in WordNet, the whole name first."""
    name = name.casefold()
    whole = name.split(" with ")[0]
    words = whole.split()
    found = [name, whole, whole[:-1] if whole.endswith("s") else whole]
    if len(words) > 1:
        head = words[-1] if words[-1] != "face" else words[0]
        found += [head, head[:-1] if head.endswith("s") else head]
    return list(dict.fromkeys(found))


def word_index(synsets: dict[str, Synset]) -> dict[str, list[Synset]]:
    by_word: dict[str, list[Synset]] = {}
    for s in synsets.values():
        for w in s.words:
            by_word.setdefault(w.casefold(), []).append(s)
    return by_word


def jmdict_matches(
    concept: Concept, english: Iterable[str], by_form: dict[str, list[Entry]]
) -> list[Entry]:
    """The JMdict entries written or read as the concept's Japanese name (either kana) whose
    first sense shares a word with the concept's English wordings (骨 is ほね, "bone", not
    こつ, "knack")."""
    wanted = {w for e in english for w in _WORD.findall(e.casefold())} - STOPWORDS
    forms = [concept.ja, other_script(concept.ja)]
    found = [
        e
        for f in forms
        if f
        for e in by_form.get(f, [])
        if wanted & set(_WORD.findall(" ".join(e.senses[0]).casefold()))
    ]
    return list({e.id: e for e in found}.values())


def entry_words(entry: Entry, concept: Concept) -> Words:
    """An entry's other forms (Japanese) and its first sense's short glosses (English)."""
    ja = [f for f in (*entry.kanji, *entry.kana) if f != concept.ja]
    en = [
        g
        for g in (_PAREN.sub("", g).strip() for g in entry.senses[0])
        if g
        and "(" not in g
        and ")" not in g
        and len(g.split()) <= MAX_JMDICT_GLOSS_WORDS
        and g.casefold() != concept.en.casefold()
    ]
    return Words(tuple(en), tuple(ja))


def names_heldout(heldout: Sequence[Concept]):
    """A test of whether a text names one of these concepts (English as whole words,
    Japanese as a part of the text)."""
    english = [re.compile(rf"\b{re.escape(c.en.casefold())}s?\b") for c in heldout]
    japanese = [c.ja for c in heldout]

    def names(text: str) -> bool:
        folded = text.casefold()
        return any(j in text for j in japanese) or any(p.search(folded) for p in english)

    return names


def build_language(
    concepts: Sequence[Concept],
    heldout: frozenset[str],
    synsets: dict[str, Synset],
    entries: Iterable[Entry],
) -> Language:
    """Caption wordings, text-text pairs and kept-back wordings (module docstring)."""
    entries = list(entries)
    by_word = word_index(synsets)
    by_form: dict[str, list[Entry]] = {}
    for e in entries:
        for f in (*e.kanji, *e.kana):
            by_form.setdefault(f, []).append(e)
    labels = world_label_set(concepts)
    train_cldr = RuleParaphraser([(c.names, c.attributes) for c in labels.classes], half="train")
    kept_cldr = RuleParaphraser([(c.names, c.attributes) for c in labels.classes], half="heldout")
    names_unseen = names_heldout([c for c in concepts if c.key in heldout])

    language = Language()
    concept_pairs: list[tuple[str, str]] = []
    own_senses: set[str] = set()
    for concept, label in zip(concepts, labels.classes, strict=True):
        kept: dict[str, list[str]] = {"en": [], "ja": []}
        said: dict[str, list[str]] = {"en": [], "ja": []}
        for lang, name in (("en", concept.en), ("ja", concept.ja)):
            held = kept_cldr.names_for(name)
            kept[lang] += [w for w in held if w not in train_cldr.names_for(name)]
            said[lang] += train_cldr.names_for(name)
        found = concept_synset(concept, label.attributes, by_word, synsets)
        if found is not None:
            synset, own = found
            # one level up only: "a wading bird" says what a crane is; "a carnivore" would
            # caption dogs and cats alike and blur the names the pictures teach
            above = [article(h) for h in hypernym_words(synsets, synset, depth=1)]
            if own:  # its synonyms are other names; its gloss is kept back
                own_senses.add(synset.id)
                said["en"] += [w for w in synset.words if w.casefold() != concept.en.casefold()]
                if gloss := short_gloss(synset.gloss):
                    kept["en"].append(gloss)
            else:  # a crying cat is a cat
                above.insert(0, article(synset.words[0]))
            said["en"] += above
        english = [concept.en, *said["en"], *label.attributes]
        for entry in jmdict_matches(concept, english, by_form):
            words = entry_words(entry, concept)
            side = kept if entry.id % 2 else said
            side["en"] += words.en
            side["ja"] += words.ja
        held_back = {w.casefold() for ws in kept.values() for w in ws}
        names = {concept.en.casefold(), concept.ja}
        for lang in said:
            said[lang] = [
                w
                for w in dict.fromkeys(said[lang])
                if w.casefold() not in held_back and w.casefold() not in names
            ]
        language.bench[concept.key] = Words(*(tuple(dict.fromkeys(kept[x])) for x in ("en", "ja")))
        concept_pairs.append((concept.en, concept.ja))
        for lang in said:
            concept_pairs += [(concept.en if lang == "en" else concept.ja, w) for w in said[lang]]
        if concept.key not in heldout:
            language.captions[concept.key] = Words(
                *(tuple(w for w in said[x] if not names_unseen(w)) for x in ("en", "ja"))
            )
    # a kept-back wording of one concept may be another's synonym or a dictionary's word:
    # no training reads it as a whole text anywhere (it may be part of a longer one)
    unread = language.unread()
    for key, words in language.captions.items():
        language.captions[key] = Words(
            *(tuple(w for w in words.of(x) if w.casefold() not in unread) for x in ("en", "ja"))
        )

    def readable(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
        return [p for p in pairs if not {p[0].casefold(), p[1].casefold()} & unread]

    read_pairs = readable(concept_pairs)
    language.concept_pairs = len(read_pairs)
    language.pairs = read_pairs + readable(general_pairs(synsets, own_senses, entries))
    return language


def general_pairs(
    synsets: dict[str, Synset], own_senses: set[str], entries: Sequence[Entry]
) -> list[tuple[str, str]]:
    """Dictionary pairs beyond the concepts: WordNet nouns with their synonyms, hypernyms and
    glosses (not the concepts' own senses' glosses, which are kept back), and each JMdict
    entry of the training half with its first English gloss."""
    pairs = []
    for s in synsets.values():
        if not s.id.startswith("n"):
            continue
        head = s.words[0]
        pairs += [(head, w) for w in s.words[1:3]]
        pairs += [(head, article(h)) for h in hypernym_words(synsets, s, depth=1)]
        if s.id not in own_senses and (gloss := short_gloss(s.gloss)):
            pairs.append((head, gloss))
    for e in entries:
        if e.id % 2:
            continue
        word = (e.kanji or e.kana)[0]
        gloss = _PAREN.sub("", e.senses[0][0]).strip()
        if gloss and len(gloss.split()) <= MAX_JMDICT_GLOSS_WORDS:
            pairs.append((word, gloss))
    return pairs


def wording_corpus(language: Language) -> list[str]:
    """Every text the language offers the tokenizer (not the kept-back wordings)."""
    texts = [t for pair in language.pairs for t in pair]
    texts += [w for words in language.captions.values() for w in (*words.en, *words.ja)]
    texts += [t for d in language.drawings for t in (d.title, *d.keywords)]
    return texts
