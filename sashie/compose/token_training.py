"""Training the token learner and the light encoder, on a library's own vectors and crops:
no labels, no captions.

Token learner (global contrastive distillation): an item's vector -> pseudo-words -> the
prompt "a picture of *" (or "*の絵") through the frozen text tower -> a text feature that must
pick the item's own stored vector out of the batch's and `negatives` other items' of the
collection (InfoNCE), plus a word-likeness term: each pseudo-word's cosine to its nearest real
word embedding is pulled up, so the tokens stay where the text tower's words are and compose
with the words around them (our stand-in for ISA's local alignment, which needs patch
features a stored vector does not have).

Light encoder: the crops' stored vectors are the teacher; InfoNCE over the batch plus a cosine
term, so the light vector both lands near its target and tells items apart.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import numpy as np
import torch
from torch.nn import functional as F

from .models import LightEncoder, TokenLearner, normalise
from .settings import ComposeSettings
from .slots import TokenSlots

TRAIN_PROMPTS = ("a picture of *", "*の絵")

Progress = Callable[[dict], None]


def _schedule(optimizer: torch.optim.Optimizer, steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    warm = max(1, steps // 20)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)),
    )


def word_likeness(tokens: torch.Tensor, vocabulary: torch.Tensor) -> torch.Tensor:
    """1 - each token's cosine to its nearest word embedding, averaged (0: words)."""
    unit_tokens = F.normalize(tokens.reshape(-1, tokens.shape[-1]).float(), dim=-1)
    nearest = (unit_tokens @ F.normalize(vocabulary.float(), dim=-1).T).max(1).values
    return (1 - nearest).mean()


def train_token_learner(
    slots: TokenSlots,
    inputs: np.ndarray,
    targets: np.ndarray,
    collection: np.ndarray,
    settings: ComposeSettings,
    *,
    steps: int,
    device: str,
    start: TokenLearner | None = None,
    progress: Progress | None = None,
) -> tuple[TokenLearner, list[float]]:
    """Train (or go on training `start`) so that inputs[i] -> tokens -> prompt -> text
    feature finds targets[i] among the batch and `settings.negatives` rows of `collection`.
    Returns the learner (on the CPU, in eval mode) and the loss every 10 steps."""
    generator = torch.Generator().manual_seed(settings.seed)
    torch.manual_seed(settings.seed)
    vocabulary = slots.vocabulary.to(device)
    if start is None:
        learner = TokenLearner(inputs.shape[1], slots.width, settings.tokens, vocabulary.cpu())
    else:
        learner = copy.deepcopy(start)
    learner.to(device).train()
    slots.freeze()
    x = torch.from_numpy(np.ascontiguousarray(inputs, np.float32)).to(device)
    y = torch.from_numpy(np.ascontiguousarray(targets, np.float32)).to(device)
    pool = torch.from_numpy(np.ascontiguousarray(collection, np.float32)).to(device)
    optimizer = torch.optim.AdamW(learner.parameters(), lr=settings.lr, weight_decay=0.01)
    schedule = _schedule(optimizer, steps)
    batch = min(settings.batch, len(x))
    losses: list[float] = []
    for step in range(steps):
        rows = torch.randint(len(x), (batch,), generator=generator).to(device)
        prompts = [TRAIN_PROMPTS[int(i) % len(TRAIN_PROMPTS)] for i in range(batch)]
        tokens = learner(x[rows])
        composed = F.normalize(slots.encode(prompts, tokens).float(), dim=-1)
        candidates = y[rows]
        if settings.negatives and len(pool):
            picked = torch.randint(len(pool), (settings.negatives,), generator=generator)
            others = pool[picked.to(device)]
            candidates = torch.cat([candidates, others])
        logits = composed @ candidates.T / settings.temperature
        if settings.negatives and len(pool):  # a negative that is the target itself is no negative
            same = (candidates[None, batch:] * y[rows][:, None]).sum(-1) > 0.9999
            logits[:, batch:] = logits[:, batch:].masked_fill(same, float("-inf"))
        loss = F.cross_entropy(logits, torch.arange(batch, device=device))
        loss = loss + settings.word_weight * word_likeness(tokens, vocabulary)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        if step % 10 == 0 or step == steps - 1:
            losses.append(round(float(loss.detach()), 4))
            if progress:
                progress({"stage": "tokens", "done": step + 1, "total": steps, "loss": losses[-1]})
    return learner.cpu().eval(), losses


def train_light_encoder(
    crops: np.ndarray,
    targets: np.ndarray,
    settings: ComposeSettings,
    *,
    device: str,
    progress: Progress | None = None,
    extra: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[LightEncoder, list[float], float]:
    """Distil the gallery vectors `targets` of `crops` (N, side, side, 3 uint8) into a light
    encoder, with `extra` (pictures, their vectors) always among the training ones. Returns
    it (CPU, eval), its losses by epoch and its mean cosine to the targets of a held-out
    tenth of the crops."""
    torch.manual_seed(settings.seed)
    generator = torch.Generator().manual_seed(settings.seed)
    order = torch.randperm(len(crops), generator=generator).numpy()
    held = order[: max(1, len(order) // 10)] if len(order) >= 20 else order[:0]
    train = order[len(held) :]
    if extra is not None and len(extra[0]):
        train = np.concatenate([train, len(crops) + np.arange(len(extra[0]))])
        crops = np.concatenate([crops, extra[0]])
        targets = np.concatenate([targets, extra[1]])
    model = LightEncoder(targets.shape[1], settings.light_side, settings.light_width).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    batch = min(256, len(train))
    steps_per_epoch = max(1, len(train) // batch)
    total = steps_per_epoch * settings.light_epochs
    schedule = _schedule(optimizer, total)
    y_all = torch.from_numpy(np.ascontiguousarray(targets, np.float32))
    losses: list[float] = []
    done = 0
    for _ in range(settings.light_epochs):
        model.train()
        shuffled = train[torch.randperm(len(train), generator=generator).numpy()]
        epoch_loss = 0.0
        for start in range(0, steps_per_epoch * batch, batch):
            rows = shuffled[start : start + batch]
            x = torch.from_numpy(_augment(crops[rows], generator)).to(device)
            y = y_all[rows].to(device)
            out = model(x)
            logits = out @ y.T / settings.temperature
            loss = F.cross_entropy(logits, torch.arange(len(rows), device=device))
            loss = loss + (1 - (out * y).sum(-1)).mean() * 10
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            epoch_loss += float(loss.detach())
            done += 1
            if progress:
                progress(
                    {"stage": "light", "done": done, "total": total, "loss": float(loss.detach())}
                )
        losses.append(round(epoch_loss / steps_per_epoch, 4))
    model = model.cpu().eval()
    agreement = float("nan")
    if len(held):
        agreement = float((model.encode(crops[held]) * targets[held]).sum(-1).mean())
    return model, losses, agreement


def _augment(pixels: np.ndarray, generator: torch.Generator) -> np.ndarray:
    """Model input with the changes a query picture brings: mirrored, greyed, shifted tone."""
    x = pixels.astype(np.float32)
    n = len(x)
    draws = torch.rand((n, 3), generator=generator).numpy()
    x[draws[:, 0] < 0.5] = x[draws[:, 0] < 0.5, :, ::-1]
    grey = draws[:, 1] < 0.2
    x[grey] = x[grey].mean(-1, keepdims=True)
    x = x * (0.85 + 0.3 * draws[:, 2]).astype(np.float32)[:, None, None, None]
    return normalise(np.clip(x, 0, 255).astype(np.uint8))
