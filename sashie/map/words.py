"""Words that name a map's clusters when the library has no label set: the model's own
vocabulary (the whole words its tokenizer holds), each cluster given the words nearest to what
sets it apart from the rest of the collection."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

MOST_WORDS = 4000  # vocabulary words encoded (the tokenizer's first, most of them its commonest)
SHOWN = 3  # words a cluster is named by


def vocabulary(tokenizer: object, most: int = MOST_WORDS) -> list[str]:
    """Whole words in a tokenizer (a Hugging Face or open_clip one), in its own order: where its
    tokens mark the start or end of a word (GPT-2's "Ġ", SentencePiece's "▁", CLIP's "</w>"),
    the marked ones of three letters or more, so that no piece of a word is taken for one;
    and single tokens of unspaced scripts (Japanese) whole. [] for a tokenizer without words."""
    inner = getattr(tokenizer, "tokenizer", tokenizer)
    size = len(inner) if hasattr(inner, "__len__") else len(getattr(inner, "encoder", ()))
    if not size or not hasattr(inner, "decode"):
        return []
    pieces = _pieces(inner, size)
    ends = any(p.endswith("</w>") for p in pieces)  # CLIP's: a marked piece ends a word
    starts = any(p.startswith(("Ġ", "▁")) for p in pieces)
    decoded = [inner.decode([token_id]).strip().lower() for token_id in range(size)]
    # where a word's end is not marked, a piece that a longer token goes on from by three
    # letters or more ("illustra" of "illustration") is taken for a piece of a word ("old" of
    # "older" is not)
    beginnings = (
        set() if ends else {w[:n] for w in decoded if w.isascii() for n in range(3, len(w) - 2)}
    )
    words: dict[str, None] = {}
    for word, piece in zip(decoded, pieces, strict=True):
        if not word.isalpha() or (len(word) == 1 and _kana(word)):
            continue
        if word.isascii():
            if len(word) < 3 or word in beginnings:
                continue
            if (ends and not piece.endswith("</w>")) or (
                starts and not ends and not _marked(piece)
            ):
                continue
        words.setdefault(word)
        if len(words) >= most:
            break
    return list(words)


def _kana(text: str) -> bool:
    return all("\u3040" <= ch <= "\u30ff" for ch in text)


def _pieces(inner: object, size: int) -> list[str]:
    convert = getattr(inner, "convert_ids_to_tokens", None)
    if convert is not None:
        return [str(p) for p in convert(list(range(size)))]
    decoder = getattr(inner, "decoder", None)  # open_clip's own BPE: id -> piece
    if isinstance(decoder, dict):
        return [str(decoder.get(i, "")) for i in range(size)]
    return [""] * size


def _marked(piece: str) -> bool:
    return piece.startswith(("Ġ", "▁")) or piece.endswith("</w>")


def cluster_words(
    members: Sequence[np.ndarray], word_vectors: np.ndarray, words: list[str]
) -> list[list[str]]:
    """For each cluster (its members' vectors), the SHOWN words nearest to its mean less the
    mean of all clusters: what is particular to it rather than to the whole collection."""
    if not words or not len(members):
        return [[] for _ in members]
    means = np.stack(
        [_unit(m.mean(axis=0)) if len(m) else np.zeros(word_vectors.shape[1]) for m in members]
    )
    particular = means - means.mean(axis=0)
    scores = particular @ _unit(word_vectors).T
    return [[words[int(i)] for i in np.argsort(-row)[:SHOWN]] for row in scores]


def _unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, np.float32)
    norm = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.maximum(norm, 1e-12)
