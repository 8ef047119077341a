"""The demo model's ParaCLIP stage: its text tower tuned on paraphrases, its image tower frozen.

    python -m sashie.eval.world.train_para --base sashie-demo --out sashie/models/sashie-demo-para

After the contrastive training of train.py, this stage renders fresh samples of the seen
concepts (a seed of their own), encodes them once with the frozen image tower, and tunes the
text tower with ParaCLIP's loss (Kim et al. 2024): InfoNCE(image, x'') + InfoNCE(x, x') +
InfoNCE(x', x''). x is a world caption of the sample ("a woodblock print of a crane"); x' and
x'' are the rule paraphraser's (sashie/adapt/paraphrase.py) from the training half of its
templates and of the CLDR keywords, x'' sharing no content word with x'. The held-out half,
which `sashie bench --paraphrase` measures with, and the held-out concepts' names are never
read. Because the image tower is frozen, the model's image vectors are unchanged: a library
built with the base model keeps its vectors. TRAINING.json gains a `paraclip` record.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ...adapt.losses import PARAPHRASE_TERMS, contrastive_loss, paraphrase_loss
from ...adapt.paraphrase import Paraphrased, RuleParaphraser
from ...encoders.hf import HFEncoder
from ...encoders.registry import load_encoder
from .labels import world_label_set
from .samples import SampleMeta, make_samples
from .train import normalize, sample_caption, save_tokenizer
from .vocab import caption, vocabulary


@dataclass(frozen=True)
class StageSettings:
    steps: int = 300
    batch: int = 256
    lr: float = 5e-5
    # chosen on the seed-2000 world (docs/adaptation.md): the image term alone beat the full
    # loss there; the text-to-text terms at CLIP's temperature pulled queries to whole pages
    terms: tuple[str, ...] = ("image",)
    one_step: bool = False  # x'' = x' (the bench's one-step row)
    keep: float = 1.0  # weight of the base's own objective on samples of every kind
    weight: float = 1.0  # of the paraphrase terms
    seed: int = 0


def image_vectors(encoder: HFEncoder, images: np.ndarray, batch: int = 512) -> torch.Tensor:
    """Unit image vectors of uint8 N x R x R x 3 samples by the (frozen) image tower."""
    out = []
    with torch.no_grad():
        for start in range(0, len(images), batch):
            pixels = torch.from_numpy(images[start : start + batch]).permute(0, 3, 1, 2).float()
            pixels = normalize(pixels / 255).to(encoder.device)
            out.append(F.normalize(encoder.image_features(pixels).float(), dim=-1).cpu())
    return torch.cat(out)


def _text_vectors(encoder: HFEncoder, texts: list[str]) -> torch.Tensor:
    """Unit text vectors, with gradients."""
    return F.normalize(encoder.text_features(texts).float(), dim=-1)


def _paraphrase_step(
    encoder: HFEncoder,
    vectors: torch.Tensor,
    metas: list[SampleMeta],
    settings: StageSettings,
    rng: np.random.Generator,
    single: np.ndarray,
    concepts: np.ndarray,
    paraphraser: RuleParaphraser,
    scale: float,
    seen,
) -> torch.Tensor:
    """ParaCLIP's terms on a batch of one-concept illustrations."""
    rows = rng.choice(single, min(settings.batch, len(single)), replace=False)
    drawn: list[Paraphrased] = []
    for row in rows:
        concept = seen[int(concepts[row])]
        language = "ja" if rng.random() < 0.5 else "en"
        x = caption(rng, [concept], metas[row].style, language)
        found = paraphraser.paraphrase(concept.ja if language == "ja" else concept.en)
        assert found is not None
        second = found.first if settings.one_step else found.second
        drawn.append(Paraphrased(x, found.first, second))
    texts = [p.x for p in drawn] + [p.first for p in drawn] + [p.second or p.first for p in drawn]
    x, first, second = F.normalize(_text_vectors(encoder, texts).float(), dim=-1).split(len(rows))
    image = vectors[rows].to(x.device)
    groups = concepts[rows]
    loss = torch.zeros((), device=x.device)
    if "first" in settings.terms:
        loss = loss + paraphrase_loss(scale, image, x, first, second, groups, ["first"])
    full = [i for i, p in enumerate(drawn) if p.second is not None]
    others = [t for t in settings.terms if t != "first"]
    if others and len(full) >= 2:
        index = torch.tensor(full, device=x.device)
        loss = loss + paraphrase_loss(
            scale, image[index], x[index], first[index], second[index], groups[full], others
        )
    return loss


def tune_text_tower(
    encoder: HFEncoder,
    vectors: torch.Tensor,
    metas: list[SampleMeta],
    settings: StageSettings,
    progress: bool = True,
) -> list[float]:
    """Train `encoder`'s text tower in place: ParaCLIP's terms on the samples that are
    illustrations of one concept, the base's own objective (`keep`) on a batch of every kind
    (pages, text, blank paper: what keeps a query's pictures above the pages that hold
    them); returns the loss of every step."""
    vocab = vocabulary()
    rng = np.random.default_rng(settings.seed)
    torch.manual_seed(settings.seed)
    single = np.array(
        [i for i, m in enumerate(metas) if m.kind == "illustration" and len(m.concepts) == 1]
    )
    concepts = np.array([m.concepts[0] if m.concepts else -1 for m in metas])
    paraphraser = RuleParaphraser.from_labels(
        world_label_set(vocab.concepts), half="train", seed=settings.seed
    )
    model = encoder.model
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(name.startswith(("text_model.", "text_projection.")))
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=settings.lr, weight_decay=0.0)
    scale = float(model.logit_scale.exp())

    losses: list[float] = []
    model.train()
    started = time.time()
    shown = StageProgress(settings.steps, 50, started) if progress else None
    for step in range(settings.steps):
        lr = settings.lr * min(1.0, (step + 1) / 50)
        lr *= 0.5 * (1 + math.cos(math.pi * step / settings.steps))
        for group in optimizer.param_groups:
            group["lr"] = lr
        loss = torch.zeros((), device=encoder.device)
        if settings.terms:
            loss = loss + settings.weight * _paraphrase_step(
                encoder,
                vectors,
                metas,
                settings,
                rng,
                single,
                concepts,
                paraphraser,
                scale,
                vocab.seen,
            )
        if settings.keep:
            mixed, texts, kinds = kept_batch(rng, metas, vocab.seen, settings.batch)
            own = _text_vectors(encoder, texts)
            loss = loss + settings.keep * contrastive_loss(
                scale * vectors[mixed].to(own.device) @ own.T, kinds
            )
        stage_step(optimizer, loss, params, losses, shown)
    model.requires_grad_(False)
    model.eval()
    return losses


def kept_batch(
    rng: np.random.Generator, metas: list[SampleMeta], seen, batch: int
) -> tuple[np.ndarray, list[str], list]:
    """A batch of samples of every kind for the base's own objective: their rows, a caption
    of each as the base was trained with, and each one's group (its concepts, or its kind)."""
    mixed = rng.choice(len(metas), min(batch, len(metas)), replace=False)
    texts = [sample_caption(rng, metas[i], seen) for i in mixed]
    kinds = [tuple(sorted(metas[i].concepts)) or metas[i].kind for i in mixed]
    return mixed, texts, kinds


def stage_start(
    parser: argparse.ArgumentParser, args: argparse.Namespace, *, sample_seed: int
) -> tuple[HFEncoder, np.ndarray, list[SampleMeta]]:
    """What a stage starts from: torch seeded, the base model (`--base`) in float32 for
    training, and `--samples` samples rendered at its resolution."""
    torch.manual_seed(args.seed)
    encoder = load_encoder(args.base)
    if not isinstance(encoder, HFEncoder) or encoder.logit_scale() is None:
        parser.error("--base must be a Hugging Face CLIP model (sashie-demo or a directory)")
    encoder.to_float32()  # on CUDA the encoder loads in float16
    images, metas = make_samples(
        args.samples, seed=sample_seed, resolution=encoder.image_size, progress=True
    )
    return encoder, images, metas


def stage_step(
    optimizer, loss: torch.Tensor, params: list, losses: list[float], shown: StageProgress | None
) -> None:
    """One optimizer step of a stage, gradients clipped at 1; the loss appended to `losses`
    and, every `shown.every` steps, the mean of the last ones printed."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    optimizer.step()
    losses.append(round(float(loss.detach()), 4))
    if shown is not None and len(losses) % shown.every == 0:
        print(
            f"step {len(losses)}/{shown.steps} loss {np.mean(losses[-shown.every :]):.3f} "
            f"{time.time() - shown.started:.0f}s",
            flush=True,
        )


@dataclass(frozen=True)
class StageProgress:
    steps: int
    every: int
    started: float


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="The demo model's ParaCLIP stage: its text tower tuned on paraphrases.",
    )
    parser.add_argument(
        "--base", default="sashie-demo", help="the model to tune: sashie-demo or a directory"
    )
    parser.add_argument("--out", type=Path, required=True, help="where to write the model")
    parser.add_argument("--samples", type=int, default=30_000, help="samples to render")
    parser.add_argument("--steps", type=int, default=StageSettings.steps)
    parser.add_argument("--lr", type=float, default=StageSettings.lr)
    parser.add_argument(
        "--terms",
        default=",".join(StageSettings.terms),
        help=f"ParaCLIP's terms, some of {','.join(PARAPHRASE_TERMS)} (default: %(default)s)",
    )
    parser.add_argument("--weight", type=float, default=StageSettings.weight)
    parser.add_argument(
        "--keep", type=float, default=StageSettings.keep, help="weight of the base's objective"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    terms = tuple(t for t in args.terms.split(",") if t)
    if any(t not in PARAPHRASE_TERMS for t in terms):
        parser.error(f"--terms must be some of {','.join(PARAPHRASE_TERMS)}")
    started = time.time()
    encoder, images, metas = stage_start(parser, args, sample_seed=args.seed + 101)
    vectors = image_vectors(encoder, images)
    settings = StageSettings(
        steps=args.steps,
        lr=args.lr,
        terms=terms,
        weight=args.weight,
        keep=args.keep,
        seed=args.seed,
    )
    train_started = time.time()
    losses = tune_text_tower(encoder, vectors, metas, settings)
    record = {
        "command": "python -m sashie.eval.world.train_para " + " ".join(argv or sys.argv[1:]),
        "base": encoder.model_id,
        "samples": len(vectors),
        "paraphrased_samples": sum(
            m.kind == "illustration" and len(m.concepts) == 1 for m in metas
        ),
        "settings": asdict(settings),
        "train_seconds": round(time.time() - train_started),
        "seconds": round(time.time() - started),
        "hardware": f"{platform.machine()}, {os.cpu_count()} cores; torch {torch.__version__}",
        "loss_every_50_steps": [
            round(float(np.mean(losses[i : i + 50])), 4) for i in range(0, len(losses), 50)
        ],
    }
    save_stage(encoder, args.out, record)
    print(f"saved {args.out} ({settings.steps} steps, {record['seconds']}s)")


def save_stage(encoder: HFEncoder, out: Path, record: dict, stage: str = "paraclip") -> None:
    """The tuned model as a plain Hugging Face directory; TRAINING.json keeps the base's
    record and gains this stage's under `stage`."""
    out.mkdir(parents=True, exist_ok=True)
    encoder.model.save_pretrained(out)
    save_tokenizer(encoder.tokenizer, out)
    encoder.processor.save_pretrained(out)
    training = Path(encoder.model.name_or_path) / "TRAINING.json"
    base = json.loads(training.read_text("utf-8")) if training.is_file() else {}
    base[stage] = record
    (out / "TRAINING.json").write_text(json.dumps(base, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
