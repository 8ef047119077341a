"""The fixed vocabulary split and the captions the demo model learns from.

- held-out concepts: their names never appear in any training caption (the seed paper's 几帳:
  drawings the collection holds, words the model does not know);
- query concepts: a frequent subset, seen and held-out, drawn often enough in evaluation
  collections that every benchmark metric has enough relevant items per query.
The split depends on the concept list only, never on a world's seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .artists import Concept, load_concepts

SPLIT_SEED = 2026_11_23
HELDOUT_COUNT = 60
QUERY_SEEN_COUNT = 24
QUERY_HELDOUT_COUNT = 12
QUERY_SHARE = 0.7  # share of drawn concepts that are query concepts in evaluation worlds

EN_TEMPLATES = (
    "{x}",
    "a picture of {x}",
    "an illustration of {x}",
    "a drawing of {x}",
    "{style_en} of {x}",
    "an old book illustration of {x}",
    "a page with {x}",
)
JA_TEMPLATES = (
    "{x}",
    "{x}の絵",
    "{x}の挿絵",
    "{x}を描いた絵",
    "{style_ja}{x}の絵",
    "古い本の{x}の挿絵",
)
STYLE_EN = {
    "ink": ("an ink illustration", "a woodblock print", "a monochrome drawing"),
    "colour": ("a hand-coloured illustration", "a coloured drawing", "a colour print"),
    "flat": ("a flat colour picture", "a clip-art picture", "an icon"),
}
STYLE_JA = {
    "ink": ("墨摺の", "木版の", "白黒の"),
    "colour": ("彩色の", "色刷りの", "手彩色の"),
    "flat": ("イラストの", "アイコンの", "カラーの"),
}
NON_PICTURES = {
    "text": (
        ("a page of text", "vertical japanese text", "handwriting", "a column of writing"),
        ("文字", "本文の頁", "縦書きの文字", "くずし字"),
    ),
    "stain": (
        ("a stain on old paper", "a damaged page", "a water stain"),
        ("紙の染み", "汚れた頁", "虫損"),
    ),
    "blank": (("blank paper", "an empty page", "plain old paper"), ("白紙", "空白の頁", "古い紙")),
}


@dataclass(frozen=True)
class Vocabulary:
    concepts: tuple[Concept, ...]
    heldout: frozenset[str]  # concept keys
    query_seen: tuple[str, ...]
    query_heldout: tuple[str, ...]

    @property
    def by_key(self) -> dict[str, Concept]:
        return {c.key: c for c in self.concepts}

    @property
    def seen(self) -> tuple[Concept, ...]:
        return tuple(c for c in self.concepts if c.key not in self.heldout)

    @property
    def query(self) -> tuple[str, ...]:
        return self.query_seen + self.query_heldout

    def as_dict(self) -> dict:
        return {
            "split_seed": SPLIT_SEED,
            "concepts": len(self.concepts),
            "heldout": sorted(self.heldout),
            "query_seen": list(self.query_seen),
            "query_heldout": list(self.query_heldout),
            "query_share": QUERY_SHARE,
        }


def vocabulary() -> Vocabulary:
    concepts = load_concepts()
    order = np.random.default_rng(SPLIT_SEED).permutation(len(concepts))
    keys = [concepts[i].key for i in order]
    heldout = keys[:HELDOUT_COUNT]
    return Vocabulary(
        concepts,
        frozenset(heldout),
        tuple(keys[HELDOUT_COUNT : HELDOUT_COUNT + QUERY_SEEN_COUNT]),
        tuple(heldout[:QUERY_HELDOUT_COUNT]),
    )


def join_names(names: list[str], language: str) -> str:
    if language == "ja":
        return "と".join(names)
    if len(names) == 1:
        return names[0]
    return ", ".join(names[:-1]) + " and " + names[-1]


def caption(rng: np.random.Generator, concepts: list[Concept], style: str, language: str) -> str:
    """A varied caption naming the concepts ("a woodblock print of a crane and a pine")."""
    names = [c.ja if language == "ja" else c.en for c in concepts]
    return caption_of(rng, names, style, language)


def caption_of(rng: np.random.Generator, names: list[str], style: str, language: str) -> str:
    """A varied caption of these wordings of the concepts, in this language."""
    x = join_names(names, language)
    if language == "ja":
        template = JA_TEMPLATES[int(rng.integers(len(JA_TEMPLATES)))]
        return template.format(x=x, style_ja=STYLE_JA[style][int(rng.integers(3))])
    template = EN_TEMPLATES[int(rng.integers(len(EN_TEMPLATES)))]
    return template.format(x=x, style_en=STYLE_EN[style][int(rng.integers(3))])


def non_picture_caption(rng: np.random.Generator, kind: str, language: str) -> str:
    english, japanese = NON_PICTURES[kind]
    options = japanese if language == "ja" else english
    return options[int(rng.integers(len(options)))]
