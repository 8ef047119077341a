"""Train sashie's demo CLIP from scratch on the evaluation world's training samples.

    python -m sashie.eval.world.train --out sashie/models/sashie-demo --samples 80000 --steps 3000
    # on a GPU:
    python -m sashie.eval.world.train --out DIR --preset gpu --samples 400000 --minutes 25

The whole recipe is in this file: render samples (samples.py), train a byte-level BPE
tokenizer on English and Japanese captions of the seen concepts, then train a small
transformers CLIPModel with CLIP's symmetric contrastive loss, captions re-worded every time
a picture comes round. The result is a plain Hugging Face model directory (config,
model.safetensors, tokenizer, image processor) plus TRAINING.json: the command, seed, data
size, time, hardware and loss curve, so that anyone can rebuild it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ...adapt.losses import contrastive_loss
from ..lexicon import jmdict, openclipart, wordnet
from ..lexicon.jmdict import entries, installed_database
from ..lexicon.wordnet import read_synsets
from .clipart import captioned_drawings, clipart_caption
from .samples import make_samples
from .vocab import NON_PICTURES, caption, caption_of, non_picture_caption, vocabulary
from .wordings import Language, build_language, names_heldout, wording_corpus

# --- the configuration -------------------------------------------------------------------
PRESETS: dict[str, dict[str, Any]] = {
    # the shipped model: a small ViT sees 6 x 6 patches; on a CPU more pictures beat more pixels
    "cpu": dict(
        resolution=48,
        patch=8,
        batch=256,
        vision=dict(
            hidden_size=128, intermediate_size=512, num_hidden_layers=4, num_attention_heads=2
        ),
        text=dict(
            hidden_size=128, intermediate_size=512, num_hidden_layers=2, num_attention_heads=2
        ),
    ),
    # with --lexicon: the cpu preset's eyes, a text tower with room for a dictionary
    "reader": dict(
        resolution=48,
        patch=8,
        batch=256,
        vocab=16000,
        vision=dict(
            hidden_size=128, intermediate_size=512, num_hidden_layers=4, num_attention_heads=2
        ),
        text=dict(
            hidden_size=192, intermediate_size=768, num_hidden_layers=3, num_attention_heads=3
        ),
    ),
    # for a lent GPU: more pixels, a deeper and wider model, bigger batches
    "gpu": dict(
        resolution=64,
        patch=8,
        batch=512,
        vocab=16000,
        vision=dict(
            hidden_size=256, intermediate_size=1024, num_hidden_layers=6, num_attention_heads=4
        ),
        text=dict(
            hidden_size=256, intermediate_size=1024, num_hidden_layers=4, num_attention_heads=4
        ),
    ),
}
PROJECTION = 512  # the seed paper's D, so its dimension counts (64 ... 256) carry over
MAX_TOKENS = 32
VOCAB_SIZE = 6000  # a preset without a lexicon; with one, the preset's "vocab"
LANGUAGE_CREDITS = [
    wordnet.CREDIT,
    jmdict.CREDIT,
    openclipart.CREDIT,
    "Unicode CLDR annotations (Unicode licence)",
]
TEXT_PAIR_WEIGHT = 0.5  # the text-text loss beside the image-caption loss
NAME_SHARE = 0.6  # with a lexicon, a caption names a concept by its name this often
CLIPART_SHARE = 0.1  # with a lexicon, Openclipart drawings captioned by their authors
WITH_SHARE = 0.3  # with a lexicon, two concepts are one "with" the other this often
LR = 1e-3
WEIGHT_DECAY = 0.1
WARMUP_STEPS = 200
MEAN = np.array([0.48145466, 0.4578275, 0.40821073], np.float32)  # CLIP's, as the processor
STD = np.array([0.26862954, 0.26130258, 0.27577711], np.float32)


def sample_caption(rng: np.random.Generator, meta, seen, words: Language | None = None) -> str:
    """A caption of a sample: its concepts by their names or, with a lexicon, as often by
    one of their other wordings ("a wading bird", 「つる」)."""
    language = "ja" if rng.random() < 0.5 else "en"
    if meta.drawing >= 0 and words is not None:
        return clipart_caption(rng, words.drawings[meta.drawing])
    if not meta.concepts:
        return non_picture_caption(rng, meta.kind, language)
    concepts = [seen[i] for i in meta.concepts]
    if words is None:
        return caption(rng, concepts, meta.style or "ink", language)
    names = []
    for c in concepts:
        other = words.captions[c.key].of(language) if c.key in words.captions else ()
        if other and rng.random() >= NAME_SHARE:
            names.append(other[int(rng.integers(len(other)))])
        else:
            names.append(c.ja if language == "ja" else c.en)
    if len(names) == 2 and rng.random() < WITH_SHARE:  # "a crane with a pine", 「松に鶴」
        names = [f"{names[0]} with {names[1]}" if language == "en" else f"{names[1]}に{names[0]}"]
    return caption_of(rng, names, meta.style or "ink", language)


def shows(meta) -> tuple | str:
    """What a sample shows, for the loss: pairs showing the same thing all match."""
    if meta.drawing >= 0:
        return ("clipart", meta.drawing)
    return tuple(sorted(meta.concepts)) or meta.kind


def read_language(workdir: Path) -> Language:
    """The lexicon's wordings and pairs (WordNet, JMdict: sashie/eval/world/wordings.py) and
    Openclipart's captioned drawings (clipart.py)."""
    vocab = vocabulary()
    database = installed_database(workdir)
    words = build_language(vocab.concepts, vocab.heldout, read_synsets("n"), entries(database))
    unseen = names_heldout([c for c in vocab.concepts if c.key in vocab.heldout])
    words.drawings = captioned_drawings(unseen, unread=words.unread())
    return words


def text_pair_loss(model, tokenizer, pairs: list[tuple[str, str]], device: str) -> torch.Tensor:
    """CLIP's symmetric InfoNCE between the two sides of text pairs (a word and its synonym,
    translation or gloss), with the model's own temperature."""
    sides = []
    for texts in zip(*pairs, strict=True):
        tokens = tokenizer(
            list(texts), padding=True, truncation=True, max_length=MAX_TOKENS, return_tensors="pt"
        )
        features = model.get_text_features(
            input_ids=tokens["input_ids"].to(device),
            attention_mask=tokens["attention_mask"].to(device),
        )
        features = getattr(features, "pooler_output", features)
        sides.append(F.normalize(features.float(), dim=-1))
    logits = model.logit_scale.exp() * sides[0] @ sides[1].T
    target = torch.arange(len(pairs), device=logits.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


def sample_pairs(rng: np.random.Generator, words: Language, count: int) -> list[tuple[str, str]]:
    """Half the pairs from the concepts' own (the first `concept_pairs`), half from the whole
    dictionary."""
    own = words.concept_pairs
    picks = list(rng.integers(0, own, count // 2)) + list(
        rng.integers(0, len(words.pairs), count - count // 2)
    )
    return [words.pairs[int(i)] for i in picks]


def train_tokenizer(seen, seed: int, words: Language | None = None, size: int = VOCAB_SIZE):
    """Byte-level BPE on captions of the seen concepts (held-out names are never read beside
    a picture) and, with a lexicon, on all its caption wordings and text pairs."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    rng = np.random.default_rng(seed)
    corpus = []
    for concept in seen:
        for _ in range(6):
            for language in ("en", "ja"):
                style = ("ink", "colour", "flat")[int(rng.integers(3))]
                corpus.append(caption(rng, [concept], style, language))
    for english, japanese in NON_PICTURES.values():
        corpus += list(english) * 20 + list(japanese) * 20
    if words is not None:
        corpus += wording_corpus(words)
    tokenizer = Tokenizer(models.BPE(unk_token=None))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    # </s> must not get id 2: CLIPTextModel then pools at the highest token id (OpenAI's layout)
    trainer = trainers.BpeTrainer(
        vocab_size=size,
        special_tokens=["<pad>", "</s>", "<s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(corpus, trainer)
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", 2), ("</s>", 1)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        model_max_length=MAX_TOKENS,
    )


def build_model(tokenizer, preset: dict):
    from transformers import CLIPConfig, CLIPModel

    config = CLIPConfig(
        text_config=dict(
            preset["text"],
            vocab_size=len(tokenizer),
            max_position_embeddings=MAX_TOKENS,
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
        ),
        vision_config=dict(
            preset["vision"], image_size=preset["resolution"], patch_size=preset["patch"]
        ),
        projection_dim=PROJECTION,
    )
    return CLIPModel(config)


def augment(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random scale, shift and small rotation; sometimes grey, blurred or re-toned. (B,3,H,W)"""
    b = images.shape[0]
    r = lambda *shape: torch.rand(*shape, generator=generator)  # noqa: E731
    scale = 0.85 + 0.3 * r(b)
    angle = (r(b) - 0.5) * 0.25
    shift = (r(b, 2) - 0.5) * 0.16
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack(
        [torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1
    )
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    images = F.grid_sample(images, grid, padding_mode="border", align_corners=False)
    grey = r(b) < 0.2
    images[grey] = images[grey].mean(1, keepdim=True).expand(-1, 3, -1, -1)
    blur = r(b) < 0.15
    if blur.any():
        kernel = torch.tensor([1.0, 2.0, 1.0])
        kernel = (kernel[:, None] * kernel[None, :] / 16).expand(3, 1, 3, 3)
        images[blur] = F.conv2d(
            F.pad(images[blur], (1, 1, 1, 1), mode="replicate"), kernel, groups=3
        )
    gain = 0.85 + 0.3 * r(b, 3, 1, 1)
    return (images * gain + (r(b, 1, 1, 1) - 0.5) * 0.1).clamp(0, 1)


def normalize(images: torch.Tensor) -> torch.Tensor:
    return (images - torch.from_numpy(MEAN)[:, None, None]) / torch.from_numpy(STD)[:, None, None]


def save_tokenizer(tokenizer, out: Path) -> None:
    """The tokenizer's files, readable by transformers 4 and 5: version 5 names a plain fast
    tokenizer's class TokenizersBackend, which version 4 does not know; both read
    PreTrainedTokenizerFast as the same tokenizer."""
    tokenizer.save_pretrained(out)
    path = out / "tokenizer_config.json"
    config = json.loads(path.read_text("utf-8"))
    if config.get("tokenizer_class") == "TokenizersBackend":
        config["tokenizer_class"] = "PreTrainedTokenizerFast"
        path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", "utf-8")


def save(model, tokenizer, out: Path, record: dict, resolution: int) -> None:
    from transformers import CLIPImageProcessor

    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    save_tokenizer(tokenizer, out)
    CLIPImageProcessor(
        size={"shortest_edge": resolution},
        crop_size={"height": resolution, "width": resolution},
        image_mean=MEAN.tolist(),
        image_std=STD.tolist(),
    ).save_pretrained(out)
    (out / "TRAINING.json").write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n")


def main(argv: list[str] | None = None) -> None:
    args = _arguments().parse_args(argv)
    started = time.time()
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    seen = vocabulary().seen

    preset = PRESETS[args.preset]
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    words = read_language(args.lexicon) if args.lexicon else None
    images, metas = make_samples(
        args.samples,
        seed=args.seed + 1,
        resolution=preset["resolution"],
        progress=True,
        clipart=tuple(d.path for d in words.drawings) if words else (),
        clipart_share=CLIPART_SHARE if words else 0.0,
    )
    render_seconds = time.time() - started
    tokenizer = train_tokenizer(seen, args.seed, words, preset.get("vocab", VOCAB_SIZE))
    model = build_model(tokenizer, preset).to(device)
    train_start = time.time()

    def caption(i: int) -> str:
        return sample_caption(rng, metas[i], seen, words)

    losses = _train(model, tokenizer, images, metas, caption, words, args, rng, generator)
    step = len(losses)
    record = {
        "command": "python -m sashie.eval.world.train " + " ".join(argv or sys.argv[1:]),
        "seed": args.seed,
        "samples": args.samples,
        "sample_kinds": {
            k: sum(m.kind == k for m in metas) for k in sorted({m.kind for m in metas})
        },
        "seen_concepts": len(seen),
        "language": {**words.counts(), "credits": LANGUAGE_CREDITS} if words else None,
        "steps": step,
        "batch": preset["batch"],
        "pairs_seen": step * preset["batch"],
        "render_seconds": round(render_seconds),
        "train_seconds": round(time.time() - train_start),
        "hardware": f"{platform.machine()}, {os.cpu_count()} cores, {device}"
        + (f" ({torch.cuda.get_device_name()})" if device.startswith("cuda") else "")
        + f"; torch {torch.__version__}",
        "preset": args.preset,
        "config": {
            "resolution": preset["resolution"],
            "patch": preset["patch"],
            "vision": preset["vision"],
            "text": preset["text"],
            "projection": PROJECTION,
            "vocab": len(tokenizer),
            "text_pairs_a_step": args.text_pairs if words else 0,
            "text_pair_weight": TEXT_PAIR_WEIGHT if words else 0,
            "lr": LR,
        },
        "parameters": sum(p.numel() for p in model.parameters()),
        "loss_every_50_steps": [
            round(float(np.mean(losses[i : i + 50])), 4) for i in range(0, len(losses), 50)
        ],
    }
    save(model.eval().cpu(), tokenizer, args.out, record, preset["resolution"])
    print(
        f"saved {args.out} ({record['parameters'] / 1e6:.1f}M parameters, {step} steps, "
        f"{record['train_seconds']}s)"
    )


def _arguments() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Train sashie's demo CLIP.")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--samples", type=int, default=60_000)
    parser.add_argument("--minutes", type=float, default=35.0, help="training time budget")
    parser.add_argument(
        "--steps",
        type=int,
        help="train this many steps (default: as many as fit in --minutes, "
        "estimated from the first 20)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default="cpu",
        help="model and batch size: cpu (the shipped model) or gpu",
    )
    parser.add_argument("--device", help="cpu or cuda (default: cuda when present)")
    parser.add_argument(
        "--lexicon",
        type=Path,
        metavar="WORKDIR",
        help="also read WordNet (apt-get install wordnet-base) and JMdict (pip install "
        "jamdict-data, decompressed into WORKDIR): other wordings in the captions, and "
        "text-text pairs (synonyms, translations, glosses) beside the pictures",
    )
    parser.add_argument(
        "--text-pairs", type=int, default=256, help="text-text pairs a step, with --lexicon"
    )
    return parser


def _train(model, tokenizer, images, metas, caption, words, args, rng, generator) -> list[float]:
    """The training loop: steps estimated from the first 20 to fit the time budget (or
    --steps), a warmed-up cosine schedule, image-caption pairs and, with a lexicon,
    text-text pairs; the loss of every step."""
    preset = PRESETS[args.preset]
    device = str(next(model.parameters()).device)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    rest = [p for n, p in model.named_parameters() if p.ndim < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": WEIGHT_DECAY}, {"params": rest, "weight_decay": 0.0}],
        lr=LR,
    )
    budget = args.minutes * 60
    train_start = time.time()
    # steps are estimated from the first 20 to fit the time budget; the schedule follows them
    total_steps, step, losses = args.steps, 0, []
    model.train()
    while True:
        elapsed = time.time() - train_start
        if step == 20 and args.steps is None:
            total_steps = max(21, int(budget / (elapsed / 20)))
        if total_steps is not None and step >= total_steps:
            break
        horizon = total_steps or 10**6
        lr = LR * min(1.0, (step + 1) / WARMUP_STEPS)
        lr *= 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, step / horizon)))
        for group in optimizer.param_groups:
            group["lr"] = lr
        batch = rng.choice(len(images), min(preset["batch"], len(images)), replace=False)
        pixels = torch.from_numpy(images[batch]).permute(0, 3, 1, 2).float() / 255
        pixels = normalize(augment(pixels, generator)).to(device)
        texts = [caption(i) for i in batch]
        tokens = tokenizer(
            texts, padding=True, truncation=True, max_length=MAX_TOKENS, return_tensors="pt"
        )
        with torch.autocast(
            device.split(":")[0], dtype=torch.bfloat16, enabled=device.startswith("cuda")
        ):
            out = model(
                input_ids=tokens["input_ids"].to(device),
                attention_mask=tokens["attention_mask"].to(device),
                pixel_values=pixels,
            )
        groups = [shows(metas[i]) for i in batch]
        loss = contrastive_loss(out.logits_per_image.float(), groups)
        if words is not None:
            with torch.autocast(
                device.split(":")[0], dtype=torch.bfloat16, enabled=device.startswith("cuda")
            ):
                pairs = sample_pairs(rng, words, args.text_pairs)
                loss = loss + TEXT_PAIR_WEIGHT * text_pair_loss(model, tokenizer, pairs, device)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        losses.append(round(loss.item(), 4))
        step += 1
        if step % 50 == 0:
            print(
                f"step {step}/{total_steps} loss {np.mean(losses[-50:]):.3f} lr {lr:.2e} "
                f"{time.time() - train_start:.0f}s",
                flush=True,
            )

    return losses


if __name__ == "__main__":
    main()
