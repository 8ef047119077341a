"""Encoders put images and texts into one vector space.

Every backend gives the same small interface (`Encoder`): `preprocess` one image into model
input (thread-safe, so pages are decoded and prepared in parallel workers while the model
runs), `encode_pixels` a batch of those, `encode_texts`, and `encode_images` for convenience;
all return L2-normalized float32 rows. `dim` is the vector size and `model_id` a stable name
that changes when the weights change.

Backends are chosen by a spec string, resolved in one place (`load_encoder`):
`hf:<hub id or directory>`, `openclip:<architecture>/<pretrained tag or checkpoint>`, or a
name registered in `NAMED_MODELS`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Protocol, Sequence

import numpy as np
from PIL import Image

from ..errors import SashieError


class Encoder(Protocol):
    model_id: str
    dim: int
    image_size: int  # side of the square the model sees; crops far larger are reduced first
    device: str

    def preprocess(self, image: Image.Image) -> np.ndarray: ...

    def encode_pixels(self, pixels: np.ndarray) -> np.ndarray: ...

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray: ...

    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray: ...


DEMO_MODEL = "sashie-demo"
DEMO_MODEL_DIR = Path(__file__).resolve().parent.parent / "models" / DEMO_MODEL

# Names that stand for a full spec: the project's own demo model, shipped in the package.
NAMED_MODELS: dict[str, str] = {DEMO_MODEL: f"hf:{DEMO_MODEL_DIR}"}

def _load_hf(name: str, **options) -> Encoder:
    from .hf import HFEncoder

    return HFEncoder(name, **options)


def _load_openclip(spec: str, **options) -> Encoder:
    from .openclip import OpenClipEncoder

    return OpenClipEncoder(spec, device=options.get("device"))


# Loaders by spec prefix; each imports its backend (and torch) only when used.
BACKENDS: dict[str, Callable[..., Encoder]] = {"hf": _load_hf, "openclip": _load_openclip}


def resolve_spec(spec: str) -> tuple[str, str]:
    """Split a spec into (backend prefix, rest); a bare local directory means `hf:`."""
    spec = NAMED_MODELS.get(spec, spec)
    prefix, sep, rest = spec.partition(":")
    if sep and prefix in BACKENDS:
        return prefix, rest
    if Path(spec).is_dir():
        return "hf", spec
    known = ", ".join([f"{p}:..." for p in sorted(BACKENDS)] + sorted(NAMED_MODELS))
    raise SashieError(f"unknown model spec {spec!r}; use one of: {known}")


def load_encoder(
    spec: str, *, device: str | None = None, trust_remote_code: bool = False
) -> Encoder:
    """Load the encoder a spec names, on CUDA (fp16) when present unless `device` says."""
    prefix, rest = resolve_spec(spec)
    if not rest:
        raise SashieError(f"model spec {spec!r} names no model after '{prefix}:'")
    return BACKENDS[prefix](rest, device=device, trust_remote_code=trust_remote_code)


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
