"""What a model version remembers of its training pairs, so that a taught word finds its kin.

One text vector per word cannot cover a thing drawn several ways (几帳 seen from the front,
folded, half hidden behind a figure), and a few hundred captions teach the text encoder a
word only approximately. The captioned pictures themselves are the best evidence of what the
word means, so a version keeps them (the Tip-Adapter idea, Zhang et al. 2022, turned to
retrieval): when a text query asks for a taught caption, each item's score gains

    weight · exp(−sharpness · (1 − max_j v·k_j))

over the captioned vectors k_j of that caption: an item very like any one annotated example
rises, however the rest of them look.

Whether a query asks for a caption is decided in the tuned text space: a caption is asked for
when the query is closer to it (alone or in a phrase: "几帳の挿絵") than to every one of the
model's own words (the anchors that training kept in place). Queries for what the model
already knew ("a cat") are nearest to their own words and are left untouched. (A model whose
tokenizer has no words, such as a byte-level test model, gets no memory: nothing would tell
its queries apart.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..adapt.phrasings import phrasings
from ..errors import Damaged
from ..store.tensor_files import read_tensors

MEMORY_FILE = "examples.safetensors"


@dataclass
class ExampleMemory:
    examples: np.ndarray  # (M, D) unit vectors of the captioned items, in the version's space
    caption_of: np.ndarray  # (M,) which caption each example carries
    caption_vectors: np.ndarray  # (P, D) each caption's phrasings through the tuned encoder
    phrasing_of: np.ndarray  # (P,) which caption each of those is a phrasing of
    anchor_vectors: np.ndarray  # (A, D) the model's own words through the tuned text encoder
    weight: float = 1.0
    sharpness: float = 5.0

    @classmethod
    def build(
        cls,
        encoder,
        examples: np.ndarray,
        captions: Sequence[str],
        anchors: Sequence[str],
        *,
        weight: float,
        sharpness: float,
    ) -> ExampleMemory:
        """From the version's encoder (tuned text), the examples' vectors in the version's
        space and their captions."""
        names, caption_of = np.unique(np.asarray(captions, dtype=object), return_inverse=True)
        said = [(n, text) for n, name in enumerate(names) for text in phrasings(str(name))]
        return cls(
            np.asarray(examples, np.float32),
            caption_of.astype(np.int32),
            encoder.encode_texts([text for _, text in said]).astype(np.float32),
            np.array([n for n, _ in said], np.int32),
            encoder.encode_texts(list(anchors)).astype(np.float32),
            weight,
            sharpness,
        )

    def asked_for(self, query: np.ndarray) -> np.ndarray:
        """The examples of the captions that `query` (a unit text vector) asks for; (0, D)
        when it asks for none."""
        nearest_word = float((self.anchor_vectors @ query).max())
        asked = self.phrasing_of[self.caption_vectors @ query >= nearest_word]
        return self.examples[np.isin(self.caption_of, asked)]

    def boost(self, query: np.ndarray) -> dict:
        """What `VectorIndex.search` / `scores` take to rank for `query` with the examples it
        asks for (none: plain inner products)."""
        return {
            "examples": self.asked_for(query),
            "weight": self.weight,
            "sharpness": self.sharpness,
        }

    def save(self, folder: Path) -> None:
        from safetensors.numpy import save_file

        save_file(
            {
                "examples": self.examples.astype(np.float16),
                "caption_of": self.caption_of,
                "caption_vectors": self.caption_vectors.astype(np.float16),
                "phrasing_of": self.phrasing_of,
                "anchor_vectors": self.anchor_vectors.astype(np.float16),
            },
            str(folder / MEMORY_FILE),
            metadata={"weight": str(self.weight), "sharpness": str(self.sharpness)},
        )

    @classmethod
    def load(cls, folder: Path, dim: int) -> ExampleMemory | None:
        """The examples saved in a version's folder (None: none), checked to fit `dim`."""
        path = folder / MEMORY_FILE
        if not path.is_file():
            return None
        arrays, meta = read_tensors(path)
        try:
            memory = cls(
                arrays["examples"].astype(np.float32),
                arrays["caption_of"],
                arrays["caption_vectors"].astype(np.float32),
                arrays["phrasing_of"],
                arrays["anchor_vectors"].astype(np.float32),
                float(meta.get("weight", 1.0)),
                float(meta.get("sharpness", 5.0)),
            )
            memory.check(dim)
        except (KeyError, ValueError, TypeError) as e:
            raise Damaged(str(path), f"not a version's examples: {e}") from None
        return memory

    def check(self, dim: int) -> None:
        """A `ValueError` unless the arrays fit each other and `dim`-dimensional vectors."""
        vectors = (self.examples, self.caption_vectors, self.anchor_vectors)
        if any(v.ndim != 2 or v.shape[1] != dim for v in vectors):
            raise ValueError(f"its vectors are not {dim}-dimensional")
        if self.caption_of.shape != (len(self.examples),) or self.phrasing_of.shape != (
            len(self.caption_vectors),
        ):
            raise ValueError("its arrays do not fit each other")
