"""Local-feature verification of printings (sashie/printings/matching.py): a reprint turned,
scaled, mirrored and cropped is found with its transform; another drawing is not; hostile
pictures give no match and no error."""

import numpy as np
import pytest
from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageOps

from sashie.printings.matching import features, match, mirrored


def drawing(seed: int, size: int = 400) -> Image.Image:
    """Line art: strokes, rings and hatching in ink on white, like a woodblock picture."""
    rng = np.random.default_rng(seed)
    picture = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(picture)
    for _ in range(25):
        points = [
            tuple(rng.integers(10, size - 10, 2).tolist()) for _ in range(int(rng.integers(2, 6)))
        ]
        draw.line(points, fill=(30, 25, 20), width=int(rng.integers(1, 5)), joint="curve")
    for _ in range(10):
        x, y = rng.integers(20, size - 60, 2).tolist()
        r = int(rng.integers(8, 40))
        draw.ellipse(
            (x, y, x + r, y + int(r * rng.uniform(0.5, 1.5))), outline=(30, 25, 20), width=2
        )
    for _ in range(4):
        x, y = rng.integers(20, size - 80, 2).tolist()
        for k in range(0, 50, 6):
            draw.line((x + k, y, x + k + 10, y + 40), fill=(30, 25, 20), width=1)
    return picture


def reprinted(picture: Image.Image, *, angle=0.0, scale=1.0, mirror=False, crop=None, margin=30):
    """The picture printed again: turned, scaled, maybe mirrored and cropped, on a margin."""
    if mirror:
        picture = ImageOps.mirror(picture)
    if crop:
        picture = picture.crop(crop)
    picture = picture.resize((round(picture.width * scale), round(picture.height * scale)))
    picture = picture.rotate(
        angle, resample=Image.Resampling.BICUBIC, expand=True, fillcolor="white"
    )
    page = Image.new(
        "RGB", (picture.width + 2 * margin, picture.height + 2 * margin), (235, 225, 200)
    )
    box = (margin, margin, margin + picture.width, margin + picture.height)
    page.paste(ImageChops.multiply(page.crop(box), picture), box)  # ink on paper
    return page.filter(ImageFilter.GaussianBlur(0.6))


def found(query: Image.Image, candidate: Image.Image):
    own = features(query)
    return match(own, mirrored(own), features(candidate))


def test_a_reprint_turned_scaled_mirrored_and_cropped_is_found_with_its_transform():
    original = drawing(1)
    copy = reprinted(original, angle=12, scale=0.7, mirror=True, crop=(0, 0, 400, 280))
    result = found(original, copy)
    assert result is not None
    t = result.transform
    assert t.mirrored
    assert t.scale == pytest.approx(0.7, abs=0.07)
    assert t.rotation == pytest.approx(12, abs=3)
    lines = np.asarray(original.convert("L")) < 128
    shown = lines[:280].sum() / lines.sum()  # the share of its lines in the 280 rows kept
    assert t.crop == pytest.approx(shown, abs=0.08)
    # the picture fills the copy but its margin (30 px of a ~370 px page, turned)
    x0, y0, x1, y1 = result.area
    assert 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1 and (x1 - x0) * (y1 - y0) > 0.5


def test_the_same_print_is_found_whole_and_unturned():
    original = drawing(2)
    result = found(original, reprinted(original, scale=1.3))
    assert result is not None and not result.transform.mirrored
    assert result.transform.scale == pytest.approx(1.3, abs=0.1)
    assert abs(result.transform.rotation) < 2 and result.transform.crop > 0.9
    assert result.transform.kind == "same"


def test_the_mirror_features_are_those_sift_finds_on_the_mirror_image():
    picture = drawing(6)
    laid_over = mirrored(features(picture))
    seen = features(ImageOps.mirror(picture))
    # pair the keypoints found at one place in both; their descriptors must agree far
    # better than the unpermuted ones do (interpolation keeps them from being equal)
    gaps = np.linalg.norm(laid_over.points[:, None] - seen.points[None], axis=2)
    near = gaps.min(axis=1) < 0.5
    assert near.sum() > 30
    ours = laid_over.descriptors[near].astype(float)
    theirs = seen.descriptors[gaps[near].argmin(axis=1)].astype(float)
    unpermuted = features(picture).descriptors[near].astype(float)
    kept = np.linalg.norm(ours - theirs, axis=1).mean()
    assert kept < 0.6 * np.linalg.norm(unpermuted - theirs, axis=1).mean()
    assert (laid_over.ink == seen.ink).mean() > 0.97  # the lines, mirrored


def test_another_drawing_is_not_a_printing():
    for other in (3, 4, 5):
        assert found(drawing(1), reprinted(drawing(other))) is None


@pytest.mark.parametrize(
    "hostile",
    [
        Image.new("RGB", (3, 3), "black"),
        Image.new("RGB", (300, 300), "white"),
        Image.new("RGB", (1, 500), "black"),
        Image.new("RGB", (500, 1), "black"),
        Image.new("L", (200, 40), 128),
    ],
    ids=["tiny", "blank", "a column of one pixel", "a row of one pixel", "grey"],
)
def test_tiny_blank_and_one_pixel_pictures_match_nothing_and_raise_nothing(hostile):
    assert found(hostile, drawing(1)) is None
    assert found(drawing(1), hostile) is None
    assert found(hostile, hostile) is None
