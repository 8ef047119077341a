"""Optional dependencies: what each extra of `pip install 'sashie[...]'` brings, and one clear
error line when a command needs one that is not installed.

    plot      matplotlib: the loss curve (loss.png) saved beside each model version
    export    pyarrow: `sashie export` (vectors as .npy, metadata as Parquet)
    openclip  open_clip + torchvision: `--model openclip:ARCH/TAG`
    world     the three artists' drawings and a Japanese font: `sashie world`, `bench`, `demo`
"""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import SashieError


def require(module: str, extra: str, purpose: str) -> ModuleType:
    """Import an optional module, or raise one line saying which extra brings it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise SashieError(
            f"{purpose} needs the '{extra}' extra: pip install 'sashie[{extra}]'"
        ) from None


def available(module: str) -> bool:
    """Whether an optional module can be imported."""
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True
