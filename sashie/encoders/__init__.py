"""Encoders put images and texts into one vector space.

base.py        the Encoder protocol every backend gives, TrainableEncoder (what training
               uses), trainable(); normalize_rows, pick_device
registry.py    specs -> backends: load_encoder("hf:DIR"), the demo model's name
torch_base.py  what the torch backends share (device, dtype, batching)
hf.py          `hf:` Hugging Face transformers CLIP-style models
openclip.py    `openclip:` open_clip models (the `openclip` extra)
"""

from .base import Encoder, TrainableEncoder, normalize_rows, pick_device, trainable
from .registry import (
    BACKENDS,
    DEMO_MODEL,
    DEMO_MODEL_DIR,
    NAMED_MODELS,
    canonical_spec,
    load_encoder,
    resolve_spec,
)

__all__ = [
    "BACKENDS",
    "DEMO_MODEL",
    "DEMO_MODEL_DIR",
    "NAMED_MODELS",
    "Encoder",
    "TrainableEncoder",
    "canonical_spec",
    "load_encoder",
    "normalize_rows",
    "pick_device",
    "resolve_spec",
    "trainable",
]
