"""`hf:<hub id or local directory>`: CLIP-style models through Hugging Face transformers.

Any model whose class has `get_image_features` and `get_text_features` works: `CLIPModel`
checkpoints, and remote-code models such as line-corporation/clip-japanese-base when the
user passes trust_remote_code.
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import torch
from PIL import Image

from ..errors import SashieError
from .torch_base import TorchEncoder

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
HUB_TIMEOUT = 2.0  # seconds a connection to the hub may take before it counts as offline


def fingerprint_directory(path: Path) -> str:
    """A short hash of a model directory's config and weights (sizes and both ends of each)."""
    digest = hashlib.sha256()
    for file in sorted(path.iterdir()):
        if file.name == "config.json":
            digest.update(file.read_bytes())
        elif file.suffix in WEIGHT_SUFFIXES and file.is_file():
            size = file.stat().st_size
            digest.update(f"{file.name}:{size}".encode())
            with file.open("rb") as f:
                digest.update(f.read(1 << 20))
                f.seek(max(0, size - (1 << 20)))
                digest.update(f.read(1 << 20))
    return digest.hexdigest()[:12]


def _fingerprint(name: str) -> str:
    path = Path(name)
    if path.is_dir():
        return fingerprint_directory(path)
    from huggingface_hub import try_to_load_from_cache

    config = try_to_load_from_cache(name, "config.json")
    if isinstance(config, str):  # .../snapshots/<commit>/config.json
        return Path(config).parent.name[:12]
    return "hub"


def _local_directory(name: str) -> Path | None:
    """The directory a name means, made absolute (links kept: the id is the link's name),
    when it is one or looks like a path (a hub id never starts with '/', '.' or '~'); None
    for a hub id."""
    path = Path(name).expanduser()
    if path.is_dir() or name.startswith(("/", ".", "~")):
        return Path(os.path.abspath(path))
    return None


def hub_reachable(timeout: float = HUB_TIMEOUT) -> bool:
    """Whether the Hugging Face hub (HF_ENDPOINT) takes a connection within `timeout`
    seconds: False at once under HF_HUB_OFFLINE; True when a proxy is set (it decides)."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return False
    url = urlsplit(constants.ENDPOINT)
    if urllib.request.getproxies().get(url.scheme):
        return True
    address = (url.hostname or "", url.port or (443 if url.scheme == "https" else 80))
    answered: list[bool] = []

    def connect() -> None:  # in a thread: a name lookup may hang longer than the timeout
        try:
            socket.create_connection(address, timeout=timeout).close()
            answered.append(True)
        except OSError:
            pass

    thread = threading.Thread(target=connect, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(answered)


def _local_files_only(name: str) -> bool:
    """True when the hub cannot be reached: a cached model loads at once, an uncached one is
    one error line instead of 30 s of retries."""
    if hub_reachable():
        return False
    from huggingface_hub import constants, try_to_load_from_cache

    if not isinstance(try_to_load_from_cache(name, "config.json"), str):
        host = urlsplit(constants.ENDPOINT).hostname
        raise SashieError(
            f"cannot load model hf:{name}: it is not in the local Hugging Face cache and "
            f"{host} cannot be reached (offline)"
        )
    return True


def _features(output) -> torch.Tensor:
    """transformers 5 returns a model output whose pooler_output holds the projected features."""
    if isinstance(output, torch.Tensor):
        return output
    pooled = getattr(output, "pooler_output", None)
    if pooled is not None:
        return pooled
    return output[0]


class HFEncoder(TorchEncoder):
    def __init__(self, name: str, *, device: str | None = None, trust_remote_code: bool = False):
        super().__init__(device)
        folder = _local_directory(name)
        if folder is not None and not (folder / "config.json").is_file():
            raise SashieError(f"no model at {folder}")
        location = str(folder) if folder else name
        # named one by one, not as **dict: the typed signatures of transformers 5 would
        # match a dict's values against the positional parameters too
        local_only = folder is None and _local_files_only(name)
        from transformers import AutoImageProcessor, AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        try:
            model = AutoModel.from_pretrained(
                location, trust_remote_code=trust_remote_code, local_files_only=local_only
            )
            self.tokenizer = AutoTokenizer.from_pretrained(
                location, trust_remote_code=trust_remote_code, local_files_only=local_only
            )
            self.processor = _image_processor(
                AutoImageProcessor, location, trust_remote_code, local_only
            )
        except (OSError, ValueError) as e:
            first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise SashieError(f"cannot load model hf:{name} ({first_line})") from None
        if not (hasattr(model, "get_image_features") and hasattr(model, "get_text_features")):
            raise SashieError(
                f"hf:{name} is a {type(model).__name__}, which has no "
                "get_image_features/get_text_features; it is not a CLIP-style model"
            )
        self.model = self._place(model)
        # a local directory is named by its folder name, so that moving it keeps the id
        label = folder.name if folder else name
        self.model_id = f"hf:{label}@{_fingerprint(location)}"
        self.image_size = _input_side(self.processor)
        self.max_text_tokens = _max_text_tokens(self.tokenizer, model.config)
        self.dim = int(self.encode_texts(["a picture"]).shape[1])

    def preparer(self) -> PrepareWithProcessor:
        return PrepareWithProcessor(self.processor)

    def image_features(self, pixels: torch.Tensor) -> torch.Tensor:
        return _features(self.model.get_image_features(pixel_values=pixels))

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        tokens = self.tokenizer(
            texts,
            padding=True,
            truncation=True,
            max_length=self.max_text_tokens,
            return_tensors="pt",
        )
        return {k: v.to(self.device) for k, v in tokens.items() if k != "token_type_ids"}

    def features_of_tokens(self, tokens: dict[str, torch.Tensor]) -> torch.Tensor:
        return _features(self.model.get_text_features(**tokens))


class PrepareWithProcessor:
    """A page crop into model input with a transformers image processor (picklable: a few
    hundred bytes, so worker processes prepare crops without the model)."""

    def __init__(self, processor) -> None:
        self.processor = processor

    def __call__(self, image: Image.Image) -> np.ndarray:
        pixels = self.processor(images=[image], return_tensors="np")["pixel_values"][0]
        return np.asarray(pixels, dtype=np.float32)


def _image_processor(auto, location: str, trust_remote_code: bool, local_files_only: bool):
    """The Pillow-based processor: it needs no torchvision and is safe to call from threads."""
    import transformers

    options = {"trust_remote_code": trust_remote_code, "local_files_only": local_files_only}
    if int(transformers.__version__.split(".")[0]) >= 5:
        try:
            return auto.from_pretrained(location, backend="pil", **options)
        except (TypeError, ValueError):
            pass
    return auto.from_pretrained(location, use_fast=False, **options)


def _input_side(processor) -> int:
    """The square side the model sees, from crop_size or size (a dict, or a SizeDict in v5)."""
    for attr in ("crop_size", "size"):
        value = getattr(processor, attr, None)
        if isinstance(value, int) and value > 0:
            return value
        for key in ("height", "shortest_edge"):
            side = value.get(key) if isinstance(value, dict) else getattr(value, key, None)
            if isinstance(side, int) and side > 0:
                return side
    return 224


def _max_text_tokens(tokenizer, config) -> int:
    text_config = getattr(config, "text_config", None)
    limit = getattr(text_config, "max_position_embeddings", None) or 77
    declared = getattr(tokenizer, "model_max_length", None)
    if isinstance(declared, int) and 0 < declared < 100_000:
        limit = min(limit, declared)
    return int(limit)
