"""MCIP's ArcMargin losses (sashie/adapt/losses.py) against direct transcriptions."""

from __future__ import annotations

import math

import torch

from sashie.adapt.losses import arcmargin_loss, multi_caption_arcmargin_loss


def _unit(rows: torch.Tensor) -> list[list[float]]:
    return [[v / math.sqrt(sum(x * x for x in row)) for v in row] for row in rows.tolist()]


def _term(f: list[float], weights: list[list[float]], y: int, s: float, m: float, skip=()):
    """−log(e^{s·cos(θ_y+m)} / (e^{s·cos(θ_y+m)} + Σ_{j≠y, j∉skip} e^{s·cos θ_j}))."""
    cos = [sum(a * b for a, b in zip(f, w)) for w in weights]
    target = math.exp(s * math.cos(math.acos(cos[y]) + m))
    others = sum(math.exp(s * c) for j, c in enumerate(cos) if j != y and j not in skip)
    return -math.log(target / (target + others))


def test_arcmargin_matches_its_formula():
    torch.manual_seed(0)
    features, weights = torch.randn(6, 5), torch.randn(4, 5)
    labels = torch.tensor([0, 1, 2, 3, 1, 0])
    got = arcmargin_loss(features, weights, labels, scale=12.0, margin=0.3)
    f, w = _unit(features), _unit(weights)
    want = sum(_term(f[i], w, int(labels[i]), 12.0, 0.3) for i in range(6)) / 6
    assert abs(float(got) - want) < 1e-4
    plain = arcmargin_loss(features, weights, labels, scale=12.0, margin=0.0)
    assert float(plain) < float(got)  # the margin makes the right class harder to win


def test_multi_caption_arcmargin_matches_its_formula():
    """Three images, five captions (image 0 has two, image 2 has two): each caption is one
    term of its image, against every caption but the image's other own ones."""
    torch.manual_seed(1)
    features, captions = torch.randn(3, 4), torch.randn(5, 4)
    owners = torch.tensor([0, 0, 1, 2, 2])
    got = multi_caption_arcmargin_loss(features, captions, owners, scale=10.0, margin=0.2)
    f, c = _unit(features), _unit(captions)
    terms = []
    for k, owner in enumerate(owners.tolist()):
        skip = {j for j, o in enumerate(owners.tolist()) if o == owner and j != k}
        terms.append(_term(f[owner], c, k, 10.0, 0.2, skip))
    assert abs(float(got) - sum(terms) / len(terms)) < 1e-4


def test_multi_caption_arcmargin_with_groups_spares_the_captions_of_ones_class():
    """With `groups`, the captions of another image of one's own class leave the denominator
    too (two pictures of a crane: the other's "a crane" is no wrong answer)."""
    torch.manual_seed(2)
    features, captions = torch.randn(4, 5), torch.randn(6, 5)
    owners = torch.tensor([0, 1, 1, 2, 3, 3])
    groups = torch.tensor([7, 7, 8, 9])  # images 0 and 1 show one class
    got = multi_caption_arcmargin_loss(
        features, captions, owners, scale=8.0, margin=0.25, groups=groups
    )
    f, c = _unit(features), _unit(captions)
    terms = []
    for k, owner in enumerate(owners.tolist()):
        skip = {j for j, o in enumerate(owners.tolist()) if groups[o] == groups[owner] and j != k}
        terms.append(_term(f[owner], c, k, 8.0, 0.25, skip))
    assert abs(float(got) - sum(terms) / len(terms)) < 1e-4
    ungrouped = multi_caption_arcmargin_loss(features, captions, owners, scale=8.0, margin=0.25)
    assert float(ungrouped) != float(got)


def _digest(path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def _spread(vectors, labels) -> float:
    """Mean cosine within a class minus mean cosine between classes."""
    import numpy as np

    sims = vectors @ vectors.T
    same = np.equal.outer(labels, labels)
    off = ~np.eye(len(labels), dtype=bool)
    return float(sims[same & off].mean() - sims[~same].mean())


def test_an_image_version_tightens_classes_and_leaves_text_and_base_vectors(tmp_path, tiny_spec):
    """`adapt --for images` (MCIP) on a tiny model: the annotated classes draw together in the
    new version, the text encoder gives the very same vectors, the base vectors are unchanged
    byte for byte; switching back to the base restores it."""
    import numpy as np

    from sashie import Library
    from sashie.adapt.settings import AdaptSettings

    from conftest import make_pages

    make_pages(tmp_path / "pages", 16, seed=4)
    lib = Library(tmp_path / "lib", create=True)
    lib.add([str(tmp_path / "pages")], model=tiny_spec, regions="whole")
    items = lib.index().item_ids.tolist()
    lib.annotations.add(items[:6], "zorblat")
    lib.annotations.add(items[6:12], "quix")
    files = sorted((tmp_path / "lib" / "vectors").rglob("*.*"))
    digests = {p: _digest(p) for p in files}
    texts = ["zorblat", "a picture of quix", "鶴の絵"]
    text_before = lib.query_encoder().encode_texts(texts)
    base = lib.index().vectors[:12].copy()
    labels = np.array([0] * 6 + [1] * 6)
    settings = AdaptSettings(
        target="images", train_text=False, adapter_lr=1e-2, min_steps=80, batch=12
    )
    report = lib.versions.adapt(settings=settings)
    assert report.version == "v1" and lib.versions.active() == "v1"
    tuned = lib.index().vectors[:12]
    assert _spread(tuned, labels) > _spread(base, labels) + 0.02
    np.testing.assert_array_equal(lib.query_encoder().encode_texts(texts), text_before)
    assert {p: _digest(p) for p in files} == digests
    lib.versions.use("base")
    np.testing.assert_array_equal(lib.index().vectors[:12], base)


def test_an_image_version_refuses_too_few_classes_with_one_line(tmp_path, tiny_spec):
    from sashie import Library

    from conftest import make_pages, run_cli

    make_pages(tmp_path / "pages", 8, seed=5)
    lib = Library(tmp_path / "lib", create=True)
    lib.add([str(tmp_path / "pages")], model=tiny_spec, regions="whole")
    items = lib.index().item_ids.tolist()
    none = run_cli("adapt", tmp_path / "lib", "--for", "images", check=False)  # no captions
    assert none.exit_code == 1 and len(none.stderr.strip().splitlines()) == 1
    assert "annotations" in none.stderr
    lib.annotations.add(items[:4], "zorblat")
    one = run_cli("adapt", tmp_path / "lib", "--for", "images", check=False)
    assert one.exit_code == 1 and "at least two classes" in one.stderr
    assert len(one.stderr.strip().splitlines()) == 1
    lib.annotations.add(items[4:5], "quix")
    lone = run_cli("adapt", tmp_path / "lib", "--for", "images", check=False)
    assert lone.exit_code == 1 and "'quix'" in lone.stderr
    assert len(lone.stderr.strip().splitlines()) == 1
    assert lib.versions.active() == "base"


def test_realignment_then_tunes_the_text_encoder_to_the_new_image_vectors(tmp_path, tiny_spec):
    """MCIP + Re-A: the image side as above, then the text encoder moves towards the adapted
    pictures of its captions."""
    import numpy as np

    from sashie import Library
    from sashie.adapt.settings import AdaptSettings

    from conftest import make_pages

    make_pages(tmp_path / "pages", 12, seed=6)
    lib = Library(tmp_path / "lib", create=True)
    lib.add([str(tmp_path / "pages")], model=tiny_spec, regions="whole")
    items = lib.index().item_ids.tolist()
    lib.annotations.add(items[:6], "zorblat")
    lib.annotations.add(items[6:12], "quix")
    before = lib.query_encoder().encode_texts(["zorblat"])[0]
    settings = AdaptSettings(target="images", train_text=False, realign=True, adapter_lr=1e-2)
    lib.versions.adapt(
        settings=settings
    )  # the version tunes the text encoder though train_text is off
    assert lib.versions.active() == "v1"
    after = lib.query_encoder().encode_texts(["zorblat"])[0]
    assert not np.allclose(after, before)
    pictures = lib.index().vectors[:6]
    assert float((pictures @ after).mean()) > float((pictures @ before).mean())
