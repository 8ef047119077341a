"""A trained composer: the token learner (and the light encoder with its own learner), how it
turns a picture and words into a query vector, and its files (safetensors + JSON, no pickle).

The query prompt puts the picture's pseudo-words where a caption names the thing and the
words where captions put them: "a picture of * hand-coloured", "a picture of * with a pine";
Japanese words go before, as Japanese captions have them: 「彩色の*の絵」, 「松と*の絵」.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from ..encoders import normalize_rows
from ..errors import SashieError
from ..search.query import Query, Term, check_change
from .models import LightEncoder, TokenLearner, to_square
from .settings import RECORD, ComposeSettings, read_record
from .slots import PLACEHOLDER, TokenSlots

FORMAT = 1
WEIGHTS = "composer.safetensors"
_JAPANESE = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uff66-\uff9f]")


def prompt_for(change: str) -> str:
    """The prompt a change of words makes, with `*` where the picture goes."""
    change = " ".join(change.replace(PLACEHOLDER, " ").split())
    if _JAPANESE.search(change):
        return f"{change}{PLACEHOLDER}の絵"
    return f"a picture of {PLACEHOLDER} {change}"


@dataclass
class Composer:
    learner: TokenLearner
    record: dict  # composer.json: settings, model id, version, data hash, figures
    light: LightEncoder | None = None
    light_learner: TokenLearner | None = None

    @property
    def model_id(self) -> str:
        return self.record["model_id"]

    @property
    def version(self) -> str:
        return self.record["version"]

    @torch.inference_mode()
    def query_vector(
        self, slots: TokenSlots, picture: np.ndarray, change: str, *, light: bool = False
    ) -> np.ndarray:
        """The unit query vector of a picture's vector (the gallery model's, or with `light`
        the light encoder's) changed by the words."""
        learner = self.light_learner if light else self.learner
        if learner is None:
            raise SashieError("this composer has no light encoder; train it with --light")
        vector = torch.from_numpy(normalize_rows(np.asarray(picture, np.float32))[None])
        tokens = learner(vector)
        features = slots.encode([prompt_for(change)], tokens).float().cpu().numpy()
        return normalize_rows(features)[0]

    @torch.inference_mode()
    def light_vectors(self, pictures: list[Image.Image]) -> np.ndarray:
        """The light encoder's unit vectors of query pictures."""
        if self.light is None:
            raise SashieError("this composer has no light encoder; train it with --light")
        return self.light.encode(np.stack([to_square(p, self.light.side) for p in pictures]))

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        tensors = {f"learner.{k}": v for k, v in self.learner.state_dict().items()}
        if self.light is not None and self.light_learner is not None:
            tensors |= {f"light.{k}": v for k, v in self.light.state_dict().items()}
            tensors |= {f"light_learner.{k}": v for k, v in self.light_learner.state_dict().items()}
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(folder / WEIGHTS))
        text = json.dumps({"format": FORMAT, **self.record}, ensure_ascii=False, indent=1)
        (folder / RECORD).write_text(text + "\n", encoding="utf-8")

    @classmethod
    def load(cls, folder: Path) -> Composer:
        """The composer saved in `folder`. Its files are data from a library that may come
        from anyone: the networks' sizes are read from the tensors and the settings are
        checked, and anything amiss is one error line."""
        try:
            record = read_record(folder)
            if record is None or record.get("format") != FORMAT:
                raise ValueError("no composer.json of a known format")
            settings = ComposeSettings(**record["settings"])
            settings.check()
            tensors = load_file(str(folder / WEIGHTS))
            learner = _learner(_part(tensors, "learner."), settings)
            light = light_learner = None
            if any(k.startswith("light.") for k in tensors):
                state = _part(tensors, "light.")
                dim = int(state["head.weight"].shape[0])
                light = LightEncoder(dim, settings.light_side, settings.light_width)
                light.load_state_dict(state)
                light.eval()
                light_learner = _learner(_part(tensors, "light_learner."), settings)
        except (OSError, ValueError, TypeError, KeyError, RuntimeError, SashieError) as e:
            reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise SashieError(f"cannot read the composer at {folder} ({reason})") from None
        return cls(learner, record, light, light_learner)


def composed(
    query: Query, composer: Composer, slots: TokenSlots, change: str, *, light: bool = False
) -> Query:
    """The query's picture vector (with `light`, made by the light encoder) changed by the
    words through the composer's pseudo-words. Dimensions selected for several pictures
    stay as they were."""
    change = check_change(query, change)
    vector = composer.query_vector(slots, query.vector, change, light=light)
    terms = (*query.terms, Term(1.0, "modifier", change))
    return Query(vector, query.dims, terms, query.note)


def _part(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}


def _learner(state: dict[str, torch.Tensor], settings: ComposeSettings) -> TokenLearner:
    """A token learner of the sizes its tensors have (dim from the first layer, the token
    width from the vocabulary's centre)."""
    dim, width = int(state["net.0.weight"].shape[1]), int(state["center"].shape[0])
    learner = TokenLearner(dim, width, settings.tokens, torch.zeros((2, width)))
    learner.load_state_dict(state)
    return learner.eval()
