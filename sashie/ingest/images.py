"""Reading images safely: from a path or URL to an RGB picture, or a one-line reason why not.

Scanned collections hold every kind of file: truncated downloads, zero-byte placeholders,
CMYK or 16-bit TIFFs, palette GIFs, PNGs with alpha, phone photos rotated by EXIF, and now and
then a decompression bomb. `load_image` turns each into an upright 8-bit RGB image or raises
`BadInput` with a reason a person can read.
"""

from __future__ import annotations

import contextlib
import io
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import BadInput

DEFAULT_MAX_PIXELS = 250_000_000  # a 15000 x 16000 scan; larger is refused as a likely bomb
DEFAULT_MAX_BYTES = 512 * 1024 * 1024
IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".jpe", ".png", ".tif", ".tiff", ".webp", ".bmp", ".gif"}
)
USER_AGENT = "sashie/0.1 (+https://github.com/sashie)"

# Pillow refuses images over 2 x 89 Mpx itself; scans of folding plates are bigger than that,
# so sashie applies its own limit (`max_pixels`, checked from the header before decoding).
Image.MAX_IMAGE_PIXELS = None


def is_url(text: str) -> bool:
    return text.startswith(("http://", "https://"))


def fetch(url: str, *, max_bytes: int = DEFAULT_MAX_BYTES, timeout: float = 30.0) -> bytes:
    """Download `url`; raise BadInput saying why when it cannot be had."""
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            data = response.read(max_bytes + 1)
    except urllib.error.HTTPError as e:
        raise BadInput(f"unreachable URL (HTTP {e.code})") from None
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", e)
        raise BadInput(f"unreachable URL ({reason})") from None
    if len(data) > max_bytes:
        raise BadInput(f"download larger than {max_bytes} bytes")
    return data


def read_bytes(uri: str, *, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
    """The bytes of a local file or URL."""
    if is_url(uri):
        return fetch(uri, max_bytes=max_bytes)
    path = Path(uri)
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise BadInput(f"file larger than {max_bytes} bytes")
        return path.read_bytes()
    except FileNotFoundError:
        raise BadInput("file not found") from None
    except IsADirectoryError:
        raise BadInput("is a directory") from None
    except PermissionError:
        raise BadInput("permission denied") from None
    except OSError as e:
        raise BadInput(f"unreadable file ({e.strerror or e})") from None


def decode_image(
    data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS, at_least: int | None = None
) -> Image.Image:
    """Decode image bytes into an upright 8-bit RGB image (first frame of an animation).

    `at_least`: a JPEG may be decoded at 1/2, 1/4 or 1/8 scale, keeping both sides at least
    this long (much faster for thumbnails)."""
    if not data:
        raise BadInput("empty file")
    try:
        image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise BadInput("not an image") from None
    except Exception as e:  # Pillow's decoders raise many kinds on corrupt headers
        raise BadInput(f"truncated or corrupt image ({e})") from None
    width, height = image.size
    if width * height > max_pixels:
        raise BadInput(f"too many pixels ({width}x{height} > {max_pixels:,} allowed)")
    try:
        if at_least:
            image.draft("RGB", (at_least, at_least))
        image.load()
    except Exception as e:
        raise BadInput(f"truncated or corrupt image ({e})") from None
    upright: Image.Image = image
    with contextlib.suppress(Exception):  # a broken EXIF block must not lose a good image
        upright = ImageOps.exif_transpose(image)
    return to_rgb(upright)


def load_image(
    uri: str, *, max_pixels: int = DEFAULT_MAX_PIXELS, at_least: int | None = None
) -> Image.Image:
    """Read and decode a local file or URL into an upright RGB image."""
    return decode_image(read_bytes(uri), max_pixels=max_pixels, at_least=at_least)


def to_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB from any Pillow mode: high bit depths scaled down, alpha laid on white paper."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        values = np.asarray(image, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") or values.max(initial=0) > 255 else 255.0
        if mode == "F":
            top = max(float(values.max(initial=0)), 1e-12)
        gray = np.clip(values * (255.0 / top), 0, 255).astype(np.uint8)
        return Image.fromarray(gray, "L").convert("RGB")
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
        mode = image.mode
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        paper = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(paper, rgba).convert("RGB")
    return image.convert("RGB")
