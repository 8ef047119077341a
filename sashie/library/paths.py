"""A library folder may come from anyone, links included: every file a library reads,
writes or deletes must lie inside its folder once links are followed."""

from __future__ import annotations

from pathlib import Path

from ..errors import SashieError


def inside(root: Path, path: Path) -> Path:
    """`path`, when it (and every folder on its way) lies inside the library at `root` once
    links are followed; else one error line. The path need not exist yet."""
    try:
        real = path.resolve()
        real_root = root.resolve()
    except (OSError, RuntimeError):  # a link loop
        raise SashieError(f"{_shown(root, path)} in the library is a broken link") from None
    if not real.is_relative_to(real_root):
        raise SashieError(
            f"{_shown(root, path)} in the library is a link that leads outside it; a "
            "library's files are never followed out of its folder"
        )
    return path


def _shown(root: Path, path: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return path.name


def inside_all(root: Path, folder: Path) -> Path:
    """`folder` and every entry in it, each inside the library (see `inside`)."""
    inside(root, folder)
    if folder.is_dir():
        for entry in folder.iterdir():
            inside(root, entry)
    return folder
