"""`manifest.json`: what a library is made of. Its format version, the models whose vectors it
holds (spec, model id, dimension, vector folder, model versions and the active one), and the
default model. Written whole to a temporary file and renamed, so it is never half-written.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from ..encoders import DEMO_MODEL, DEMO_MODEL_DIR, Encoder
from ..errors import SashieError

FORMAT = "sashie-library"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
BASE = "base"  # the name of a model's own (unadapted) version


class Manifest:
    """The manifest of the library in `folder`, as last read or written."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / MANIFEST
        self.data = self._read()

    @classmethod
    def create(cls, folder: Path) -> Manifest:
        """Make an empty library in `folder` (which must be missing or empty)."""
        if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
            raise SashieError(f"{folder} exists and is not a sashie library")
        folder.mkdir(parents=True, exist_ok=True)
        _write(
            folder / MANIFEST,
            {"format": FORMAT, "version": FORMAT_VERSION, "default_model": None, "models": {}},
        )
        return cls(folder)

    @classmethod
    def exists(cls, folder: Path) -> bool:
        return (folder / MANIFEST).is_file()

    def _read(self) -> dict:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise SashieError(f"unreadable library manifest in {self.folder} ({e})") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise SashieError(f"{self.folder} is not a sashie library")
        if data.get("version", 0) > FORMAT_VERSION:
            raise SashieError(
                f"{self.folder} was written by a newer sashie (format {data['version']}); "
                "upgrade sashie to open it"
            )
        return data

    def reload(self) -> None:
        self.data = self._read()

    def write(self) -> None:
        _write(self.path, self.data)

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
        for model_id, entry in self.models.items():
            if entry["spec"] == model:
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
        """Record a model the library now holds vectors of (the first becomes the default)."""
        if encoder.model_id not in self.models:
            slug = re.sub(r"[^A-Za-z0-9._-]+", "-", encoder.model_id).strip("-")[-80:]
            self.models[encoder.model_id] = {
                "spec": spec,
                "trust_remote_code": trust_remote_code,
                "dim": encoder.dim,
                "vectors": f"vectors/{slug}",
            }
            if self.default_model is None:
                self.data["default_model"] = encoder.model_id
            self.write()
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
        entry = self.models[model_id]
        entry.setdefault("versions", {})[name] = summary
        entry["active"] = name
        self.write()

    def set_active(self, model_id: str, version: str) -> None:
        self.models[model_id]["active"] = None if version == BASE else version
        self.write()

    def forget_version(self, model_id: str, version: str) -> None:
        del self.models[model_id]["versions"][version]
        self.write()


def _write(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    os.replace(tmp, path)
