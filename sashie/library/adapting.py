"""One adaptation run, start to finish: train a new model version from the base on (vector,
caption) pairs, save it, remember its examples, write V′ = A(V), and make it active.

Order matters for crash safety: the version's files and vectors are written and synced, their
row count committed in the catalog, and only then does the manifest name the version (active);
a crash at any point leaves the previous version active and whole.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..adapt.paraphrase import Paraphrased
from ..adapt.phrasings import vocabulary_anchors
from ..adapt.settings import AdaptSettings
from ..adapt.version_files import LOSS_PLOT
from ..encoders import TrainableEncoder
from ..search.memory import ExampleMemory
from ..store.catalog import Catalog
from .annotations import Pairs
from .manifest import Manifest
from .stored import StoredVectors
from .version_folders import VersionFolders

if TYPE_CHECKING:  # torch is imported when a run starts, not when a command starts
    from ..adapt.training import Trained

# A caption with fewer examples than this is learnt only partly: with 1-3 a held-out word
# got 39-70 % of the P@10 gain that 20 examples give, with 5 or more 76-91 %
# (benchmarks/adapt_few_pairs.py; docs/adaptation.md, "How few is too few").
FEW_EXAMPLES = 5


@dataclass(kw_only=True)
class AdaptReport:
    version: str
    kind: str  # what it learnt: captions, paraphrase, images, realign (AdaptSettings.kind)
    parts: str  # what was trained: adapter, text encoder or both
    folder: Path  # the version's files: adapter, text encoder, version.json, loss.png
    pairs: int
    captions: int  # distinct captions
    trained: Trained
    apply_seconds: float  # writing V' = A(V)
    rows: int  # vectors written
    remembered: int  # captioned examples the version remembers (0: none)
    warning: str | None  # too few examples of some captions to learn them (few_examples)

    @property
    def loss_curve(self) -> Path | None:
        """The loss curve's picture, when one was drawn (the `plot` extra)."""
        path = self.folder / LOSS_PLOT
        return path if path.is_file() else None

    def as_dict(self, *, paths: bool = True) -> dict:
        """The report as JSON-ready data (`adapt --json`, the server's job state); without
        `paths`, no local file is named (what the server tells a web client)."""
        curve = self.loss_curve
        data = {
            "version": self.version,
            "kind": self.kind,
            "parts": self.parts,
            "pairs": self.pairs,
            "captions": self.captions,
            "epoch_losses": [round(x, 4) for x in self.trained.epoch_losses],
            "train_seconds": round(self.trained.seconds, 2),
            "apply_seconds": round(self.apply_seconds, 2),
            "seconds": round(self.trained.seconds + self.apply_seconds, 1),
            "rows": self.rows,
            "remembered_examples": self.remembered,
            "warning": self.warning,
        }
        if paths:
            data["folder"] = str(self.folder)
            data["loss_curve"] = None if curve is None else str(curve)
        return data


def make_version(
    *,
    manifest: Manifest,
    catalog: Catalog,
    versions: VersionFolders,
    model_id: str,
    trainee: TrainableEncoder,
    pairs: Pairs,
    background: np.ndarray,
    base: StoredVectors,
    settings: AdaptSettings,
    source: str,
    bar: ProgressBar,
    paraphrases: Mapping[str, Sequence[Paraphrased]] | None = None,
) -> AdaptReport:
    """Train on `pairs` with `trainee` (a float32 copy of the base encoder whose text encoder
    is tuned in place), keep `background` (other items' base vectors) where it was, and write
    the new version of `model_id`; `source` says where the pairs came from."""
    from ..adapt.adapter import adapted
    from ..adapt.version_files import data_hash, save_version, vector_set, write_version_vectors

    shown = partial(bar.update, "training")  # (step, steps, loss)
    trained = _train(trainee, pairs, background, settings, shown, paraphrases)
    name = versions.next_name(model_id)
    folder = versions.folder(model_id, name)
    captions = pairs.captions
    record = {
        "name": name,
        "base_model": model_id,
        "base_spec": manifest.models[model_id]["spec"],
        "data_hash": data_hash(model_id, pairs.keys),
        "pairs": len(captions),
        "captions": len(set(captions)),
        "annotations": source,
        "kind": settings.kind,
        "settings": asdict(settings),
        "paraphrases": sum(
            1 for found in (paraphrases or {}).values() for p in found if p.second is not None
        ),
        "device": trainee.device,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    anchors = trained.anchors or vocabulary_anchors(
        getattr(trainee, "tokenizer", None), captions, seed=settings.seed
    )
    # examples are kept only where a query can be told to ask for them: a tokenizer without
    # words (a byte-level test model) gives no anchors to tell it by
    remember = settings.example_weight > 0 and bool(anchors)
    record["remembered_examples"] = len(captions) if remember else 0
    save_version(folder, trained, record)
    if remember:
        examples = adapted(trained.adapter, pairs.vectors)
        weights = {"weight": settings.example_weight, "sharpness": settings.example_sharpness}
        ExampleMemory.build(trainee, examples, captions, anchors, **weights).save(folder)
    started = time.perf_counter()
    write_version_vectors(
        folder,
        trained.adapter,
        base.vectors(),
        base.item_ids,
        progress=lambda n: bar.update("applying", n, base.rows, None, add=True),
    )
    bar.close()
    with catalog.transaction() as tx:
        tx.set_vector_rows(vector_set(model_id, name), base.rows)
    manifest.add_version(model_id, name, {k: record[k] for k in ("created", "pairs", "data_hash")})
    return AdaptReport(
        version=name,
        kind=settings.kind,
        parts=settings.parts,
        folder=folder,
        pairs=len(captions),
        captions=len(set(captions)),
        trained=trained,
        apply_seconds=round(time.perf_counter() - started, 2),
        rows=base.rows,
        remembered=record["remembered_examples"],
        warning=few_examples(captions),
    )


def _train(
    trainee: TrainableEncoder,
    pairs: Pairs,
    background: np.ndarray,
    settings: AdaptSettings,
    shown: Callable[[int, int, float], None],
    paraphrases: Mapping[str, Sequence[Paraphrased]] | None,
) -> Trained:
    """The adapter and text state a version learns: for captions (text search), or for
    image search (MCIP), then, with `settings.realign`, the text encoder re-aligned to it."""
    from ..adapt.adapter import adapted
    from ..adapt.image_tuning import train_image_adapter
    from ..adapt.training import train_adapter

    if settings.target != "images":
        return train_adapter(
            trainee,
            pairs.vectors,
            pairs.captions,
            settings,
            background=background,
            progress=shown,
            paraphrases=paraphrases,
        )
    trained = train_image_adapter(
        trainee, pairs.vectors, pairs.captions, settings, background, shown
    )
    if settings.realign:
        text_only = replace(
            settings, target="text", realign=False, train_adapter=False, train_text=True
        )
        realigned = train_adapter(
            trainee,
            adapted(trained.adapter, pairs.vectors),
            pairs.captions,
            text_only,
            background=adapted(trained.adapter, background),
            progress=shown,
        )
        trained.text_state = realigned.text_state
        trained.anchors = realigned.anchors
        trained.losses += realigned.losses
        trained.epoch_losses += realigned.epoch_losses
        trained.seconds += realigned.seconds
    return trained


def few_examples(captions: list[str]) -> str | None:
    """A warning naming the captions with fewer than FEW_EXAMPLES examples (None: none)."""
    counts = Counter(captions)
    few = sorted((n, caption) for caption, n in counts.items() if n < FEW_EXAMPLES)
    if not few:
        return None
    shown = ", ".join(f"{caption} ({n})" for n, caption in few[:5])
    more = f" and {len(few) - 5} more" if len(few) > 5 else ""
    return (
        f"{len(few)} of {len(counts)} captions have fewer than {FEW_EXAMPLES} examples: "
        f"{shown}{more}; so few are learnt only partly (docs/adaptation.md): caption more "
        "items"
    )


class ProgressBar:
    """Adaptation progress, to a callback (the web page) and/or a terminal bar."""

    def __init__(self, callback: Callable[[dict], None] | None, terminal: bool) -> None:
        self.callback = callback
        self.terminal = terminal
        self.bar = None
        self.stage: str | None = None
        self.done = 0

    def update(
        self, stage: str, done: int, total: int, loss: float | None, *, add: bool = False
    ) -> None:
        if stage != self.stage:
            self.close()
            self.stage, self.done = stage, 0
            if self.terminal:
                from tqdm import tqdm

                self.bar = tqdm(
                    total=total,
                    desc=stage,
                    unit="step" if loss is not None else "vec",
                    unit_scale=loss is None,
                    leave=False,
                )
        step = done if add else done - self.done
        self.done += step
        if self.bar is not None:
            self.bar.update(step)
            if loss is not None:
                self.bar.set_postfix(loss=f"{loss:.3f}")
        if self.callback:
            self.callback({"stage": stage, "done": self.done, "total": total, "loss": loss})

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
