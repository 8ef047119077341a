"""Better image-to-image search without losing text search (MCIP, Schall et al. 2024), on a
library's stored vectors: `sashie adapt LIB --for images`.

The visual adapter (adapter.py) over the stored vectors is trained with
- ArcMargin over the classes (each distinct caption of the annotations is a class; learnt
  class weights, started at the caption's text vector), which pulls pictures of one thing
  together and pushes other things away: what image queries need;
- the multi-caption ArcMargin whose class weights are the locked text vectors of each item's
  captions in the phrasings people query with (phrasings.py), which holds the pictures next to
  their words, so text queries keep working;
- the keep term `adapt` already has: the rest of the collection stays where it was.
The text encoder is not touched (its weights stay bit-identical) and no image is re-encoded.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..encoders import Encoder
from ..errors import SashieError
from .adapter import VisualAdapter
from .losses import arcmargin_loss, multi_caption_arcmargin_loss
from .phrasings import phrasings
from .settings import AdaptSettings
from .training import Trained, background_pool, draw, run_epochs, unit_rows


def check_classes(captions: Sequence[str]) -> None:
    """One error line unless there are two classes or more, each with two items or more."""
    counts = Counter(captions)
    if len(counts) < 2:
        raise SashieError(
            "adapt --for images needs at least two classes (distinct captions); "
            f"the annotations have {len(counts)}"
        )
    lone = sorted(c for c, n in counts.items() if n < 2)
    if lone:
        shown = ", ".join(repr(c) for c in lone[:5]) + (" ..." if len(lone) > 5 else "")
        raise SashieError(
            f"adapt --for images needs two items or more of each class; {len(lone)} have "
            f"one: {shown}"
        )


def train_image_adapter(
    encoder: Encoder,
    vectors: np.ndarray,
    captions: Sequence[str],
    settings: AdaptSettings,
    background: np.ndarray | None = None,
    progress: Callable[[int, int, float], None] | None = None,
) -> Trained:
    """Train the visual adapter on (stored vector, caption) pairs with MCIP's two ArcMargin
    terms and the keep term; `encoder` only encodes the captions (its text encoder stays
    as it is)."""
    settings.check()
    if len(vectors) != len(captions):
        raise SashieError("adapt needs one caption a vector")
    check_classes(captions)
    started = time.perf_counter()
    torch.manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    device = encoder.device
    images = unit_rows(vectors, device)
    names, inverse = np.unique(np.asarray(captions, dtype=object), return_inverse=True)
    class_ids = torch.from_numpy(inverse).to(device)
    # each class's texts, locked: the phrasings people query with
    texts = [phrasings(str(name)) for name in names]
    flat = [t for group in texts for t in group]
    locked = torch.from_numpy(encoder.encode_texts(flat)).float().to(device)
    owner_class = torch.tensor([c for c, group in enumerate(texts) for _ in group], device=device)
    starts = torch.stack([locked[owner_class == c].mean(0) for c in range(len(names))])
    class_weights = torch.nn.Parameter(F.normalize(starts, dim=-1).clone())
    others_pool = background_pool(background, settings, device)

    adapter = VisualAdapter(images.shape[1], settings.ratio).to(device)
    optimizer = torch.optim.AdamW(
        [
            {"params": list(adapter.parameters()), "lr": settings.adapter_lr},
            {"params": [class_weights], "lr": settings.adapter_lr},
        ],
        weight_decay=0.01,
    )
    trained = Trained(adapter, {})

    def loss_of(order: np.ndarray) -> torch.Tensor:
        batch = torch.from_numpy(order).to(device)
        moved = adapter(images[batch])
        labels = class_ids[batch]
        loss = arcmargin_loss(
            moved, class_weights, labels, scale=settings.arc_scale, margin=settings.arc_margin
        )
        # every text of the batch's classes, once (a class's texts are no wrong answers for
        # its other rows); one row of each class holds its texts this step, drawn at random
        rows = torch.isin(owner_class, torch.unique(labels)).nonzero().squeeze(1)
        holder: dict[int, int] = {}
        for i in rng.permutation(len(labels)):
            holder.setdefault(int(labels[i]), int(i))
        owners = torch.tensor([holder[int(owner_class[r])] for r in rows], device=device)
        loss = loss + settings.caption_weight * multi_caption_arcmargin_loss(
            moved, locked[rows], owners, scale=settings.arc_scale, margin=settings.arc_margin
        )
        if others_pool is not None:
            kept = draw(others_pool, settings.negatives, rng)
            loss = loss + settings.keep_weight * (1 - (adapter(kept) * kept).sum(-1)).mean()
        return loss

    run_epochs(trained, optimizer, len(captions), settings, rng, loss_of, progress)
    trained.adapter = adapter.cpu().eval()
    trained.seconds = time.perf_counter() - started
    return trained
