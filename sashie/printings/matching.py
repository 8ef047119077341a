"""Whether two pictures are printings of one block, and how one sits in the other.

Each picture is greyed and scaled to SIDE pixels on its longer side; SIFT finds its keypoints
(OpenCV's, free of downloaded weights). A pair is matched descriptor to descriptor (Lowe's
ratio test), and an affine map from one to the other is fitted by MAGSAC (OpenCV's USAC),
which keeps the matches that agree on one map. Two pictures are printings of one picture
when at least MIN_INLIERS matches agree, spread over part of the picture, on a map that is
a plausible reprint: a rotation, a scale and a shift, a little shear at most. A mirror copy
is found by matching the query's mirror image too (its features are the query's, laid
over: SIFT's cells and angles read backwards). Line art suits this: the corners and
crossings of its lines survive worn blocks, ink spread and colouring.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image, ImageOps

SIDE = 256  # pixels on the longer side features are found at (384 found no more, 3 x slower)
MOST_POINTS = 300  # keypoints kept a picture (the strongest)
RATIO = 0.8  # Lowe's ratio test: a match must be this much closer than the next best
MIN_INLIERS = 12  # matches that must agree on one map (chosen on the printings world)
REPROJECTION = 4.0  # pixels (at SIDE) a match may lie off the fitted map
MAX_SHEAR = 1.5  # the map's longer axis over its shorter: a reprint is not stretched
SCALES = (0.1, 10.0)  # the size of one printing against the other, at most
MIN_SPREAD = 0.04  # share of the query's area the agreeing points must span
SMALLEST = 16  # pixels: a narrower picture has no features
INK_BELOW_SURROUND = 25  # grey levels under the surroundings' mean that make a line
MIN_AGREEMENT = 0.65  # share of the query's lines the map must lay on the candidate's ...
STRONG = (40, 0.5)  # ... or this many agreeing matches laying this share (seed 7 world)
PICTURE_REACH = 21  # pixels around a picture's lines that are still the picture
INK_SAMPLES = 4000  # ink pixels of the query carried into a candidate to measure the crop


@dataclass(frozen=True)
class Features:
    """Keypoints of one picture at SIDE pixels: positions (n x 2), SIFT descriptors
    (n x 128), the size they were found at, the picture's own pixels a feature pixel, and
    where its ink is (a boolean image at SIDE: a printing's margin is not the picture)."""

    points: np.ndarray
    descriptors: np.ndarray
    size: tuple[int, int]
    pixel: float
    ink: np.ndarray

    def __len__(self) -> int:
        return len(self.points)


@dataclass(frozen=True)
class Transform:
    """How a printing shows the query's picture: `scale` its size against the query's,
    `rotation` in degrees (counter-clockwise), `mirrored`, and `crop`: the share of the
    query's picture it shows (1.0: all of it)."""

    scale: float
    rotation: float
    mirrored: bool
    crop: float

    @property
    def kind(self) -> str:
        """A word for it: "mirror", "crop" or "same"."""
        return "mirror" if self.mirrored else "crop" if self.crop < 0.85 else "same"


@dataclass(frozen=True)
class Match:
    """A verified printing: `inliers` matches agree on one map, which lays `agreement` of
    the query's lines on the candidate's; `area` is where the query's picture lies in the
    candidate, as shares of its width and height (x0, y0, x1, y1)."""

    inliers: int
    agreement: float
    area: tuple[float, float, float, float]
    transform: Transform

    @property
    def score(self) -> float:
        """The evidence, 0 to 1: agreeing matches, saturating at 5 x MIN_INLIERS."""
        return min(1.0, self.inliers / (5 * MIN_INLIERS))


_sift = None


def _detector():
    global _sift
    if _sift is None:
        _sift = cv2.SIFT.create(nfeatures=MOST_POINTS)
    return _sift


def features(picture: Image.Image) -> Features:
    """The keypoints of a picture; none for a picture too small or too plain to have any."""
    width, height = picture.size
    pixel = max(width, height) / SIDE
    size = (max(1, round(width / pixel)), max(1, round(height / pixel)))
    if min(width, height) < SMALLEST or min(size) < SMALLEST:
        return _none(size, pixel)
    grey = np.asarray(ImageOps.grayscale(picture).resize(size, Image.Resampling.LANCZOS))
    points, descriptors = _detector().detectAndCompute(grey, None)
    if descriptors is None or len(points) < 3:
        return _none(size, pixel)
    xy = np.array([p.pt for p in points], np.float32)
    kept = np.clip(np.rint(descriptors), 0, 255).astype(np.uint8)  # SIFT's values are bytes
    return Features(xy, kept, size, pixel, _ink(grey))


# A SIFT descriptor is 4 x 4 cells of 8 angles, laid along the keypoint's own direction. In
# the mirror image that direction is mirrored too, so each cell's row and each angle turn
# over: the mirror's descriptor is the same numbers in this order (checked against SIFT run
# on mirrored pictures in tests/printings/test_matching.py).
_CELLS = np.arange(128).reshape(4, 4, 8)
MIRROR_ORDER = _CELLS[::-1][:, :, [(8 - angle) % 8 for angle in range(8)]].reshape(-1)


def mirrored(found: Features) -> Features:
    """The features of the picture's mirror image, from its own."""
    width = found.size[0]
    points = found.points.copy()
    points[:, 0] = width - 1 - points[:, 0]
    ink = found.ink[:, ::-1].copy() if found.ink.size else found.ink
    return Features(points, found.descriptors[:, MIRROR_ORDER], found.size, found.pixel, ink)


def _ink(grey: np.ndarray) -> np.ndarray:
    """The lines: pixels clearly darker than their surroundings (a wash of colour, a stain or
    the paper's tone is not a line)."""
    surround = cv2.blur(grey, (15, 15)).astype(np.int16)
    return grey.astype(np.int16) < surround - INK_BELOW_SURROUND


def _none(size: tuple[int, int], pixel: float) -> Features:
    empty = np.zeros((0, 2), np.float32)
    return Features(empty, np.zeros((0, 128), np.uint8), size, pixel, np.zeros((0, 0), bool))


def match(query: Features, mirror: Features | None, candidate: Features) -> Match | None:
    """The candidate as a printing of the query's picture (`mirror`: the features of the
    query's mirror image, to find mirror copies), or None when it is not one."""
    found = _verified(query, candidate, mirrored=False)
    if mirror is not None:
        flipped = _verified(mirror, candidate, mirrored=True)
        if flipped is not None and (found is None or flipped.inliers > found.inliers):
            found = flipped
    return found


def _verified(query: Features, candidate: Features, *, mirrored: bool) -> Match | None:
    if len(query) < MIN_INLIERS or len(candidate) < MIN_INLIERS:
        return None
    source, target = _ratio_matches(query.descriptors, candidate.descriptors)
    if len(source) < MIN_INLIERS:
        return None
    source, target = query.points[source], candidate.points[target]
    affine, inlying = cv2.estimateAffine2D(
        source, target, method=cv2.USAC_MAGSAC, ransacReprojThreshold=REPROJECTION,
        maxIters=2000, confidence=0.995,
    )  # fmt: skip
    if affine is None or inlying is None:
        return None
    inlying = inlying.ravel().astype(bool)
    inliers = int(inlying.sum())
    if inliers < MIN_INLIERS or not _plausible(affine[:, :2]):
        return None
    spread = np.ptp(source[inlying], axis=0)
    if spread[0] * spread[1] < MIN_SPREAD * query.size[0] * query.size[1]:
        return None  # the agreeing points sit on one small patch: a seal, a corner of a frame
    area, crop, agreement = _overlap(affine, query, candidate)
    if agreement < MIN_AGREEMENT and (inliers < STRONG[0] or agreement < STRONG[1]):
        return None
    linear = affine[:, :2]
    scale = math.sqrt(np.linalg.det(linear)) * candidate.pixel / query.pixel
    rotation = -math.degrees(math.atan2(linear[1, 0], linear[0, 0]))  # image y points down
    transform = Transform(round(scale, 3), round(rotation, 1), mirrored, crop)
    return Match(inliers, agreement, area, transform)


def _ratio_matches(query: np.ndarray, candidate: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The query's descriptors whose nearest candidate descriptor is clearly nearer than
    the next (Lowe's ratio test), and those nearest: two index arrays. One matrix product
    (BLAS) does in a tenth of the time what OpenCV's brute-force matcher does here."""
    q, c = query.astype(np.float32), candidate.astype(np.float32)
    squared = (q * q).sum(1)[:, None] + (c * c).sum(1)[None, :] - 2 * (q @ c.T)
    rows = np.arange(len(q))
    best = squared.argmin(axis=1)
    nearest = np.maximum(squared[rows, best], 0)
    squared[rows, best] = np.inf
    second = np.maximum(squared.min(axis=1), 0)
    kept = np.flatnonzero(nearest < RATIO * RATIO * second)
    return kept, best[kept]


def _plausible(linear: np.ndarray) -> bool:
    """Whether a 2 x 2 map is a reprint's: no reflection, no stretch, a sane scale."""
    if np.linalg.det(linear) <= 0:
        return False
    longer, shorter = np.linalg.svd(linear, compute_uv=False)
    scale = math.sqrt(longer * shorter)
    return longer / shorter <= MAX_SHEAR and SCALES[0] <= scale <= SCALES[1]


def _overlap(
    affine: np.ndarray, query: Features, candidate: Features
) -> tuple[tuple[float, float, float, float], float, float]:
    """Where the query's picture lies in the candidate (the box of its ink carried into the
    candidate's inked part, as shares of the candidate's width and height); the share of
    the query's ink carried there (1.0: the candidate shows all of the picture); and the
    share of that which lands on the candidate's ink (a printing's lines lie on each other;
    pictures that share only a frame or a few strokes do not)."""
    ys, xs = np.nonzero(query.ink)
    if len(xs) > INK_SAMPLES:
        step = len(xs) // INK_SAMPLES + 1
        xs, ys = xs[::step], ys[::step]
    mapped = np.rint(np.column_stack([xs, ys]) @ affine[:, :2].T + affine[:, 2]).astype(np.int64)
    height, width = candidate.ink.shape
    inside = (
        (mapped[:, 0] >= 0) & (mapped[:, 0] < width) & (mapped[:, 1] >= 0) & (mapped[:, 1] < height)
    )
    if len(xs) == 0 or not inside.any():
        return (0.0, 0.0, 0.0, 0.0), 0.0, 0.0
    # the candidate's picture: what lies near its lines (its margin and the page around are not)
    picture = cv2.dilate(candidate.ink.astype(np.uint8), np.ones((PICTURE_REACH,) * 2, np.uint8))
    inside[inside] = picture[mapped[inside, 1], mapped[inside, 0]].astype(bool)
    if not inside.any():
        return (0.0, 0.0, 0.0, 0.0), 0.0, 0.0
    near = cv2.dilate(candidate.ink.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    landed = near[mapped[inside, 1], mapped[inside, 0]]
    x0, y0 = mapped[inside].min(axis=0)
    x1, y1 = mapped[inside].max(axis=0) + 1
    area = (x0 / width, y0 / height, x1 / width, y1 / height)
    return (
        tuple(round(float(v), 4) for v in area),  # type: ignore[return-value]
        round(float(inside.mean()), 3),
        round(float(landed.mean()), 3),
    )
