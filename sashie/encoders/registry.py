"""Encoders by spec string, resolved in one place (`load_encoder`), as open_clip's factory does.

`hf:<hub id or directory>`, `openclip:<architecture>/<pretrained tag or checkpoint>`, or a
name registered in `NAMED_MODELS` (the project's own demo model, shipped in the package).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from ..errors import SashieError
from .base import Encoder

DEMO_MODEL = "sashie-demo"
MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
DEMO_MODEL_DIR = MODELS_DIR / DEMO_MODEL

# Names that stand for a full spec: the project's own demo models, shipped in the package
# (sashie-demo-para: its text tower tuned on paraphrases, sashie/eval/world/train_para.py;
# sashie-demo-mcip: its image tower tuned for image search, sashie/eval/world/train_mcip.py;
# sashie-demo-reader: trained beside dictionaries, `train.py --lexicon`, docs/evaluation.md)
SHIPPED = (DEMO_MODEL, "sashie-demo-para", "sashie-demo-mcip", "sashie-demo-reader")
NAMED_MODELS: dict[str, str] = {name: f"hf:{MODELS_DIR / name}" for name in SHIPPED}


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


def canonical_spec(spec: str) -> str:
    """The spec as a library records it: a local model directory (or open_clip checkpoint)
    by its absolute path, so that the library loads it from any working directory."""
    if spec in NAMED_MODELS:
        return spec
    try:
        prefix, rest = resolve_spec(spec)
    except SashieError:
        return spec
    if prefix == "hf" and rest and Path(rest).expanduser().is_dir():
        return f"hf:{os.path.abspath(Path(rest).expanduser())}"
    architecture, _, checkpoint = rest.partition("/")
    if prefix == "openclip" and checkpoint and Path(checkpoint).expanduser().is_file():
        return f"openclip:{architecture}/{os.path.abspath(Path(checkpoint).expanduser())}"
    return spec


def load_encoder(
    spec: str, *, device: str | None = None, trust_remote_code: bool = False
) -> Encoder:
    """Load the encoder a spec names, on CUDA (fp16) when present unless `device` says."""
    prefix, rest = resolve_spec(spec)
    if not rest:
        raise SashieError(f"model spec {spec!r} names no model after '{prefix}:'")
    return BACKENDS[prefix](rest, device=device, trust_remote_code=trust_remote_code)
