"""The two small networks of composed search.

- `TokenLearner`: an image vector -> M pseudo-word embeddings in the text tower's input space
  (Pic2Word's mapping, with M tokens as ISA's; an MLP, since a stored vector has no spatial
  features to attend over). Its output is scaled by the vocabulary's own mean and spread, so
  that even untrained tokens are word-sized.
- `LightEncoder`: the asymmetric variant's query-side image encoder, a small MobileNet-style
  CNN (depthwise-separable convolutions) that reads a small square picture and predicts the
  gallery model's vector for it; trained by distillation on the library's crops.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.nn import functional as F

MEAN = np.array([0.5, 0.5, 0.5], np.float32)
STD = np.array([0.25, 0.25, 0.25], np.float32)


class TokenLearner(nn.Module):
    def __init__(self, dim: int, width: int, tokens: int, vocabulary: torch.Tensor) -> None:
        super().__init__()
        self.tokens, self.width = tokens, width
        hidden = max(dim, 2 * width * tokens)
        self.net = nn.Sequential(
            nn.Linear(dim, hidden),
            nn.GELU(),
            nn.Dropout(0.1),
            nn.Linear(hidden, tokens * width),
        )
        vocabulary = vocabulary.float()
        self.register_buffer("center", vocabulary.mean(0))
        self.register_buffer("spread", vocabulary.std(0))

    def forward(self, vectors: torch.Tensor) -> torch.Tensor:
        """(B, D) unit vectors -> (B, M, E) pseudo-word embeddings."""
        raw = self.net(vectors).view(-1, self.tokens, self.width)
        return self.center + self.spread * raw


def _separable(channels_in: int, channels_out: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(channels_in, channels_in, 3, stride, 1, groups=channels_in, bias=False),
        nn.BatchNorm2d(channels_in),
        nn.ReLU(inplace=True),
        nn.Conv2d(channels_in, channels_out, 1, bias=False),
        nn.BatchNorm2d(channels_out),
        nn.ReLU(inplace=True),
    )


class LightEncoder(nn.Module):
    def __init__(self, dim: int, side: int, width: int = 24) -> None:
        super().__init__()
        self.side = side
        w = width
        self.features = nn.Sequential(
            nn.Conv2d(3, w, 3, 2, 1, bias=False),
            nn.BatchNorm2d(w),
            nn.ReLU(inplace=True),
            _separable(w, 2 * w, 1),
            _separable(2 * w, 4 * w, 2),
            _separable(4 * w, 8 * w, 2),
            _separable(8 * w, 8 * w, 1),
        )
        self.head = nn.Linear(8 * w, dim)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, 3, side, side) normalised pixels -> (B, D) unit vectors."""
        pooled = self.features(pixels).mean((2, 3))
        return F.normalize(self.head(pooled), dim=-1)

    @torch.no_grad()
    def encode(self, squares: np.ndarray, batch: int = 512) -> np.ndarray:
        """Unit vectors of (N, side, side, 3) uint8 squares (`to_square`), in batches."""
        out = [
            self(torch.from_numpy(normalise(squares[start : start + batch]))).numpy()
            for start in range(0, len(squares), batch)
        ]
        return np.concatenate(out) if out else np.zeros((0, self.head.out_features), np.float32)


def to_square(image: Image.Image, side: int) -> np.ndarray:
    """A picture squeezed to side x side RGB uint8 (no crop: the whole picture counts)."""
    image = image.convert("RGB")
    image.draft("RGB", (side, side))
    return np.asarray(image.resize((side, side), Image.Resampling.BILINEAR), np.uint8)


def normalise(pixels: np.ndarray) -> np.ndarray:
    """(..., side, side, 3) uint8 -> (..., 3, side, side) float32 model input."""
    x = (pixels.astype(np.float32) / 255.0 - MEAN) / STD
    return np.moveaxis(x, -1, -3)


def count_flops(module: Callable[[torch.Tensor], object], example: torch.Tensor) -> int:
    """Floating-point operations of one forward pass (a multiply-add counts two)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        module(example)
    return int(counter.get_total_flops())
