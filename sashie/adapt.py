"""Teach the model a collection's words: a visual adapter over stored vectors + the text encoder.

The seed paper's recipe (§4.4.2): the image encoder stays frozen; a CLIP-Adapter after it,

    A(v) = normalize(R · (W2 relu(W1 v + b1) + b2) + (1 − R) · v),   W1: D → D/4, W2: D/4 → D

and every parameter of the text encoder are trained with the symmetric InfoNCE loss on
(stored image vector, caption) pairs, AdamW, negatives from the batch. Training reads the
vectors the library already holds, so no image is decoded or encoded, and the whole index is
brought into the new space as V′ = A(V) by two small matrix products per row.

W2 starts at zero, so an untrained adapter is the identity (after normalization): training
moves vectors only as far as the captions ask. Pairs that share a caption are all positives
of each other (with 30 pictures of 几帳 in one batch, the other 29 are not negatives).
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .errors import SashieError

ADAPTER_FILE = "adapter.safetensors"
TEXT_FILE = "text-encoder.safetensors"
VERSION_FILE = "version.json"
LOSS_PLOT = "loss.png"
DEFAULT_TEMPERATURE = 0.07  # when a model has no logit scale of its own
ANCHOR_TEXTS = 4096  # the model's own words whose meaning training keeps
ANCHOR_BATCH = 64  # of them, a step


@dataclass(frozen=True)
class AdaptSettings:
    epochs: int = 3
    batch: int = 64
    # The text encoder's learning rate. The paper's 5e-5 barely moves a word in the few dozen
    # steps that a few hundred pairs give; 1e-3 with the anchors below learns it (README).
    lr: float = 1e-3
    # The adapter's: it starts as the identity; at 1e-3 it teaches a little more and costs
    # the concepts the model already knew 3-4 points of P@10 (README).
    adapter_lr: float = 1e-4
    ratio: float = 0.2  # R, CLIP-Adapter's residual blend
    train_adapter: bool = True
    train_text: bool = True
    keep_weight: float = 10.0  # how strongly the rest of the collection stays where it was
    min_steps: int = 100  # epochs are repeated until at least this many steps were taken
    negatives: int = 4096  # other items' vectors each caption is told apart from, a step
    anchor_weight: float = 100.0  # how strongly the model's own words keep their meaning
    # The captioned pictures, remembered: a query for a taught caption also ranks items by
    # their likeness to its examples (memory.py); 0 leaves them out.
    example_weight: float = 1.0
    example_sharpness: float = 5.0
    seed: int = 0

    def check(self) -> None:
        if self.epochs < 1 or self.batch < 2 or self.min_steps < 0 or self.negatives < 0:
            raise SashieError("adapt needs --epochs >= 1, --batch >= 2, --min-steps >= 0 "
                              "and --negatives >= 0")
        if self.keep_weight < 0 or self.anchor_weight < 0 or self.example_weight < 0:
            raise SashieError("--keep-weight, --anchor-weight and --example-weight must be >= 0")
        if self.example_sharpness <= 0:
            raise SashieError("--example-sharpness must be positive")
        if not 0.0 <= self.ratio <= 1.0:
            raise SashieError("--ratio must be between 0 and 1")
        if self.lr <= 0 or self.adapter_lr <= 0:
            raise SashieError("learning rates must be positive")
        if not (self.train_adapter or self.train_text):
            raise SashieError("nothing to train: keep the adapter, the text encoder or both")


class VisualAdapter(torch.nn.Module):
    """CLIP-Adapter on unit image vectors: bottleneck D → D/4 → D blended with the input."""

    def __init__(self, dim: int, ratio: float) -> None:
        super().__init__()
        self.ratio = ratio
        self.down = torch.nn.Linear(dim, max(1, dim // 4))
        self.up = torch.nn.Linear(max(1, dim // 4), dim)
        torch.nn.init.zeros_(self.up.weight)
        torch.nn.init.zeros_(self.up.bias)

    def forward(self, vectors: torch.Tensor) -> torch.Tensor:
        blended = self.ratio * self.up(F.relu(self.down(vectors))) + (1 - self.ratio) * vectors
        return F.normalize(blended, dim=-1)

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], ratio: float) -> "VisualAdapter":
        adapter = cls(arrays["down.weight"].shape[1], ratio)
        adapter.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in arrays.items()})
        return adapter.eval()


def apply_adapter(adapter: VisualAdapter, vectors: np.ndarray, *, step: int = 2048,
                  out: np.ndarray | None = None,
                  progress: Callable[[int], None] | None = None) -> np.ndarray:
    """V′ = A(V) block by block (float16 or float32 rows in, float16 rows out, or into `out`).

    The same formula as `VisualAdapter.forward`, arranged for speed on a CPU: the blend is
    folded into the second matrix product, and the normalized rows are written straight into
    the float16 output; blocks of a few thousand rows stay in the CPU's caches. `out` may be
    `vectors` itself (float16 rows, adapted in place)."""
    out = np.empty(vectors.shape, np.float16) if out is None else out
    ratio = adapter.ratio
    with torch.inference_mode():
        down_w = adapter.down.weight.T.contiguous()
        up_w = adapter.up.weight.T.contiguous()
        down_b, up_b = adapter.down.bias, ratio * adapter.up.bias
        for start in range(0, len(vectors), step):
            rows = np.asarray(vectors[start : start + step])
            if not rows.flags.writeable:  # torch wants writable memory, though it only reads
                rows = rows.copy()
            block = torch.from_numpy(rows).float()
            hidden = torch.addmm(down_b, block, down_w).relu_()
            blended = torch.add(up_b, block, alpha=1 - ratio).addmm_(hidden, up_w, alpha=ratio)
            norms = torch.linalg.vector_norm(blended, dim=1, keepdim=True).clamp_(min=1e-12)
            target = out[start : start + len(block)]
            if target.dtype == np.float16 and target.flags.c_contiguous:
                torch.div(blended, norms, out=torch.from_numpy(target))
            else:
                target[:] = (blended / norms).numpy()
            if progress:
                progress(len(block))
    return out


@dataclass
class Trained:
    adapter: VisualAdapter | None
    text_state: dict[str, torch.Tensor]  # the tuned text-encoder tensors, by state-dict name
    losses: list[float] = field(default_factory=list)  # one a step
    epoch_losses: list[float] = field(default_factory=list)
    seconds: float = 0.0
    anchors: list[str] = field(default_factory=list)  # the words kept in place, if any


def text_parameters(encoder) -> dict[str, torch.nn.Parameter]:
    """The text encoder's parameters: those the text features depend on (found by one backward
    pass, so it works for any CLIP-style model whatever its module names)."""
    model = encoder.model
    for parameter in model.parameters():
        parameter.requires_grad_(True)
        parameter.grad = None
    with torch.enable_grad():
        encoder._texts(["a picture", "an illustration"]).float().sum().backward()
    found = {name: p for name, p in model.named_parameters()
             if p.grad is not None and p.grad.abs().sum() > 0}
    for parameter in model.parameters():
        parameter.grad = None
        parameter.requires_grad_(False)
    if not found:
        raise SashieError(f"{encoder.model_id} has no trainable text encoder")
    return found


def logit_scale(encoder) -> float:
    """The model's own contrastive temperature (as a multiplier), at most 100 as in CLIP."""
    scale = getattr(encoder.model, "logit_scale", None)
    if not isinstance(scale, torch.Tensor):
        return 1 / DEFAULT_TEMPERATURE
    return min(float(scale.detach().exp()), 100.0)


def phrasings(text: str) -> list[str]:
    """A caption as people put it in a query: alone, or in a phrase of its script. Training
    draws one of these for each pair, so that a word taught as 几帳 is also learnt in 几帳の挿絵."""
    if text.isascii():
        return [text, f"an illustration of {text}", f"a picture of {text}",
                f"a drawing of {text}"]
    return [text, f"{text}の挿絵", f"{text}の絵", f"{text}の図"]


def vocabulary_anchors(tokenizer, captions: Sequence[str], *, count: int = ANCHOR_TEXTS,
                       seed: int = 0) -> list[str]:
    """Texts whose meaning the tuned text encoder must keep: words of the model's own
    tokenizer (any model's, any language), half alone and half in a query's phrase ("an
    illustration of w", "wの挿絵"), leaving out every word that the captions use (those are
    meant to move); and each word of a many-word English caption in the company of 8 others
    ("frowning face" is taught; "sun with face" must not follow it)."""
    inner = getattr(tokenizer, "tokenizer", tokenizer)  # open_clip wraps HF tokenizers
    size = len(inner) if hasattr(inner, "__len__") else len(getattr(inner, "encoder", ()))
    if not size or not hasattr(inner, "decode"):
        return []
    taught = " ".join(captions).lower()
    words = set()
    for token_id in range(size):
        word = inner.decode([token_id]).strip().lower()
        if len(word) >= 2 and word.isalpha() and word not in taught:
            words.add(word)
    rng = np.random.default_rng(seed)
    chosen = sorted(words)
    chosen = [chosen[i] for i in rng.permutation(len(chosen))[:count]]
    texts = [w if i % 2 == 0 else phrasings(w)[1] for i, w in enumerate(chosen)]
    # the words of a many-word caption in other company ("frowning face" is taught, "sun with
    # face" must stay): only the caption itself should move
    ascii_words = [w for w in chosen if w.isascii()]
    shared = sorted({w for c in captions if c.isascii() and len(c.split()) > 1
                     for w in c.lower().split() if len(w) >= 3})
    for n, word in enumerate(shared):
        for i, other in enumerate(ascii_words[n * 8:(n + 1) * 8]):
            texts.append(phrasings(f"{other} with {word}" if i % 2 else f"{word} {other}")[i % 2])
    return list(dict.fromkeys(texts))  # a tokenizer may hold a phrase as one token


def train_adapter(encoder, vectors: np.ndarray, captions: Sequence[str],
                  settings: AdaptSettings, background: np.ndarray | None = None,
                  progress: Callable[[int, int, float], None] | None = None) -> Trained:
    """Train on (stored vector, caption) pairs; `encoder` is a float32 training copy whose text
    encoder is changed in place. `progress(step, steps, loss)` is called after each step.

    Two guards keep what the model already knew, so that teaching 几帳 loses nothing else:
    - `background`: stored vectors of other items of the collection. Each step draws
      `negatives` of them; they are extra negatives for the captions (几帳 is not any random
      picture), and the adapter is asked to leave them where they were (keep_weight x mean
      cosine distance).
    - anchors: words of the model's own vocabulary (`vocabulary_anchors`); each step the text
      encoder is asked to keep a batch of them where they were (anchor_weight x mean cosine
      distance), which lets it learn at a rate that teaches a word in a hundred steps."""
    settings.check()
    if len(vectors) != len(captions) or len(captions) < 2:
        raise SashieError("adapt needs at least two (item, caption) pairs")
    started = time.perf_counter()
    torch.manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    images = F.normalize(torch.from_numpy(np.asarray(vectors, np.float32)), dim=-1)
    images = images.to(encoder.device)
    if background is not None and len(background) and settings.negatives:
        background = F.normalize(torch.from_numpy(np.asarray(background, np.float32)), dim=-1)
        background = background.to(encoder.device)
    else:
        background = None
    caption_ids = np.unique(np.asarray(captions, dtype=object), return_inverse=True)[1]
    phrased = [phrasings(c) for c in captions]
    scale = logit_scale(encoder)

    groups = []
    adapter = None
    if settings.train_adapter:
        adapter = VisualAdapter(images.shape[1], settings.ratio).to(encoder.device)
        groups.append({"params": list(adapter.parameters()), "lr": settings.adapter_lr})
    text_params = text_parameters(encoder) if settings.train_text else {}
    anchors, anchors_before = [], None
    if text_params:
        if settings.anchor_weight:
            anchors = vocabulary_anchors(getattr(encoder, "tokenizer", None), captions,
                                         seed=settings.seed)
        if anchors:
            anchors_before = torch.from_numpy(encoder.encode_texts(anchors)).to(encoder.device)
        for parameter in text_params.values():
            parameter.requires_grad_(True)
        groups.append({"params": list(text_params.values()), "lr": settings.lr})
    optimizer = torch.optim.AdamW(groups, weight_decay=0.01)

    # where each batch of an epoch starts; a lone pair left at the end has no negatives
    starts = [s for s in range(0, len(captions), settings.batch) if len(captions) - s >= 2]
    epochs = max(settings.epochs, math.ceil(settings.min_steps / len(starts)))
    steps = epochs * len(starts)
    trained = Trained(adapter, {}, anchors=anchors)
    step = 0
    for _ in range(epochs):
        order = rng.permutation(len(captions))
        epoch = []
        for start in starts:
            batch = order[start : start + settings.batch]
            image = images[batch]
            others = None
            if background is not None:
                others = background[torch.from_numpy(rng.choice(
                    len(background), min(settings.negatives, len(background)), replace=False))]
            if adapter is not None:
                image = adapter(image)
                moved = others
                others = None if others is None else adapter(others)
            with torch.set_grad_enabled(bool(text_params)):
                said = [phrased[i][rng.integers(len(phrased[i]))] for i in batch]
                text = F.normalize(encoder._texts(said).float(), dim=-1)
            loss = contrastive_loss(image, text, caption_ids[batch], scale, others)
            if adapter is not None and others is not None:
                loss = loss + settings.keep_weight * (1 - (others * moved).sum(-1)).mean()
            if anchors_before is not None:
                some = rng.choice(len(anchors), min(ANCHOR_BATCH, len(anchors)), replace=False)
                now = F.normalize(encoder._texts([anchors[i] for i in some]).float(), dim=-1)
                drift = 1 - (now * anchors_before[torch.from_numpy(some)]).sum(-1)
                loss = loss + settings.anchor_weight * drift.mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step += 1
            value = float(loss.detach())
            trained.losses.append(value)
            epoch.append(value)
            if progress:
                progress(step, steps, value)
        trained.epoch_losses.append(float(np.mean(epoch)) if epoch else float("nan"))
    for parameter in text_params.values():
        parameter.requires_grad_(False)
    if adapter is not None:
        trained.adapter = adapter.cpu().eval()
    trained.text_state = {name: p.detach().float().cpu().clone()
                          for name, p in text_params.items()}
    trained.seconds = time.perf_counter() - started
    return trained


def contrastive_loss(image: torch.Tensor, text: torch.Tensor, caption_ids: np.ndarray,
                     scale: float, others: torch.Tensor | None = None) -> torch.Tensor:
    """Symmetric InfoNCE where every pair with the same caption counts as a positive;
    `others` (images of no caption) are further negatives of each caption."""
    ids = torch.as_tensor(caption_ids, device=image.device)
    same = (ids[:, None] == ids[None, :]).float()
    targets = same / same.sum(1, keepdim=True)
    logits = scale * image @ text.T
    text_logits = logits.T
    if others is not None:
        text_logits = torch.cat([text_logits, scale * text @ others.T], dim=1)
        text_targets = torch.cat([targets, torch.zeros(len(text), len(others),
                                                       device=image.device)], dim=1)
    else:
        text_targets = targets
    return (F.cross_entropy(logits, targets) + F.cross_entropy(text_logits, text_targets)) / 2


def data_hash(model_id: str, pairs: Sequence[tuple[int, str]]) -> str:
    """A short hash of the base model and the (item, caption) pairs trained on."""
    digest = hashlib.sha256(model_id.encode())
    for item, caption in sorted(pairs):
        digest.update(f"\n{item}\t{caption}".encode())
    return digest.hexdigest()[:12]


def save_version(folder: Path, trained: Trained, record: dict) -> None:
    """The adapter and tuned text tensors (safetensors), version.json and the loss plot."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    if trained.adapter is not None:
        save_file({k: v.contiguous() for k, v in trained.adapter.state_dict().items()},
                  folder / ADAPTER_FILE)
    if trained.text_state:
        save_file({k: v.contiguous() for k, v in trained.text_state.items()}, folder / TEXT_FILE)
    record = dict(record, losses=[round(x, 5) for x in trained.losses],
                  epoch_losses=[round(x, 5) for x in trained.epoch_losses],
                  train_seconds=round(trained.seconds, 2))
    (folder / VERSION_FILE).write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n")
    plot_losses(trained.losses, folder / LOSS_PLOT, title=record.get("name", ""))


def read_version(folder: Path) -> dict:
    try:
        return json.loads((folder / VERSION_FILE).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise SashieError(f"unreadable model version in {folder} ({e})") from None


def load_adapter(folder: Path, ratio: float) -> VisualAdapter | None:
    path = folder / ADAPTER_FILE
    if not path.is_file():
        return None
    from safetensors.numpy import load_file

    return VisualAdapter.from_arrays(load_file(path), ratio)


def load_text_state(encoder, folder: Path) -> None:
    """Put a version's tuned text tensors into a loaded base encoder's model."""
    path = folder / TEXT_FILE
    if not path.is_file():
        return
    from safetensors.torch import load_file

    state = load_file(path)
    missing = set(state) - set(dict(encoder.model.named_parameters()))
    if missing:
        raise SashieError(f"{path} does not fit {encoder.model_id} (e.g. {sorted(missing)[0]})")
    with torch.no_grad():
        for name, parameter in encoder.model.named_parameters():
            if name in state:
                parameter.copy_(state[name].to(parameter.device, parameter.dtype))


def plot_losses(losses: Sequence[float], path: Path, title: str = "") -> None:
    """The loss curve, step by step (the seed paper's Fig. 3)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 3.5), dpi=100)
    axes.plot(range(1, len(losses) + 1), losses, marker="o" if len(losses) < 40 else None)
    axes.set_xlabel("step")
    axes.set_ylabel("InfoNCE loss")
    axes.set_title(f"adapting {title}".strip())
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def loss_table(trained: Trained) -> str:
    lines = ["| epoch | mean loss |", "|-------|-----------|"]
    lines += [f"| {i:>5} | {loss:9.4f} |" for i, loss in enumerate(trained.epoch_losses, 1)]
    return "\n".join(lines)


