"""The visual adapter (CLIP-Adapter) over stored unit image vectors, and applying it fast.

    A(v) = normalize(R · (W2 relu(W1 v + b1) + b2) + (1 − R) · v),   W1: D → D/4, W2: D/4 → D

W2 starts at zero, so an untrained adapter is the identity (after normalization): training
moves vectors only as far as the captions ask.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import Damaged
from ..store.tensor_files import read_tensors

ADAPTER_FILE = "adapter.safetensors"


class VisualAdapter(torch.nn.Module):
    """CLIP-Adapter on unit image vectors: bottleneck D → D/4 → D blended with the input."""

    def __init__(self, dim: int, ratio: float) -> None:
        super().__init__()
        self.ratio = ratio
        self.down = torch.nn.Linear(dim, max(1, dim // 4))
        self.up = torch.nn.Linear(max(1, dim // 4), dim)
        torch.nn.init.zeros_(self.up.weight)
        torch.nn.init.zeros_(self.up.bias)

    def forward(self, vectors: torch.Tensor) -> torch.Tensor:
        blended = self.ratio * self.up(F.relu(self.down(vectors))) + (1 - self.ratio) * vectors
        return F.normalize(blended, dim=-1)

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], ratio: float) -> VisualAdapter:
        adapter = cls(arrays["down.weight"].shape[1], ratio)
        adapter.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in arrays.items()})
        return adapter.eval()


def apply_adapter(
    adapter: VisualAdapter,
    vectors: np.ndarray,
    *,
    step: int = 2048,
    out: np.ndarray | None = None,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """V′ = A(V) block by block (float16 or float32 rows in, float16 rows out, or into `out`).

    The same formula as `VisualAdapter.forward`, arranged for speed on a CPU: the blend is
    folded into the second matrix product, and the normalized rows are written straight into
    the float16 output; blocks of a few thousand rows stay in the CPU's caches. `out` may be
    `vectors` itself (float16 rows, adapted in place)."""
    out = np.empty(vectors.shape, np.float16) if out is None else out
    ratio = adapter.ratio
    with torch.inference_mode():
        down_w = adapter.down.weight.T.contiguous()
        up_w = adapter.up.weight.T.contiguous()
        down_b, up_b = adapter.down.bias, ratio * adapter.up.bias
        for start in range(0, len(vectors), step):
            rows = np.asarray(vectors[start : start + step])
            if not rows.flags.writeable:  # torch wants writable memory, though it only reads
                rows = rows.copy()
            block = torch.from_numpy(rows).float()
            hidden = torch.addmm(down_b, block, down_w).relu_()
            blended = torch.add(up_b, block, alpha=1 - ratio).addmm_(hidden, up_w, alpha=ratio)
            norms = torch.linalg.vector_norm(blended, dim=1, keepdim=True).clamp_(min=1e-12)
            target = out[start : start + len(block)]
            if target.dtype == np.float16 and target.flags.c_contiguous:
                torch.div(blended, norms, out=torch.from_numpy(target))
            else:
                target[:] = (blended / norms).numpy()
            if progress:
                progress(len(block))
    return out


def load_adapter(folder: Path, ratio: float, dim: int) -> VisualAdapter | None:
    """The adapter saved in a version's folder (None: the version has none), checked to fit
    `dim`-dimensional vectors."""
    path = folder / ADAPTER_FILE
    if not path.is_file():
        return None
    arrays, _ = read_tensors(path)
    try:
        if arrays["down.weight"].shape != (max(1, dim // 4), dim):
            raise ValueError(f"it is not for {dim}-dimensional vectors")
        return VisualAdapter.from_arrays(arrays, ratio)
    except (KeyError, ValueError, RuntimeError) as e:
        raise Damaged(str(path), f"not an adapter: {str(e).splitlines()[0]}") from None


def adapted(adapter: VisualAdapter | None, vectors: np.ndarray) -> np.ndarray:
    """A(vectors) as float32 rows (the vectors themselves when a version has no adapter)."""
    if adapter is None:
        return np.asarray(vectors, np.float32)
    return apply_adapter(adapter, vectors).astype(np.float32)
