"""A model version's encoder (see sashie/adapt): the base encoder's image features passed
through the version's visual adapter, and its tuned text encoder."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image

from ..encoders import Encoder
from .adapter import VisualAdapter, adapted


class AdaptedEncoder:
    """A version's encoder: the base image features passed through the adapter, and the tuned
    text encoder (`inner` is a base encoder whose text tensors were replaced)."""

    def __init__(self, inner: Encoder, adapter: VisualAdapter | None, version: str) -> None:
        self.inner = inner
        self.adapter = adapter
        self.version = version
        self.model_id = f"{inner.model_id}+{version}"
        self.dim = inner.dim
        self.image_size = inner.image_size
        self.device = inner.device

    def preprocess(self, image: Image.Image) -> np.ndarray:
        return self.inner.preprocess(image)

    def preparer(self) -> Callable[[Image.Image], np.ndarray]:
        return self.inner.preparer()

    def encode_pixels(self, pixels: np.ndarray, batch_size: int | None = None) -> np.ndarray:
        return adapted(self.adapter, self.inner.encode_pixels(pixels, batch_size))

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        return self.inner.encode_texts(texts)

    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        if not images:
            return np.zeros((0, self.dim), np.float32)
        return self.encode_pixels(np.stack([self.preprocess(im) for im in images]))
