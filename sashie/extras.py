"""Optional dependencies: what each extra of `pip install 'sashie[...]'` brings, and one clear
error line when a command needs one that is not installed.

    plot      matplotlib: the loss curve (loss.png) saved beside each model version
    export    pyarrow: `sashie export` (vectors as .npy, metadata as Parquet)
    openclip  open_clip + torchvision: `--model openclip:ARCH/TAG`
    world     the three artists' drawings and a Japanese font: `sashie world`, `bench`, `demo`

The research tooling (`sashie.eval`: the evaluation world, the benches, the demo and the demo
model's trainers) is installed with the package, but no runtime module imports it: the
commands that need it load it through `research`.
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


def research(module: str, command: str) -> ModuleType:
    """A module of the research tooling (`sashie.eval.<module>`), loaded when `command` runs;
    one line naming the `world` extra when what it draws with is not installed."""
    return require(f"sashie.eval.{module}", "world", command)
