"""How people put a caption in a query, and the words a tuned text encoder must keep.

Used by training (captions are drawn in these phrasings, anchors are held in place) and by
a version's example memory (which recognises a taught caption in a query).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

ANCHOR_TEXTS = 4096  # the model's own words whose meaning training keeps


def phrasings(text: str) -> list[str]:
    """A caption as people put it in a query: alone, or in a phrase of its script. Training
    draws one of these for each pair, so that a word taught as 几帳 is also learnt in 几帳の挿絵."""
    if text.isascii():
        return [text, f"an illustration of {text}", f"a picture of {text}", f"a drawing of {text}"]
    return [text, f"{text}の挿絵", f"{text}の絵", f"{text}の図"]


def vocabulary_anchors(
    tokenizer, captions: Sequence[str], *, count: int = ANCHOR_TEXTS, seed: int = 0
) -> list[str]:
    """Texts whose meaning the tuned text encoder must keep: words of the model's own
    tokenizer (any model's, any language), half alone and half in a query's phrase ("an
    illustration of w", "wの挿絵"), leaving out every word that the captions use (those are
    meant to move); and each word of a many-word English caption in the company of 8 others
    ("frowning face" is taught; "sun with face" must not follow it)."""
    inner = getattr(tokenizer, "tokenizer", tokenizer)  # open_clip wraps HF tokenizers
    size = len(inner) if hasattr(inner, "__len__") else len(getattr(inner, "encoder", ()))
    if not size or not hasattr(inner, "decode"):
        return []
    taught = " ".join(captions).lower()
    words = set()
    for token_id in range(size):
        word = inner.decode([token_id]).strip().lower()
        if len(word) >= 2 and word.isalpha() and word not in taught:
            words.add(word)
    rng = np.random.default_rng(seed)
    chosen = sorted(words)
    chosen = [chosen[i] for i in rng.permutation(len(chosen))[:count]]
    texts = [w if i % 2 == 0 else phrasings(w)[1] for i, w in enumerate(chosen)]
    # the words of a many-word caption in other company ("frowning face" is taught, "sun with
    # face" must stay): only the caption itself should move
    ascii_words = [w for w in chosen if w.isascii()]
    shared = sorted(
        {
            w
            for c in captions
            if c.isascii() and len(c.split()) > 1
            for w in c.lower().split()
            if len(w) >= 3
        }
    )
    for n, word in enumerate(shared):
        for i, other in enumerate(ascii_words[n * 8 : (n + 1) * 8]):
            texts.append(phrasings(f"{other} with {word}" if i % 2 else f"{word} {other}")[i % 2])
    return list(dict.fromkeys(texts))  # a tokenizer may hold a phrase as one token
