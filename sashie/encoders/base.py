"""The encoder interface every backend gives, and the helpers they share.

`preprocess` one image into model input (thread-safe, so pages are decoded and prepared in
parallel workers while the model runs; `preparer` gives the same as a small picklable
function, for worker processes that hold no model), `encode_pixels` a batch of those,
`encode_texts`, and `encode_images` for convenience; all return L2-normalized float32 rows.
`dim` is the vector size and `model_id` a stable name that changes when the weights change.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
from PIL import Image

from ..errors import SashieError

if TYPE_CHECKING:
    import torch


class Encoder(Protocol):
    model_id: str
    dim: int
    image_size: int  # side of the square the model sees; crops far larger are reduced first
    device: str

    def preprocess(self, image: Image.Image) -> np.ndarray: ...

    def preparer(self) -> Callable[[Image.Image], np.ndarray]: ...

    def encode_pixels(self, pixels: np.ndarray, batch_size: int | None = None) -> np.ndarray: ...

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray: ...

    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray: ...


@runtime_checkable
class TrainableEncoder(Encoder, Protocol):
    """An `Encoder` whose torch model can be trained: what adaptation, composed search and
    the demo model's trainers use. Its raw features keep gradients where they are enabled;
    its text tower runs in two steps (`tokenize`, then `features_of_tokens`), so that
    composed search can put pseudo-words between them. `TorchEncoder` is one."""

    model: Any  # the backend's torch module: its parameters are trained and saved
    dtype: torch.dtype

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]: ...

    def features_of_tokens(self, tokens: dict[str, torch.Tensor]) -> torch.Tensor: ...

    def text_features(self, texts: list[str]) -> torch.Tensor: ...

    def image_features(self, pixels: torch.Tensor) -> torch.Tensor: ...

    def logit_scale(self) -> float | None: ...

    def to_float32(self) -> None: ...


def trainable(encoder: Encoder) -> TrainableEncoder:
    """The encoder, when it can be trained; else an error that says so."""
    if not isinstance(encoder, TrainableEncoder):
        raise SashieError(
            f"the model {encoder.model_id} cannot be trained here (its encoder does not "
            "expose a torch model)"
        )
    return encoder


def pick_device(device: str | None) -> str:
    import torch

    if device:
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise SashieError("--device cuda asked for, but no CUDA device is available")
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


def normalize_rows(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norms, 1e-12)
