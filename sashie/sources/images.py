"""Reading images safely: from a path or URL to an RGB picture, or a one-line reason why not.

Scanned collections hold every kind of file: truncated downloads, zero-byte placeholders,
CMYK or 16-bit TIFFs, palette GIFs, PNGs with alpha, phone photos rotated by EXIF, and now and
then a decompression bomb. `load_image` turns each into an upright 8-bit RGB image or raises
`BadInput` with a reason a person can read.

Only regular files are read (a FIFO or a device would never end), and only http(s) URLs are
downloaded, within a byte cap and a deadline for the whole download: a watchdog shuts the
connection when the deadline passes, whatever it is waiting for (the headers, the next byte).
"""

from __future__ import annotations

import contextlib
import errno
import http.client
import io
import ipaddress
import os
import socket
import stat
import threading
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import BadInput

DEFAULT_MAX_PIXELS = 250_000_000  # a 15000 x 16000 scan; larger is refused as a likely bomb
DEFAULT_MAX_BYTES = 512 * 1024 * 1024
DOWNLOAD_DEADLINE = 120.0  # seconds for a whole download, however slowly its bytes come
DOWNLOAD_CHUNK = 1024 * 1024
IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".jpe", ".png", ".tif", ".tiff", ".webp", ".bmp", ".gif"}
)
USER_AGENT = "sashie/0.1 (+https://github.com/sashie)"

# Pillow refuses images over 2 x 89 Mpx itself; scans of folding plates are bigger than that,
# so sashie applies its own limit (`max_pixels`, checked from the header before decoding).
Image.MAX_IMAGE_PIXELS = None


def is_url(text: str) -> bool:
    return text.startswith(("http://", "https://"))


# --- downloads -------------------------------------------------------------------------------


def fetch(
    url: str,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    timeout: float = 30.0,
    deadline: float | None = None,
    public_only: bool = False,
) -> bytes:
    """Download an http(s) URL: at most `max_bytes`, in at most `deadline` seconds in all
    (`DOWNLOAD_DEADLINE` when None), `timeout` for any one wait (connecting included); raise
    BadInput saying why when it cannot be had. `public_only`: connect only to public
    addresses (not this machine, its network or a link-local one), redirects included."""
    if not is_url(url):
        raise BadInput("not an http(s) URL")
    seconds = DOWNLOAD_DEADLINE if deadline is None else deadline
    late = BadInput(f"download took longer than {seconds:g} s")
    watchdog = _Watchdog(seconds, public_only)
    opener = urllib.request.build_opener(
        _WebRedirects, _WatchedHTTP(watchdog), _WatchedHTTPS(watchdog)
    )
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    try:
        with opener.open(request, timeout=min(timeout, seconds)) as response:
            data = _read_at_most(response, max_bytes)
    except urllib.error.HTTPError as e:
        raise BadInput(f"unreachable URL (HTTP {e.code})") from None
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as e:
        if watchdog.expired:
            raise late from None
        if watchdog.refused:
            raise BadInput(PRIVATE_ADDRESS) from None
        reason = getattr(e, "reason", e)
        raise BadInput(f"unreachable URL ({reason})") from None
    finally:
        watchdog.stop()
    if watchdog.expired:  # a connection shut mid-body can read as the body's end
        raise late
    return data


def _read_at_most(response, max_bytes: int) -> bytes:
    chunks, size = [], 0
    while chunk := response.read(DOWNLOAD_CHUNK):
        size += len(chunk)
        if size > max_bytes:
            raise BadInput(f"download larger than {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


PRIVATE_ADDRESS = "refused: a manifest from the web may not name this machine or its network"


PRIVATE_HOSTS_SETTING = "SASHIE_PRIVATE_HOSTS"  # hosts on this network a stored URL may name
STORED_PRIVATE_ADDRESS = (
    "refused: a page recorded in the library may not name this machine or its network "
    f"(allow its host with {PRIVATE_HOSTS_SETTING}=host)"
)


def stored_url_public_only(url: str) -> bool:
    """Whether a URL read back from a library (its catalog: a folder someone may have sent)
    may reach public addresses only: yes, unless the person running sashie allowed its host
    in SASHIE_PRIVATE_HOSTS (names or addresses, comma-separated)."""
    host = (urllib.parse.urlsplit(url).hostname or "").lower()
    allowed = os.environ.get(PRIVATE_HOSTS_SETTING, "").split(",")
    return host not in {h.strip().lower().strip("[]") for h in allowed if h.strip()}


def is_public_address(address: str) -> bool:
    """Whether an IP address is on the public internet (not loopback, private, link-local
    or reserved)."""
    try:
        return ipaddress.ip_address(address.split("%", 1)[0]).is_global
    except ValueError:
        return False


def is_public_host(url: str) -> bool:
    """Whether every address the URL's host name resolves to is public (True when it does
    not resolve: then nothing is reached anyway)."""
    return _resolves_public(urllib.parse.urlsplit(url).hostname or "")


def _resolves_public(host: str) -> bool:
    try:
        infos = socket.getaddrinfo(host, None)
    except (OSError, UnicodeError):
        return True
    return all(is_public_address(str(info[4][0])) for info in infos)


class _Watchdog:
    """Shuts a download's sockets when its deadline passes, whatever they are waiting for;
    with `public_only`, refuses a connection whose peer is not a public address (checked on
    the connected socket, so a name that resolves differently the second time is caught)."""

    def __init__(self, seconds: float, public_only: bool = False) -> None:
        self.public_only = public_only
        self.refused = False
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def stop(self) -> None:
        self._timer.cancel()

    def connection(self, http_class):
        """`http_class` (an http.client connection class) with its sockets watched."""

        def make(*args, **kwargs):
            connection = http_class(*args, **kwargs)
            connection._create_connection = self._connect  # how http.client opens its socket
            return connection

        return make

    def _connect(self, address: tuple[str, int], *args, **kwargs) -> socket.socket:
        if self.public_only and not _resolves_public(address[0]):
            # refused before connecting: an open port and a closed one read alike
            self.refused = True
            raise OSError(PRIVATE_ADDRESS)
        sock = socket.create_connection(address, *args, **kwargs)
        if self.public_only and not is_public_address(sock.getpeername()[0]):
            sock.close()
            self.refused = True
            raise OSError(PRIVATE_ADDRESS)
        with self._lock:
            self._sockets.append(sock)
            if self.expired:
                _shut(sock)
        return sock

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                _shut(sock)


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


class _Watched(urllib.request.AbstractHTTPHandler):
    """urllib's handler, its connections watched by one download's watchdog."""

    def __init__(self, watchdog: _Watchdog) -> None:
        super().__init__()
        self.watchdog = watchdog

    def do_open(self, http_class, req, **http_conn_args):
        return super().do_open(self.watchdog.connection(http_class), req, **http_conn_args)


class _WatchedHTTP(_Watched, urllib.request.HTTPHandler):
    pass


class _WatchedHTTPS(_Watched, urllib.request.HTTPSHandler):
    pass


class _WebRedirects(urllib.request.HTTPRedirectHandler):
    """Redirects to http(s) URLs only (urllib's own follows ftp: too)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        if not is_url(newurl):
            fp.close()
            raise BadInput("redirected to a URL that is not http(s)")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


# --- local files -----------------------------------------------------------------------------


def stat_file(path: str | Path) -> os.stat_result:
    """A local file's status (through symbolic links); BadInput unless it is a regular file."""
    try:
        status = os.stat(path)
    except OSError as e:
        raise BadInput(_unreadable(e, path)) from None
    if stat.S_ISDIR(status.st_mode):
        raise BadInput("is a directory")
    if not stat.S_ISREG(status.st_mode):
        raise BadInput("not a regular file")
    return status


def _unreadable(error: OSError, path: str | Path) -> str:
    """Why a local path could not be read, in a few words."""
    if isinstance(error, FileNotFoundError):
        return "dangling symbolic link" if os.path.islink(path) else "file not found"
    if isinstance(error, PermissionError):
        return "permission denied"
    if error.errno == errno.ELOOP:
        return "symbolic link loop"
    return f"unreadable file ({error.strerror or error})"


def read_file(path: str | Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
    """A regular file's bytes, at most `max_bytes`. Anything else (a FIFO, a device, a folder)
    is refused before it is opened, and again once open (in case it was swapped meanwhile):
    opened without blocking, a FIFO does not wait for a writer."""
    stat_file(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        with open(fd, "rb") as file:
            status = os.fstat(fd)
            if not stat.S_ISREG(status.st_mode):
                raise BadInput("not a regular file")
            if status.st_size > max_bytes:
                raise BadInput(f"file larger than {max_bytes} bytes")
            data = file.read(max_bytes + 1)
    except OSError as e:
        raise BadInput(_unreadable(e, path)) from None
    if len(data) > max_bytes:
        raise BadInput(f"file larger than {max_bytes} bytes")
    return data


def read_bytes(uri: str, *, max_bytes: int = DEFAULT_MAX_BYTES, public_only: bool = False) -> bytes:
    """The bytes of a local file or an http(s) URL (`public_only`: see `fetch`)."""
    if is_url(uri):
        return fetch(uri, max_bytes=max_bytes, public_only=public_only)
    return read_file(uri, max_bytes=max_bytes)


# --- decoding --------------------------------------------------------------------------------


def header_pixels(data: bytes) -> int:
    """The pixel count an image's header declares, read without decoding (0 when the header
    cannot be read: decoding will say why)."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.width * image.height
    except Exception:  # Pillow's decoders raise many kinds on corrupt headers
        return 0


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
    with contextlib.suppress(Exception):  # a broken EXIF block must not lose a good image
        ImageOps.exif_transpose(image, in_place=True)  # in place: no copy of an upright page
    return to_rgb(image)


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
