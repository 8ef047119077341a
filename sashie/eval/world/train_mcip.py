"""The demo model's MCIP stage: its image tower tuned for finding more like a picture, its text
tower locked (then, optionally, re-aligned).

    python -m sashie.eval.world.train_mcip --base sashie-demo --out DIR [--realign-steps N]

After the contrastive training of train.py, this stage renders fresh samples (a seed of their
own) and trains the image tower with MCIP's loss (Schall et al. 2024):
- ArcMargin over the seen concepts as classes, on the samples that show one concept (an
  illustration or a Twemoji picture); the class weights are learnt, started at the mean text
  vector of the concept's names in the query phrasings;
- the multi-caption ArcMargin whose class weights are the locked text vectors of `captions`
  world captions of each sample (English and Japanese in turn), so pictures stay next to
  their words;
- the base's own contrastive objective against the locked text tower on a batch of every kind
  (pages, text, blank paper), which keeps a query's pictures above the pages that hold them.
The held-out concepts are never read. With `--realign-steps` the text tower is then tuned to
the new image vectors with the base's objective (MCIP's Re-A). TRAINING.json gains an `mcip`
record and the folder a loss.png.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ...adapt.losses import arcmargin_loss, contrastive_loss, multi_caption_arcmargin_loss
from ...adapt.phrasings import phrasings
from ...adapt.version_files import plot_losses
from ...encoders.hf import HFEncoder
from ...extras import available
from .artists import Concept
from .samples import SampleMeta
from .train import augment, normalize
from .train_para import (
    StageProgress,
    StageSettings,
    image_vectors,
    kept_batch,
    save_stage,
    stage_start,
    stage_step,
    tune_text_tower,
)
from .vocab import caption, vocabulary


@dataclass(frozen=True)
class MCIPSettings:
    steps: int = 300
    batch: int = 256
    # of the image tower; chosen on the seed-2000 world from 1e-4 ... 3e-3 (docs/adaptation.md)
    lr: float = 3e-3
    class_lr: float = 1e-3  # of the learnt class weights
    # where the class weights start: "text" (the concept's names through the locked text
    # tower) or "random" (a plain classification head, as ArcFace's)
    class_init: str = "text"
    arc_scale: float = 30.0
    arc_margin: float = 0.2
    captions: int = 2  # world captions of each sample, the multi-caption term's targets
    caption_weight: float = 1.0
    keep: float = 1.0  # weight of the base's objective on samples of every kind
    realign_steps: int = 0  # Re-A: steps of the text tower tuned to the new image vectors
    seed: int = 0


def _pixels(
    images: np.ndarray, rows: np.ndarray, generator: torch.Generator, device
) -> torch.Tensor:
    batch = torch.from_numpy(images[rows]).permute(0, 3, 1, 2).float() / 255
    return normalize(augment(batch, generator)).to(device)


def _texts(encoder: HFEncoder, texts: list[str]) -> torch.Tensor:
    with torch.no_grad():
        return F.normalize(encoder.text_features(texts).float(), dim=-1)


def tune_image_tower(
    encoder: HFEncoder,
    images: np.ndarray,
    metas: list[SampleMeta],
    settings: MCIPSettings,
    progress: bool = True,
) -> list[float]:
    """Train `encoder`'s image tower in place with MCIP's two ArcMargin terms and the base's
    objective against the locked text tower; returns the loss of every step."""
    vocab = vocabulary()
    seen = vocab.seen
    rng = np.random.default_rng(settings.seed)
    torch.manual_seed(settings.seed)
    generator = torch.Generator().manual_seed(settings.seed)
    device = encoder.device
    single = np.array(
        [
            i
            for i, m in enumerate(metas)
            if m.kind in ("illustration", "twemoji") and len(m.concepts) == 1
        ]
    )
    labels_of = np.array([m.concepts[0] if m.concepts else -1 for m in metas])
    model = encoder.model
    model.requires_grad_(False)
    class_weights = _class_weights(encoder, seen, settings, generator)
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(name.startswith(("vision_model.", "visual_projection.")))
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        [
            {"params": params, "lr": settings.lr, "base": settings.lr},
            {"params": [class_weights], "lr": settings.class_lr, "base": settings.class_lr},
        ],
        weight_decay=0.0,
    )
    scale = float(model.logit_scale.exp())

    losses: list[float] = []
    model.train()
    started = time.time()
    shown = StageProgress(settings.steps, 25, started) if progress else None
    for step in range(settings.steps):
        factor = min(1.0, (step + 1) / 30) * 0.5 * (1 + math.cos(math.pi * step / settings.steps))
        for group in optimizer.param_groups:
            group["lr"] = group["base"] * factor
        rows = rng.choice(single, min(settings.batch, len(single)), replace=False)
        features = F.normalize(
            encoder.image_features(_pixels(images, rows, generator, device)).float(), dim=-1
        )
        labels = torch.from_numpy(labels_of[rows]).to(device)
        loss = arcmargin_loss(
            features, class_weights, labels, scale=settings.arc_scale, margin=settings.arc_margin
        )
        if settings.caption_weight:
            texts, owners = _captions(rng, rows, labels_of, metas, seen, settings.captions)
            loss = loss + settings.caption_weight * multi_caption_arcmargin_loss(
                features,
                _texts(encoder, texts),
                torch.tensor(owners, device=device),
                scale=settings.arc_scale,
                margin=settings.arc_margin,
                groups=labels,
            )
        if settings.keep:
            mixed, texts, kinds = kept_batch(rng, metas, seen, settings.batch)
            own = _texts(encoder, texts)
            mixed_features = F.normalize(
                encoder.image_features(_pixels(images, mixed, generator, device)).float(), dim=-1
            )
            loss = loss + settings.keep * contrastive_loss(scale * mixed_features @ own.T, kinds)
        stage_step(optimizer, loss, params, losses, shown)
    model.requires_grad_(False)
    model.eval()
    return losses


def _class_weights(
    encoder: HFEncoder, seen: Sequence[Concept], settings: MCIPSettings, generator: torch.Generator
) -> torch.nn.Parameter:
    """ArcMargin's class weights: started at each concept's text vector, or at random."""
    if settings.class_init == "random":
        starts = torch.randn((len(seen), encoder.dim), generator=generator).to(encoder.device)
    else:
        starts = torch.stack(
            [_texts(encoder, phrasings(c.en) + phrasings(c.ja)).mean(0) for c in seen]
        )
    return torch.nn.Parameter(F.normalize(starts, dim=-1).clone())


def _captions(
    rng: np.random.Generator,
    rows: np.ndarray,
    labels_of: np.ndarray,
    metas: list[SampleMeta],
    seen: Sequence[Concept],
    count: int,
) -> tuple[list[str], list[int]]:
    """`count` captions of each row's concept, English and Japanese in turn, and the row
    (its place in the batch) each belongs to."""
    texts, owners = [], []
    for i, row in enumerate(rows):
        for n in range(count):
            language = "en" if (n + i) % 2 == 0 else "ja"
            concept = seen[int(labels_of[row])]
            texts.append(caption(rng, [concept], metas[row].style, language))
            owners.append(i)
    return texts, owners


def main(argv: list[str] | None = None) -> None:
    parser = _arguments()
    args = parser.parse_args(argv)
    started = time.time()
    encoder, images, metas = stage_start(parser, args, sample_seed=args.seed + 202)
    settings = MCIPSettings(
        steps=args.steps,
        lr=args.lr,
        class_lr=args.class_lr,
        arc_scale=args.arc_scale,
        arc_margin=args.arc_margin,
        captions=args.captions,
        class_init=args.class_init,
        caption_weight=args.caption_weight,
        keep=args.keep,
        realign_steps=args.realign_steps,
        seed=args.seed,
    )
    train_started = time.time()
    losses = tune_image_tower(encoder, images, metas, settings)
    realign: list[float] = []
    if settings.realign_steps:
        vectors = image_vectors(encoder, images)
        realign = tune_text_tower(
            encoder, vectors, metas, StageSettings(steps=settings.realign_steps, terms=())
        )
    record = {
        "command": "python -m sashie.eval.world.train_mcip " + " ".join(argv or sys.argv[1:]),
        "base": encoder.model_id,
        "samples": len(images),
        "class_samples": int(
            sum(m.kind in ("illustration", "twemoji") and len(m.concepts) == 1 for m in metas)
        ),
        "settings": asdict(settings),
        "train_seconds": round(time.time() - train_started),
        "seconds": round(time.time() - started),
        "hardware": f"{platform.machine()}, {os.cpu_count()} cores; torch {torch.__version__}",
        "loss_every_25_steps": [
            round(float(np.mean(losses[i : i + 25])), 4) for i in range(0, len(losses), 25)
        ],
        "realign_loss_every_25_steps": [
            round(float(np.mean(realign[i : i + 25])), 4) for i in range(0, len(realign), 25)
        ],
    }
    save_stage(encoder, args.out, record, "mcip")
    if available("matplotlib"):  # the `plot` extra
        title = "MCIP stage" + (f", then Re-A from step {len(losses) + 1}" if realign else "")
        plot_losses(losses + realign, args.out / "loss.png", title=title, ylabel="training loss")
    print(f"saved {args.out} ({settings.steps} steps, {record['seconds']}s)")


def _arguments() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="The demo model's MCIP stage: its image tower tuned for image search, "
        "its text tower locked (then re-aligned with --realign-steps).",
    )
    parser.add_argument(
        "--base", default="sashie-demo", help="the model to tune: sashie-demo or a directory"
    )
    parser.add_argument("--out", type=Path, required=True, help="where to write the model")
    parser.add_argument("--samples", type=int, default=30_000, help="samples to render")
    defaults = MCIPSettings()
    helps = {
        "steps": "training steps of the image tower (default: %(default)s)",
        "lr": "the image tower's learning rate (default: %(default)s)",
        "class_lr": "the learnt class weights' learning rate (default: %(default)s)",
        "arc_scale": "ArcMargin's scale s (default: %(default)s)",
        "arc_margin": "ArcMargin's angular margin m, radians (default: %(default)s)",
        "captions": "world captions of each sample, EN and JA in turn (default: %(default)s)",
    }
    for name, text in helps.items():
        parser.add_argument(
            f"--{name.replace('_', '-')}",
            type=type(getattr(defaults, name)),
            default=getattr(defaults, name),
            help=text,
        )
    parser.add_argument(
        "--class-init",
        choices=("text", "random"),
        default=defaults.class_init,
        help="class weights start at the concepts' text vectors or at random",
    )
    parser.add_argument(
        "--caption-weight",
        type=float,
        default=defaults.caption_weight,
        help="weight of the multi-caption ArcMargin (0: ArcMargin alone)",
    )
    parser.add_argument(
        "--keep", type=float, default=defaults.keep, help="weight of the base's objective"
    )
    parser.add_argument(
        "--realign-steps", type=int, default=0, help="Re-A: text tower steps afterwards"
    )
    parser.add_argument("--seed", type=int, default=0)
    return parser


if __name__ == "__main__":
    main()
