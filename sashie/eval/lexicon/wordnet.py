"""English WordNet 3.0 as Debian's `wordnet-base` installs it: each synset's words, its
hypernyms and its gloss, from the `data.*` files (the database's own line format: offset,
lexicographer file, part of speech, words, pointers, then `| gloss`)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ...errors import SashieError

ROOT = Path("/usr/share/wordnet")
CREDIT = (
    "Princeton WordNet 3.0 (Debian package wordnet-base), under the WordNet 3.0 licence "
    "(Princeton University; free to use, copy and distribute with its notice)"
)
FILES = {"n": "data.noun", "v": "data.verb", "a": "data.adj", "r": "data.adv"}
HYPERNYM = ("@", "@i")  # a kind of, an instance of
_MARKER = re.compile(r"\((a|p|ip)\)$")  # an adjective's position mark, e.g. galore(ip)


@dataclass(frozen=True)
class Synset:
    id: str  # part of speech and offset, e.g. "n02012849"
    words: tuple[str, ...]  # its lemmas, most used first, "_" read as a space
    hypernyms: tuple[str, ...]  # ids of the synsets it is a kind or an instance of
    gloss: str  # the definition, without the examples
    lexfile: int = 0  # WordNet's lexicographer file: 5 noun.animal, 6 noun.artifact, ...


def read_synsets(parts: str = "n", root: Path = ROOT) -> dict[str, Synset]:
    """The synsets of these parts of speech (n, v, a, r), by id."""
    synsets: dict[str, Synset] = {}
    for part in parts:
        path = root / FILES[part]
        if not path.is_file():
            raise SashieError(f"no WordNet at {root}: apt-get install wordnet-base")
        with open(path, encoding="utf-8", errors="replace") as lines:
            for line in lines:
                synset = parse_line(line)
                if synset is not None:
                    synsets[synset.id] = synset
    return synsets


def parse_line(line: str) -> Synset | None:
    """One synset from a line of a `data.*` file; None for the licence header and for a
    line that does not parse."""
    if line.startswith(" "):
        return None
    data, _, gloss = line.partition(" | ")
    fields = data.split()
    try:
        offset, lexfile = fields[0], int(fields[1])
        kind, count = _part(fields[2]), int(fields[3], 16)
        words = tuple(_MARKER.sub("", w).replace("_", " ") for w in fields[4 : 4 + 2 * count : 2])
        lex_ids = fields[5 : 4 + 2 * count : 2]
        at = 4 + 2 * count
        pointers = fields[at + 1 : at + 1 + 4 * int(fields[at])]
    except (IndexError, ValueError):
        return None
    if not (offset.isdigit() and words and len(lex_ids) == count):
        return None
    if not all(len(i) == 1 and i in "0123456789abcdef" for i in lex_ids):
        return None  # the words are not where the count says
    hypernyms = tuple(
        _part(pointers[k + 2]) + pointers[k + 1]
        for k in range(0, len(pointers) - 3, 4)
        if pointers[k] in HYPERNYM
    )
    definition = gloss.split('; "')[0].strip().rstrip(";").strip()
    return Synset(kind + offset, words, hypernyms, definition, lexfile)


def hypernym_words(synsets: dict[str, Synset], synset: Synset, depth: int = 2) -> list[str]:
    """The first word of each synset above this one, nearest first, up to `depth` levels
    (the first hypernym at each level): crane -> wading bird -> bird."""
    found = []
    current = synset
    for _ in range(depth):
        above = [synsets[h] for h in current.hypernyms if h in synsets]
        if not above:
            break
        current = above[0]
        found.append(current.words[0])
    return found


def _part(letter: str) -> str:
    """A part-of-speech letter as ids use it (a satellite adjective is an adjective)."""
    return "a" if letter == "s" else letter
