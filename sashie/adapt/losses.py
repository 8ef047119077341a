"""The contrastive loss every sashie trainer uses: the demo model's (eval/world/train.py) and
the adaptation's (training.py); and ParaCLIP's three terms built from it (`paraphrase_loss`).

CLIP's symmetric InfoNCE, except that pairs of the same group (one caption; the same concepts;
two crops of text) count as matches of each other rather than as negatives: with 30 pictures
of 几帳 in a batch, the other 29 are not wrong answers for the caption 几帳.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable

import torch
import torch.nn.functional as F


def contrastive_loss(
    logits: torch.Tensor, groups: Iterable[Hashable], extra: torch.Tensor | None = None
) -> torch.Tensor:
    """The loss of a batch whose logits[i, j] = scale · image_i · text_j; `groups` names each
    pair's group. `extra` (texts × other images) are further negatives of each text."""
    numbers: dict[Hashable, int] = {}
    ids = torch.tensor([numbers.setdefault(g, len(numbers)) for g in groups], device=logits.device)
    same = (ids[:, None] == ids[None, :]).float()
    targets = same / same.sum(1, keepdim=True)
    text_logits, text_targets = logits.T, targets
    if extra is not None:
        text_logits = torch.cat([text_logits, extra], dim=1)
        text_targets = torch.cat(
            [targets, torch.zeros(len(targets), extra.shape[1], device=logits.device)], dim=1
        )
    return (F.cross_entropy(logits, targets) + F.cross_entropy(text_logits, text_targets)) / 2


PARAPHRASE_TERMS = ("image", "first", "second")  # InfoNCE(image, x''), (x, x'), (x', x'')


def paraphrase_loss(
    scale: float,
    image: torch.Tensor,
    x: torch.Tensor,
    first: torch.Tensor,
    second: torch.Tensor,
    groups: Iterable[Hashable],
    terms: Iterable[str] = PARAPHRASE_TERMS,
) -> torch.Tensor:
    """ParaCLIP's loss over a batch of unit rows: InfoNCE(image, x'') + InfoNCE(x, x') +
    InfoNCE(x', x''), each symmetric, the rows of one group counting as matches (the
    original caption x is never paired with the image). `terms` picks some of the three
    (the bench's ablation)."""
    groups = list(groups)
    pairs = {"image": (image, second), "first": (x, first), "second": (first, second)}
    chosen = list(terms)
    if not chosen or any(t not in pairs for t in chosen):
        raise ValueError(f"terms must be some of {PARAPHRASE_TERMS}")
    return sum(  # type: ignore[return-value]
        contrastive_loss(scale * a @ b.T, groups) for a, b in (pairs[t] for t in chosen)
    )


def arcmargin_loss(
    features: torch.Tensor,
    weights: torch.Tensor,
    labels: torch.Tensor,
    *,
    scale: float = 30.0,
    margin: float = 0.2,
    allowed: torch.Tensor | None = None,
) -> torch.Tensor:
    """ArcMargin (MCIP's image-side loss, after ArcFace): for each row i with class y_i,
    −log(e^{s·cos(θ_y + m)} / (e^{s·cos(θ_y + m)} + Σ_{j≠y} e^{s·cos θ_j})), θ_j the angle
    between the row and the unit class weight j. `allowed[i, j]` False drops class j from
    row i's denominator (another of its own captions is not a wrong answer)."""
    cosine = F.normalize(features, dim=-1) @ F.normalize(weights, dim=-1).T
    rows = torch.arange(len(labels), device=features.device)
    theta = torch.acos(cosine[rows, labels].clamp(-1 + 1e-6, 1 - 1e-6))
    logits = cosine.clone()
    logits[rows, labels] = torch.cos(theta + margin)
    if allowed is not None:
        keep = allowed.clone()
        keep[rows, labels] = True
        logits = logits.masked_fill(~keep, float("-inf"))
    return F.cross_entropy(scale * logits, labels)


def multi_caption_arcmargin_loss(
    features: torch.Tensor,
    captions: torch.Tensor,
    owners: torch.Tensor,
    *,
    scale: float = 30.0,
    margin: float = 0.2,
    groups: torch.Tensor | None = None,
) -> torch.Tensor:
    """MCIP's multi-caption ArcMargin: the class weights are the locked text vectors of the
    batch's captions (`captions`, one row each; `owners[k]` = the row of `features` caption k
    describes). Each (image, own caption) pair is one ArcMargin term against every caption
    of the batch but the image's other own captions; the mean over pairs. With `groups` (a
    class of each row of `features`) the captions of rows of one's own class are no wrong
    answers either."""
    rows_of = torch.arange(len(features), device=features.device)
    if groups is None:
        own = owners[None, :] == rows_of[:, None]
    else:
        own = groups[owners][None, :] == groups[:, None]
    rows = owners  # one term per caption: its image, its index as the class
    labels = torch.arange(len(captions), device=features.device)
    allowed = ~own[rows]
    return arcmargin_loss(
        features[rows], captions, labels, scale=scale, margin=margin, allowed=allowed
    )
