"""Teach the model a collection's words: a visual adapter over stored vectors + the text encoder.

The seed paper's recipe (§4.4.2): the image encoder stays frozen; a CLIP-Adapter after it
(adapter.py) and every parameter of the text encoder are trained with the symmetric InfoNCE
loss (losses.py) on (stored image vector, caption) pairs, AdamW, negatives from the batch.
Training reads the vectors the library already holds, so no image is decoded or encoded, and
the whole index is brought into the new space as V′ = A(V) by two small matrix products per
row (versions.py).

Pairs that share a caption are all positives of each other (with 30 pictures of 几帳 in one
batch, the other 29 are not negatives).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from ..encoders import TrainableEncoder
from ..errors import SashieError
from .adapter import VisualAdapter
from .losses import contrastive_loss, paraphrase_loss
from .paraphrase import Paraphrased
from .phrasings import phrasings, vocabulary_anchors
from .settings import AdaptSettings

DEFAULT_TEMPERATURE = 0.07  # when a model has no logit scale of its own
ANCHOR_BATCH = 64  # anchor texts held in place, a step


@dataclass
class Trained:
    adapter: VisualAdapter | None
    text_state: dict[str, torch.Tensor]  # the tuned text-encoder tensors, by state-dict name
    losses: list[float] = field(default_factory=list)  # one a step
    epoch_losses: list[float] = field(default_factory=list)
    seconds: float = 0.0
    anchors: list[str] = field(default_factory=list)  # the words kept in place, if any


def text_parameters(encoder: TrainableEncoder) -> dict[str, torch.nn.Parameter]:
    """The text encoder's parameters: those the text features depend on (found by one backward
    pass, so it works for any CLIP-style model whatever its module names)."""
    model = encoder.model
    for parameter in model.parameters():
        parameter.requires_grad_(True)
        parameter.grad = None
    with torch.enable_grad():
        encoder.text_features(["a picture", "an illustration"]).float().sum().backward()
    found = {
        name: p
        for name, p in model.named_parameters()
        if p.grad is not None and p.grad.abs().sum() > 0
    }
    for parameter in model.parameters():
        parameter.grad = None
        parameter.requires_grad_(False)
    if not found:
        raise SashieError(f"{encoder.model_id} has no trainable text encoder")
    return found


def logit_scale(encoder: TrainableEncoder) -> float:
    """The model's own contrastive temperature (as a multiplier), at most 100 as in CLIP."""
    scale = encoder.logit_scale()
    return 1 / DEFAULT_TEMPERATURE if scale is None else min(scale, 100.0)


def unit_rows(vectors: np.ndarray, device) -> torch.Tensor:
    """Stored vectors as unit float32 rows on the device."""
    return F.normalize(torch.from_numpy(np.asarray(vectors, np.float32)), dim=-1).to(device)


def background_pool(background: np.ndarray | None, settings: AdaptSettings, device):
    """The background (other items' vectors) as unit rows, or None when there is none."""
    if background is None or not len(background) or not settings.negatives:
        return None
    return unit_rows(background, device)


def draw(pool: torch.Tensor, count: int, rng: np.random.Generator) -> torch.Tensor:
    """`count` rows of `pool` (all of them when it has fewer), drawn without replacement."""
    some = rng.choice(len(pool), min(count, len(pool)), replace=False)
    return pool[torch.from_numpy(some).to(pool.device)]


def schedule(pairs: int, settings: AdaptSettings) -> tuple[list[int], int, int]:
    """Where each batch of an epoch starts (a lone pair left at the end has no negatives),
    the epochs (repeated until `min_steps`) and the steps in all."""
    starts = [s for s in range(0, pairs, settings.batch) if pairs - s >= 2]
    epochs = max(settings.epochs, math.ceil(settings.min_steps / len(starts)))
    return starts, epochs, epochs * len(starts)


def run_epochs(
    trained: Trained,
    optimizer: torch.optim.Optimizer,
    count: int,
    settings: AdaptSettings,
    rng: np.random.Generator,
    loss_of: Callable[[np.ndarray], torch.Tensor],
    progress: Callable[[int, int, float], None] | None,
) -> None:
    """The loop every adaptation shares: epochs of shuffled batches of the `count` pairs, one
    optimiser step on `loss_of(batch)` each, logged in `trained`; `progress(step, steps,
    loss)` after each step."""
    starts, epochs, steps = schedule(count, settings)
    step = 0
    for _ in range(epochs):
        order = rng.permutation(count)
        epoch: list[float] = []
        for start in starts:
            loss = loss_of(order[start : start + settings.batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            value = float(loss.detach())
            trained.losses.append(value)
            epoch.append(value)
            step += 1
            if progress:
                progress(step, steps, value)
        trained.epoch_losses.append(float(np.mean(epoch)) if epoch else float("nan"))


def train_adapter(
    encoder: TrainableEncoder,
    vectors: np.ndarray,
    captions: Sequence[str],
    settings: AdaptSettings,
    background: np.ndarray | None = None,
    progress: Callable[[int, int, float], None] | None = None,
    paraphrases: Mapping[str, Sequence[Paraphrased]] | None = None,
) -> Trained:
    """Train on (stored vector, caption) pairs; `encoder` is a float32 training copy whose text
    encoder is changed in place. `progress(step, steps, loss)` is called after each step.

    Two guards keep what the model knew, so that teaching 几帳 loses nothing else:
    `background`, stored vectors of other items, are extra negatives for the captions and
    the adapter keeps them in place (keep_weight x mean cosine distance); anchors, words of
    the model's own vocabulary (`vocabulary_anchors`), the text encoder keeps in place
    (anchor_weight x the same), so it may learn a word in a hundred steps.

    With `settings.paraphrase`, `paraphrases` holds each caption's paraphrases (x, x', x'')
    and ParaCLIP's terms join the loss (losses.paraphrase_loss); with `settings.teach` off
    they are the loss, and the image meets only x''."""
    settings.check()
    if len(vectors) != len(captions) or len(captions) < 2:
        raise SashieError("adapt needs at least two (item, caption) pairs")
    started = time.perf_counter()
    torch.manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    images = unit_rows(vectors, encoder.device)
    others_pool = background_pool(background, settings, encoder.device)
    caption_ids = np.unique(np.asarray(captions, dtype=object), return_inverse=True)[1]
    phrased = [phrasings(c) for c in captions]
    scale = logit_scale(encoder)

    adapter, text_params, anchors, optimizer = _learners(
        encoder, images.shape[1], captions, settings
    )
    anchors_before = None
    if anchors:
        anchors_before = torch.from_numpy(encoder.encode_texts(anchors)).to(encoder.device)

    trained = Trained(adapter, {}, anchors=anchors)

    def loss_of(batch: np.ndarray) -> torch.Tensor:
        image = images[batch]
        others = None if others_pool is None else draw(others_pool, settings.negatives, rng)
        moved = None
        if adapter is not None:
            image = adapter(image)
            moved = others
            others = None if others is None else adapter(others)
        loss = torch.zeros((), device=encoder.device)
        if settings.teach:
            with torch.set_grad_enabled(bool(text_params)):
                said = [phrased[i][rng.integers(len(phrased[i]))] for i in batch]
                text = F.normalize(encoder.text_features(said).float(), dim=-1)
            extra = None if others is None else scale * text @ others.T
            loss = loss + contrastive_loss(scale * image @ text.T, caption_ids[batch], extra)
        if settings.paraphrase and paraphrases:
            loss = loss + settings.paraphrase_weight * _paraphrase_term(
                encoder,
                scale,
                image,
                [captions[i] for i in batch],
                caption_ids[batch],
                paraphrases,
                settings.paraphrase_terms,
                rng,
            )
        if others is not None and moved is not None:
            loss = loss + settings.keep_weight * (1 - (others * moved).sum(-1)).mean()
        if anchors_before is not None:
            drift = _anchor_drift(encoder, anchors, anchors_before, rng)
            loss = loss + settings.anchor_weight * drift
        return loss

    run_epochs(trained, optimizer, len(captions), settings, rng, loss_of, progress)
    return _finished(trained, adapter, text_params, started)


def _finished(
    trained: Trained,
    adapter: VisualAdapter | None,
    text_params: dict[str, torch.nn.Parameter],
    started: float,
) -> Trained:
    """The run's result: the adapter on the CPU, the text encoder's tensors copied out."""
    for parameter in text_params.values():
        parameter.requires_grad_(False)
    if adapter is not None:
        trained.adapter = adapter.cpu().eval()
    trained.text_state = {name: p.detach().float().cpu().clone() for name, p in text_params.items()}
    trained.seconds = time.perf_counter() - started
    return trained


def _learners(
    encoder: TrainableEncoder, dim: int, captions: Sequence[str], settings: AdaptSettings
) -> tuple[VisualAdapter | None, dict[str, torch.nn.Parameter], list[str], torch.optim.Optimizer]:
    """What a run trains (the adapter, the text encoder's parameters, or both), the words
    the text encoder keeps in place (none when it is not trained), and their optimizer."""
    groups = []
    adapter = None
    if settings.train_adapter:
        adapter = VisualAdapter(dim, settings.ratio).to(encoder.device)
        groups.append({"params": list(adapter.parameters()), "lr": settings.adapter_lr})
    text_params = text_parameters(encoder) if settings.train_text else {}
    anchors: list[str] = []
    if text_params:
        if settings.anchor_weight:
            tokenizer = getattr(encoder, "tokenizer", None)
            anchors = vocabulary_anchors(tokenizer, captions, seed=settings.seed)
        for parameter in text_params.values():
            parameter.requires_grad_(True)
        groups.append({"params": list(text_params.values()), "lr": settings.lr})
    return adapter, text_params, anchors, torch.optim.AdamW(groups, weight_decay=0.01)


def _anchor_drift(
    encoder: TrainableEncoder,
    anchors: list[str],
    before: torch.Tensor,
    rng: np.random.Generator,
) -> torch.Tensor:
    """How far a batch of anchor words moved from where they were (mean cosine distance)."""
    some = rng.choice(len(anchors), min(ANCHOR_BATCH, len(anchors)), replace=False)
    now = F.normalize(encoder.text_features([anchors[i] for i in some]).float(), dim=-1)
    return (1 - (now * before[torch.from_numpy(some)]).sum(-1)).mean()


def _paraphrase_term(
    encoder,
    scale: float,
    image: torch.Tensor,
    captions: Sequence[str],
    groups: np.ndarray,
    paraphrases: Mapping[str, Sequence[Paraphrased]],
    terms: Sequence[str],
    rng: np.random.Generator,
) -> torch.Tensor:
    """ParaCLIP's terms over the batch, one paraphrase drawn for each pair that has one:
    InfoNCE(x, x') over all of them, InfoNCE(image, x'') and InfoNCE(x', x'') over those
    that have an x'' (a caption with no other name for its concept has none); a term over
    fewer than two rows is left out."""
    drawn: list[tuple[int, Paraphrased]] = []
    for row, caption in enumerate(captions):
        found = paraphrases.get(caption, ())
        if found:
            drawn.append((row, found[int(rng.integers(len(found)))]))
    loss = torch.zeros((), device=image.device)
    if len(drawn) < 2:
        return loss
    rows = [row for row, _ in drawn]
    texts = (
        [p.x for _, p in drawn]
        + [p.first for _, p in drawn]
        + [p.second or p.first for _, p in drawn]
    )
    x, first, second = F.normalize(encoder.text_features(texts).float(), dim=-1).split(len(rows))
    if "first" in terms:
        loss = loss + paraphrase_loss(scale, image[rows], x, first, second, groups[rows], ["first"])
    full = [i for i, (_, p) in enumerate(drawn) if p.second is not None]
    others = [t for t in terms if t != "first"]
    if others and len(full) >= 2:
        index = torch.tensor(full, device=image.device)
        loss = loss + paraphrase_loss(
            scale,
            image[[rows[i] for i in full]],
            x[index],
            first[index],
            second[index],
            groups[[rows[i] for i in full]],
            others,
        )
    return loss
