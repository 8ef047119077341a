"""Fingerprints of local features (sashie/printings/fingerprints.py): a printing's lies nearer
its original's than another drawing's does, a mirror copy's nearer the mirrored original's;
a picture without features has none; a codebook can be learned again."""

import numpy as np
from test_matching import drawing, reprinted

from sashie.printings.fingerprints import DIMS, codebook, train
from sashie.printings.matching import features, mirrored


def _fingerprint(picture, *, mirror=False):
    found = features(picture)
    return codebook().fingerprint(mirrored(found) if mirror else found)


def test_a_printing_lies_nearer_its_original_than_other_drawings_do():
    original = _fingerprint(drawing(1))
    assert original.shape == (DIMS,) and abs(np.linalg.norm(original) - 1) < 1e-5
    copies = [
        reprinted(drawing(1), angle=10, scale=0.8),
        reprinted(drawing(1), crop=(0, 0, 400, 300), margin=40),
    ]
    others = [reprinted(drawing(k)) for k in (2, 3, 4, 5)]
    nearest_other = max(float(original @ _fingerprint(o)) for o in others)
    for copy in copies:
        assert float(original @ _fingerprint(copy)) > nearest_other + 0.05


def test_a_mirror_copy_lies_near_the_mirrored_original():
    mirror_copy = _fingerprint(reprinted(drawing(1), mirror=True, angle=-6))
    as_drawn = float(_fingerprint(drawing(1)) @ mirror_copy)
    laid_over = float(_fingerprint(drawing(1), mirror=True) @ mirror_copy)
    assert laid_over > as_drawn + 0.05


def test_a_blank_picture_has_an_empty_fingerprint():
    from PIL import Image

    assert not _fingerprint(Image.new("RGB", (200, 200), "white")).any()


def test_a_codebook_is_learned_from_descriptors():
    found = [features(reprinted(drawing(k))).descriptors for k in range(1, 9)]
    book = train(found, seed=0)
    assert book.words.shape == codebook().words.shape and book.reduce.shape == (32, 128)
    fingerprint = book.fingerprint(features(drawing(1)))
    assert fingerprint.shape == (DIMS,) and np.isfinite(fingerprint).all()
