import sys
import types

import numpy as np
import pytest
import torch
from PIL import Image

from sashie.encoders import load_encoder, resolve_spec
from sashie.encoders.hf import fingerprint_directory
from sashie.errors import SashieError

from tiny_clip import build_tiny_clip


def test_hf_backend_encodes_both_sides_into_one_normalized_space(tiny_spec):
    encoder = load_encoder(tiny_spec)
    assert encoder.dim == 48 and encoder.image_size == 32 and encoder.device == "cpu"
    images = [Image.new("RGB", (120, 80), (200, 30, 30)), Image.new("RGB", (50, 90), "white")]
    image_vectors = encoder.encode_images(images)
    text_vectors = encoder.encode_texts(["a red crane", "鶴と松の挿絵", ""])
    for vectors, n in ((image_vectors, 2), (text_vectors, 3)):
        assert vectors.shape == (n, 48) and vectors.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    assert not np.allclose(image_vectors[0], image_vectors[1])
    assert not np.allclose(text_vectors[0], text_vectors[1])
    # the batched path gives what one-by-one encoding gives
    one_by_one = np.concatenate([encoder.encode_images([im]) for im in images])
    np.testing.assert_allclose(image_vectors, one_by_one, atol=1e-5)


def test_hf_features_match_transformers_directly(tiny_clip, tiny_spec):
    """Our vectors are the model's own projected features, normalized."""
    from transformers import CLIPModel, CLIPTokenizer

    encoder = load_encoder(tiny_spec)
    model = CLIPModel.from_pretrained(tiny_clip).eval()
    tokens = CLIPTokenizer.from_pretrained(tiny_clip)(["a pine tree"], return_tensors="pt")
    with torch.no_grad():
        out = model.get_text_features(**tokens)
    expected = out if isinstance(out, torch.Tensor) else out.pooler_output
    expected = torch.nn.functional.normalize(expected, dim=-1).numpy()
    np.testing.assert_allclose(encoder.encode_texts(["a pine tree"]), expected, atol=1e-5)


def test_model_id_is_stable_and_follows_the_weights(tmp_path, tiny_clip, tiny_spec):
    assert load_encoder(tiny_spec).model_id == load_encoder(tiny_spec).model_id
    other = build_tiny_clip(tmp_path / "other", seed=1)
    assert fingerprint_directory(other) != fingerprint_directory(tiny_clip)
    assert load_encoder(str(tiny_clip)).model_id == load_encoder(tiny_spec).model_id  # bare dir


def test_bad_specs_get_one_clear_error(tmp_path):
    with pytest.raises(SashieError, match="unknown model spec"):
        resolve_spec("nonsense-model")
    with pytest.raises(SashieError, match=f"^no model at {tmp_path}$"):
        load_encoder(f"hf:{tmp_path}")  # an empty directory
    with pytest.raises(SashieError, match="names no model"):
        load_encoder("hf:")


class _TinyOpenClip(torch.nn.Module):
    """Stands in for an open_clip model: the interface our backend calls, nothing more."""

    def __init__(self):
        super().__init__()
        self.visual = types.SimpleNamespace(image_size=16)
        self.image_proj = torch.nn.Linear(3 * 16 * 16, 24)
        self.text_embed = torch.nn.Embedding(100, 24)

    def encode_image(self, pixels):
        return self.image_proj(pixels.flatten(1))

    def encode_text(self, tokens):
        return self.text_embed(tokens).mean(1)


def test_openclip_backend_through_open_clips_interface(monkeypatch):
    """open_clip needs torchvision (a CUDA torch, GBs): the backend is exercised here against
    a module with open_clip's factory interface; the real package is the `openclip` extra."""
    calls = {}

    def create_model_and_transforms(architecture, pretrained):
        calls["model"] = (architecture, pretrained)
        torch.manual_seed(0)

        def transform(image):
            return torch.from_numpy(np.asarray(image.resize((16, 16)), np.float32) / 255).permute(
                2, 0, 1
            )

        return _TinyOpenClip(), None, transform

    def get_tokenizer(architecture):
        return lambda texts: torch.tensor([[ord(c) % 100 for c in t[:8].ljust(8)] for t in texts])

    fake = types.SimpleNamespace(
        create_model_and_transforms=create_model_and_transforms, get_tokenizer=get_tokenizer
    )
    monkeypatch.setitem(sys.modules, "open_clip", fake)
    encoder = load_encoder("openclip:ViT-Tiny/laion-test")
    assert calls["model"] == ("ViT-Tiny", "laion-test")
    assert encoder.model_id == "openclip:ViT-Tiny/laion-test"
    assert encoder.dim == 24 and encoder.image_size == 16
    vectors = encoder.encode_images([Image.new("RGB", (40, 30), "red")])
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    with pytest.raises(SashieError, match="ARCHITECTURE/TAG"):
        load_encoder("openclip:ViT-Tiny")


def test_openclip_missing_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "open_clip", None)  # import fails
    with pytest.raises(SashieError, match=r"sashie\[openclip\]"):
        load_encoder("openclip:ViT-B-32/openai")
