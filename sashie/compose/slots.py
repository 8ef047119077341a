"""Pseudo-words in a frozen text tower: the prompt "a picture of *" read with learned token
embeddings in place of the `*`.

The model input is assembled from the tokenizer's pieces: its start tokens, the words before
the `*`, one slot per pseudo-token, the words after, its end tokens, so every position the
model derives from the ids (the end-of-text token a CLIP text model pools at, the attention
mask, the padding) is where it would be for real words in the slots' place. A forward hook on
the tower's token embedding then swaps the slots' embeddings for the learned ones. This works
for any `TrainableEncoder` (its text in two steps: `tokenize`, `features_of_tokens`) whose
text tower has one token-embedding table: Hugging Face CLIPModel, remote-code models with
their own text towers, open_clip. Other models raise `CannotTakeTokens` (composed search
then falls back to the `sum` method).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Sequence

import torch
from torch import nn

from ..encoders import Encoder, TrainableEncoder
from ..errors import SashieError

PLACEHOLDER = "*"


class CannotTakeTokens(SashieError):
    """The model's text tower cannot read pseudo-word embeddings."""


class TokenSlots:
    """A frozen text tower that reads `tokens` (B, M, E) in place of each prompt's `*`."""

    def __init__(self, encoder: Encoder) -> None:
        inner = getattr(encoder, "inner", encoder)  # a version's encoder: its text tower
        self.model_id = encoder.model_id
        if not isinstance(inner, TrainableEncoder):
            raise CannotTakeTokens(
                f"the model {encoder.model_id} cannot take pseudo-word tokens (its encoder "
                "does not expose its tokenizer and text tower)"
            )
        self._inner = inner
        self.embedding = _token_embedding(inner)
        self.width = self.embedding.embedding_dim
        self._words = _word_ids(inner)
        empty = inner.tokenize([""])
        self._fixed_length = "attention_mask" not in empty  # open_clip: always 77 ids
        self._length = int(empty["input_ids"].shape[1]) if self._fixed_length else None
        self._limit = self._length or int(getattr(inner, "max_text_tokens", 77))
        self._pad = _pad_id(inner, empty["input_ids"][0].tolist())
        self._start, self._end = self._specials()
        self._slot = (self._words("*") or [self._pad])[0]  # any word id (not end-of-text)
        self._pending = threading.local()  # per thread: a server encodes in several at once
        self.embedding.register_forward_hook(self._replace)

    @property
    def vocabulary(self) -> torch.Tensor:
        """The tower's word embeddings (V, E), detached."""
        return self.embedding.weight.detach()

    def freeze(self) -> None:
        """No gradients for the text tower's own weights (only the tokens learn)."""
        for parameter in self._inner.model.parameters():
            parameter.requires_grad_(False)

    def word_ids(self, text: str) -> list[int]:
        """The tokenizer's ids for `text`, without start or end tokens."""
        return self._words(text)

    def encode(self, prompts: Sequence[str], tokens: torch.Tensor) -> torch.Tensor:
        """Text features (B, D), not normalised, of the prompts with their `*` read as the
        rows of `tokens` (B, M, E); differentiable with respect to `tokens`."""
        count = tokens.shape[1]
        rows = [self._assemble(p, count) for p in prompts]
        longest = self._length or max(len(ids) for ids, _ in rows)
        if max(len(ids) for ids, _ in rows) > self._limit:
            raise SashieError(
                "the words are too long to fit the model's text length with the picture's "
                "tokens; use fewer words"
            )
        ids = torch.full((len(rows), longest), self._pad, dtype=torch.long)
        attention = torch.zeros((len(rows), longest), dtype=torch.long)
        slots = torch.zeros((len(rows), longest), dtype=torch.bool)
        for r, (row, at) in enumerate(rows):
            ids[r, : len(row)] = torch.tensor(row)
            attention[r, : len(row)] = 1
            slots[r, at : at + count] = True
        device = self._inner.device
        model_input = {"input_ids": ids.to(device)}
        if not self._fixed_length:
            model_input["attention_mask"] = attention.to(device)
        self._pending.value = (slots.to(device), tokens.reshape(-1, tokens.shape[-1]))
        try:
            return self._inner.features_of_tokens(model_input)
        finally:
            self._pending.value = None

    def _assemble(self, prompt: str, count: int) -> tuple[list[int], int]:
        """The ids of the prompt with `count` slots for its `*`, and where the slots start."""
        before, star, after = prompt.partition(PLACEHOLDER)
        if not star:
            raise ValueError(f"a prompt needs a {PLACEHOLDER!r}: {prompt!r}")
        head = self._start + (self._words(before.rstrip()) if before.strip() else [])
        return head + [self._slot] * count + self._words(after) + self._end, len(head)

    def _specials(self) -> tuple[list[int], list[int]]:
        """The tokenizer's start and end tokens: what it puts around the words of "a"."""
        made = self._inner.tokenize(["a"])
        row = made["input_ids"][0].tolist()
        if "attention_mask" in made:
            row = row[: int(made["attention_mask"][0].sum())]
        else:
            while row and row[-1] == self._pad:
                row.pop()
        bare = self._words("a")
        for i in range(len(row) - len(bare) + 1):
            if row[i : i + len(bare)] == bare:
                return row[:i], row[i + len(bare) :]
        raise CannotTakeTokens(f"cannot read how the tokenizer of {self.model_id} marks a text")

    def _replace(self, module: nn.Module, inputs: tuple, output: torch.Tensor):
        pending = getattr(self._pending, "value", None)
        if pending is None or output.shape[:2] != pending[0].shape:
            return None
        mask, rows = pending
        replaced = output.clone()
        replaced[mask] = rows.to(device=output.device, dtype=output.dtype)
        return replaced


def _word_ids(inner):
    """A function from text to the tokenizer's ids without start or end tokens, for a
    Hugging Face tokenizer or open_clip's (its own, or one wrapping a Hugging Face one)."""
    tokenizer = inner.tokenizer
    wrapped = getattr(tokenizer, "tokenizer", None)  # open_clip's HFTokenizer
    hf = wrapped if wrapped is not None and hasattr(wrapped, "encode") else tokenizer
    try:
        hf.encode("a", add_special_tokens=False)
        return lambda text: list(hf.encode(text, add_special_tokens=False))
    except TypeError:
        pass
    if hasattr(tokenizer, "encode"):  # open_clip's SimpleTokenizer: no special tokens
        return lambda text: list(tokenizer.encode(text))
    raise CannotTakeTokens(f"cannot split words into tokens for {inner.model_id}")


def _pad_id(inner, empty: list[int]) -> int:
    pad = getattr(inner.tokenizer, "pad_token_id", None)
    if isinstance(pad, int):
        return pad
    return empty[-1] if len(empty) > 2 else 0  # open_clip pads with 0


def _token_embedding(inner) -> nn.Embedding:
    """The text tower's token-embedding table: the one embedding whose rows are the
    tokenizer's vocabulary (not positions, token types or image patches)."""
    model: nn.Module = inner.model
    vocab = _vocabulary_size(inner)
    candidates = [
        module
        for name, module in model.named_modules()
        if isinstance(module, nn.Embedding)
        and not any(word in name.lower() for word in ("position", "type", "vision", "visual"))
        and (vocab is None or module.num_embeddings >= vocab)
    ]
    if len(candidates) != 1:
        raise CannotTakeTokens(
            f"cannot find the token-embedding table of {inner.model_id}'s text tower "
            f"({len(candidates)} candidates)"
        )
    return candidates[0]


def _vocabulary_size(inner) -> int | None:
    tokenizer = getattr(inner, "tokenizer", None)
    for source in (tokenizer, getattr(tokenizer, "tokenizer", None)):
        try:
            return len(source)  # type: ignore[arg-type]
        except TypeError:
            continue
    size = getattr(tokenizer, "vocab_size", None)
    return size if isinstance(size, int) else None


_MADE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # by encoder
_MAKING = threading.Lock()


def token_slots(encoder: Encoder) -> TokenSlots:
    """The encoder's TokenSlots, made once (its hook stays on the encoder's text tower)."""
    with _MAKING:
        slots = _MADE.get(encoder)
        if slots is None:
            slots = _MADE[encoder] = TokenSlots(encoder)
    return slots
