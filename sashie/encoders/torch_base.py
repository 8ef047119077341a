"""What every torch backend shares: device and dtype, batching, normalization."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image

from .base import normalize_rows, pick_device


class TorchEncoder:
    """Subclasses set model_id, dim, image_size and implement preprocess, _images, _tokenize
    and _text_features (two steps, so that composed search can put pseudo-words between
    them: sashie/compose/slots.py)."""

    model_id: str
    dim: int
    image_size: int
    model: Any  # the backend's torch module (its methods differ: get_image_features, ...)
    batch_size = 64

    def __init__(self, device: str | None) -> None:
        self.device = pick_device(device)
        self.dtype = torch.float16 if self.device.startswith("cuda") else torch.float32

    def _place(self, module: torch.nn.Module) -> Any:
        return module.to(device=self.device, dtype=self.dtype).eval()

    def preprocess(self, image: Image.Image) -> np.ndarray:
        return self.preparer()(image)

    def preparer(self) -> Callable[[Image.Image], np.ndarray]:
        raise NotImplementedError

    def _images(self, pixels: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        """The model's input for these texts, on its device; "input_ids" holds the ids."""
        raise NotImplementedError

    def _text_features(self, tokens: dict[str, torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def _texts(self, texts: list[str]) -> torch.Tensor:
        return self._text_features(self._tokenize(texts))

    def text_features(self, texts: list[str]) -> torch.Tensor:
        """The model's raw text features, with gradients where enabled (for trainers)."""
        return self._texts(texts)

    def image_features(self, pixels: torch.Tensor) -> torch.Tensor:
        """The model's raw image features of preprocessed pixels (for trainers)."""
        return self._images(pixels)

    @torch.inference_mode()
    def encode_pixels(self, pixels: np.ndarray, batch_size: int | None = None) -> np.ndarray:
        """Vectors of preprocessed pixels, `batch_size` at a time through the model (on CUDA
        from pinned memory, so the copy overlaps the previous batch's work)."""
        step = batch_size or self.batch_size
        cuda = self.device.startswith("cuda")
        out = []
        for start in range(0, len(pixels), step):
            chunk = torch.from_numpy(np.ascontiguousarray(pixels[start : start + step]))
            if cuda:
                chunk = chunk.pin_memory().to(self.device, self.dtype, non_blocking=True)
            else:
                chunk = chunk.to(self.device, self.dtype)
            out.append(self._images(chunk).float().cpu().numpy())
        return normalize_rows(np.concatenate(out) if out else np.zeros((0, self.dim)))

    @torch.inference_mode()
    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        out = [
            self._texts(texts[start : start + self.batch_size]).float().cpu().numpy()
            for start in range(0, len(texts), self.batch_size)
        ]
        return normalize_rows(np.concatenate(out) if out else np.zeros((0, self.dim)))

    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        if not images:
            return np.zeros((0, self.dim), np.float32)
        return self.encode_pixels(np.stack([self.preprocess(im) for im in images]))
