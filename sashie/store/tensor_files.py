"""Reading the safetensors files a library holds (model versions, remembered examples, the
filter): data from a folder that may come from anyone, so a damaged or hostile file is one
`Damaged` line, never a traceback."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from ..errors import Damaged


def read_tensors(
    path: Path, framework: Literal["numpy", "pt"] = "numpy", *, names_only: bool = False
) -> tuple[dict[str, Any], dict[str, str]]:
    """The file's tensors by name, and its metadata; `names_only`: its header alone is read
    (and checked to cover the file), each name mapped to None."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework) as f:
            metadata = f.metadata() or {}
            names = list(f.keys())
            return {k: None if names_only else f.get_tensor(k) for k in names}, metadata
    except (OSError, ValueError, RuntimeError, SafetensorError) as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise Damaged(str(path), f"not a readable tensor file: {reason}") from None
