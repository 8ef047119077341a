"""Queries: from what the user typed to a query vector and, for several images, a set of dims.

A query is a sum of weighted terms, each a text or an image (path or URL), written as rclip
writes them: `"crane" + pine.jpg - 0.5*"handwriting"`. A bare term is an image when it names an
existing file or an image URL, else text; quotes force text. Images given with `--image` are
added as terms of weight 1.

When two or more images are summed with positive weight, the query follows the seed paper's
multi-image method: the dimensions where the examples agree most (lowest coefficient of
variation, or a seeded random draw as the control) are kept, and both the query and every
library vector are restricted to them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..encoders import Encoder, normalize_rows
from ..errors import BadInput, SashieError
from ..sources.images import IMAGE_EXTENSIONS, is_url, load_image
from .ranking import cv_dimensions, random_dimensions

DEFAULT_DIMS = 192  # the seed paper's d for D = 512
SELECTIONS = ("cv", "random")  # lowest coefficient of variation; the paper's random control
DEFAULT_SELECT = "cv"
DEFAULT_MODIFY_WEIGHT = 0.5  # the `sum` composition's text weight, chosen on seed 2000 (docs)
# How a picture is changed by words: `sum` adds the vectors; `tokens` turns the picture into
# pseudo-words read with the words by the text tower; `light` does so from a light query-side
# encoder's vector (sashie/compose); `auto`: `tokens` when the library has a composer for the
# active model version, else `sum`.
MODIFY_METHODS = ("auto", "sum", "tokens", "light")
MAX_WEIGHT = 1000.0  # a term's weight; larger ones overflow float32 sums into inf and NaN


@dataclass(frozen=True)
class Term:
    weight: float
    kind: str  # "text", "image", or "vector" (an item of the library as an example)
    value: str | Image.Image | np.ndarray  # the text, an image (path, URL, decoded), a vector


@dataclass(frozen=True)
class Query:
    vector: np.ndarray  # float32, not yet restricted to dims
    dims: np.ndarray | None  # selected dimensions, or None for all
    terms: tuple[Term, ...]  # empty for a query made from a plain vector
    note: str | None = None  # something the user should know (a method that fell back)

    @property
    def text_only(self) -> bool:
        """Made of words alone (a taught caption's remembered examples may then join in)."""
        return bool(self.terms) and all(t.kind == "text" for t in self.terms)


def parse_ids(text: str | None) -> list[int]:
    """ "12,40,41" -> [12, 40, 41]: item ids (example, relevant or irrelevant items), each a
    non-negative 64-bit integer; one-line error otherwise."""
    try:
        ids = [int(part) for part in (text or "").split(",") if part.strip()]
    except ValueError:
        raise SashieError(f"item ids like 12,40,41, not {(text or '')[:40]!r}") from None
    if any(not 0 <= i < 2**63 for i in ids):
        raise SashieError("no such item")
    return ids


_WEIGHT = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*\*\s*(.+)$", re.S)


def parse_query(text: str, *, files: bool = True) -> list[Term]:
    """Split `a + b - 2*c` into weighted terms; ` + ` and ` - ` inside quotes stay text.
    `files=False`: every term is text, and nothing is looked up on disk (the web server)."""
    terms: list[Term] = []
    sign, buffer, quote = 1.0, "", None
    i = 0
    while i < len(text):
        char = text[i]
        if quote:
            quote = None if char == quote else quote
        elif char in "\"'":
            quote = char
        elif char in "+-" and text[i - 1 : i] == " " and text[i + 1 : i + 2] == " ":
            terms.append(_term(sign, buffer, files))
            sign, buffer = (1.0 if char == "+" else -1.0), ""
            i += 1
            continue
        buffer += char
        i += 1
    terms.append(_term(sign, buffer, files))
    return [t for t in terms if t.value]


def _term(sign: float, raw: str, files: bool) -> Term:
    raw = raw.strip()
    weight = 1.0
    match = _WEIGHT.match(raw)
    if match:
        weight, raw = float(match.group(1)), match.group(2).strip()
        if weight > MAX_WEIGHT:
            raise SashieError(f"a term's weight must be at most {MAX_WEIGHT:g}")
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "\"'":
        return Term(sign * weight, "text", raw[1:-1].strip())
    if files and _looks_like_image(raw):
        return Term(sign * weight, "image", raw)
    return Term(sign * weight, "text", raw)


def _looks_like_image(value: str) -> bool:
    """An image URL, an existing file, or a name ending like an image file (even if missing,
    so that a typo gets a 'not found' error rather than a silent text search)."""
    if Path(value.split("?", 1)[0]).suffix.lower() in IMAGE_EXTENSIONS and " " not in value:
        return True
    try:
        return not is_url(value) and Path(value).expanduser().is_file()
    except (OSError, RuntimeError, ValueError):  # a name too long, ~nosuchuser, a NUL byte
        return False


def parse_dims(value: str | int | None) -> int | None:
    """`--dims`: a positive count, or `all` (None) to keep every dimension."""
    if value is None or value == "all":
        return None
    try:
        d = int(value)
    except (TypeError, ValueError):
        raise SashieError(f"--dims must be a positive number or 'all', not {value!r}") from None
    if d <= 0:
        raise SashieError(f"--dims must be a positive number or 'all', not {d}")
    return d


def build_query(
    encoder: Encoder,
    terms: list[Term],
    *,
    dims: int | None = DEFAULT_DIMS,
    select: str = DEFAULT_SELECT,
    seed: int = 0,
) -> Query:
    """Encode the terms and combine them; select dimensions when several images are summed."""
    if not terms:
        raise SashieError("empty query: give a text, an --image, or both")
    if select not in SELECTIONS:
        raise SashieError(f"--select must be 'cv' or 'random', not {select!r}")
    vectors = np.zeros((len(terms), encoder.dim), np.float32)
    texts = [(i, t.value) for i, t in enumerate(terms) if t.kind == "text"]
    if texts:
        vectors[[i for i, _ in texts]] = encoder.encode_texts([str(v) for _, v in texts])
    images = [
        (i, t.value)
        for i, t in enumerate(terms)
        if t.kind == "image" and not isinstance(t.value, np.ndarray)
    ]
    if images:
        vectors[[i for i, _ in images]] = encoder.encode_images([query_image(v) for _, v in images])
    for i, t in enumerate(terms):
        if t.kind == "vector":  # an item's stored vector: already in the library's space
            vectors[i] = normalize_rows(np.asarray(t.value, np.float32))
    weights = np.array([t.weight for t in terms], np.float32)
    examples = [i for i, t in enumerate(terms) if t.kind != "text" and t.weight > 0]

    selected = None
    if len(examples) >= 2 and dims is not None:
        if select == "cv":
            selected = cv_dimensions(vectors[examples], dims)
        else:
            selected = random_dimensions(encoder.dim, dims, seed)
    if len(examples) >= 2:
        # the examples' weighted mean stands for them, as one term
        example_weights = weights[examples]
        mean = (example_weights[:, None] * vectors[examples]).sum(0) / example_weights.sum()
        others = [i for i in range(len(terms)) if i not in examples]
        combined = mean + (weights[others, None] * vectors[others]).sum(0)
    else:
        combined = (weights[:, None] * vectors).sum(0)
    if not np.any(combined):
        raise SashieError("the query's terms cancel out; nothing is left to search for")
    return Query(normalize_rows(combined), selected, tuple(terms))


def modified(query: Query, encoder: Encoder, change: str, weight: float) -> Query:
    """Composed search by the `sum` method, the baseline of composed retrieval: a query of
    pictures changed by words ("hand-coloured", "with a plum tree") is the unit picture
    vector plus `weight` times the unit vector of the words, re-normalised. The dimensions
    selected for several pictures stay as they were."""
    change = check_change(query, change)
    if not 0 < weight <= MAX_WEIGHT:
        raise SashieError(f"the modifier's weight must be above 0 and at most {MAX_WEIGHT:g}")
    words = normalize_rows(encoder.encode_texts([change])[0])
    combined = normalize_rows(query.vector) + weight * words
    if not np.any(combined):
        raise SashieError("the picture and the words cancel out; nothing is left to search for")
    terms = (*query.terms, Term(weight, "modifier", change))
    return Query(normalize_rows(combined), query.dims, terms)


def check_change(query: Query, change: str) -> str:
    """The words of a change, whitespace tidied; an error when there are none or when the
    query has no picture to change."""
    change = " ".join(str(change).split())
    if not change:
        raise SashieError("--modify needs words that change the picture")
    if not any(t.kind in ("image", "vector") for t in query.terms):
        raise SashieError("--modify changes a picture: give an --image (or an example item) too")
    return change


def read_pictures(terms: list[Term]) -> list[Term]:
    """The terms with every picture decoded, so that a file that cannot be read is one error
    line before any model is loaded."""
    return [
        Term(t.weight, t.kind, query_image(t.value))
        if t.kind == "image" and isinstance(t.value, str | Image.Image)
        else t
        for t in terms
    ]


def query_image(uri: str | Image.Image) -> Image.Image:
    """A query picture: decoded already, or read from a path or URL (one error line)."""
    if isinstance(uri, Image.Image):
        return uri
    try:
        return load_image(str(Path(uri).expanduser()) if not is_url(uri) else uri)
    except BadInput as e:
        raise SashieError(f"cannot use query image {uri}: {e}") from None
