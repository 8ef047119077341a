"""`manifest.json`: what a library is made of. Its format version, the models whose vectors it
holds (spec, model id, dimension, vector folder, model versions and the active one), and the
default model. Written whole to a temporary file and renamed, so it is never half-written.

Several processes may hold one library open (a server, `sashie index`, `sashie adapt`): every
change is a read-modify-write of the current file under `manifest.lock`, never a rewrite of a
copy read earlier, and `stale()` tells a reader that another process changed it.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from ..encoders import DEMO_MODEL, DEMO_MODEL_DIR, Encoder, canonical_spec
from ..errors import SashieError
from .paths import inside

FORMAT = "sashie-library"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
MANIFEST_LOCK = "manifest.lock"
BASE = "base"  # the name of a model's own (unadapted) version
MAX_DIM = 1 << 16  # of a model's vectors: more is a tampered manifest


class Manifest:
    """The manifest of the library in `folder`, as last read or written."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / MANIFEST
        self.data: dict = {}
        self._seen: tuple[int, int, int] | None = None  # (inode, size, mtime) of what was read
        self.reload()

    @classmethod
    def create(cls, folder: Path) -> Manifest:
        """Make an empty library in `folder` (which must be missing or empty). Two processes
        creating the same library at once both end with it; neither loses the other's work."""
        if folder.exists() and not folder.is_dir():
            raise SashieError(f"{folder} exists and is not a sashie library")
        folder.mkdir(parents=True, exist_ok=True)
        with _locked(folder):
            if not cls.exists(folder):
                if any(p.name != MANIFEST_LOCK for p in folder.iterdir()):
                    raise SashieError(f"{folder} exists and is not a sashie library")
                empty = {"format": FORMAT, "version": FORMAT_VERSION, "models": {}}
                _write(folder / MANIFEST, empty | {"default_model": None})
        return cls(folder)

    @classmethod
    def exists(cls, folder: Path) -> bool:
        return (folder / MANIFEST).is_file()

    def _read(self) -> dict:
        try:
            data = json.loads(inside(self.folder, self.path).read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise SashieError(f"unreadable library manifest in {self.folder} ({e})") from None
        except RecursionError:  # nested deeper than any manifest sashie writes
            raise SashieError(
                f"unreadable library manifest in {self.folder} (nested too deep)"
            ) from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise SashieError(f"{self.folder} is not a sashie library")
        if (
            not isinstance(data.get("version"), int)
            or not isinstance(data.get("models"), dict)
            or not all(_well_formed(entry) for entry in data["models"].values())
            or data.get("default_model") not in (None, *data["models"])
        ):
            raise SashieError(f"unreadable library manifest in {self.folder} (malformed)")
        if not all(_names_are_plain(entry) for entry in data["models"].values()):
            raise SashieError(
                f"unreadable library manifest in {self.folder} (a model's folder or version "
                "name is not a plain name)"
            )
        if data["version"] > FORMAT_VERSION:
            raise SashieError(
                f"{self.folder} was written by a newer sashie (format {data['version']}); "
                "upgrade sashie to open it"
            )
        return data

    def _stamp(self) -> tuple[int, int, int] | None:
        try:
            stat = self.path.stat()
        except OSError:
            return None
        return (stat.st_ino, stat.st_size, stat.st_mtime_ns)

    def reload(self) -> None:
        stamp = self._stamp()
        self.data = self._read()
        self._seen = stamp

    def locked(self) -> AbstractContextManager[None]:
        """Hold the library's manifest lock: other processes' manifest changes (and library
        openings) wait. For milliseconds-long work only."""
        return _locked(self.folder)

    def stale(self) -> bool:
        """Whether the file changed since it was last read or written here."""
        return self._stamp() != self._seen

    def update(self, change: Callable[[dict], None]) -> None:
        """Apply `change` to the current file's contents and write them, under the lock."""
        with _locked(self.folder):
            data = self._read()
            change(data)
            _write(self.path, data)
            self.data = data
            self._seen = self._stamp()

    # --- models ----------------------------------------------------------------------------

    @property
    def format_version(self) -> int:
        return int(self.data["version"])

    @property
    def default_model(self) -> str | None:
        return self.data.get("default_model")

    @property
    def models(self) -> dict[str, dict]:
        return self.data["models"]

    def find(self, model: str | None) -> str | None:
        """The model id that a spec or id names among the library's models (None if new);
        the default model when `model` is None."""
        if model is None:
            return self.default_model
        if model in self.models:
            return model
        specs = {model, canonical_spec(model)}  # hf:./clip names the library's hf:/abs/clip
        for model_id, entry in self.models.items():
            if entry["spec"] in specs:
                return model_id
        return None

    def model_id(self, model: str | None) -> str:
        """Like `find`, but an error when the library has no vectors of that model."""
        model_id = self.find(model)
        if model_id is None:
            if model is None:
                raise SashieError("this library is empty; index something first")
            raise SashieError(f"this library has no vectors of model {model}")
        return model_id

    def spec(self, model: str | None) -> tuple[str, str | None, bool | None]:
        """(spec to load, the library's model id for it or None, its stored trust flag)."""
        model_id = self.find(model)
        if model_id is not None:
            entry = self.models[model_id]
            return entry["spec"], model_id, entry.get("trust_remote_code", False)
        if model is not None:
            return model, None, None
        if not DEMO_MODEL_DIR.is_dir():
            raise SashieError("this library has no model yet; index with --model SPEC")
        return DEMO_MODEL, None, None

    def register(self, spec: str, encoder: Encoder, trust_remote_code: bool) -> str:
        """Record a model the library now holds vectors of (the first becomes the default);
        a local model by its absolute path, which any working directory can load."""

        def change(data: dict) -> None:
            if encoder.model_id in data["models"]:
                return
            slug = re.sub(r"[^A-Za-z0-9._-]+", "-", encoder.model_id).strip("-")[-80:]
            data["models"][encoder.model_id] = {
                "spec": canonical_spec(spec),
                "trust_remote_code": trust_remote_code,
                "dim": encoder.dim,
                "vectors": f"vectors/{slug}",
            }
            if data.get("default_model") is None:
                data["default_model"] = encoder.model_id

        if encoder.model_id not in self.models:
            self.update(change)
        return encoder.model_id

    # --- model versions --------------------------------------------------------------------

    def active_version(self, model_id: str) -> str:
        return self.models[model_id].get("active") or BASE

    def version_names(self, model_id: str) -> list[str]:
        return list(self.models[model_id].get("versions", {}))

    def check_version(self, model_id: str, version: str) -> None:
        """An error naming the versions there are, unless `version` is one of them (or base)."""
        if version != BASE and version not in self.version_names(model_id):
            known = ", ".join([BASE, *self.version_names(model_id)])
            raise SashieError(f"no model version {version!r}; this library has: {known}")

    def add_version(self, model_id: str, name: str, summary: dict) -> None:
        """Record a finished version and make it the active one."""

        def change(data: dict) -> None:
            entry = data["models"][model_id]
            entry.setdefault("versions", {})[name] = summary
            entry["active"] = name

        self.update(change)

    def set_active(self, model_id: str, version: str) -> None:
        def change(data: dict) -> None:
            data["models"][model_id]["active"] = None if version == BASE else version

        self.update(change)

    def forget_version(self, model_id: str, version: str) -> None:
        def change(data: dict) -> None:
            data["models"][model_id].get("versions", {}).pop(version, None)

        self.update(change)


@contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """Hold the library's manifest lock (held only for a read-modify-write: milliseconds)."""
    with open(inside(folder, folder / MANIFEST_LOCK), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _write(path: Path, data: dict) -> None:
    """Write to a temporary file of its own, then rename it over `path`."""
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o644)  # as readable as the rest of the library (mkstemp makes it 0600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _plain(name: object) -> bool:
    """A name that stays one folder inside the library: no separators, no dot names."""
    return (
        isinstance(name, str)
        and bool(name)
        and not name.startswith(".")
        and not any(c in name for c in "/\\\0")
    )


def _well_formed(entry: object) -> bool:
    """A model entry with a spec and a dimension sashie could have written."""
    return (
        isinstance(entry, dict)
        and isinstance(entry.get("spec"), str)
        and type(entry.get("dim")) is int
        and 1 <= entry["dim"] <= MAX_DIM
    )


def _names_are_plain(entry: object) -> bool:
    """A model entry whose names become folders (its vectors, versions, the active one)
    cannot lead out of the library: a manifest may come from anyone."""
    if not isinstance(entry, dict):
        return False
    vectors = entry.get("vectors")
    folder, _, slug = vectors.partition("/") if isinstance(vectors, str) else ("", "", "")
    versions = entry.get("versions", {})
    active = entry.get("active")
    return (
        folder == "vectors"
        and _plain(slug)
        and isinstance(versions, dict)
        and all(_plain(v) for v in versions)
        and (active is None or _plain(active))
    )
