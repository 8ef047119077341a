"""`openclip:<architecture>/<pretrained tag or checkpoint path>` through open_clip.

open_clip needs torchvision, which the core install leaves out; install the `openclip` extra
(`pip install 'sashie[openclip]'`) to use this backend.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..errors import SashieError
from .torch_base import TorchEncoder


class OpenClipEncoder(TorchEncoder):
    def __init__(self, spec: str, *, device: str | None = None):
        super().__init__(device)
        try:
            import open_clip
        except ImportError:
            raise SashieError(
                "the openclip: backend needs open_clip; install it with "
                "pip install 'sashie[openclip]'"
            ) from None
        architecture, _, pretrained = spec.partition("/")
        if not architecture or not pretrained:
            raise SashieError(
                f"openclip spec {spec!r} must be ARCHITECTURE/TAG_OR_CHECKPOINT, "
                "e.g. openclip:ViT-B-32/laion2b_s34b_b79k"
            )
        try:
            model, _, self.transform = open_clip.create_model_and_transforms(
                architecture, pretrained=pretrained
            )
        except (RuntimeError, OSError, ValueError) as e:
            raise SashieError(f"cannot load model openclip:{spec} ({e})") from None
        self.tokenizer = open_clip.get_tokenizer(architecture)
        self.model = self._place(model)
        checkpoint = Path(pretrained)
        tag = pretrained
        if checkpoint.is_file():
            stat = checkpoint.stat()
            tag = hashlib.sha256(f"{checkpoint.name}:{stat.st_size}".encode()).hexdigest()[:12]
        self.model_id = f"openclip:{architecture}/{tag}"
        size = getattr(model.visual, "image_size", 224)
        self.image_size = int(size[0] if isinstance(size, (tuple, list)) else size)
        self.dim = int(self.encode_texts(["a picture"]).shape[1])

    def preparer(self) -> PrepareWithTransform:
        return PrepareWithTransform(self.transform)

    def image_features(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(pixels)

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        return {"input_ids": self.tokenizer(texts).to(self.device)}

    def features_of_tokens(self, tokens: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.model.encode_text(tokens["input_ids"])


class PrepareWithTransform:
    """A page crop into model input with open_clip's transform (picklable, without the model)."""

    def __init__(self, transform) -> None:
        self.transform = transform

    def __call__(self, image: Image.Image) -> np.ndarray:
        return self.transform(image).numpy().astype(np.float32)
