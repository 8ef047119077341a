"""Paraphrases for paraphrase-robust tuning (ParaCLIP, Kim et al. 2024): x -> x' -> x''.

x' says what x says in other words; x'' says it again, avoiding the words of x' (so the text
encoder learns that wording does not change the meaning). Two sources:

- `RuleParaphraser`, offline: query templates in English and Japanese, each concept's other
  names and keywords from a lexicon (a label file's synonyms and attributes; for the
  evaluation world, its CLDR emoji keywords), kana script changes (つる / ツル). Templates and
  keywords are split in two halves by a fixed rule (even / odd positions): one half may be
  used in training, the other is kept for measuring (`sashie bench --paraphrase`).
- `EndpointParaphraser`: an OpenAI-compatible server the user runs, asked the paper's two
  prompts (generator.py's client: timeouts, retries, a cache on disk).

Either way x'' never shares a content word with x' (`shares_words`): a candidate that does is
dropped, so a pair may have no x'' (a caption with no other name for its concept).
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Protocol

import numpy as np

from ..classify.generator import ChatEndpoint
from ..classify.labelfile import LabelSet

EN_TEMPLATES = (
    "{x}",
    "a picture of {x}",
    "an illustration of {x}",
    "a drawing of {x}",
    "an old print of {x}",
    "{x} in an old book",
    "a sketch showing {x}",
    "an image with {x}",
    "{x}, a book illustration",
    "artwork depicting {x}",
)
JA_TEMPLATES = (
    "{x}",
    "{x}の絵",
    "{x}の挿絵",
    "{x}を描いた絵",
    "古い本の{x}",
    "{x}の版画",
    "{x}のスケッチ",
    "{x}が描かれた図",
    "{x}のイラスト",
    "昔の{x}の図",
)
HALVES = ("train", "heldout", "all")
EN_STOPWORDS = frozenset(  # words that say nothing of the picture
    re.findall(r"\w+", "a an the of with in on at and or by from to for its it this that")
) | {"showing", "depicting"}
# Japanese function morphemes (particles, verb endings) inside hiragana runs, longest first
JA_FUNCTION = re.compile("された|かれた|れた|いた|した|です|ます|[のをがにはとでもへやただな]")
_JAPANESE = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uf900-\ufaff]")
_KANJI = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_KATAKANA_RUN = re.compile(r"[\u30a1-\u30fa\u30fc]+")
_HIRAGANA_RUN = re.compile(r"[\u3041-\u3096\u30fc]+")
_WORD = re.compile(r"[a-z0-9]+(?:['-][a-z0-9]+)*")
MAX_LENGTH = 200


def is_japanese(text: str) -> bool:
    return bool(_JAPANESE.search(text))


def content_words(text: str) -> set[str]:
    """The words that carry a text's meaning: English words but the stop words (a plural's
    final s dropped), and in Japanese each kanji, each katakana run (絵 in 挿絵 and in
    描いた絵 is the same word) and what a hiragana run holds besides particles and endings."""
    text = unicodedata.normalize("NFKC", text).casefold()
    words = {w[:-1] if len(w) > 3 and w.endswith("s") else w for w in _WORD.findall(text)}
    words -= EN_STOPWORDS
    words |= set(_KANJI.findall(text))
    words |= set(_KATAKANA_RUN.findall(text))
    for run in _HIRAGANA_RUN.findall(text):  # つる is a word; の, を描いた are not
        words |= {piece for piece in JA_FUNCTION.split(run) if len(piece) >= 2}
    return words


def shares_words(a: str, b: str) -> bool:
    """Whether two texts have a content word in common (`content_words`)."""
    return bool(content_words(a) & content_words(b))


def other_script(text: str) -> str | None:
    """The text with hiragana written in katakana, or katakana in hiragana (つる <-> ツル);
    None when it has neither."""
    if _HIRAGANA_RUN.fullmatch(text):
        return "".join(chr(ord(c) + 0x60) if "\u3041" <= c <= "\u3096" else c for c in text)
    if _KATAKANA_RUN.fullmatch(text):
        return "".join(chr(ord(c) - 0x60) if "\u30a1" <= c <= "\u30f6" else c for c in text)
    return None


def half_of(values: Sequence[str], half: str) -> list[str]:
    """The training half (even positions), the held-out half (odd) or all of a list."""
    if half not in HALVES:
        raise ValueError(f"half must be one of {HALVES}")
    if half == "all":
        return list(values)
    return [v for i, v in enumerate(values) if i % 2 == (0 if half == "train" else 1)]


@dataclass(frozen=True)
class Paraphrased:
    x: str
    first: str  # x': the same meaning in other words
    second: str | None  # x'': the same again, sharing no content word with x'


class Paraphraser(Protocol):
    """Anything that gives a text's x' and x'' (or None when it has none)."""

    def paraphrase(self, x: str) -> Paraphrased | None: ...


class RuleParaphraser:
    """Offline paraphrases from templates and a lexicon: each concept's names (all of them
    always) and keywords (those of this half, split by language), found by any name."""

    def __init__(
        self,
        concepts: Sequence[tuple[Sequence[str], Sequence[str]]] = (),
        *,
        half: str = "train",
        seed: int = 0,
    ) -> None:
        """`concepts`: (names, keywords) of each concept, in any language."""
        self.half = half
        self.templates = {
            "en": half_of(EN_TEMPLATES, half),
            "ja": half_of(JA_TEMPLATES, half),
        }
        self.rng = np.random.default_rng(seed)
        self.lexicon: dict[str, list[str]] = {}
        # a keyword that several concepts share ("animal", "face") or that names another
        # concept is a category or a neighbour, not another way to say this one: left out
        uses = Counter(_key(k) for names, keywords in concepts for k in set(keywords))
        uses.update(_key(n) for names, _ in concepts for n in names)
        for names, keywords in concepts:
            own = {_key(n) for n in names}
            specific = {k for k in keywords if uses[_key(k)] == 1 and _key(k) not in own}
            words = list(names)
            for japanese in (False, True):
                same = sorted(k for k in specific if is_japanese(k) == japanese)
                words += half_of(same, half)
            for name in names:
                self.lexicon.setdefault(_key(name), list(dict.fromkeys(words)))

    @classmethod
    def from_labels(
        cls, labels: LabelSet, *, half: str = "train", seed: int = 0
    ) -> RuleParaphraser:
        """A lexicon from a label file: names, Japanese names and synonyms are names; the
        attributes are keywords (the evaluation world's: its CLDR keywords)."""
        return cls([(c.names, c.attributes) for c in labels.classes], half=half, seed=seed)

    def core(self, text: str) -> str:
        """The concept a query names, its template taken off ("an old print of crane" ->
        "crane"; 「鶴の挿絵」 -> 「鶴」); the text itself when no template fits."""
        text = text.strip()
        for template in sorted((*EN_TEMPLATES, *JA_TEMPLATES), key=len, reverse=True):
            if template == "{x}":
                continue
            before, after = template.split("{x}")
            if text.lower().startswith(before.lower()) and text.lower().endswith(after.lower()):
                inner = text[len(before) : len(text) - len(after)].strip()
                if inner:
                    return inner
        return text

    def names_for(self, core: str) -> list[str]:
        """Other ways to name the concept in the text's language: its lexicon entries and
        the other kana script."""
        japanese = is_japanese(core)
        names = [w for w in self.lexicon.get(_key(core), []) if is_japanese(w) == japanese]
        script = other_script(core)
        if script:
            names.append(script)
        return [n for n in dict.fromkeys(names) if _key(n) != _key(core)]

    def paraphrase(self, x: str) -> Paraphrased | None:
        """x' and x'' of a caption or query x (None when x is empty)."""
        x = x.strip()
        if not x:
            return None
        core = self.core(x)
        templates = self.templates["ja" if is_japanese(core) else "en"]
        names = [core, *self.names_for(core)]
        options = [t.format(x=n) for t in templates for n in names if t.format(x=n) != x]
        first = options[int(self.rng.integers(len(options)))] if options else x
        return Paraphrased(x, first, self.avoiding(first, names))

    def avoiding(self, text: str, names: Sequence[str] | None = None) -> str | None:
        """Another way to say `text` (whose concept is said by `names`, by default those of
        its own core) that shares none of its content words; None when every wording the
        lexicon offers repeats one."""
        if names is None:
            core = self.core(text)
            names = [core, *self.names_for(core)]
        templates = self.templates["ja" if is_japanese(names[0]) else "en"]
        options = [t.format(x=n) for t in templates for n in names]
        order = self.rng.permutation(len(options))
        return next((options[i] for i in order if not shares_words(options[i], text)), None)


class EndpointParaphraser:
    """Paraphrases by a chat model the user runs, with the paper's two prompts; an x'' that
    shares a word with x' is refused (and the rule paraphraser's taken when it has one)."""

    FIRST: ClassVar[dict[str, str]] = {
        "en": "Paraphrase this image caption concisely, keeping its meaning. "
        "Answer with the paraphrase only.\nCaption: {x}",
        "ja": "次の画像の説明文を、意味を保ったまま簡潔に言い換えてください。"
        "言い換えだけを答えてください。\n説明文: {x}",
    }
    SECOND: ClassVar[dict[str, str]] = {
        "en": "Paraphrase this image caption concisely, keeping its meaning and avoiding the "
        "words it already uses. Answer with the paraphrase only.\nCaption: {x}",
        "ja": "次の画像の説明文を、意味を保ったまま、使われている語を避けて簡潔に言い換えて"
        "ください。言い換えだけを答えてください。\n説明文: {x}",
    }

    def __init__(self, endpoint: ChatEndpoint, fallback: RuleParaphraser | None = None) -> None:
        self.endpoint = endpoint
        self.fallback = fallback

    def paraphrase(self, x: str) -> Paraphrased | None:
        x = x.strip()
        if not x:
            return None
        lang = "ja" if is_japanese(x) else "en"
        first = _answer(self.endpoint.complete(self.FIRST[lang].format(x=x)))
        if first is None:
            return self.fallback.paraphrase(x) if self.fallback else None
        second = _answer(self.endpoint.complete(self.SECOND[lang].format(x=first)))
        if second is None or shares_words(second, first):
            second = self.fallback.avoiding(first) if self.fallback is not None else None
        return Paraphrased(x, first, second)


def paraphrase_all(paraphraser: Paraphraser, texts: Sequence[str]) -> list[Paraphrased]:
    """The paraphrases of every text that has one (an endpoint's failure stops the run
    with its one error line)."""
    found = (paraphraser.paraphrase(text) for text in texts)
    return [p for p in found if p is not None]


def _answer(text: str) -> str | None:
    """A chat model's paraphrase: its first non-empty line, quotes and labels taken off;
    None when there is none, or it is too long or holds control characters."""
    for line in text.splitlines():
        line = re.sub(r"^\s*(?:[-*•]|\d+[.)]|paraphrase:|言い換え[:：])\s*", "", line, flags=re.I)
        line = line.strip().strip("\"'「」“”").strip()
        if line:
            if len(line) > MAX_LENGTH or any(unicodedata.category(c) == "Cc" for c in line):
                return None
            return line
    return None


def _key(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold().strip()
