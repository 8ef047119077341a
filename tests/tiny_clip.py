"""Build a tiny, randomly initialized CLIP in Hugging Face format, as a user's model would be."""

from __future__ import annotations

import json
from pathlib import Path


def byte_level_vocab() -> dict[str, int]:
    """CLIP's byte-to-unicode alphabet, each symbol alone and word-final: no merges needed."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1)]
    printable += range(ord("®"), ord("ÿ") + 1)
    # GPT-2/CLIP byte-level alphabet: printable bytes map to themselves, others to 256+n
    symbols, extra = [], 0
    for byte in range(256):
        if byte in printable:
            symbols.append(chr(byte))
        else:
            symbols.append(chr(256 + extra))
            extra += 1
    vocab = {s: i for i, s in enumerate(symbols)}
    vocab.update({s + "</w>": i + len(symbols) for i, s in enumerate(symbols)})
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    return vocab


def build_tiny_clip(directory: Path, *, seed: int = 0, image_size: int = 32) -> Path:
    return build_clip(
        directory,
        seed=seed,
        image_size=image_size,
        text=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2),
        vision=dict(
            hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2
        ),
        patch_size=8,
        projection_dim=48,
    )


VIT_B_16 = dict(  # OpenAI's ViT-B/16 CLIP: the towers' shapes (random weights: speed only)
    text=dict(hidden_size=512, intermediate_size=2048, num_hidden_layers=12, num_attention_heads=8),
    vision=dict(
        hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12
    ),
    patch_size=16,
    projection_dim=512,
    image_size=224,
)


def build_clip(
    directory: Path,
    *,
    text: dict,
    vision: dict,
    patch_size: int,
    projection_dim: int,
    image_size: int,
    seed: int = 0,
) -> Path:
    """A randomly initialized CLIPModel of the given tower shapes, with a byte-level tokenizer
    and an image processor, saved as a Hugging Face model directory."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPTokenizer

    directory.mkdir(parents=True, exist_ok=True)
    vocab = byte_level_vocab()
    (directory / "vocab.json").write_text(json.dumps(vocab))
    (directory / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(str(directory / "vocab.json"), str(directory / "merges.txt"))
    tokenizer.save_pretrained(directory)
    CLIPImageProcessor(
        size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}
    ).save_pretrained(directory)
    config = CLIPConfig(
        text_config=dict(
            vocab_size=len(vocab),
            max_position_embeddings=32,
            bos_token_id=vocab["<|startoftext|>"],
            eos_token_id=vocab["<|endoftext|>"],
            pad_token_id=vocab["<|endoftext|>"],
            **text,
        ),
        vision_config=dict(image_size=image_size, patch_size=patch_size, **vision),
        projection_dim=projection_dim,
    )
    torch.manual_seed(seed)
    CLIPModel(config).save_pretrained(directory)
    return directory


def build_tiny_owlv2(directory: Path, *, seed: int = 0, image_size: int = 64) -> Path:
    """A tiny random OWLv2 open-vocabulary detector with its processor, saved like a hub model."""
    import torch
    from transformers import (
        CLIPTokenizer,
        Owlv2Config,
        Owlv2ForObjectDetection,
        Owlv2ImageProcessorPil,
        Owlv2Processor,
    )

    directory.mkdir(parents=True, exist_ok=True)
    vocab = byte_level_vocab()
    (directory / "vocab.json").write_text(json.dumps(vocab))
    (directory / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(
        str(directory / "vocab.json"), str(directory / "merges.txt"), pad_token="!"
    )
    image_processor = Owlv2ImageProcessorPil(size={"height": image_size, "width": image_size})
    Owlv2Processor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(directory)
    small = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2)
    config = Owlv2Config(
        text_config=dict(
            small,
            vocab_size=len(vocab),
            max_position_embeddings=16,
            bos_token_id=vocab["<|startoftext|>"],
            eos_token_id=vocab["<|endoftext|>"],
            pad_token_id=0,
        ),
        vision_config=dict(small, image_size=image_size, patch_size=16),
        projection_dim=32,
    )
    torch.manual_seed(seed)
    Owlv2ForObjectDetection(config).save_pretrained(directory)
    return directory
