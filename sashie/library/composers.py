"""`lib.composer`: composed search's composer of each model version (a picture changed by
words: sashie/compose), trained on the library's own kept items, loaded once. One training
run is in composing.py."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from ..compose.settings import ComposeSettings, composer_folder, read_record
from ..encoders import Encoder
from ..search.query import query_image
from .manifest import BASE
from .parts import Parts
from .paths import inside_all

if TYPE_CHECKING:  # these import torch: loaded when a composer is trained or used
    from ..compose.composer import Composer
    from .composing import ComposeReport

QueryImage = str | os.PathLike | Image.Image


class Composers:
    """The composers of one library's model versions."""

    def __init__(self, parts: Parts) -> None:
        self._parts = parts
        self._loaded: dict[tuple[str, str], tuple[float, Composer]] = {}  # by (model, version)

    def train(
        self,
        settings: ComposeSettings | None = None,
        *,
        pictures: Sequence[QueryImage] = (),
        model: str | None = None,
        device: str | None = None,
        progress: Callable[[dict], None] | None = None,
    ) -> ComposeReport:
        """Train composed search's token learner (and, with `settings.light`, the light
        query encoder) for the active model version, on the library's own kept items: no
        labels, no captions. Later searches with `modify` use it.

        `pictures` (paths, URLs or images, no labels): pictures like those people will search
        with, when they differ from the collection's (photographs, clip-art); the light
        encoder learns the model's vectors of them too, so its queries stay in place.

        `progress` receives {"stage": "tokens" | "crops" | "light", "done", "total", "loss"}."""
        from ..compose.models import to_square
        from .composing import train_composer

        parts = self._parts
        settings = settings or ComposeSettings()
        settings.check()
        model_id = parts.model_id(model)
        version = parts.active(model_id)
        with parts.writing():
            if device is not None:
                parts.encoder(model_id, device=device)  # loads there unless loaded already
            encoder = parts.query_encoder(model_id)
            index = parts.load(model_id).index
            excluded = parts.excluded_rows(model_id)
            keep = np.ones(len(index), bool) if excluded is None else ~excluded
            query_like = None
            if pictures and settings.light:
                images = [
                    query_image(p if isinstance(p, Image.Image) else str(p)) for p in pictures
                ]
                query_like = (
                    np.stack([to_square(im, settings.light_side) for im in images]),
                    encoder.encode_images(images),
                )
            report = train_composer(
                folder=self._folder(model_id, version),
                encoder=encoder,
                version=version,
                item_ids=index.item_ids[keep],
                vectors=index.take(np.flatnonzero(keep)),
                rows_of=parts.catalog.items,
                pictures=parts.pictures,
                settings=settings,
                device=encoder.device,
                progress=progress,
                query_like=query_like,
                terminal=parts.progress,
            )
        self._loaded.pop((model_id, version), None)
        return report

    def get(self, model: str | None = None) -> Composer | None:
        """The active version's composer (loaded once, again when retrained), or None."""
        parts = self._parts
        model_id = parts.model_id(model)
        version = parts.active(model_id)
        folder = self._folder(model_id, version)
        try:
            stamp = (folder / "composer.json").stat().st_mtime
        except OSError:
            return None
        with parts.lock:
            cached = self._loaded.get((model_id, version))
            if cached is None or cached[0] != stamp:
                from ..compose.composer import Composer

                cached = (stamp, Composer.load(folder))
                self._loaded[(model_id, version)] = cached
        return cached[1]

    def load(self, model_id: str, version: str) -> Composer | None:
        """A version's composer read anew from its files (None: it has none)."""
        folder = self._folder(model_id, version)
        if not folder.is_dir():
            return None
        from ..compose.composer import Composer

        return Composer.load(folder)

    def remove(self, model_id: str, version: str) -> None:
        """Delete a version's composer."""
        self._parts.check_writable()
        with self._parts.lock:
            shutil.rmtree(self._folder(model_id, version), ignore_errors=True)
            self._loaded.pop((model_id, version), None)

    def trained(self, model: str | None = None) -> dict[str, dict]:
        """The composers trained for the model's versions: {version: its composer.json}."""
        folder = self._folder(self._parts.model_id(model), BASE).parent
        found = {}
        if folder.is_dir():
            for child in sorted(folder.iterdir()):
                record = read_record(child) if not child.name.startswith(".") else None
                if record is not None:
                    found[child.name] = record
        return found

    def usable(self, model: str | None, encoder: Encoder) -> tuple[Composer | None, str | None]:
        """The active version's composer and None, or None and why there is none to use
        (None as the reason: no composer was ever trained, nothing to say)."""
        from ..compose.slots import CannotTakeTokens, token_slots

        path = self._parts.path
        try:
            token_slots(encoder)
        except CannotTakeTokens as e:
            return None, str(e)
        composer = self.get(model)
        if composer is None:
            trained = self.trained(model)
            if not trained:
                return None, None
            return None, (
                f"the composer was trained for version {', '.join(trained)}, not the active "
                f"{self._parts.active(self._parts.model_id(model))}; train one for it with "
                f"`sashie compose train {path}`"
            )
        if composer.model_id != encoder.model_id:
            return None, (
                f"the composer was trained with {composer.model_id}, not {encoder.model_id}; "
                f"train it again with `sashie compose train {path}`"
            )
        return composer, None

    def summaries(self, model_id: str) -> dict[str, dict]:
        """What `info` says of each version's composer: when, on what, how big, how long."""
        out = {}
        for version, record in self.trained(model_id).items():
            settings = record.get("settings", {})
            seconds = record.get("token_seconds", 0) + record.get("light_seconds", 0)
            out[version] = {
                "trained": record.get("trained"),
                "items": record.get("items"),
                "tokens": settings.get("tokens"),
                "light": "light_crops" in record,
                "seconds": round(seconds, 1),
            }
        return out

    def _folder(self, model_id: str, version: str) -> Path:
        slug = Path(self._parts.manifest.models[model_id]["vectors"]).name
        return inside_all(self._parts.path, composer_folder(self._parts.path, slug, version))
