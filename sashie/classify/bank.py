"""The text bank of a label set: the texts around each class, encoded once.

CODER (Yi et al., CVPR 2024) describes an image by its similarities to many texts around a
class, not to one prompt. Each class gets four kinds of text, in English or Japanese
templates by the script of the words (a text with kana or kanji is read as Japanese):

- names: the class's name, Japanese names and synonyms, each one a vector averaged over a
  few prompt templates ("an illustration of {x}", 「{x}の挿絵」);
- attributes: what it has or is ("a picture of crane, long legs", 「白いの鶴の絵」);
- analogies: the classes it resembles ("a picture of crane, like heron"): those the label
  file names, plus its nearest classes by the model's own name vectors;
- differences: one-vs-one texts for each class and each of its analogous classes
  ("a picture of crane, not heron: red crown"), from the attributes one has and the other
  lacks; read only to re-rank close calls (coder.py).

Every kind is kept apart so that the bench can leave each one out.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import SashieError
from .labelfile import LabelClass, LabelSet

KINDS = ("names", "attributes", "analogies", "differences")
NAME_TEMPLATES = {
    "en": ("a picture of {x}", "an illustration of {x}", "a drawing of {x}"),
    "ja": ("{x}の絵", "{x}の挿絵", "{x}を描いた絵"),
}
ATTRIBUTE_TEMPLATE = {"en": "a picture of {c}, {a}", "ja": "{a}の{c}の絵"}
ANALOGY_TEMPLATE = {"en": "a picture of {c}, like {b}", "ja": "{b}に似た{c}の絵"}
DIFFERENCE_TEMPLATE = {"en": "a picture of {c}, not {b}: {o}", "ja": "{b}ではなく{o}の{c}の絵"}
PLAIN_DIFFERENCE = {"en": "a picture of {c}, not {b}", "ja": "{b}ではない{c}の絵"}
ANALOGIES = 3  # nearest classes added as analogies to each class
DIFFERENCES = 4  # one-vs-one texts per ordered pair, at most

_JAPANESE = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uf900-\ufaff\uff66-\uff9f]")

Encode = Callable[[Sequence[str]], np.ndarray]  # texts -> unit rows (an encoder's encode_texts)


def language(text: str) -> str:
    """ "ja" for a text with kana or kanji, else "en"."""
    return "ja" if _JAPANESE.search(text) else "en"


def name_in(cls: LabelClass, lang: str) -> str:
    """The class's name in a language: its Japanese name for "ja" when it has one."""
    if lang == "ja":
        return cls.ja[0] if cls.ja else cls.name
    if language(cls.name) == "en":
        return cls.name
    return next((s for s in cls.synonyms if language(s) == "en"), cls.name)


@dataclass
class TextBank:
    """The encoded texts of a label set, by class and kind.

    `names` (N x D) holds one template-averaged vector per name, `name_class` the class of
    each (ascending); `context` (C x D) the mean of each class's attribute and analogy text
    vectors, `context_count` how many there were (0: none); `prompt` (C x D) the plain
    zero-shot vector of each class (all its names and templates averaged); `differences`
    (P x D) the mean one-vs-one vector of each ordered pair in `pairs` ((c, b) -> row)."""

    classes: tuple[str, ...]
    names: np.ndarray
    name_class: np.ndarray
    context: np.ndarray
    context_count: np.ndarray
    prompt: np.ndarray
    differences: np.ndarray
    pairs: dict[tuple[int, int], int]
    texts: list[tuple[int, str, str]] = field(default_factory=list)  # (class, kind, text)
    text_vectors: np.ndarray | None = None  # the texts' own vectors (the CODER vector's axes)

    @property
    def dim(self) -> int:
        return self.prompt.shape[1]

    @property
    def name_slots(self) -> np.ndarray:
        """(classes x K) rows of `names`: each class's names, its first repeated to fill K,
        the most names a class has (so a maximum over names is K element-wise maxima)."""
        counts = np.bincount(self.name_class, minlength=len(self.classes))
        starts = np.r_[0, np.cumsum(counts)[:-1]]
        k = np.arange(max(int(counts.max(initial=1)), 1))
        return starts[:, None] + np.where(k[None, :] < counts[:, None], k[None, :], 0)

    def without(self, kind: str) -> TextBank:
        """The same bank with one kind of text left out (the bench's ablation)."""
        if kind not in KINDS:
            raise ValueError(f"unknown text kind {kind!r}")
        if kind == "differences":
            return _replace(self, differences=self.differences[:0], pairs={})
        if kind == "names":  # only each class's first name is left
            first = np.r_[True, self.name_class[1:] != self.name_class[:-1]]
            return _replace(self, names=self.names[first], name_class=self.name_class[first])
        keep = [i for i, (_, k, _) in enumerate(self.texts) if k != kind]
        return _with_context(self, keep)


def build_bank(
    labels: LabelSet,
    encode: Encode,
    *,
    kinds: Collection[str] = KINDS,
    analogies: int = ANALOGIES,
    extra: Mapping[str, tuple[Sequence[str], Sequence[str]]] | None = None,
) -> TextBank:
    """Encode the texts around every class of `labels` with `encode`: names always, the
    other `kinds` when asked (the prompt method needs names only, no re-rank no differences).

    `analogies`: nearest classes (by the model's prompt vectors) added to each class's own
    similar ones; `extra`: more (synonyms, attributes) by class name, e.g. written by a
    generator the user runs (generator.py)."""
    classes = labels.classes
    extra = extra or {}
    names_of = [_unique([*c.names, *extra.get(c.name, ((), ()))[0]]) for c in classes]
    attributes_of = [_unique([*c.attributes, *extra.get(c.name, ((), ()))[1]]) for c in classes]

    name_texts: list[list[str]] = []
    name_class: list[int] = []
    for index, class_names in enumerate(names_of):
        for name in class_names:
            name_texts.append([t.format(x=name) for t in NAME_TEMPLATES[language(name)]])
            name_class.append(index)
    flat = [t for group in name_texts for t in group]
    flat_vectors = encode(flat) if flat else np.zeros((0, 0), np.float32)
    sizes = [len(group) for group in name_texts]
    names = _unit(np.add.reduceat(flat_vectors, np.r_[0, np.cumsum(sizes)[:-1]]))
    name_class_arr = np.asarray(name_class, np.int64)
    prompt = _unit(_mean_by(names, name_class_arr, len(classes)))

    similar = _analogous(labels, prompt, analogies)
    texts: list[tuple[int, str, str]] = []
    for index, cls in enumerate(classes):
        for attribute in attributes_of[index] if "attributes" in kinds else ():
            lang = language(attribute)
            texts.append(
                (
                    index,
                    "attributes",
                    ATTRIBUTE_TEMPLATE[lang].format(c=name_in(cls, lang), a=attribute),
                )
            )
        for other in similar[index] if "analogies" in kinds else ():
            lang = language(other)
            texts.append(
                (index, "analogies", ANALOGY_TEMPLATE[lang].format(c=name_in(cls, lang), b=other))
            )
    text_vectors = encode([t for _, _, t in texts]) if texts else np.zeros((0, prompt.shape[1]))

    pairs, difference_texts = (
        _difference_texts(labels, similar, attributes_of) if "differences" in kinds else ([], [])
    )
    bank = TextBank(
        classes=tuple(c.name for c in classes),
        names=names,
        name_class=name_class_arr,
        context=np.zeros_like(prompt),
        context_count=np.zeros(len(classes), np.int64),
        prompt=prompt,
        differences=np.zeros((len(pairs), prompt.shape[1]), np.float32),
        pairs={pair: row for row, pair in enumerate(pairs)},
        texts=texts,
        text_vectors=np.asarray(text_vectors, np.float32),
    )
    if difference_texts:
        vectors = encode([t for _, t in difference_texts])
        rows = np.asarray([row for row, _ in difference_texts], np.int64)
        bank.differences = _mean_by(vectors, rows, len(pairs)).astype(np.float32)
    return _with_context(bank, list(range(len(texts))))


def _analogous(labels: LabelSet, prompt: np.ndarray, count: int) -> list[list[str]]:
    """Each class's similar classes: those the file names, then its nearest by prompt vector."""
    classes = labels.classes
    out = [list(c.similar) for c in classes]
    if count <= 0 or len(classes) < 2:
        return out
    likeness = prompt @ prompt.T
    np.fill_diagonal(likeness, -np.inf)
    nearest = np.argsort(-likeness, axis=1, kind="stable")[:, :count]
    for index, row in enumerate(nearest):
        for other in row.tolist():
            if classes[other].name not in out[index]:
                out[index].append(classes[other].name)
    return out


def _difference_texts(
    labels: LabelSet, similar: list[list[str]], attributes_of: list[list[str]]
) -> tuple[list[tuple[int, int]], list[tuple[int, str]]]:
    """The ordered pairs (class, analogous class), both ways, and their one-vs-one texts."""
    classes = labels.classes
    index_of = {c.name: i for i, c in enumerate(classes)}
    pairs: list[tuple[int, int]] = []
    seen: set[tuple[int, int]] = set()
    for index, others in enumerate(similar):
        for other in others:
            b = index_of.get(other)
            if b is None or b == index:
                continue
            for pair in ((index, b), (b, index)):
                if pair not in seen:
                    seen.add(pair)
                    pairs.append(pair)
    texts = []
    for row, (c, b) in enumerate(pairs):
        theirs = {a.casefold() for a in attributes_of[b]}
        own: list[str | None] = [a for a in attributes_of[c] if a.casefold() not in theirs]
        for o in own[:DIFFERENCES] or [None]:
            lang = language(o) if o else language(classes[c].name)
            cls, other = classes[c], name_in(classes[b], lang)
            if o is None:
                texts.append((row, PLAIN_DIFFERENCE[lang].format(c=name_in(cls, lang), b=other)))
            else:
                texts.append(
                    (row, DIFFERENCE_TEMPLATE[lang].format(c=name_in(cls, lang), b=other, o=o))
                )
    return pairs, texts


def _with_context(bank: TextBank, keep: list[int]) -> TextBank:
    """The bank whose context means are over the texts `keep` (indices into bank.texts)."""
    classes = np.asarray([bank.texts[i][0] for i in keep], np.int64)
    assert bank.text_vectors is not None
    vectors = bank.text_vectors[keep] if keep else np.zeros((0, bank.dim), np.float32)
    count = np.bincount(classes, minlength=len(bank.classes))
    context = _mean_by(vectors, classes, len(bank.classes)).astype(np.float32)
    return _replace(
        bank,
        context=context,
        context_count=count,
        texts=[bank.texts[i] for i in keep],
        text_vectors=np.asarray(vectors, np.float32),
    )


def _replace(bank: TextBank, **changes) -> TextBank:
    values = {**bank.__dict__, **changes}
    return TextBank(**values)


def _mean_by(vectors: np.ndarray, groups: np.ndarray, count: int) -> np.ndarray:
    """Mean of the rows of each group 0..count-1 (zero rows for an empty group)."""
    out = np.zeros((count, vectors.shape[1] if vectors.ndim == 2 else 0), np.float64)
    if len(groups):
        np.add.at(out, groups, vectors)
        out /= np.maximum(np.bincount(groups, minlength=count), 1)[:, None]
    return out


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def _unique(values: Sequence[str]) -> list[str]:
    return [v for v in dict.fromkeys(values) if v]


WORDS = 20_000  # tokenizer entries read for the model's own words (BPE ids: most used first)


def model_words(encoder: object, limit: int = WORDS) -> list[str]:
    """Whole words of the model's tokenizer vocabulary (at most `limit` entries read, in id
    order): the words the model itself knows, for `nearest_words`."""
    tokenizer: Any = getattr(encoder, "tokenizer", None)
    if tokenizer is None:  # a model version's encoder wraps the model's own
        tokenizer = getattr(getattr(encoder, "inner", None), "tokenizer", None)
    hf: Any = getattr(tokenizer, "tokenizer", tokenizer)  # open_clip may wrap a Hugging Face one
    if hasattr(hf, "get_vocab") and hasattr(hf, "convert_tokens_to_string"):
        entries = sorted(hf.get_vocab().items(), key=lambda kv: kv[1])[:limit]
        texts = [hf.convert_tokens_to_string([token]) for token, _ in entries]
    elif isinstance(getattr(tokenizer, "encoder", None), dict):  # open_clip's SimpleTokenizer
        entries = sorted(tokenizer.encoder.items(), key=lambda kv: kv[1])[:limit]
        texts = [token[: -len("</w>")] for token, _ in entries if token.endswith("</w>")]
    else:
        raise SashieError("cannot list the words of this model's tokenizer (--nearest-words)")
    # a tokenizer that marks where words start or end (a space, once decoded) says which
    # Latin pieces are whole words: "ing" is a piece of one, " drawing" a word
    marked = any(t != t.strip() for t in texts)
    words, seen = [], set()
    for text in texts:
        word = text.strip()
        japanese = language(word) == "ja"
        if marked and not japanese and text == word:
            continue
        if len(word) >= (2 if japanese else 3) and word.isalpha() and word.casefold() not in seen:
            seen.add(word.casefold())
            words.append(word)
    return words


def nearest_words(
    labels: LabelSet, encode: Encode, words: Sequence[str], count: int
) -> dict[str, tuple[str, ...]]:
    """For each class, the `count` words whose prompt ("a picture of {word}", 「{word}の絵」)
    is nearest the class's own prompt vector, its own names left out: synonyms the model
    itself offers."""
    if count <= 0 or not words:
        return {}
    prompt = build_bank(labels, encode, kinds=("names",)).prompt
    texts = [NAME_TEMPLATES[language(w)][0].format(x=w) for w in words]
    vectors = np.vstack([encode(texts[i : i + 4096]) for i in range(0, len(texts), 4096)])
    likeness = prompt @ vectors.T
    out = {}
    for index, cls in enumerate(labels.classes):
        own = {n.casefold() for n in cls.names}
        chosen = [
            words[j]
            for j in np.argsort(-likeness[index], kind="stable")[: count + len(own)]
            if words[j].casefold() not in own
        ]
        out[cls.name] = tuple(chosen[:count])
    return out
