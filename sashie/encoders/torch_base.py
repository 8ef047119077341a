"""What every torch backend shares: device and dtype, batching, normalization."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image

from .base import normalize_rows, pick_device


class TorchEncoder:
    """A `TrainableEncoder` (sashie/encoders/base.py). Subclasses set model_id, dim,
    image_size and implement preparer, image_features, tokenize and features_of_tokens (two
    steps, so that composed search can put pseudo-words between them:
    sashie/compose/slots.py)."""

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

    def image_features(self, pixels: torch.Tensor) -> torch.Tensor:
        """The model's raw image features of preprocessed pixels, with gradients where
        enabled."""
        raise NotImplementedError

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        """The model's input for these texts, on its device; "input_ids" holds the ids."""
        raise NotImplementedError

    def features_of_tokens(self, tokens: dict[str, torch.Tensor]) -> torch.Tensor:
        """The text tower's raw features of tokenized input."""
        raise NotImplementedError

    def text_features(self, texts: list[str]) -> torch.Tensor:
        """The model's raw text features, with gradients where enabled."""
        return self.features_of_tokens(self.tokenize(texts))

    def logit_scale(self) -> float | None:
        """The model's own contrastive temperature as a multiplier (None: it has none)."""
        scale = getattr(self.model, "logit_scale", None)
        return float(scale.detach().exp()) if isinstance(scale, torch.Tensor) else None

    def to_float32(self) -> None:
        """Train in float32 (on CUDA the model loads in float16)."""
        self.model.float()
        self.dtype = torch.float32

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
            out.append(self.image_features(chunk).float().cpu().numpy())
        return normalize_rows(np.concatenate(out) if out else np.zeros((0, self.dim)))

    @torch.inference_mode()
    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        out = [
            self.text_features(texts[start : start + self.batch_size]).float().cpu().numpy()
            for start in range(0, len(texts), self.batch_size)
        ]
        return normalize_rows(np.concatenate(out) if out else np.zeros((0, self.dim)))

    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        if not images:
            return np.zeros((0, self.dim), np.float32)
        return self.encode_pixels(np.stack([self.preprocess(im) for im in images]))
