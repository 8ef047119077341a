"""The evaluation world's label file: every concept as a class, with its CLDR keywords.

Each class is a concept's English name, its Japanese name, and as attributes the Unicode
CLDR emoji keywords of its emoji in both languages (cldr_keywords.json, made by
scripts/cldr_keywords.py; Unicode licence in CLDR-LICENSE.txt). Nothing in it comes from the
held-out names beyond the names themselves: a held-out class is named as a curator would
name it, and the keywords are CLDR's.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from functools import lru_cache
from importlib import resources
from pathlib import Path

from ...classify.labelfile import LabelClass, LabelSet
from .artists import Concept


@lru_cache(maxsize=1)
def cldr_keywords() -> dict[str, dict[str, list[str]]]:
    """The CLDR emoji keywords of every world concept, English and Japanese, by concept key."""
    text = resources.files(__package__).joinpath("cldr_keywords.json").read_text("utf-8")
    return json.loads(text)


def world_label_set(concepts: Sequence[Concept], name: str = "world") -> LabelSet:
    """The label set of these concepts: EN name, JA name, CLDR keywords as attributes."""
    keywords = cldr_keywords()
    classes = []
    for c in concepts:
        words = keywords.get(c.key, {})
        own = {c.en.casefold(), c.ja.casefold()}
        attributes = [
            w for w in (*words.get("en", []), *words.get("ja", [])) if w.casefold() not in own
        ]
        classes.append(LabelClass(name=c.en, ja=(c.ja,), attributes=tuple(_unique(attributes))))
    return LabelSet(name=name, classes=tuple(classes))


def write_label_file(path: Path, concepts: Sequence[Concept]) -> None:
    """The concepts' label set as a CSV label file (`sashie classify --labels`)."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["name", "ja", "attributes"])
        for c in world_label_set(concepts).classes:
            writer.writerow([c.name, "|".join(c.ja), "|".join(c.attributes)])


def _unique(values: Sequence[str]) -> list[str]:
    out: list[str] = []
    for value in values:
        if value.casefold() not in {v.casefold() for v in out}:
            out.append(value)
    return out
